-- Seed reference data. The national poverty lines come from domain-reference.md section 1.1;
-- their source quality is kept so that an assistant can tell a verified figure from a weak one.

INSERT INTO poverty_lines (year, scope_level, region_code, amount_fen, price_basis, source, source_quality) VALUES
  (2011, 'national', '', 230000, '2010年不变价 2010 constant prices',
   'SCIO white paper, Poverty Alleviation: China''s Experience and Contribution (2021)', 'verified'),
  (2015, 'national', '', 285500, '当年价 current prices',
   'China Daily, 21 May 2021 (Anhui, about 2017)', 'verified'),
  (2019, 'national', '', 321800, '当年价 current prices', 'NBS figure cited by a secondary source', 'secondary'),
  (2020, 'national', '', 400000, '当年价 current prices', 'CGTN, 24 Feb 2021', 'verified');

-- Platform listing rules (domain-reference.md section 2). title_units counts a CJK character as
-- two units: 60 units is 30 CJK characters or 60 bytes, the strictest documented title rule.
INSERT INTO platform_rules (platform, rule, min_value, max_value, unit, source) VALUES
  ('taobao', 'title_units', 1, 60, 'units', 'taobao.item.add: title at most 30 characters / 60 bytes'),
  ('taobao', 'description_chars', 5, 25000, 'chars', 'taobao.item.add: desc 5 to 25,000 characters'),
  ('taobao', 'selling_point_chars', 0, 150, 'chars', 'taobao.item.add: sell_point at most 150 characters'),
  ('taobao', 'image_bytes', 1, 3145728, 'bytes', 'taobao.item.add: image at most 3 MB'),
  ('taobao', 'stock_qty', 0, 900000000, 'count', 'taobao.item.add: num 0 to 900,000,000'),
  ('pinduoduo', 'title_units', 1, 60, 'units', 'strictest documented title rule'),
  ('pinduoduo', 'description_chars', 20, 500, 'chars', 'pdd.goods.add: goods_desc 20 to 500 characters'),
  ('pinduoduo', 'image_bytes', 1, 1048576, 'bytes', 'pdd.goods.add: carousel at most 1 MB'),
  ('pinduoduo', 'image_min_px', 480, NULL, 'px', 'pdd.goods.add: carousel 1:1, at least 480 px'),
  ('g_platform', 'title_units', 1, 60, 'units', 'strictest documented title rule (no published G platform rule)'),
  ('p832', 'title_units', 1, 60, 'units', 'strictest documented title rule'),
  ('jd', 'title_units', 1, 60, 'units', 'strictest documented title rule');
