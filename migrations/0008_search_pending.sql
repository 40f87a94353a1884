-- Households whose search document must be rewritten. An edit only notes the household here, in
-- its own transaction; the full-text index is brought up to date before the next search (or when
-- the app is idle), so an edit never waits for the index to merge its segments.
CREATE TABLE household_search_pending (
  household_id TEXT PRIMARY KEY
) STRICT, WITHOUT ROWID;
