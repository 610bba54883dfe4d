-- Where each package was found (the file it was read from) and, for a language package whose file an
-- OS package installed, that OS package: such a package is assessed as part of its owner.
ALTER TABLE packages ADD COLUMN file_path TEXT;
ALTER TABLE packages ADD COLUMN owner TEXT;
ALTER TABLE findings ADD COLUMN file_path TEXT;
-- Executables and archives an analyzer wanted but could not read: kept with the inventory (JSON) and
-- counted on the image, which is then never Healthy on their account.
ALTER TABLE inventories ADD COLUMN unreadable TEXT;
ALTER TABLE images ADD COLUMN unreadable_files INTEGER NOT NULL DEFAULT 0;
-- NuGet and Packagist names are matched case-insensitively now: records stored before keep their
-- spelling, so they are brought to the form an import now stores.
UPDATE affected_ranges SET package = lower(package) WHERE ecosystem IN ('NuGet', 'Packagist');
