//! Photos as content-addressed blobs, uploaded resumably (tus semantics, docs/sync.md section
//! 4): the server is asked first whether it has the blob; an upload's location and the bytes the
//! server acknowledged are kept in `attachments`, so after a drop the upload resumes from the
//! server's offset and at most one chunk is sent again. The registry of files and their upload
//! states is [`crate::media`]'s; this module moves the bytes.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;

use rusqlite::params;
use sha2::{Digest, Sha256};

use crate::media::MediaDir;
use crate::store::Store;
use crate::sync::engine::{Progress, SyncEngine, SyncReport};
use crate::sync::error::{SyncError, SyncResult};

pub use crate::sync::options::ChunkSizes;

struct Pending {
    sha256: String,
    size: u64,
    mime: String,
    path: String,
    location: Option<String>,
}

impl SyncEngine {
    /// Uploads every attachment not yet on the server, resuming interrupted uploads. A network
    /// failure stops the sync for a retry; a file that is gone or refused is marked failed and
    /// the rest go on.
    pub(crate) fn upload_attachments(
        &self,
        store: &Mutex<Store>,
        progress: &dyn Fn(&Progress),
        report: &mut SyncReport,
    ) -> SyncResult<()> {
        let pending: Vec<Pending> = lock(store, |store| {
            let mut statement = store.conn.prepare(
                "SELECT sha256, size, coalesce(mime, 'application/octet-stream'), coalesce(local_path, ''), upload_url
                 FROM attachments WHERE state IN ('pending_upload', 'uploading') ORDER BY sha256",
            )?;
            let rows = statement.query_map([], |row| {
                Ok(Pending {
                    sha256: row.get(0)?,
                    size: row.get::<_, i64>(1)? as u64,
                    mime: row.get(2)?,
                    path: row.get(3)?,
                    location: row.get(4)?,
                })
            })?;
            Ok::<_, SyncError>(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        for item in pending {
            match self.upload_one(store, &item, progress) {
                Ok(()) => report.uploads += 1,
                Err(SyncError::Transport(error)) if error.status().is_some_and(|status| (400..500).contains(&status)) => {
                    let message = error.to_string();
                    lock(store, |store| mark(store, &item.sha256, "failed", Some(&message)))?;
                }
                Err(SyncError::Store(crate::Error::Io(error))) => {
                    let message = error.to_string();
                    lock(store, |store| mark(store, &item.sha256, "failed", Some(&message)))?;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn upload_one(&self, store: &Mutex<Store>, item: &Pending, progress: &dyn Fn(&Progress)) -> SyncResult<()> {
        if self.authorised_call(store, |transport, meta| transport.blob_exists(&item.sha256, meta))? {
            return lock(store, |store| finish(store, &item.sha256, item.size));
        }
        let mut file = std::fs::File::open(Path::new(&item.path)).map_err(crate::Error::Io)?;
        let resumed = match &item.location {
            Some(location) => match self.authorised_call(store, |transport, meta| transport.upload_offset(location, meta)) {
                Ok(offset) => Some((location.clone(), offset)),
                // The server forgot the upload (expired): start a new one.
                Err(SyncError::Transport(error)) if error.status() == Some(404) => None,
                Err(error) => return Err(error),
            },
            None => None,
        };
        let (location, mut offset) = match resumed {
            Some(found) => found,
            None => {
                let location = self
                    .authorised_call(store, |transport, meta| transport.start_upload(&item.sha256, item.size, &item.mime, meta))?;
                if !location.contains("/uploads/") {
                    // The server already has the blob (another device uploaded it meanwhile) and
                    // points at it instead of at an upload.
                    return lock(store, |store| finish(store, &item.sha256, item.size));
                }
                lock(store, |store| {
                    store.conn.execute(
                        "UPDATE attachments SET upload_url = ?1, state = 'uploading', uploaded_bytes = 0 WHERE sha256 = ?2",
                        params![location, item.sha256],
                    )?;
                    Ok::<_, SyncError>(())
                })?;
                (location, 0)
            }
        };
        let mut buffer = Vec::new();
        while offset < item.size {
            file.seek(SeekFrom::Start(offset)).map_err(crate::Error::Io)?;
            let size = self.chunk_bytes();
            // Chunks end on multiples of their size: after the server kept part of a cut chunk,
            // the next one carries the rest of it, not a whole chunk from the middle.
            let wanted = (size - (offset % size as u64) as usize).min((item.size - offset) as usize);
            buffer.resize(wanted, 0);
            file.read_exact(&mut buffer[..wanted]).map_err(crate::Error::Io)?;
            let chunk = &buffer[..wanted];
            let started = std::time::Instant::now();
            let sent = self.authorised_call(store, |transport, meta| transport.upload_chunk(&location, offset, chunk, meta));
            // The next chunk's size follows how this one went; after a failure the next attempt
            // asks the server where the upload stands (it keeps the bytes of a cut chunk).
            self.set_chunk_bytes(self.options().chunks.next(size, wanted, sent.as_ref().ok().map(|_| started.elapsed())));
            offset = sent?;
            lock(store, |store| {
                store.conn.execute("UPDATE attachments SET uploaded_bytes = ?1 WHERE sha256 = ?2", params![offset as i64, item.sha256])?;
                Ok::<_, SyncError>(())
            })?;
            progress(&Progress::Uploading { sha256: item.sha256.clone(), sent_bytes: offset, total_bytes: item.size });
        }
        lock(store, |store| finish(store, &item.sha256, item.size))
    }
}

impl SyncEngine {
    /// Fetches the thumbnails of photos made on other devices that this device does not hold
    /// yet, so every photo can be shown small right after a sync; full images wait until they
    /// are opened ([`SyncEngine::download_photo`]). A network failure stops the sync for a retry,
    /// keeping the bytes received; a thumbnail the server does not have (its device has not
    /// uploaded it yet) or whose bytes do not match its digest is left for the next sync.
    pub(crate) fn download_thumbnails(&self, store: &Mutex<Store>, progress: &dyn Fn(&Progress), report: &mut SyncReport) -> SyncResult<()> {
        let Some(media) = self.media_dir() else { return Ok(()) };
        let wanted: Vec<String> = lock(store, |store| {
            let mut statement = store.conn.prepare(
                "SELECT DISTINCT thumb_sha256 FROM photos WHERE deleted = 0 AND thumb_sha256 IS NOT NULL ORDER BY thumb_sha256",
            )?;
            let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
            Ok::<_, SyncError>(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        for sha256 in wanted.into_iter().filter(|sha256| !media.has(sha256)) {
            match self.download_one(store, media, &sha256, progress) {
                Ok(()) => report.downloads += 1,
                Err(SyncError::Transport(error)) if error.status() == Some(404) => {}
                Err(SyncError::BlobMismatch(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Fetches a photo's full image (or any blob) into the media directory if it is not there,
    /// continuing a download a drop interrupted from the bytes already received, and checking the
    /// bytes against the digest before the image is kept. Returns the image's file.
    pub fn download_photo(&self, store: &Mutex<Store>, sha256: &str, progress: &dyn Fn(&Progress)) -> SyncResult<std::path::PathBuf> {
        let media = self.media_dir().ok_or_else(|| SyncError::Store(crate::Error::Io(std::io::Error::other("no media directory"))))?;
        if !media.has(sha256) {
            self.download_one(store, media, sha256, progress)?;
        }
        Ok(media.path_of(sha256))
    }

    fn download_one(&self, store: &Mutex<Store>, media: &MediaDir, sha256: &str, progress: &dyn Fn(&Progress)) -> SyncResult<()> {
        if !crate::validate::is_sha256(sha256) {
            return Err(SyncError::BlobMismatch(sha256.to_owned()));
        }
        let partial = media.partial_path_of(sha256);
        std::fs::create_dir_all(partial.parent().expect("a partial file has a parent")).map_err(crate::Error::Io)?;
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&partial).map_err(crate::Error::Io)?;
        let offset = file.metadata().map_err(crate::Error::Io)?.len();
        let fetched = self.authorised_call(store, |transport, meta| {
            // A retry after a 401 starts where the bytes on disk end.
            let offset = file.metadata().map(|metadata| metadata.len()).unwrap_or(offset);
            transport.download_blob(sha256, offset, &mut &file, meta)
        });
        file.flush().map_err(crate::Error::Io)?;
        let received = file.metadata().map_err(crate::Error::Io)?.len();
        progress(&Progress::Downloading { sha256: sha256.to_owned(), received_bytes: received });
        match fetched {
            Ok(_) => {}
            // Everything had arrived before: the range starts at the end of the blob.
            Err(SyncError::Transport(error)) if error.status() == Some(416) && received > 0 => {}
            Err(error) => return Err(error),
        }
        drop(file);
        let bytes = std::fs::read(&partial).map_err(crate::Error::Io)?;
        if hex::encode(Sha256::digest(&bytes)) != sha256 {
            // Damaged on the way or on the server: start again from nothing next time.
            let _ = std::fs::remove_file(&partial);
            return Err(SyncError::BlobMismatch(sha256.to_owned()));
        }
        media.put(&bytes)?;
        let _ = std::fs::remove_file(&partial);
        Ok(())
    }
}

fn lock<T>(store: &Mutex<Store>, work: impl FnOnce(&mut Store) -> T) -> T {
    let mut guard = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    work(&mut guard)
}

fn finish(store: &mut Store, sha256: &str, size: u64) -> SyncResult<()> {
    store.conn.execute(
        "UPDATE attachments SET state = 'uploaded', uploaded_bytes = ?1, last_error = NULL WHERE sha256 = ?2",
        params![size as i64, sha256],
    )?;
    Ok(())
}

fn mark(store: &mut Store, sha256: &str, state: &str, error: Option<&str>) -> SyncResult<()> {
    store.conn.execute(
        "UPDATE attachments SET state = ?1, last_error = ?2, attempts = attempts + 1 WHERE sha256 = ?3",
        params![state, error, sha256],
    )?;
    Ok(())
}
