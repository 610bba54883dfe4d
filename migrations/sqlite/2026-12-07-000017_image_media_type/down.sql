ALTER TABLE images DROP COLUMN media_type;
