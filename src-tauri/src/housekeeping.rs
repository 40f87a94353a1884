//! Upkeep the store needs while the assistant works, on a thread of its own: after an import or a
//! sync, the roster search index is brought up to date a short batch at a time (so a search never
//! waits for thousands of households at once, and no command waits long for the store), and the
//! write-ahead log is checkpointed once the index is up to date.

use std::sync::{Arc, Mutex, TryLockError};
use std::thread::JoinHandle;
use std::time::Duration;

use furrow::Store;

/// Households re-indexed per transaction: small enough that a command waiting for the store is
/// kept waiting only a few milliseconds.
pub const BATCH: usize = 200;

/// How long the thread sleeps when there is nothing to do.
const IDLE: Duration = Duration::from_millis(1000);

/// How long it yields between batches, so commands get the store in between.
const BETWEEN_BATCHES: Duration = Duration::from_millis(15);

/// Does one step of upkeep if the store is free: re-indexes one batch, or checkpoints once the
/// index has just been brought up to date. Returns whether more work is waiting.
pub fn step(store: &Mutex<Store>) -> bool {
    let store = match store.try_lock() {
        Ok(store) => store,
        // A command holds the store: let it finish and come back soon.
        Err(TryLockError::WouldBlock) => return true,
        // A panicked command poisoned the mutex; every write is one transaction, so the store
        // itself is consistent.
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
    };
    match store.flush_search_batch(BATCH) {
        Ok(done) if done == BATCH => true,
        Ok(done) => {
            if done > 0 {
                if let Err(error) = store.checkpoint() {
                    tracing::warn!(%error, "checkpoint after re-indexing failed");
                }
            }
            false
        }
        Err(error) => {
            tracing::warn!(%error, "re-indexing the roster search failed");
            false
        }
    }
}

/// Starts the upkeep thread; it runs as long as the app.
pub fn start(store: Arc<Mutex<Store>>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("furrow-housekeeping".into())
        .spawn(move || loop {
            let more = step(&store);
            std::thread::sleep(if more { BETWEEN_BATCHES } else { IDLE });
        })
        .expect("the housekeeping thread starts")
}

#[cfg(test)]
mod tests {
    use super::*;
    use furrow::domain::household::{self, RosterQuery};
    use furrow::OpenOptions;

    fn store_with_demo(households: usize) -> (tempfile::TempDir, Arc<Mutex<Store>>) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&OpenOptions::file(dir.path().join("furrow.db"))).unwrap();
        crate::demo::seed(&mut store, households).unwrap();
        (dir, Arc::new(Mutex::new(store)))
    }

    #[test]
    fn the_search_index_is_brought_up_to_date_a_batch_at_a_time() {
        let (_dir, store) = store_with_demo(450);
        let waiting = store.lock().unwrap().search_pending().unwrap();
        assert!(waiting >= 450, "every imported household waits for its search document ({waiting})");
        let mut steps = 0;
        while step(&store) {
            steps += 1;
            let left = store.lock().unwrap().search_pending().unwrap();
            assert_eq!(left, waiting - (steps * BATCH) as i64, "each step re-indexes one batch");
        }
        assert_eq!(steps, (waiting as usize).div_ceil(BATCH) - 1);
        let store = store.lock().unwrap();
        assert_eq!(store.search_pending().unwrap(), 0);
        let roster = household::search(&store, &RosterQuery::default()).unwrap();
        let head = roster.last().expect("a roster").head_name.clone();
        let found = household::search(&store, &RosterQuery { text: Some(head.clone()), ..RosterQuery::default() }).unwrap();
        assert!(found.iter().any(|entry| entry.head_name == head), "{head} is found");
    }

    #[test]
    fn a_busy_store_is_left_alone_and_tried_again_soon() {
        let (_dir, store) = store_with_demo(50);
        let held = store.lock().unwrap();
        let other = Arc::clone(&store);
        let more = std::thread::spawn(move || step(&other)).join().unwrap();
        assert!(more, "the step reports work waiting while a command holds the store");
        assert!(held.search_pending().unwrap() >= 50, "nothing was re-indexed under the command's feet");
    }
}
