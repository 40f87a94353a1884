//! Blob metadata: finished blobs, the villages each may be read in, and uploads in progress.

use super::{in_list, Param, Tx};
use crate::error::Result;

/// A blob's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// Digest, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
    /// Media type.
    pub mime: String,
    /// The user who uploaded it first.
    pub uploaded_by: i64,
}

/// An upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The upload's id.
    pub id: String,
    /// The digest the finished blob must have.
    pub sha256: String,
    /// The size the finished blob must have.
    pub size: i64,
    /// Media type.
    pub mime: String,
    /// The uploading user.
    pub user_id: i64,
    /// Bytes received and kept so far.
    pub offset: i64,
}

impl Tx<'_> {
    // Blobs.

    /// A blob's metadata.
    pub fn blob(&mut self, sha256: &str) -> Result<Option<BlobMeta>> {
        let rows = self.sql.query("SELECT sha256, size, mime, uploaded_by FROM blobs WHERE sha256 = $1", &[sha256.into()])?;
        rows.first()
            .map(|row| Ok(BlobMeta { sha256: row[0].text()?, size: row[1].int()?, mime: row[2].text()?, uploaded_by: row[3].int()? }))
            .transpose()
    }

    /// Records a finished blob (no effect if it exists).
    pub fn put_blob(&mut self, blob: &BlobMeta, now: i64) -> Result<()> {
        self.sql.execute(
            "INSERT INTO blobs (sha256, size, mime, uploaded_by, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256) DO NOTHING",
            &[blob.sha256.as_str().into(), blob.size.into(), blob.mime.as_str().into(), blob.uploaded_by.into(), now.into()],
        )?;
        Ok(())
    }

    /// Makes a blob readable in a village (no effect if it is already).
    pub fn grant_blob(&mut self, sha256: &str, scope_id: &str, now: i64) -> Result<()> {
        self.sql.execute(
            "INSERT INTO blob_scopes (sha256, scope_id, granted_at) VALUES ($1, $2, $3) ON CONFLICT (sha256, scope_id) DO NOTHING",
            &[sha256.into(), scope_id.into(), now.into()],
        )?;
        Ok(())
    }

    /// A blob the user may read: one they uploaded, or one readable in one of `scopes`. Any
    /// other blob is answered as missing, so its existence and size stay hidden.
    pub fn readable_blob(&mut self, sha256: &str, user_id: i64, scopes: &[String]) -> Result<Option<BlobMeta>> {
        let Some(blob) = self.blob(sha256)? else { return Ok(None) };
        if blob.uploaded_by == user_id {
            return Ok(Some(blob));
        }
        if scopes.is_empty() {
            return Ok(None);
        }
        let sql = format!("SELECT 1 FROM blob_scopes WHERE sha256 = $1 AND scope_id IN ({}) LIMIT 1", in_list(2, scopes.len()));
        let mut params = vec![Param::from(sha256)];
        params.extend(scopes.iter().map(Param::from));
        Ok((!self.sql.query(&sql, &params)?.is_empty()).then_some(blob))
    }

    /// An upload in progress.
    pub fn upload(&mut self, id: &str) -> Result<Option<Upload>> {
        let rows = self
            .sql
            .query("SELECT id, sha256, size, mime, user_id, upload_offset FROM uploads WHERE id = $1", &[id.into()])?;
        rows.first()
            .map(|row| {
                Ok(Upload {
                    id: row[0].text()?,
                    sha256: row[1].text()?,
                    size: row[2].int()?,
                    mime: row[3].text()?,
                    user_id: row[4].int()?,
                    offset: row[5].int()?,
                })
            })
            .transpose()
    }

    /// Starts an upload.
    pub fn put_upload(&mut self, upload: &Upload, now: i64) -> Result<()> {
        self.sql.execute(
            "INSERT INTO uploads (id, sha256, size, mime, user_id, upload_offset, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                upload.id.as_str().into(),
                upload.sha256.as_str().into(),
                upload.size.into(),
                upload.mime.as_str().into(),
                upload.user_id.into(),
                upload.offset.into(),
                now.into(),
            ],
        )?;
        Ok(())
    }

    /// Moves an upload's offset, only if it is still at `from` (so two racing chunks cannot
    /// both succeed).
    pub fn advance_upload(&mut self, id: &str, from: i64, to: i64) -> Result<bool> {
        Ok(self.sql.execute(
            "UPDATE uploads SET upload_offset = $1 WHERE id = $2 AND upload_offset = $3",
            &[to.into(), id.into(), from.into()],
        )? == 1)
    }

    /// The ids of uploads started before `before` and never finished.
    pub fn stale_uploads(&mut self, before: i64) -> Result<Vec<String>> {
        let rows = self.sql.query("SELECT id FROM uploads WHERE created_at < $1 ORDER BY id", &[before.into()])?;
        rows.iter().map(|row| row[0].text()).collect()
    }

    /// Forgets an upload.
    pub fn delete_upload(&mut self, id: &str) -> Result<()> {
        self.sql.execute("DELETE FROM uploads WHERE id = $1", &[id.into()])?;
        Ok(())
    }
}
