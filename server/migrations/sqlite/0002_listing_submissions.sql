-- Listing submissions (SQLite): one row per submission key, so a listing submitted twice, or a
-- batch delivered again, is recorded once. The platform's verdict on the submission is kept
-- beside it; the listing's own moderation fields are what devices pull.
CREATE TABLE listing_submissions (
  submission_key    TEXT    PRIMARY KEY,
  listing_id        TEXT    NOT NULL,
  scope_id          TEXT    NOT NULL,
  user_id           INTEGER NOT NULL,
  client_id         TEXT    NOT NULL,
  submitted_at      INTEGER NOT NULL,
  moderation_status TEXT    NOT NULL,
  moderation_reason TEXT,
  platform_item_id  TEXT,
  moderated_by      TEXT,
  moderated_at      INTEGER
);
CREATE INDEX listing_submissions_listing ON listing_submissions(listing_id, submitted_at);
