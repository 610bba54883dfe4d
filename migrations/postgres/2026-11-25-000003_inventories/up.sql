-- What an image holds, per manifest digest (content-addressed: shared by every registry and tag
-- that serves the same manifest), with the analyzers (name@version, sorted) that built it: a rescan
-- reuses it while they are unchanged.
CREATE TABLE inventories (
    manifest_digest TEXT PRIMARY KEY NOT NULL,
    analyzers TEXT NOT NULL,
    os TEXT,
    layers INTEGER NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE packages (
    manifest_digest TEXT NOT NULL REFERENCES inventories (manifest_digest) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    source_name TEXT,
    source_version TEXT,
    layer_digest TEXT,
    PRIMARY KEY (manifest_digest, seq)
);
-- Which stored inventories an advisory change concerns.
CREATE INDEX packages_by_name ON packages (name);
CREATE INDEX packages_by_source_name ON packages (source_name);
