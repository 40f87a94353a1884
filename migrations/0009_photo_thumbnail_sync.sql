-- A photo's thumbnail travels with it: its digest is a synced field, and the thumbnail is uploaded
-- like the image, so another device can show every photo small before it fetches any image.
ALTER TABLE photos ADD COLUMN thumb_sha256 TEXT;
