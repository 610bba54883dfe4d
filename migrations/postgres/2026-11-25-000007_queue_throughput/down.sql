ALTER TABLE findings RESET (fillfactor);
DROP INDEX scans_leased;
