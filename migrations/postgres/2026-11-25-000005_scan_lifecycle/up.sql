-- The durable queue. A scan waits as Queued until a worker leases it (Running with lease_owner and
-- lease_until), and ends Succeeded or Failed; a lease that runs out puts it back within any
-- worker's reach, so a killed process loses nothing.
CREATE TABLE scans (
    id TEXT PRIMARY KEY NOT NULL,
    subscription_id TEXT NOT NULL,
    registry_id TEXT NOT NULL REFERENCES registries (id) ON DELETE CASCADE,
    repository TEXT NOT NULL,
    tag TEXT,
    digest TEXT,
    triggered_by TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    run_after BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    -- Registry, repository and digest (or tag) while Queued or Running, NULL afterwards: at most one
    -- pending scan per image.
    pending_key TEXT,
    idempotency_key TEXT,
    error_code TEXT,
    error_message TEXT,
    summary TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE UNIQUE INDEX scans_pending ON scans (pending_key);
CREATE UNIQUE INDEX scans_by_idempotency_key ON scans (subscription_id, idempotency_key);
CREATE INDEX scans_due ON scans (status, run_after);
CREATE INDEX scans_by_subscription ON scans (subscription_id, id);

-- Registry notifications already handled (the registry delivers at least once).
CREATE TABLE registry_events (
    registry_id TEXT NOT NULL REFERENCES registries (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (registry_id, event_id)
);
CREATE INDEX registry_events_by_time ON registry_events (received_at);

-- One record per image digest and subscription, written by the first successful scan; kept when
-- the registry or the image goes away.
CREATE TABLE billing_records (
    id TEXT PRIMARY KEY NOT NULL,
    subscription_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    registry_id TEXT NOT NULL,
    repository TEXT NOT NULL,
    scan_id TEXT NOT NULL,
    billed_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX billing_once ON billing_records (subscription_id, digest);
CREATE INDEX billing_by_time ON billing_records (subscription_id, billed_at, id);

-- A hash of a finding's assessed content: a rescan rewrites only the findings whose content moved.
ALTER TABLE findings ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
CREATE INDEX images_by_manifest ON images (digest);
CREATE INDEX images_by_scan_time ON images (scanned_at);
