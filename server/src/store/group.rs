//! Write transactions that share one commit.
//!
//! Every commit waits for the disk (see docs/server.md, Durability), and writers take turns (the
//! lock on the sequence counter), so writers that each committed alone could commit no more
//! transactions a second than the disk completes flushes: a few hundred here, fewer than a
//! county's assistants pushing at once. A writer that arrives while another runs therefore joins
//! its transaction: each runs its work inside a savepoint of its own, so a failure undoes only its
//! own writes and is answered at once, and the last writer of the group commits for all, so one
//! flush serves the group. Each writer's transaction returns only once that commit is done, so
//! an answer still means the writes are on disk; if the commit fails, every writer of the group
//! gets the error and none of their writes is kept. A group holds at most a bounded number of
//! writers, so its first writer does not wait long.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::Sql;
use crate::error::{Error, Result};

/// The most writers that share one commit. Each after the first opens a savepoint, and
/// PostgreSQL keeps up to 64 subtransactions of a transaction in shared memory before every
/// snapshot gets slower, so a group stays below that.
pub(crate) const MAX_GROUP: usize = 48;

/// The name of each writer's own savepoint inside a shared transaction.
const MEMBER: &str = "furrow_writer";

/// What a backend does for a group: begin a write transaction on a connection (taking the
/// writers' lock), run statements on it, and end it.
pub(crate) trait Backend<C> {
    /// Begins a write transaction, first finding a connection when the slot has none.
    fn begin(&self, connection: &mut Option<C>) -> Result<()>;
    /// Runs `work` over the connection's SQL.
    fn run(&self, connection: &mut C, work: &mut dyn FnMut(&mut dyn Sql) -> Result<()>) -> Result<()>;
    /// Commits (or rolls back) the open transaction, and gives the connection back where it
    /// came from when the backend keeps it elsewhere between groups.
    fn end(&self, connection: &mut Option<C>, commit: bool) -> Result<()>;
}

/// How a group's commit went, for the writers waiting on it.
#[derive(Default)]
struct Outcome {
    done: Mutex<Option<std::result::Result<(), String>>>,
    ready: Condvar,
}

impl Outcome {
    fn publish(&self, outcome: std::result::Result<(), String>) {
        if let Ok(mut done) = self.done.lock() {
            done.get_or_insert(outcome);
        }
        self.ready.notify_all();
    }

    fn wait(&self) -> Result<()> {
        let mut done = self.done.lock().map_err(|_| Error::Poisoned("shared commit"))?;
        loop {
            if let Some(outcome) = done.as_ref() {
                return outcome.clone().map_err(|message| {
                    Error::Io(std::io::Error::other(format!("the transaction this write shared did not commit: {message}")))
                });
            }
            done = self.ready.wait(done).map_err(|_| Error::Poisoned("shared commit"))?;
        }
    }
}

/// The connection of the writers and the group whose transaction is open on it.
pub(crate) struct Slot<C> {
    /// The connection; a backend that pools its connections holds one here only while a group
    /// is open.
    pub(crate) connection: Option<C>,
    open: Option<Arc<Outcome>>,
    members: usize,
}

/// Writers taking turns on one connection, sharing commits (see the module's documentation).
pub(crate) struct Group<C> {
    slot: Mutex<Slot<C>>,
    turns: Mutex<Turns>,
    most: usize,
}

/// Whose turn it is: writers are served in the order they came, so under a steady stream of
/// writers none waits behind later ones (a plain mutex wakes any waiter, and some waited
/// seconds).
#[derive(Default)]
struct Turns {
    busy: bool,
    queue: VecDeque<Arc<Waiter>>,
}

/// A writer waiting for its turn.
#[derive(Default)]
struct Waiter {
    ready: Mutex<bool>,
    woken: Condvar,
}

/// A writer's turn; dropping it hands the turn to the next writer in line.
struct Turn<'g> {
    turns: &'g Mutex<Turns>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut turns = match self.turns.lock() {
            Ok(turns) => turns,
            Err(poisoned) => poisoned.into_inner(),
        };
        match turns.queue.pop_front() {
            Some(next) => {
                // The turn passes on without being free in between.
                if let Ok(mut ready) = next.ready.lock() {
                    *ready = true;
                }
                next.woken.notify_one();
            }
            None => turns.busy = false,
        }
    }
}

