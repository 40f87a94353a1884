#!/bin/sh
# The peer of the sync benchmark: installs the pinned packages (package-lock.json) when they are
# missing or the lock file changed, then times a fresh PouchDB pulling the rows from pouchdb-server
# (first-sync.js). Arguments go to first-sync.js: a rows file, one JSON document a line.
set -eu
cd "$(dirname "$0")"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "peer: installing the pinned packages (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
exec node first-sync.js "$@"
