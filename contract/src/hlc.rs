//! The hybrid logical clock (sync-design.md section 2).
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
}

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

    proptest! {
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
