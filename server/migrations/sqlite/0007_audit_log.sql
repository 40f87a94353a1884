-- The audit log (SQLite): sign-ins (successful and failed, with the address), the actions of
-- admins and changes of who may see which village. Admins read it; housekeeping keeps 180 days.
CREATE TABLE audit_log (
  id      INTEGER PRIMARY KEY,
  at      BIGINT NOT NULL,
  kind    TEXT   NOT NULL,
  actor   TEXT   NOT NULL,
  address TEXT   NOT NULL,
  subject TEXT   NOT NULL,
  detail  TEXT   NOT NULL
);
CREATE INDEX audit_log_at ON audit_log(at);
