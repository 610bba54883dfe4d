-- The Defender plan of each subscription that set one (Azure's Microsoft.Security/pricings). A
-- subscription without a row is on the default tier (Standard). `enablement_time` is when the tier
-- was last set to Standard; `changed_by`/`changed_at` name the caller and time of the last change.
CREATE TABLE pricings (
    subscription_id TEXT NOT NULL,
    plan TEXT NOT NULL,
    pricing_tier TEXT NOT NULL CHECK (pricing_tier IN ('Free', 'Standard')),
    enablement_time BIGINT,
    changed_by TEXT NOT NULL,
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, plan)
);
