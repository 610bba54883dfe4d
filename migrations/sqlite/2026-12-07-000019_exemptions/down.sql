ALTER TABLE images DROP COLUMN os_version;
DROP INDEX findings_by_exemption;
ALTER TABLE findings DROP COLUMN exempted_by;
DROP TABLE exemption_history;
DROP TABLE exemptions;
