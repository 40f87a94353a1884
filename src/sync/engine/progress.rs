//! What a sync tells the desktop app: the progress events of a sync as it runs, and the report
//! of what it did.

use serde::Serialize;

/// What a sync did, summed over its attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Push requests sent.
    pub batches_sent: u64,
    /// Of those, re-sends of a batch already sent once (after a drop).
    pub batches_resent: u64,
    /// Changes the server applied.
    pub applied: u64,
    /// Changes that lost to later ones.
    pub superseded: u64,
    /// Changes the server refused.
    pub rejected: u64,
    /// New entries in the conflicts list.
    pub conflicts: u64,
    /// Pull pages applied.
    pub pages: u64,
    /// Rows received.
    pub rows: u64,
    /// Time spent storing pulled pages on the device, in microseconds: `rows` over this is the
    /// local apply rate, apart from the network and the server.
    pub apply_micros: u64,
    /// Resets (fresh snapshots) the server asked for.
    pub resets: u64,
    /// Clock corrections after the server found the clock ahead.
    pub clock_corrections: u64,
    /// Attempts that failed and were retried.
    pub retries: u64,
    /// Attachments uploaded.
    pub uploads: u64,
    /// Thumbnails and photos downloaded.
    pub downloads: u64,
}

/// A progress event for the desktop app.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Progress {
    /// A sync started.
    Started,
    /// Downloading a photo or a thumbnail made on another device.
    Downloading {
        /// The blob's SHA-256.
        sha256: String,
        /// Bytes on the device so far.
        received_bytes: u64,
    },
    /// Uploading a photo.
    Uploading {
        /// The blob's SHA-256.
        sha256: String,
        /// Bytes the server holds.
        sent_bytes: u64,
        /// The blob's size.
        total_bytes: u64,
    },
    /// Sending a batch of changes.
    Pushing {
        /// Changes in the batch.
        changes: usize,
        /// Whether it is a re-send of a batch whose answer was lost.
        resent: bool,
        /// Changes queued after this batch.
        remaining: i64,
    },
    /// The server answered a batch.
    Pushed {
        /// Applied.
        applied: usize,
        /// Lost to later changes.
        superseded: usize,
        /// Refused.
        rejected: usize,
    },
    /// A page of rows arrived and was saved.
    Pulled {
        /// Pages so far in this sync.
        pages: u64,
        /// Rows so far in this sync.
        rows: u64,
        /// Whether more pages follow.
        has_more: bool,
    },
    /// The server asked for a fresh copy; unsynced changes are kept.
    Reset {
        /// Why.
        reason: String,
    },
    /// The device clock was corrected against the server's.
    ClockCorrected {
        /// The correction in milliseconds.
        offset_ms: i64,
    },
    /// An attempt failed; the engine retries after a wait.
    Retrying {
        /// The failed attempts in a row so far.
        attempt: u32,
        /// The wait in milliseconds.
        wait_ms: u64,
        /// The error's stable code.
        code: String,
        /// The error's message.
        message: String,
    },
    /// The sync finished.
    Finished(SyncReport),
    /// The sync stopped with an error that retrying alone cannot fix (sign in again, update).
    Failed {
        /// The error's stable code.
        code: String,
        /// The message for the user, in Chinese.
        message_zh: String,
        /// The message in English.
        message_en: String,
    },
}
