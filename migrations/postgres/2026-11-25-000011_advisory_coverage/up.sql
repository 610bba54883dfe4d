-- Which ecosystems have advisory data, and as of when: the freshness a verdict rests on. A row is
-- an ecosystem as records name it (`Debian:12`, `PyPI`) or a whole export (`Debian`: every release).
CREATE TABLE advisory_coverage (
    ecosystem TEXT PRIMARY KEY,
    advisories BIGINT NOT NULL,
    synced_at BIGINT NOT NULL
);
-- What was imported before this table existed counts as loaded when it was imported.
INSERT INTO advisory_coverage (ecosystem, advisories, synced_at)
SELECT r.ecosystem, COUNT(DISTINCT r.advisory_id), MAX(a.imported_at)
FROM affected_ranges r JOIN advisories a ON a.id = r.advisory_id
GROUP BY r.ecosystem;

-- Per ecosystem of the image's packages, whether advisory data was loaded and as of when (JSON),
-- and the oldest of those times, which the staleness pass compares.
ALTER TABLE images ADD COLUMN coverage TEXT;
ALTER TABLE images ADD COLUMN advisories_synced_at BIGINT;
CREATE INDEX images_by_advisories_age ON images (health, advisories_synced_at);
-- Healthy verdicts given before coverage was recorded rest on unknown data: the staleness pass
-- re-matches each once (as data loaded at the epoch), which records their coverage.
UPDATE images SET advisories_synced_at = 0 WHERE health = 'Healthy' AND scanned_at IS NOT NULL;