/// The writers' slot held outside a group, with the turn.
pub(crate) struct Held<'g, C> {
    slot: MutexGuard<'g, Slot<C>>,
    _turn: Turn<'g>,
}

impl<C> std::ops::Deref for Held<'_, C> {
    type Target = Slot<C>;

    fn deref(&self) -> &Slot<C> {
        &self.slot
    }
}

/// Publishes a failure to the group if its writer panics, so the others do not wait forever.
struct PanicGuard<'o>(&'o Outcome);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.publish(Err("a writer of the group panicked".into()));
        }
    }
}

impl<C> Group<C> {
    /// A group over a connection (or none, for a backend that takes one per group); at most
    /// `most` writers share a commit (1: each commits alone).
    pub(crate) fn new(connection: Option<C>, most: usize) -> Self {
        Self { slot: Mutex::new(Slot { connection, open: None, members: 0 }), turns: Mutex::default(), most: most.max(1) }
    }

    /// Waits for this writer's turn, in the order writers came.
    fn turn(&self) -> Result<Turn<'_>> {
        let waiter = {
            let mut turns = self.turns.lock().map_err(|_| Error::Poisoned("writers' turns"))?;
            if !turns.busy {
                turns.busy = true;
                return Ok(Turn { turns: &self.turns });
            }
            let waiter = Arc::new(Waiter::default());
            turns.queue.push_back(waiter.clone());
            waiter
        };
        let mut ready = waiter.ready.lock().map_err(|_| Error::Poisoned("writers' turns"))?;
        while !*ready {
            ready = waiter.woken.wait(ready).map_err(|_| Error::Poisoned("writers' turns"))?;
        }
        Ok(Turn { turns: &self.turns })
    }

    /// Whether a writer is waiting for its turn.
    fn waiting(&self) -> bool {
        self.turns.lock().map(|turns| !turns.queue.is_empty()).unwrap_or(false)
    }

    /// The slot, for work outside a group (migrations): no group is open while it is held,
    /// since a group ends before its last writer lets go.
    pub(crate) fn lock(&self) -> Result<Held<'_, C>> {
        let turn = self.turn()?;
        let slot = self.slot.lock().map_err(|_| Error::Poisoned("database"))?;
        Ok(Held { slot, _turn: turn })
    }

    /// Runs `work` as one writer: in the open group's transaction, or in a new one. Returns once
    /// the work's writes are committed (or with the work's own error, its writes undone).
    pub(crate) fn write(&self, backend: &dyn Backend<C>, work: &mut dyn FnMut(&mut dyn Sql) -> Result<()>) -> Result<()> {
        let turn = self.turn()?;
        let mut slot = self.slot.lock().map_err(|_| Error::Poisoned("database"))?;
        if slot.open.is_none() {
            backend.begin(&mut slot.connection)?;
            slot.open = Some(Arc::new(Outcome::default()));
            slot.members = 0;
        }
        let outcome = slot.open.clone().ok_or(Error::LeaseLost)?;
        let _guard = PanicGuard(&outcome);
        slot.members += 1;
        let first = slot.members == 1;
        let own = match self.member(backend, &mut slot, work, first) {
            Ok(own) => own,
            Err(broken) => {
                // The shared transaction itself failed: nothing of the group can be kept.
                let _ = backend.end(&mut slot.connection, false);
                outcome.publish(Err(broken.to_string()));
                slot.open = None;
                return Err(broken);
            }
        };
        if first && own.is_err() {
            // Nothing else is in the transaction yet: undo it whole; the next writer begins anew.
            let _ = backend.end(&mut slot.connection, false);
            outcome.publish(Err("the group's first write failed".into()));
            slot.open = None;
            return own;
        }
        if self.waiting() && slot.members < self.most {
            // Another writer is waiting: it continues this transaction, and the last one commits.
            drop(slot);
            drop(turn);
            own?;
            return outcome.wait();
        }
        let ended = backend.end(&mut slot.connection, true);
        outcome.publish(ended.as_ref().map(|_| ()).map_err(ToString::to_string));
        slot.open = None;
        drop(slot);
        drop(turn);
        own?;
        ended
    }

    /// Runs one writer's work: the group's first directly in the transaction (which is undone
    /// whole if it fails), every later one inside a savepoint of its own, so its failure undoes
    /// its own writes only. The savepoints are not released: each is one round trip fewer, and a
    /// rollback goes to the latest of the name, the writer's own. The outer error is a failure of
    /// the shared transaction; the inner one the work's own.
    fn member(
        &self,
        backend: &dyn Backend<C>,
        slot: &mut Slot<C>,
        work: &mut dyn FnMut(&mut dyn Sql) -> Result<()>,
        first: bool,
    ) -> Result<Result<()>> {
        let connection = slot.connection.as_mut().ok_or(Error::LeaseLost)?;
        let mut own = None;
        backend.run(connection, &mut |sql| {
            if first {
                own = Some(work(sql));
                return Ok(());
            }
            sql.execute(&format!("SAVEPOINT {MEMBER}"), &[])?;
            let result = work(sql);
            if result.is_err() {
                sql.execute(&format!("ROLLBACK TO SAVEPOINT {MEMBER}"), &[])?;
            }
            own = Some(result);
            Ok(())
        })?;
        own.ok_or(Error::NoResult)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::error::Error;
    use crate::store::{self, Database};

    /// Sixteen writers at once, every fifth write failing after it wrote: every other write is
    /// kept, each with its own sequence number and none lost, and nothing of a failed one is.
    fn writers_share_commits(database: Arc<dyn Database>) {
        store::write(database.as_ref(), |tx| {
            tx.sql.execute("CREATE TABLE group_probe (writer BIGINT NOT NULL, seq BIGINT NOT NULL)", &[])?;
            Ok(())
        })
        .expect("probe table");
        let start = store::read(database.as_ref(), |tx| tx.current_seq()).expect("counter");
        let threads: Vec<_> = (0..16_i64)
            .map(|writer| {
                let database = database.clone();
                std::thread::spawn(move || {
                    let mut kept = 0;
                    for attempt in 0..20_i64 {
                        let outcome = store::write(database.as_ref(), |tx| {
                            let seq = tx.next_seq()?;
                            tx.sql.execute("INSERT INTO group_probe (writer, seq) VALUES ($1, $2)", &[writer.into(), seq.into()])?;
                            if attempt % 5 == 4 {
                                return Err(Error::MissingRow("a write refused on purpose"));
                            }
                            Ok(seq)
                        });
                        match outcome {
                            Ok(_) => kept += 1,
                            Err(Error::MissingRow(_)) => {}
                            Err(other) => panic!("a write failed: {other}"),
                        }
                    }
                    kept
                })
            })
            .collect();
        let kept: i64 = threads.into_iter().map(|thread| thread.join().expect("writer")).sum();
        assert_eq!(kept, 16 * 16);
        let (rows, end) = store::read(database.as_ref(), |tx| {
            let rows = tx.sql.query("SELECT seq FROM group_probe ORDER BY seq", &[])?;
            Ok((rows.iter().map(|row| row[0].int()).collect::<crate::error::Result<Vec<i64>>>()?, tx.current_seq()?))
        })
        .expect("read back");
        assert_eq!(end - start, kept, "sequence numbers of failed writes are given back");
        assert_eq!(rows, (start + 1..=end).collect::<Vec<_>>(), "every kept write, and no gap");
    }

    #[test]
    fn writers_share_commits_on_sqlite() {
        let dir = tempfile::tempdir().expect("a directory");
        let database = crate::store::sqlite::SqliteDatabase::open(&dir.path().join("furrow.db")).expect("database");
        writers_share_commits(Arc::new(database));
    }

    #[test]
    fn writers_share_commits_on_postgres() {
        let url = std::env::var("FURROW_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let schema = format!("test_group_{}", uuid::Uuid::new_v4().simple());
        let database = crate::store::postgres::PostgresDatabase::open(&url, Some(&schema)).expect("the test server at 127.0.0.1:5432");
        writers_share_commits(Arc::new(database));
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).expect("drop the schema");
    }
}
