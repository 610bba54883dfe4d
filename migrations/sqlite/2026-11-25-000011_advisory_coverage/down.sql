DROP INDEX images_by_advisories_age;
ALTER TABLE images DROP COLUMN advisories_synced_at;
ALTER TABLE images DROP COLUMN coverage;
DROP TABLE advisory_coverage;
