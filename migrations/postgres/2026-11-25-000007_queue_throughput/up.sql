-- Finding a scan whose lease ran out reads only the running scans (a handful), not the index of
-- every scan by status, where finished ones leave dead entries until the next vacuum.
CREATE INDEX scans_leased ON scans (lease_until) WHERE status = 'Running';

-- Every rescan moves `last_seen` on each active finding. Room left in each page lets PostgreSQL
-- write the new row version beside the old one without touching any index (a HOT update:
-- `last_seen` is in none), instead of adding an entry to each of the table's ten indexes. A
-- rescan updates every row of a page, so the page needs room for all of them: half of it.
ALTER TABLE findings SET (fillfactor = 50);
