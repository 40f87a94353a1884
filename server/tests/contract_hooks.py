"""Hooks of the API tester run by tests/contract.rs: upload chunks are raw bytes sent as
application/offset+octet-stream, a media type the tester does not know how to send."""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
