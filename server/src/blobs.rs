//! Blob bytes (photos), behind a small trait so an object store can take the place of the data
//! directory later. Metadata (sizes, owners, upload offsets) lives in the database; this only
//! keeps bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Where blob bytes live.
pub trait BlobStore: Send + Sync + 'static {
    /// Writes `bytes` at `offset` of an upload's partial file, first cutting away anything
    /// beyond `offset` (left by a chunk whose acknowledgement was lost).
    fn write_part(&self, upload_id: &str, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// The SHA-256 (lowercase hex) of an upload's partial file.
    fn part_digest(&self, upload_id: &str) -> io::Result<String>;
    /// Makes a finished upload the blob with this digest.
    fn promote(&self, upload_id: &str, sha256: &str) -> io::Result<()>;
    /// Deletes an upload's partial file, if any.
    fn discard(&self, upload_id: &str) -> io::Result<()>;
    /// Reads `length` bytes of a blob from `offset`.
    fn read(&self, sha256: &str, offset: u64, length: u64) -> io::Result<Vec<u8>>;
    /// Whether a blob's bytes are present.
    fn exists(&self, sha256: &str) -> bool;
}

/// Blobs as files in a directory: `blobs/ab/abcdef…` and `uploads/<id>`.
pub struct FileBlobStore {
    root: PathBuf,
}

impl FileBlobStore {
    /// A store under `root` (created if missing).
    pub fn new(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root.join("blobs"))?;
        fs::create_dir_all(root.join("uploads"))?;
        Ok(Self { root: root.to_owned() })
    }

    fn upload_path(&self, upload_id: &str) -> PathBuf {
        self.root.join("uploads").join(upload_id)
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.root.join("blobs").join(&sha256[..2.min(sha256.len())]).join(sha256)
    }
}

impl BlobStore for FileBlobStore {
    fn write_part(&self, upload_id: &str, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut file = OpenOptions::new().create(true).truncate(false).write(true).open(self.upload_path(upload_id))?;
        file.set_len(offset)?;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(bytes)?;
        // The offset the client is told must survive a crash, so the bytes reach the disk first.
        file.sync_data()
    }

    fn part_digest(&self, upload_id: &str) -> io::Result<String> {
        let mut file = File::open(self.upload_path(upload_id))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        Ok(hex::encode(hasher.finalize()))
    }

    fn promote(&self, upload_id: &str, sha256: &str) -> io::Result<()> {
        let target = self.blob_path(sha256);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::rename(self.upload_path(upload_id), target)
    }

    fn discard(&self, upload_id: &str) -> io::Result<()> {
        match fs::remove_file(self.upload_path(upload_id)) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn read(&self, sha256: &str, offset: u64, length: u64) -> io::Result<Vec<u8>> {
        let mut file = File::open(self.blob_path(sha256))?;
        file.seek(SeekFrom::Start(offset))?;
        let mut bytes = Vec::with_capacity(length as usize);
        file.take(length).read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn exists(&self, sha256: &str) -> bool {
        self.blob_path(sha256).is_file()
    }
}

/// Whether `text` is a SHA-256 digest in lowercase hex.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}
