-- Short roster searches. A trigram index cannot find a one- or two-character query, yet a
-- two-character given name (小梅) is the most common thing an assistant types. Every one- and
-- two-character piece of the names in a household's search document is indexed here, keyed by
-- the document, so such a search is an index lookup instead of a scan of every household.
CREATE TABLE household_name_grams (
  gram TEXT NOT NULL,
  doc INTEGER NOT NULL,
  PRIMARY KEY (gram, doc)
) STRICT, WITHOUT ROWID;
CREATE INDEX household_name_grams_doc ON household_name_grams(doc);
