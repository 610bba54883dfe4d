ALTER TABLE findings DROP COLUMN file_path;
ALTER TABLE packages DROP COLUMN owner;
ALTER TABLE packages DROP COLUMN file_path;
