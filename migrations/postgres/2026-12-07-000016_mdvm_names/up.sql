-- The names of findings' sub-assessments under the MDVM assessment key (c0b7cfc6-…): one per CVE
-- a finding names (or its advisory when it names none), a UUID v5 of the finding's id and the CVE.
-- They cannot be computed in SQL, so they are stored beside the findings (written with them, gone
-- with them) and a sub-assessment is found by its name in one look-up. Rows of findings stored
-- before this table existed are filled in when the service starts.
CREATE TABLE mdvm_names (
    name TEXT PRIMARY KEY NOT NULL,
    finding_id TEXT NOT NULL REFERENCES findings (id) ON DELETE CASCADE,
    vulnerability TEXT NOT NULL
);
CREATE INDEX mdvm_names_finding ON mdvm_names (finding_id);
