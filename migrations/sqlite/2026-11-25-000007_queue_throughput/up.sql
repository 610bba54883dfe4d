-- Finding a scan whose lease ran out reads only the running scans (a handful), not the index of
-- every scan by status.
CREATE INDEX scans_leased ON scans (lease_until) WHERE status = 'Running';
