-- The server's first schema (SQLite). Never edit a migration once released; add a new file.

-- One counter hands out server_seq values; every write transaction increments it, which
-- serialises writers so sequence numbers become visible in commit order.
CREATE TABLE sync_counter (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
INSERT INTO sync_counter (id, v) VALUES (1, 0);

CREATE TABLE users (
  id            INTEGER PRIMARY KEY,
  username      TEXT    NOT NULL UNIQUE,
  password_hash TEXT    NOT NULL,
  role          TEXT    NOT NULL DEFAULT 'assistant',
  disabled      INTEGER NOT NULL DEFAULT 0,
  created_at    INTEGER NOT NULL
);

CREATE TABLE villages (
  code       TEXT    PRIMARY KEY,
  name       TEXT    NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE assignments (
  user_id      INTEGER NOT NULL REFERENCES users(id),
  village_code TEXT    NOT NULL REFERENCES villages(code),
  PRIMARY KEY (user_id, village_code)
);

-- Only hashes of bearer tokens are stored, so a copy of the database grants no access.
CREATE TABLE tokens (
  hash        TEXT    PRIMARY KEY,
  kind        TEXT    NOT NULL,
  session_id  TEXT    NOT NULL,
  user_id     INTEGER NOT NULL,
  device_name TEXT    NOT NULL,
  expires_at  INTEGER NOT NULL,
  created_at  INTEGER NOT NULL
);
CREATE INDEX tokens_session ON tokens(session_id);

CREATE TABLE sync_rows (
  tbl      TEXT    NOT NULL,
  row_id   TEXT    NOT NULL,
  scope_id TEXT    NOT NULL,
  deleted  INTEGER NOT NULL,
  sv       INTEGER NOT NULL,
  PRIMARY KEY (tbl, row_id)
);
CREATE UNIQUE INDEX sync_rows_sv ON sync_rows(sv);
CREATE INDEX sync_rows_scope_sv ON sync_rows(scope_id, sv);

CREATE TABLE sync_fields (
  tbl        TEXT    NOT NULL,
  row_id     TEXT    NOT NULL,
  field      TEXT    NOT NULL,
  value      TEXT    NOT NULL,
  hlc        INTEGER NOT NULL,
  node       BLOB    NOT NULL,
  server_seq INTEGER NOT NULL,
  actor      TEXT    NOT NULL,
  PRIMARY KEY (tbl, row_id, field)
);
CREATE INDEX sync_fields_photo_hash ON sync_fields(value) WHERE tbl = 'photos' AND field = 'sha256';

CREATE TABLE sync_changes (
  server_seq INTEGER PRIMARY KEY,
  change_id  TEXT    NOT NULL,
  client_id  TEXT    NOT NULL,
  tbl        TEXT    NOT NULL,
  row_id     TEXT    NOT NULL,
  field      TEXT    NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE sync_clients (
  client_id        TEXT    PRIMARY KEY,
  user_id          INTEGER NOT NULL,
  last_applied_seq INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL
);

CREATE TABLE sync_batches (
  client_id  TEXT    NOT NULL,
  batch_id   TEXT    NOT NULL,
  response   TEXT    NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (client_id, batch_id)
);

CREATE TABLE blobs (
  sha256      TEXT    PRIMARY KEY,
  size        INTEGER NOT NULL,
  mime        TEXT    NOT NULL,
  uploaded_by INTEGER NOT NULL,
  created_at  INTEGER NOT NULL
);

CREATE TABLE uploads (
  id            TEXT    PRIMARY KEY,
  sha256        TEXT    NOT NULL,
  size          INTEGER NOT NULL,
  mime          TEXT    NOT NULL,
  user_id       INTEGER NOT NULL,
  upload_offset INTEGER NOT NULL,
  created_at    INTEGER NOT NULL
);
