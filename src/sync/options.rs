//! How the sync engine behaves: the backoff of retries ([`RetryPolicy`]), the size of pull pages
//! and push batches, and the sizes of photo upload chunks ([`ChunkSizes`]), which follow the link.

use std::time::Duration;

use crate::sync::outbox::BatchLimits;

/// How failed syncs are retried: exponential backoff with jitter, on the engine's own timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Give up after this many failed attempts in a row; `None` retries until stopped.
    pub max_attempts: Option<u32>,
}

impl Default for RetryPolicy {
    /// Never gives up while work is pending, and waits at most a minute between tries, so a
    /// link that comes back is used within a minute without the user pressing anything.
    fn default() -> Self {
        Self { initial: Duration::from_secs(1), max: Duration::from_secs(60), max_attempts: None }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (from 1): the doubled delay capped at `max`, of which
    /// a random half is taken away so that many devices coming back online do not retry in step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doubled = self.initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = doubled.min(self.max);
        let half = capped / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// The engine's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOptions {
    /// Rows asked for per pull page.
    pub pull_limit: usize,
    /// Limits of a push batch.
    pub batch_limits: BatchLimits,
    /// Retry of failed syncs.
    pub retry: RetryPolicy,
    /// Push-then-pull rounds in one sync before it stops even if edits keep arriving.
    pub max_rounds: usize,
    /// The sizes of photo upload chunks.
    pub chunks: ChunkSizes,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            pull_limit: 1000,
            batch_limits: BatchLimits::default(),
            retry: RetryPolicy::default(),
            max_rounds: 5,
            chunks: ChunkSizes::default(),
        }
    }
}

/// The sizes of a photo's upload chunks. The first is small enough to pass a 32 kbit/s link in a
/// few seconds; chunks then grow while they pass quickly and shrink after a slow or failed one
/// ([`ChunkSizes::next`]), so a drop costs little on a bad link and a good link is not slowed by
/// many small requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSizes {
    /// The first chunk, in bytes.
    pub first: usize,
    /// The smallest chunk.
    pub min: usize,
    /// The largest chunk.
    pub max: usize,
}

impl Default for ChunkSizes {
    fn default() -> Self {
        Self { first: 32 * 1024, min: 16 * 1024, max: 1024 * 1024 }
    }
}

/// A chunk that passes in less than this doubles the next one.
const FAST_CHUNK: std::time::Duration = std::time::Duration::from_secs(2);
/// A chunk that takes longer than this halves the next one.
const SLOW_CHUNK: std::time::Duration = std::time::Duration::from_secs(8);

impl ChunkSizes {
    /// Every chunk of the same size (tests that count chunks).
    pub fn fixed(bytes: usize) -> Self {
        Self { first: bytes, min: bytes, max: bytes }
    }

    /// The size of the chunk after one of `sent` bytes sized `current` that took `took` (`None`:
    /// it failed): double after a full chunk that passed fast, half after a slow or failed one,
    /// within `min` and `max`.
    pub fn next(&self, current: usize, sent: usize, took: Option<std::time::Duration>) -> usize {
        let next = match took {
            Some(took) if took < FAST_CHUNK && sent >= current => current.saturating_mul(2),
            Some(took) if took <= SLOW_CHUNK => current,
            _ => current / 2,
        };
        next.clamp(self.min, self.max.max(self.min))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::ChunkSizes;

    #[test]
    fn chunks_grow_on_a_fast_link_and_shrink_after_a_slow_or_failed_chunk() {
        let sizes = ChunkSizes::default();
        let fast = Some(Duration::from_millis(300));
        let mut size = sizes.first;
        for _ in 0..10 {
            size = sizes.next(size, size, fast);
        }
        assert_eq!(size, sizes.max, "a fast link reaches the largest chunk");
        assert_eq!(sizes.next(size, size, Some(Duration::from_secs(5))), size, "a steady chunk keeps its size");
        assert_eq!(sizes.next(size, size, Some(Duration::from_secs(20))), size / 2, "a slow chunk halves the next");
        assert_eq!(sizes.next(size, size, None), size / 2, "a failed chunk halves the next");
        let mut size = sizes.first;
        for _ in 0..10 {
            size = sizes.next(size, size, None);
        }
        assert_eq!(size, sizes.min, "a link that keeps failing goes down to the smallest chunk, never to nothing");
        // The last, short chunk of a photo says nothing about the link's room for more.
        assert_eq!(sizes.next(sizes.first, 100, fast), sizes.first);
        assert_eq!(ChunkSizes::fixed(4096).next(4096, 4096, None), 4096);
    }
}
