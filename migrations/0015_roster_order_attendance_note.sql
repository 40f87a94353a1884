-- The roster in the pinyin order of the head's name (安 before 张), straight from an index: one
-- key per household, kept by the roster search's hook in the write's own transaction, and filled
-- for the households already stored by the search index's rebuild (its version is raised).
CREATE TABLE household_name_order (
  household_id TEXT PRIMARY KEY,
  head_pinyin TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX household_name_order_key ON household_name_order(head_pinyin, household_id);

-- A note on an attendance row: why a member of another village attended, or anything else worth
-- keeping about someone's attendance. Synced as a field like any other.
ALTER TABLE attendance ADD COLUMN note TEXT;
