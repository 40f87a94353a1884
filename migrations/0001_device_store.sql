-- The device store: synced domain tables, sync metadata, local reference data and the search
-- index. Migrations are never edited once released; later changes are new numbered files.

CREATE TABLE villages (
  id TEXT PRIMARY KEY,
  scope_id TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  code TEXT,
  name TEXT,
  township TEXT,
  county TEXT,
  province TEXT,
  is_poverty_village INTEGER,
  has_ecommerce_station INTEGER,
  has_courier_point INTEGER,
  road_type TEXT
) STRICT;

CREATE TABLE households (
  id TEXT PRIMARY KEY,
  scope_id TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  register_no TEXT,
  village_id TEXT,
  group_name TEXT,
  head_name TEXT,
  phone TEXT,
  attribute TEXT,
  poverty_status TEXT,
  monitoring_type TEXT,
  main_cause TEXT,
  secondary_causes TEXT,
  identified_year INTEGER,
  exit_year INTEGER,
  cultivated_land_mu REAL,
  forest_land_mu REAL,
  housing_safety TEXT,
  house_area_m2 REAL,
  water_safe INTEGER,
  fuel_type TEXT,
  in_cooperative INTEGER,
  cooperative_name TEXT,
  latitude REAL,
  longitude REAL,
  consent_date TEXT,
  notes TEXT
) STRICT;
CREATE INDEX households_village ON households(village_id);

CREATE TABLE members (
  id TEXT PRIMARY KEY,
  scope_id TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  household_id TEXT,
  name TEXT,
  sex TEXT,
  birth_date TEXT,
  relation TEXT,
  education TEXT,
  health TEXT,
  labour_capacity TEXT,
  migrant_work TEXT,
  phone TEXT,
  has_smartphone INTEGER,
  ecommerce_role TEXT
) STRICT;
CREATE INDEX members_household ON members(household_id);

CREATE TABLE income_records (
  id TEXT PRIMARY KEY,
  scope_id TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  household_id TEXT,
  member_id TEXT,
  year INTEGER,
  period TEXT,
  category TEXT,
  subcategory TEXT,
  item TEXT,
  quantity_g INTEGER,
  amount_fen INTEGER,
  is_ecommerce INTEGER,
  source TEXT,
  corrects_id TEXT,
  recorded_on TEXT,
  note TEXT
) STRICT;
CREATE INDEX income_records_household ON income_records(household_id, year);
CREATE INDEX income_records_corrects ON income_records(corrects_id) WHERE corrects_id IS NOT NULL;

CREATE TABLE training_sessions (
  id TEXT PRIMARY KEY,
  scope_id TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  title TEXT,
  topics TEXT,
  format TEXT,
  date TEXT,
  start_time TEXT,
  duration_min INTEGER,
  village_id TEXT,
  location TEXT,
  trainer TEXT,
  notes TEXT
) STRICT;
CREATE INDEX training_sessions_date ON training_sessions(date);

CREATE TABLE attendance (
  id TEXT PRIMARY KEY,
  scope_id TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  session_id TEXT,
  member_id TEXT,
  status TEXT,
  minutes_attended INTEGER
) STRICT;
CREATE INDEX attendance_session ON attendance(session_id);
CREATE INDEX attendance_member ON attendance(member_id);

CREATE TABLE skill_assessments (
  id TEXT PRIMARY KEY,
  scope_id TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  member_id TEXT,
  session_id TEXT,
  topic TEXT,
  phase TEXT,
  score INTEGER,
  assessed_on TEXT
) STRICT;
CREATE INDEX skill_assessments_member ON skill_assessments(member_id);

CREATE TABLE visits (
  id TEXT PRIMARY KEY,
  scope_id TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  household_id TEXT,
  visit_type TEXT,
  purposes TEXT,
  visited_at TEXT,
  place TEXT,
  latitude REAL,
  longitude REAL,
  summary TEXT,
  problems TEXT,
  actions_agreed TEXT,
  next_visit_date TEXT,
  food_clothing_ok TEXT,
  education_ok TEXT,
  medical_ok TEXT,
  housing_ok TEXT,
  water_ok TEXT
) STRICT;
CREATE INDEX visits_household ON visits(household_id, visited_at);
CREATE INDEX visits_next ON visits(next_visit_date) WHERE next_visit_date IS NOT NULL;

CREATE TABLE products (
  id TEXT PRIMARY KEY,
  scope_id TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  village_id TEXT,
  name TEXT,
  variety TEXT,
  category TEXT,
  producer_household_id TEXT,
  origin TEXT,
  seller_entity TEXT,
  seller_entity_type TEXT,
  unit TEXT,
  net_weight_g INTEGER,
  storage TEXT,
  shelf_life_days INTEGER,
  production_license_no TEXT,
  standard_no TEXT,
  certifications TEXT,
  cost_per_unit_fen INTEGER,
  notes TEXT
) STRICT;
CREATE INDEX products_household ON products(producer_household_id);

CREATE TABLE listings (
  id TEXT PRIMARY KEY,
  scope_id TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  product_id TEXT,
  platform TEXT,
  title TEXT,
  selling_point TEXT,
  description TEXT,
  category TEXT,
  price_fen INTEGER,
  market_price_fen INTEGER,
  unit TEXT,
  net_weight_g INTEGER,
  stock_qty INTEGER,
  origin TEXT,
  shelf_life_days INTEGER,
  storage TEXT,
  production_date TEXT,
  production_license_no TEXT,
  certifications TEXT,
  status TEXT,
  moderation_status TEXT,
  moderation_reason TEXT,
  platform_item_id TEXT,
  sold_out INTEGER
) STRICT;
CREATE INDEX listings_product ON listings(product_id);

