-- History pruning (SQLite). Each run of `furrow-server prune` records its horizon: tombstoned rows
-- whose latest change is at or below horizon_seq were purged with their fields and change log,
-- so a pull whose cursor is older than the greatest horizon answers reset: history_pruned.
CREATE TABLE sync_prunes (
  id             INTEGER PRIMARY KEY,
  horizon_ms     INTEGER NOT NULL,
  horizon_seq    INTEGER NOT NULL,
  rows_purged    INTEGER NOT NULL,
  changes_purged INTEGER NOT NULL,
  pruned_at      INTEGER NOT NULL
);
-- Finding the horizon's sequence number reads the change log by time.
CREATE INDEX sync_changes_created ON sync_changes(created_at);
-- Purging reads the change log by row.
CREATE INDEX sync_changes_row ON sync_changes(tbl, row_id);
