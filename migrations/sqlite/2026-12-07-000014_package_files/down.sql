ALTER TABLE images DROP COLUMN unreadable_files;
ALTER TABLE inventories DROP COLUMN unreadable;
ALTER TABLE findings DROP COLUMN file_path;
ALTER TABLE packages DROP COLUMN owner;
ALTER TABLE packages DROP COLUMN file_path;
