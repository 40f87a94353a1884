//! The hybrid logical clock (docs/sync.md section 2).
//!
//! An HLC is an `i64`: the physical part in milliseconds shifted left 16 bits, plus a 16-bit
//! counter. Together with the 16-byte node id of the device that made it, it totally orders every
//! edit: `(hlc, node)` compared lexicographically.

use serde::{Deserialize, Serialize};

/// How many bits of an HLC hold the counter.
pub const COUNTER_BITS: u32 = 16;
const COUNTER_MASK: i64 = (1 << COUNTER_BITS) - 1;

/// The physical part (milliseconds since the Unix epoch) of an HLC.
pub fn physical_ms(hlc: i64) -> i64 {
    hlc >> COUNTER_BITS
}

/// Builds an HLC from its physical part and counter.
pub fn pack(physical_ms: i64, counter: i64) -> i64 {
    (physical_ms << COUNTER_BITS) | (counter & COUNTER_MASK)
}

/// A device's id: a random UUID made on the database's first open, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub [u8; 16]);

impl NodeId {
    /// A new random node id.
    pub fn random() -> Self {
        Self(*uuid::Uuid::new_v4().as_bytes())
    }

    /// The node id as a UUID string, as sent in `X-Client-Id`.
    pub fn to_uuid_string(&self) -> String {
        uuid::Uuid::from_bytes(self.0).to_string()
    }

    /// The node id of a device from its client id (a UUID in any form [`uuid::Uuid::parse_str`]
    /// reads), as a push names its sender.
    pub fn from_client_id(client_id: &str) -> Option<NodeId> {
        uuid::Uuid::parse_str(client_id).ok().map(|id| NodeId(*id.as_bytes()))
    }

    /// The node id of 16 stored bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<NodeId> {
        bytes.try_into().ok().map(NodeId)
    }

    /// The wire form: standard base64 with padding ([`node_base64`]).
    pub fn to_base64(&self) -> String {
        node_base64(&self.0)
    }

    /// Reads a node id in its wire form, exactly as [`NodeId::to_base64`] writes it: standard
    /// base64 of 16 bytes, decoded without allocating. The server accepts a pushed node in this
    /// form only.
    pub fn from_standard_base64(text: &str) -> Option<NodeId> {
        use base64::Engine as _;
        // Room for two bytes more than a node, so a longer text is told apart from a node.
        let mut bytes = [0u8; 18];
        match base64::engine::general_purpose::STANDARD.decode_slice(text, &mut bytes) {
            Ok(16) => {
                let mut node = [0u8; 16];
                node.copy_from_slice(&bytes[..16]);
                Some(NodeId(node))
            }
            _ => None,
        }
    }

    /// Reads a node id received from the server: standard base64 of 16 bytes (the wire form,
    /// decoded without allocating, as almost every node of a pull page is), or else URL-safe
    /// base64 without padding. The error says what is wrong.
    pub fn from_base64(text: &str) -> Result<NodeId, NodeIdError> {
        use base64::Engine as _;
        if let Some(node) = Self::from_standard_base64(text) {
            return Ok(node);
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .map_err(|error| NodeIdError::NotBase64 { text: text.to_owned(), reason: error.to_string() })?;
        Self::from_slice(&bytes).ok_or_else(|| NodeIdError::NotSixteenBytes { text: text.to_owned() })
    }
}

/// The wire form of a node id's bytes: standard base64 with padding.
pub fn node_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Why a text is not a node id ([`NodeId::from_base64`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeIdError {
    /// The text is base64 in neither form.
    NotBase64 {
        /// The text received.
        text: String,
        /// What the decoder found wrong.
        reason: String,
    },
    /// The text decodes to other than 16 bytes.
    NotSixteenBytes {
        /// The text received.
        text: String,
    },
}

impl std::fmt::Display for NodeIdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeIdError::NotBase64 { text, reason } => write!(f, "node {text:?} is not base64: {reason}"),
            NodeIdError::NotSixteenBytes { text } => write!(f, "node {text:?} is not 16 bytes"),
        }
    }
}

impl std::error::Error for NodeIdError {}

/// A field's version: the HLC of its last write and the node that made it. Ordered by HLC, then
/// node, which is the last-writer-wins order everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// The hybrid logical clock value.
    pub hlc: i64,
    /// The node that wrote it.
    pub node: NodeId,
}

impl Stamp {
    /// The least stamp there is, hlc 0 from the all-zero node: no write at all. A pulled row's
    /// `deleted` flag carries it when the row was never deleted nor restored, so every real
    /// deletion or restoration beats it; a device keeps no clock for it.
    pub const NONE: Stamp = Stamp { hlc: 0, node: NodeId([0; 16]) };
}

