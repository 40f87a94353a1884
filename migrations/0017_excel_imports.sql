-- Roster imports from Excel or CSV, kept on this device only: what each import wrote, so an
-- import can be undone as a whole while its changes are still unsent.
CREATE TABLE excel_imports (
    id TEXT PRIMARY KEY,
    file_name TEXT NOT NULL,
    file_digest TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    households_created INTEGER NOT NULL DEFAULT 0,
    households_updated INTEGER NOT NULL DEFAULT 0,
    members_created INTEGER NOT NULL DEFAULT 0,
    members_updated INTEGER NOT NULL DEFAULT 0,
    undone_at TEXT
) STRICT;

-- One row per record an import created or changed; `previous` holds, for a changed record, the
-- values of the fields the import changed as they were before it (a JSON object).
CREATE TABLE excel_import_rows (
    import_id TEXT NOT NULL REFERENCES excel_imports (id),
    seq INTEGER NOT NULL,
    tbl TEXT NOT NULL,
    row_id TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('created', 'updated')),
    previous TEXT,
    PRIMARY KEY (import_id, seq)
) STRICT;
