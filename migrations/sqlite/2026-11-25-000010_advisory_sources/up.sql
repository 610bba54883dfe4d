-- One row per synced advisory source (`osv:Debian`, a zip URL, a directory, `kev`, …): when it
-- last ran and succeeded, what it held, the HTTP validators and incremental cursor of the next
-- sync, its backoff, and the lease that lets one process at a time sync it.
CREATE TABLE advisory_sources (
    name TEXT PRIMARY KEY NOT NULL,
    last_attempt_at BIGINT,
    last_success_at BIGINT,
    records BIGINT NOT NULL DEFAULT 0,
    newest_modified BIGINT,
    last_changed BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    next_run_at BIGINT NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    etag TEXT,
    last_modified TEXT,
    sync_cursor TEXT,
    lease_owner TEXT,
    lease_until BIGINT
);
