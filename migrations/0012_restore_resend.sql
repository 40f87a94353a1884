-- Recovery from a server that went back in time (a database restored from a backup, or one that
-- lost acknowledged changes in a power cut): the pull answers `reset: server_restored`, and the
-- device takes a fresh snapshot without dropping anything. The stamp of every field the snapshot
-- brought is noted here, the greatest one per field; when its last page is stored, every field
-- the device holds that the snapshot lacked or brought with an older stamp is queued again with
-- its original stamp, and the table is emptied.
CREATE TABLE sync_snapshot_fields (
  tbl TEXT NOT NULL,
  row_id TEXT NOT NULL,
  field TEXT NOT NULL,
  hlc INTEGER NOT NULL,
  node BLOB NOT NULL,
  PRIMARY KEY (tbl, row_id, field)
) STRICT, WITHOUT ROWID;

-- 1 for a change that re-sends a field the device held, with the stamp it already had (written
-- by this device or another one, and acknowledged once): such a stamp is never re-stamped after
-- a clock correction, because other devices may hold it. 0 for the device's own new edits.
ALTER TABLE sync_outbox ADD COLUMN resend INTEGER NOT NULL DEFAULT 0 CHECK (resend IN (0, 1));
