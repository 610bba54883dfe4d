DROP INDEX images_by_scan_time;
DROP INDEX images_by_manifest;
ALTER TABLE findings DROP COLUMN fingerprint;
DROP TABLE billing_records;
DROP TABLE registry_events;
DROP TABLE scans;
