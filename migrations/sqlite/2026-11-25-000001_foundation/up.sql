-- Connected registries. Credentials are write-only through the API; the webhook secret is kept only as a hash.
CREATE TABLE registries (
    id TEXT PRIMARY KEY NOT NULL,
    subscription_id TEXT NOT NULL,
    resource_group TEXT NOT NULL,
    name TEXT NOT NULL,
    login_server TEXT NOT NULL,
    insecure BOOLEAN NOT NULL,
    credentials TEXT,
    webhook_secret_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX registries_by_name ON registries (subscription_id, resource_group, name);
CREATE UNIQUE INDEX registries_by_login_server ON registries (subscription_id, login_server);

-- One row per image (registry + repository + manifest digest); times are microseconds since the epoch.
CREATE TABLE images (
    id TEXT PRIMARY KEY NOT NULL,
    registry_id TEXT NOT NULL REFERENCES registries (id) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    index_digest TEXT,
    platform TEXT,
    os TEXT,
    health TEXT NOT NULL,
    health_reason TEXT,
    pushed_at BIGINT,
    pulled_at BIGINT,
    scanned_at BIGINT,
    running BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX images_by_digest ON images (registry_id, repository, digest);
CREATE INDEX images_by_subscription ON images (subscription_id, id);

CREATE TABLE image_tags (
    registry_id TEXT NOT NULL REFERENCES registries (id) ON DELETE CASCADE,
    repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (registry_id, repository, tag)
);
CREATE INDEX image_tags_by_image ON image_tags (image_id);

-- The sub-assessments. `id` is the sub-assessment name (UUID v5), stable across rescans; lists page by it.
CREATE TABLE findings (
    id TEXT PRIMARY KEY NOT NULL,
    subscription_id TEXT NOT NULL,
    resource_group TEXT NOT NULL,
    registry_id TEXT NOT NULL REFERENCES registries (id) ON DELETE CASCADE,
    registry_name TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    repository TEXT NOT NULL,
    image_digest TEXT NOT NULL,
    advisory_id TEXT NOT NULL,
    package_name TEXT NOT NULL,
    installed_version TEXT NOT NULL,
    fixed_version TEXT,
    ecosystem TEXT NOT NULL,
    category TEXT NOT NULL,
    severity TEXT NOT NULL,
    severity_source TEXT NOT NULL,
    cvss2_base DOUBLE PRECISION,
    cvss3_base DOUBLE PRECISION,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    remediation TEXT NOT NULL,
    impact TEXT NOT NULL,
    cves TEXT NOT NULL,
    vendor_references TEXT NOT NULL,
    published_at BIGINT,
    patchable BOOLEAN NOT NULL,
    layer_digest TEXT,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    resolved_at BIGINT
);
CREATE INDEX findings_by_subscription ON findings (subscription_id, id);
CREATE INDEX findings_by_resource_group ON findings (subscription_id, resource_group, id);
CREATE INDEX findings_by_registry ON findings (registry_id, id);
CREATE INDEX findings_by_image ON findings (image_id);
