//! Listing submissions: one record per submission key, and the verdicts given on them.

use super::{optional_int, optional_param, optional_text, Param, Tx};
use crate::error::Result;

/// A listing submission as recorded: one per submission key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionRow {
    /// The device's submission key (unique).
    pub submission_key: String,
    /// The listing submitted.
    pub listing_id: String,
    /// The listing's village when it was submitted.
    pub scope_id: String,
    /// The assistant whose push carried it.
    pub user_id: i64,
    /// The device that pushed it.
    pub client_id: String,
    /// When the server first saw the key (Unix ms, server clock).
    pub submitted_at: i64,
    /// `pending`, `approved` or `rejected`.
    pub moderation_status: String,
    /// The reason given with a rejection.
    pub moderation_reason: Option<String>,
    /// The item id on the selling platform, once approved.
    pub platform_item_id: Option<String>,
    /// Who gave the verdict (`platform`, `moderator:<name>`).
    pub moderated_by: Option<String>,
    /// When the verdict was given (Unix ms).
    pub moderated_at: Option<i64>,
}

/// A verdict on a listing's latest submission; absent parts are left as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmissionVerdict<'a> {
    /// The new moderation status.
    pub moderation_status: Option<&'a str>,
    /// The reason given.
    pub moderation_reason: Option<&'a str>,
    /// The platform's item id.
    pub platform_item_id: Option<&'a str>,
    /// Who gave it.
    pub moderated_by: &'a str,
    /// When (Unix ms).
    pub moderated_at: i64,
}

impl Tx<'_> {
    // Listing submissions.

    /// Records a submission unless its key is known; returns whether it was new.
    pub fn insert_submission(&mut self, submission: &SubmissionRow) -> Result<bool> {
        let changed = self.sql.execute(
            "INSERT INTO listing_submissions (submission_key, listing_id, scope_id, user_id, client_id, submitted_at,
               moderation_status, moderation_reason, platform_item_id, moderated_by, moderated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (submission_key) DO NOTHING",
            &[
                submission.submission_key.as_str().into(),
                submission.listing_id.as_str().into(),
                submission.scope_id.as_str().into(),
                submission.user_id.into(),
                submission.client_id.as_str().into(),
                submission.submitted_at.into(),
                submission.moderation_status.as_str().into(),
                optional_param(submission.moderation_reason.as_deref()),
                optional_param(submission.platform_item_id.as_deref()),
                optional_param(submission.moderated_by.as_deref()),
                submission.moderated_at.map(Param::Int).unwrap_or(Param::Null),
            ],
        )?;
        Ok(changed > 0)
    }

    /// The submissions of a listing, oldest first.
    pub fn submissions(&mut self, listing_id: &str) -> Result<Vec<SubmissionRow>> {
        let rows = self.sql.query(
            "SELECT submission_key, listing_id, scope_id, user_id, client_id, submitted_at, moderation_status,
               moderation_reason, platform_item_id, moderated_by, moderated_at
             FROM listing_submissions WHERE listing_id = $1 ORDER BY submitted_at, submission_key",
            &[listing_id.into()],
        )?;
        rows.iter()
            .map(|row| {
                Ok(SubmissionRow {
                    submission_key: row[0].text()?,
                    listing_id: row[1].text()?,
                    scope_id: row[2].text()?,
                    user_id: row[3].int()?,
                    client_id: row[4].text()?,
                    submitted_at: row[5].int()?,
                    moderation_status: row[6].text()?,
                    moderation_reason: optional_text(&row[7])?,
                    platform_item_id: optional_text(&row[8])?,
                    moderated_by: optional_text(&row[9])?,
                    moderated_at: optional_int(&row[10])?,
                })
            })
            .collect()
    }

    /// Gives a verdict on the latest submission of a listing; returns whether there was one.
    pub fn moderate_submission(&mut self, listing_id: &str, verdict: &SubmissionVerdict<'_>) -> Result<bool> {
        let latest = self.sql.query(
            "SELECT submission_key FROM listing_submissions WHERE listing_id = $1
             ORDER BY submitted_at DESC, submission_key DESC LIMIT 1",
            &[listing_id.into()],
        )?;
        let Some(key) = latest.first().map(|row| row[0].text()).transpose()? else { return Ok(false) };
        self.sql.execute(
            "UPDATE listing_submissions SET moderation_status = COALESCE($1, moderation_status),
               moderation_reason = COALESCE($2, moderation_reason), platform_item_id = COALESCE($3, platform_item_id),
               moderated_by = $4, moderated_at = $5
             WHERE submission_key = $6",
            &[
                optional_param(verdict.moderation_status),
                optional_param(verdict.moderation_reason),
                optional_param(verdict.platform_item_id),
                verdict.moderated_by.into(),
                verdict.moderated_at.into(),
                key.into(),
            ],
        )?;
        Ok(true)
    }
}
