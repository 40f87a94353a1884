-- The server's last answer about each field this device pushed, so the desktop app can show a
-- record's sync state (accepted, superseded, rejected with a reason) after its outbox rows are
-- gone. Pending and in-flight states come from sync_outbox alone; this table only remembers
-- answers, one row per field, the latest answer replacing older ones.
CREATE TABLE sync_outcomes (
  tbl TEXT NOT NULL,
  row_id TEXT NOT NULL,
  field TEXT NOT NULL,
  change_id BLOB NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('applied', 'superseded', 'rejected')),
  reason TEXT,
  hlc INTEGER NOT NULL,
  answered_at INTEGER NOT NULL,
  PRIMARY KEY (tbl, row_id, field)
) STRICT, WITHOUT ROWID;

CREATE INDEX sync_conflicts_open ON sync_conflicts(resolved_at, id);
CREATE INDEX sync_conflicts_row ON sync_conflicts(tbl, row_id);
