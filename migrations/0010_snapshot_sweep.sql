-- The rows a fresh snapshot brought, while one the server asked for (a reset) is under way. When
-- its last page is stored, the device drops every row the snapshot no longer holds that carries no
-- unsynced change: rows deleted and purged on the server while the device was away, or rows of
-- villages it no longer serves. Emptied when the snapshot ends.
CREATE TABLE sync_snapshot_seen (
  tbl TEXT NOT NULL,
  row_id TEXT NOT NULL,
  PRIMARY KEY (tbl, row_id)
) STRICT, WITHOUT ROWID;
