-- A listing's submission key: set once when the assistant submits, so a second submit or a
-- retried sync is the same submission and the platform creates the listing once.
ALTER TABLE listings ADD COLUMN submission_key TEXT;

-- Image rules of the platforms (domain-reference.md section 2): how many main and carousel
-- images a listing may have.
INSERT INTO platform_rules (platform, rule, min_value, max_value, unit, source) VALUES
  ('taobao', 'image_count', 1, 5, 'images', 'listing images capped at 5'),
  ('pinduoduo', 'image_count', 1, 10, 'images', 'carousel gallery'),
  ('g_platform', 'image_count', 1, 5, 'images', 'strictest documented rule'),
  ('p832', 'image_count', 1, 5, 'images', 'strictest documented rule'),
  ('jd', 'image_count', 1, 5, 'images', 'strictest documented rule'),
  ('g_platform', 'image_bytes', 1, 1048576, 'bytes', 'strictest documented rule (PDD carousel 1 MB)'),
  ('p832', 'image_bytes', 1, 1048576, 'bytes', 'strictest documented rule (PDD carousel 1 MB)'),
  ('jd', 'image_bytes', 1, 1048576, 'bytes', 'strictest documented rule (PDD carousel 1 MB)');

-- The roster is shown in register order; with this index a page of a long roster (or of the
-- thousands of households a one-character search matches) is read in order instead of sorted.
CREATE INDEX households_roster ON households(register_no, head_name, id);
