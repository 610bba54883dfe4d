DROP INDEX scans_due;
CREATE INDEX scans_due ON scans (status, run_after);
ALTER TABLE scans DROP COLUMN priority;