CREATE TABLE photos (
  id TEXT PRIMARY KEY,
  scope_id TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  owner_type TEXT,
  owner_id TEXT,
  sha256 TEXT,
  bytes INTEGER,
  width_px INTEGER,
  height_px INTEGER,
  mime TEXT,
  kind TEXT,
  order_index INTEGER,
  caption TEXT,
  taken_at TEXT
) STRICT;
CREATE INDEX photos_owner ON photos(owner_type, owner_id);

CREATE TABLE sales (
  id TEXT PRIMARY KEY,
  scope_id TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  listing_id TEXT,
  platform TEXT,
  order_no TEXT,
  order_date TEXT,
  qty INTEGER,
  unit_price_fen INTEGER,
  gross_fen INTEGER,
  net_to_seller_fen INTEGER,
  status TEXT,
  buyer_region TEXT
) STRICT;
CREATE INDEX sales_listing ON sales(listing_id);

CREATE TABLE sale_allocations (
  id TEXT PRIMARY KEY,
  scope_id TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  sale_id TEXT,
  household_id TEXT,
  qty_g INTEGER,
  amount_fen INTEGER
) STRICT;
CREATE INDEX sale_allocations_household ON sale_allocations(household_id);
CREATE INDEX sale_allocations_sale ON sale_allocations(sale_id);

-- Sync metadata (sync-design.md section 3).
CREATE TABLE sync_field_clock (
  tbl TEXT NOT NULL,
  row_id TEXT NOT NULL,
  field TEXT NOT NULL,
  hlc INTEGER NOT NULL,
  node BLOB NOT NULL,
  PRIMARY KEY (tbl, row_id, field)
) STRICT, WITHOUT ROWID;

CREATE TABLE sync_outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  change_id BLOB NOT NULL UNIQUE,
  tbl TEXT NOT NULL,
  row_id TEXT NOT NULL,
  field TEXT NOT NULL,
  value TEXT,
  hlc INTEGER NOT NULL,
  node BLOB NOT NULL,
  base_hlc INTEGER,
  batch_id BLOB,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT
) STRICT;
CREATE INDEX sync_outbox_pending ON sync_outbox(batch_id, seq);
CREATE UNIQUE INDEX sync_outbox_coalesce ON sync_outbox(tbl, row_id, field) WHERE batch_id IS NULL;
CREATE INDEX sync_outbox_row ON sync_outbox(tbl, row_id);

CREATE TABLE sync_state (
  k TEXT PRIMARY KEY,
  v ANY
) STRICT;

CREATE TABLE sync_conflicts (
  id INTEGER PRIMARY KEY,
  tbl TEXT NOT NULL,
  row_id TEXT NOT NULL,
  field TEXT NOT NULL,
  local_value TEXT,
  local_hlc INTEGER,
  remote_value TEXT,
  remote_hlc INTEGER,
  remote_actor TEXT,
  kind TEXT NOT NULL,
  reason TEXT,
  created_at INTEGER NOT NULL,
  resolved_at INTEGER
) STRICT;

CREATE TABLE attachments (
  sha256 TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  mime TEXT,
  local_path TEXT,
  state TEXT NOT NULL,
  upload_url TEXT,
  uploaded_bytes INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT
) STRICT;

-- Local reference data, editable on the device.
CREATE TABLE poverty_lines (
  id INTEGER PRIMARY KEY,
  year INTEGER NOT NULL,
  scope_level TEXT NOT NULL CHECK (scope_level IN ('national', 'province', 'county')),
  region_code TEXT NOT NULL DEFAULT '',
  amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
  price_basis TEXT NOT NULL,
  source TEXT NOT NULL,
  source_quality TEXT NOT NULL,
  UNIQUE (year, scope_level, region_code)
) STRICT;

CREATE TABLE platform_rules (
  platform TEXT NOT NULL,
  rule TEXT NOT NULL,
  min_value INTEGER,
  max_value INTEGER,
  unit TEXT NOT NULL,
  source TEXT NOT NULL,
  PRIMARY KEY (platform, rule)
) STRICT;

-- Roster search: one document per household (register number, head, phone, village, members),
-- maintained by the core whenever a household, a member or a village changes, and indexed with
-- the trigram tokenizer so that a substring of Chinese text matches.
CREATE TABLE household_search_doc (
  doc INTEGER PRIMARY KEY,
  household_id TEXT NOT NULL UNIQUE,
  body TEXT NOT NULL
) STRICT;
CREATE VIRTUAL TABLE household_search USING fts5(
  body,
  content = 'household_search_doc',
  content_rowid = 'doc',
  tokenize = 'trigram'
);
CREATE TRIGGER household_search_doc_insert AFTER INSERT ON household_search_doc BEGIN
  INSERT INTO household_search(rowid, body) VALUES (new.doc, new.body);
END;
CREATE TRIGGER household_search_doc_delete AFTER DELETE ON household_search_doc BEGIN
  INSERT INTO household_search(household_search, rowid, body) VALUES ('delete', old.doc, old.body);
END;
CREATE TRIGGER household_search_doc_update AFTER UPDATE ON household_search_doc BEGIN
  INSERT INTO household_search(household_search, rowid, body) VALUES ('delete', old.doc, old.body);
  INSERT INTO household_search(rowid, body) VALUES (new.doc, new.body);
END;
