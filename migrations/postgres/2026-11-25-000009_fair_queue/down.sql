DROP INDEX scans_running_by_subscription;
DROP INDEX scans_due;
CREATE INDEX scans_due ON scans (status, run_after);
ALTER TABLE scans DROP COLUMN priority;
