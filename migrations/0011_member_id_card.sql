-- A member's resident identity card number (居民身份证号码), checked by its check character and
-- its birth date; it lives only in the store, which is encrypted when a key is given.
ALTER TABLE members ADD COLUMN id_card_no TEXT;
