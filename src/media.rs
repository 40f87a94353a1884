//! 照片 The media a device keeps: image files named by their SHA-256 in the media directory
//! ([`MediaDir`]), and the `attachments` registry of the files waiting for upload to the platform
//! with how far each upload got ([`Attachment`]). Photo import registers files here; sync uploads
//! and downloads them.

use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::store::Store;

/// Where image files live: `<root>/<first two hex digits>/<sha256>.jpg`.
#[derive(Debug, Clone)]
pub struct MediaDir {
    root: PathBuf,
}

impl MediaDir {
    /// The media directory under a data directory.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The file of a blob.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.root.join(&sha256[..2.min(sha256.len())]).join(format!("{sha256}.jpg"))
    }

    /// Whether a blob's file is on this device.
    pub fn has(&self, sha256: &str) -> bool {
        self.path_of(sha256).is_file()
    }

    /// Where a download of a blob keeps the bytes received so far, so that after a drop it
    /// continues from there.
    pub fn partial_path_of(&self, sha256: &str) -> PathBuf {
        self.root.join("partial").join(format!("{sha256}.part"))
    }

    /// Stores bytes under their SHA-256 (once) and returns the digest.
    pub fn put(&self, bytes: &[u8]) -> Result<String> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let path = self.path_of(&sha256);
        if !path.exists() {
            let parent = path.parent().expect("blob paths have a parent");
            std::fs::create_dir_all(parent)?;
            // Written to a temporary name first, so a crash never leaves a half file under the
            // name of a complete one.
            let temporary = parent.join(format!(".{sha256}.partial"));
            std::fs::write(&temporary, bytes)?;
            std::fs::rename(&temporary, &path)?;
        }
        Ok(sha256)
    }
}

/// The state of one attachment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attachment {
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// `pending_upload`, `uploading`, `uploaded` or `failed`.
    pub state: String,
    /// Bytes the server has acknowledged.
    pub uploaded_bytes: u64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// Registers a photo file (already resized and compressed) for upload and returns its SHA-256,
/// the value a `photos` row's `sha256` field refers to. Registering the same content twice is a
/// no-op.
pub fn add_attachment(store: &mut Store, path: &Path, mime: &str) -> Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher)?;
    let sha256 = hex::encode(hasher.finalize());
    store.conn.execute(
        "INSERT INTO attachments (sha256, size, mime, local_path, state) VALUES (?1, ?2, ?3, ?4, 'pending_upload')
         ON CONFLICT (sha256) DO NOTHING",
        params![sha256, size as i64, mime, path.to_string_lossy()],
    )?;
    Ok(sha256)
}

/// The state of an attachment.
pub fn attachment(store: &Store, sha256: &str) -> Result<Option<Attachment>> {
    Ok(store
        .conn
        .query_row(
            "SELECT sha256, size, state, uploaded_bytes, last_error FROM attachments WHERE sha256 = ?1",
            [sha256],
            |row| {
                Ok(Attachment {
                    sha256: row.get(0)?,
                    size: row.get::<_, i64>(1)? as u64,
                    state: row.get(2)?,
                    uploaded_bytes: row.get::<_, i64>(3)? as u64,
                    last_error: row.get(4)?,
                })
            },
        )
        .optional()?)
}

/// Takes an image (or a thumbnail) off the upload queue when no live photo uses it any more and
/// its upload has not begun (a photo cropped or deleted before a sync), so a draft's superseded
/// pictures never cost the connection anything. An upload under way or done is left as it is.
pub fn forget_unused(store: &Store, sha256: &str) -> Result<()> {
    store.conn().execute(
        "DELETE FROM attachments WHERE sha256 = ?1 AND state = 'pending_upload'
            AND NOT EXISTS (SELECT 1 FROM photos WHERE (sha256 = ?1 OR thumb_sha256 = ?1) AND deleted = 0)",
        [sha256],
    )?;
    Ok(())
}
