-- Which images clusters run, per container; a cluster's latest report replaces its previous one.
CREATE TABLE running_images (
    subscription_id TEXT NOT NULL,
    cluster TEXT NOT NULL,
    namespace TEXT NOT NULL,
    pod TEXT NOT NULL,
    container TEXT NOT NULL,
    -- The image as the pod names it, and where its digest (from the container status) points.
    image TEXT NOT NULL,
    registry TEXT,
    repository TEXT,
    digest TEXT,
    reported_at BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, cluster, namespace, pod, container)
);
CREATE INDEX running_images_by_digest ON running_images (subscription_id, digest);

-- The severity as a sort key (Low 1 … Critical 4), kept by every merge.
ALTER TABLE findings ADD COLUMN severity_rank INTEGER NOT NULL DEFAULT 0;
UPDATE findings SET severity_rank = CASE severity WHEN 'Low' THEN 1 WHEN 'Medium' THEN 2 WHEN 'High' THEN 3 WHEN 'Critical' THEN 4 ELSE 0 END;
CREATE INDEX findings_by_severity ON findings (subscription_id, severity_rank, id);
CREATE INDEX findings_by_repository ON findings (subscription_id, repository, id);
CREATE INDEX findings_by_registry_repository ON findings (registry_id, repository, id);
CREATE INDEX findings_by_advisory ON findings (subscription_id, advisory_id);
CREATE INDEX images_by_registry ON images (registry_id, id);
