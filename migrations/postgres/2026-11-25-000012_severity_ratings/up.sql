-- Severity ratings of CVEs published apart from the advisories: the Debian security tracker's
-- urgency (per release codename and source package) and NVD's CVSS (for every release and
-- package: both ''). Findings take them through their advisories' CVE ids.
CREATE TABLE severity_ratings (
    cve TEXT NOT NULL,
    source TEXT NOT NULL,
    release_name TEXT NOT NULL,
    package TEXT NOT NULL,
    severity TEXT NOT NULL,
    -- The source's own words: the urgency ("unimportant") or the CVSS vector.
    rating TEXT NOT NULL,
    cvss2_base DOUBLE PRECISION,
    cvss3_base DOUBLE PRECISION,
    loaded_at BIGINT NOT NULL,
    PRIMARY KEY (cve, source, release_name, package)
);
CREATE INDEX severity_ratings_by_source ON severity_ratings (source, cve);
