-- Where a photo was taken, kept in its record (only when the user chooses to keep it) rather than
-- inside the image, whose metadata is always stripped on import; and the thumbnail made for each
-- stored image on this device.
ALTER TABLE photos ADD COLUMN latitude REAL;
ALTER TABLE photos ADD COLUMN longitude REAL;

CREATE TABLE photo_thumbnails (
  sha256 TEXT PRIMARY KEY,
  thumbnail_sha256 TEXT NOT NULL
) STRICT;
