DROP INDEX images_by_registry;
DROP INDEX findings_by_advisory;
DROP INDEX findings_by_registry_repository;
DROP INDEX findings_by_repository;
DROP INDEX findings_by_severity;
ALTER TABLE findings DROP COLUMN severity_rank;
DROP TABLE running_images;
