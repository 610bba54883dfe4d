-- Interactive scans (Push, Api: 0) are claimed before background ones (Runtime, Rescan,
-- AdvisoryUpdate: 1), so a push is not stuck behind a cluster's backlog.
ALTER TABLE scans ADD COLUMN priority INTEGER NOT NULL DEFAULT 1;
UPDATE scans SET priority = 0 WHERE triggered_by IN ('Push', 'Api');
-- The claim walks queued scans in (priority, run_after) order from this index without sorting.
DROP INDEX scans_due;
CREATE INDEX scans_due ON scans (status, priority, run_after);
