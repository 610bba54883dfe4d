-- Exemptions: findings declared not to apply (a waiver, or a mitigation such as a VEX statement),
-- at a scope (a subscription, a resource group, a registry, a repository or an image), matched by
-- criteria (JSON, `domain::Criteria`), until an optional expiry. `id` is the exemption's resource
-- id in lower case (ARM ids are case-insensitive); `resource_id` is the same as first written.
CREATE TABLE exemptions (
    id TEXT PRIMARY KEY NOT NULL,
    resource_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    criteria TEXT NOT NULL,
    category TEXT NOT NULL,
    justification TEXT NOT NULL,
    display_name TEXT,
    expires_at BIGINT,
    state TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX exemptions_by_subscription ON exemptions (subscription_id, state);
CREATE INDEX exemptions_by_expiry ON exemptions (state, expires_at);

-- Every create, change, delete and expiry of an exemption: who, when, and the resource before and
-- after (JSON as the API renders it). Kept when the exemption is deleted.
CREATE TABLE exemption_history (
    id TEXT PRIMARY KEY NOT NULL,
    exemption_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL,
    before TEXT,
    after TEXT
);
CREATE INDEX exemption_history_by_exemption ON exemption_history (exemption_id, at, id);

-- The active exemption a finding is exempt by (the earliest created of those that match), kept
-- current whenever exemptions or the finding change.
ALTER TABLE findings ADD COLUMN exempted_by TEXT;
CREATE INDEX findings_by_exemption ON findings (exempted_by) WHERE exempted_by IS NOT NULL;

-- An image's OS release in Azure's spelling (`debian_linux_12`), what exemptions' `osVersions`
-- match; images scanned before it was kept get it at their next assessment.
ALTER TABLE images ADD COLUMN os_version TEXT;
