-- The villages a blob may be read in (SQLite). A blob becomes readable in the villages of
-- the assistant who uploaded its bytes, and in the village of a photo that names it when the
-- assistant who pushed that photo could already read it; naming a hash learnt elsewhere grants
-- nothing.
CREATE TABLE blob_scopes (
  sha256     TEXT   NOT NULL,
  scope_id   TEXT   NOT NULL,
  granted_at BIGINT NOT NULL,
  PRIMARY KEY (sha256, scope_id)
);
-- Blobs uploaded before this table existed are readable in their uploader's villages.
INSERT INTO blob_scopes (sha256, scope_id, granted_at)
  SELECT b.sha256, a.village_code, b.created_at FROM blobs b JOIN assignments a ON a.user_id = b.uploaded_by;
