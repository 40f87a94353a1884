-- A village's roster in register order straight from an index; it replaces the plain village
-- index, of which it is an extension.
CREATE INDEX households_village_roster ON households(village_id, register_no, head_name, id);
DROP INDEX households_village;