/// A device's clock state: the last HLC it issued or saw, and its correction against the
/// server's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// The greatest HLC issued or observed so far.
    pub last: i64,
    /// Milliseconds to add to the wall clock, learned from the server's `server_time`.
    pub offset_ms: i64,
}

impl Clock {
    /// The next HLC for a local event at wall-clock time `wall_ms`. It is strictly greater than
    /// every HLC issued or observed before, whatever the wall clock does.
    pub fn tick(&mut self, wall_ms: i64) -> i64 {
        let last_physical = physical_ms(self.last);
        let physical = (wall_ms + self.offset_ms).max(last_physical);
        let next = if physical == last_physical {
            let counter = (self.last & COUNTER_MASK) + 1;
            if counter > COUNTER_MASK {
                pack(physical + 1, 0)
            } else {
                pack(physical, counter)
            }
        } else {
            pack(physical, 0)
        };
        self.last = next;
        next
    }

    /// Takes note of an HLC seen from elsewhere, so every later local event orders after it.
    pub fn observe(&mut self, remote: i64) {
        self.last = self.last.max(remote);
    }
}

/// The wall clock in milliseconds since the Unix epoch.
pub fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ticks_increase_when_the_wall_clock_stands_still_or_goes_back() {
        let mut clock = Clock { last: 0, offset_ms: 0 };
        let first = clock.tick(1_000);
        let second = clock.tick(1_000);
        let third = clock.tick(500);
        assert!(first < second && second < third);
        assert_eq!(physical_ms(third), 1_000);
    }

    #[test]
    fn observing_a_later_clock_orders_later_edits_after_it() {
        let mut clock = Clock { last: 0, offset_ms: 0 };
        let remote = pack(5_000_000, 7);
        clock.observe(remote);
        assert!(clock.tick(1_000) > remote);
    }

    #[test]
    fn counter_overflow_carries_into_the_physical_part() {
        let mut clock = Clock { last: pack(10, COUNTER_MASK), offset_ms: 0 };
        let next = clock.tick(10);
        assert_eq!(next, pack(11, 0));
    }

    #[test]
    fn a_node_id_reads_back_from_its_wire_form_and_its_client_id() {
        let node = NodeId([0xAB; 16]);
        assert_eq!(NodeId::from_base64(&node.to_base64()), Ok(node));
        assert_eq!(NodeId::from_standard_base64(&node.to_base64()), Some(node));
        assert_eq!(NodeId::from_client_id(&node.to_uuid_string()), Some(node));
        assert_eq!(NodeId::from_client_id("not a uuid"), None);
        assert_eq!(NodeId::from_slice(&[1; 17]), None);
    }

    #[test]
    fn the_url_safe_form_is_read_from_the_server_but_not_taken_in_a_push() {
        use base64::Engine as _;
        let node = NodeId([0xFB; 16]);
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(node.0);
        assert_eq!(NodeId::from_base64(&url_safe), Ok(node));
        assert_eq!(NodeId::from_standard_base64(&url_safe), None);
    }

    #[test]
    fn a_text_that_is_no_node_says_why() {
        assert_eq!(NodeId::from_base64("AAAA").unwrap_err().to_string(), "node \"AAAA\" is not 16 bytes");
        let long = node_base64(&[7; 17]);
        assert!(matches!(NodeId::from_base64(&long), Err(NodeIdError::NotSixteenBytes { .. })));
        assert_eq!(NodeId::from_standard_base64(&long), None);
        assert_eq!(NodeId::from_standard_base64(&node_base64(&[7; 64])), None);
        let error = NodeId::from_base64("not base64!").unwrap_err().to_string();
        assert!(error.starts_with("node \"not base64!\" is not base64: "), "{error}");
    }

    proptest! {
        #[test]
        fn every_node_id_survives_its_wire_form(bytes in any::<[u8; 16]>()) {
            let node = NodeId(bytes);
            prop_assert_eq!(NodeId::from_base64(&node.to_base64()), Ok(node));
            prop_assert_eq!(NodeId::from_standard_base64(&node.to_base64()), Some(node));
            prop_assert_eq!(NodeId::from_client_id(&node.to_uuid_string()), Some(node));
        }

        #[test]
        fn every_tick_is_greater_than_the_last(walls in proptest::collection::vec(0i64..1_000_000, 1..200)) {
            let mut clock = Clock { last: 0, offset_ms: 0 };
            let mut previous = i64::MIN;
            for wall in walls {
                let next = clock.tick(wall);
                prop_assert!(next > previous);
                previous = next;
            }
        }
    }
}
