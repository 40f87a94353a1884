-- Each time this device showed a member's full identity card number on request (the lists and
-- views show it masked, e.g. 5307**********0018). Local to the device, never synced; the
-- assistant can read it in Settings.
CREATE TABLE id_card_reveals (
    id INTEGER PRIMARY KEY,
    member_id TEXT NOT NULL,
    member_name TEXT,
    revealed_at TEXT NOT NULL
) STRICT;

CREATE INDEX id_card_reveals_by_time ON id_card_reveals (revealed_at);
