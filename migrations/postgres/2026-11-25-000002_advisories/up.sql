-- OSV advisories. `record` is the parsed advisory the matcher works from; `raw` is the record as imported.
CREATE TABLE advisories (
    id TEXT PRIMARY KEY NOT NULL,
    modified BIGINT NOT NULL,
    published BIGINT,
    withdrawn BIGINT,
    summary TEXT NOT NULL,
    severity TEXT,
    severity_source TEXT,
    cvss2_base DOUBLE PRECISION,
    cvss3_base DOUBLE PRECISION,
    -- The most severe severity among the records related by alias (either direction), kept up to
    -- date by every import, for records that decide none themselves.
    lent_from TEXT,
    lent_severity TEXT,
    lent_severity_source TEXT,
    lent_cvss2_base DOUBLE PRECISION,
    lent_cvss3_base DOUBLE PRECISION,
    record TEXT NOT NULL,
    raw TEXT NOT NULL,
    imported_at BIGINT NOT NULL
);

-- One row per affected package of an advisory, found by (ecosystem, package) when matching.
CREATE TABLE affected_ranges (
    advisory_id TEXT NOT NULL REFERENCES advisories (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    ecosystem TEXT NOT NULL,
    package TEXT NOT NULL,
    affected TEXT NOT NULL,
    PRIMARY KEY (advisory_id, seq)
);
CREATE INDEX affected_ranges_by_package ON affected_ranges (ecosystem, package);

-- Aliases in both directions, so a record without a severity can borrow its alias's.
CREATE TABLE advisory_aliases (
    advisory_id TEXT NOT NULL REFERENCES advisories (id) ON DELETE CASCADE,
    alias TEXT NOT NULL,
    PRIMARY KEY (advisory_id, alias)
);
CREATE INDEX advisory_aliases_by_alias ON advisory_aliases (alias);

-- One row per import run, for the status route.
CREATE TABLE advisory_imports (
    id TEXT PRIMARY KEY NOT NULL,
    source TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    added INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    unchanged INTEGER NOT NULL,
    withdrawn INTEGER NOT NULL,
    rejected INTEGER NOT NULL
);
CREATE INDEX advisory_imports_by_time ON advisory_imports (finished_at);
