-- Every record can be corrected. A household leaves the register by being closed (moved away,
-- deceased, dissolved), with the date and a note, rather than deleted: its history stays and
-- every figure counts it as closed. A follow-up that was done is marked with the day it was.
ALTER TABLE households ADD COLUMN closed_reason TEXT;
ALTER TABLE households ADD COLUMN closed_on TEXT;
ALTER TABLE households ADD COLUMN closed_note TEXT;
ALTER TABLE visits ADD COLUMN follow_up_done_on TEXT;

-- Possible duplicates are looked up before a save: the same identity card number, or the same
-- head of household in the same village.
CREATE INDEX members_id_card ON members(id_card_no) WHERE id_card_no IS NOT NULL;
CREATE INDEX households_village_head ON households(village_id, head_name);

-- The submissions this device made of each listing, one per submission key, and the platform's
-- verdict on each once a later submission replaced it. The live verdict lives in the listing's
-- platform fields; when a rejected listing is submitted again, the rejection is copied here so
-- it stays in the listing's history. `verdict_hlc` is the stamp the listing's moderation status
-- had when the submission was made: a verdict stamped later answers this submission, an older
-- one the submission before it.
CREATE TABLE listing_submission_history (
  submission_key TEXT PRIMARY KEY,
  listing_id TEXT NOT NULL,
  submitted_at TEXT NOT NULL,
  verdict_hlc INTEGER,
  moderation_status TEXT,
  moderation_reason TEXT,
  platform_item_id TEXT
) STRICT;
CREATE INDEX listing_submission_history_listing ON listing_submission_history(listing_id, submitted_at);
