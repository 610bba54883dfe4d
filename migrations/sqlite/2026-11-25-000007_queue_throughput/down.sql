DROP INDEX scans_leased;
