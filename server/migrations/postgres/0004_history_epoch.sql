-- The history epoch (PostgreSQL). A random name for this server's history, carried in every pull
-- cursor. An operator who restores the database from a backup gives it a new epoch
-- (`furrow-server new-epoch`), so a device whose cursor names the old one re-sends what the
-- restored server lacks instead of trusting sequence numbers that now mean other changes.
CREATE TABLE sync_epoch (
  id         BIGINT PRIMARY KEY CHECK (id = 1),
  epoch      TEXT   NOT NULL,
  started_at BIGINT NOT NULL
);
INSERT INTO sync_epoch (id, epoch, started_at) VALUES (1, substr(md5(random()::text || clock_timestamp()::text), 1, 16), 0);
-- A push batch remembers a digest of its body, so the same batch id with another body is refused
-- (422 idempotency_key_reused) instead of answered with the first body's results.
ALTER TABLE sync_batches ADD COLUMN request_hash TEXT;
