//! Sync on a thread of its own: every interval, at once when asked, and after a failure on the
//! retry policy's backoff.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::store::Store;
use crate::sync::engine::{Progress, SyncEngine};

enum Command {
    SyncNow,
    Stop,
}

/// A background thread that syncs every `interval`, at once when asked, and after failures on
/// the retry policy's backoff, independent of new edits. Dropping it stops the thread.
pub struct BackgroundSync {
    commands: Sender<Command>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundSync {
    /// Starts the thread. `progress` receives every event, from the background thread.
    pub fn start(
        engine: Arc<SyncEngine>,
        store: Arc<Mutex<Store>>,
        interval: Duration,
        progress: impl Fn(&Progress) + Send + 'static,
    ) -> Self {
        let (commands, receiver) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut wait = Duration::ZERO;
            let mut failures = 0u32;
            loop {
                match receiver.recv_timeout(wait) {
                    Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    Ok(Command::SyncNow) | Err(RecvTimeoutError::Timeout) => {}
                }
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                match engine.sync(&store, &progress) {
                    Ok(_) => {
                        failures = 0;
                        wait = interval;
                    }
                    Err(error) if error.is_retryable() => {
                        failures += 1;
                        wait = engine.options().retry.delay(failures);
                        progress(&Progress::Retrying {
                            attempt: failures,
                            wait_ms: wait.as_millis() as u64,
                            code: error.code().to_owned(),
                            message: error.to_string(),
                        });
                    }
                    Err(error) => {
                        // Waiting for the user (sign in again, update): try again only on the
                        // regular interval or when asked.
                        failures = 0;
                        wait = interval;
                        progress(&Progress::Failed {
                            code: error.code().to_owned(),
                            message_zh: error.message_zh(),
                            message_en: error.to_string(),
                        });
                    }
                }
            }
        });
        Self { commands, stop, thread: Some(thread) }
    }

    /// Asks for a sync now (e.g. after the user pressed 同步 or the network came back).
    pub fn sync_now(&self) {
        let _ = self.commands.send(Command::SyncNow);
    }

    /// Stops the thread after its current step and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for BackgroundSync {
    fn drop(&mut self) {
        self.shutdown();
    }
}
