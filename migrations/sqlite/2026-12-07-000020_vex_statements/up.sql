-- What imported VEX documents said: one row per scope, vulnerability and product (a package URL),
-- holding the latest statement by its time (a later one supersedes, as OpenVEX specifies). A
-- `not_affected` or `fixed` statement made the exemption `exemption_id`; `affected` and
-- `under_investigation` are kept to be shown on the findings they name.
CREATE TABLE vex_statements (
    id TEXT PRIMARY KEY NOT NULL,
    subscription_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    vulnerability TEXT NOT NULL,
    aliases TEXT NOT NULL,
    product TEXT NOT NULL,
    image_digest TEXT,
    packages TEXT NOT NULL,
    status TEXT NOT NULL,
    justification TEXT,
    impact_statement TEXT,
    action_statement TEXT,
    stated_at BIGINT NOT NULL,
    document_id TEXT NOT NULL,
    author TEXT NOT NULL,
    imported_by TEXT NOT NULL,
    imported_at BIGINT NOT NULL,
    exemption_id TEXT
);
CREATE INDEX vex_statements_by_vulnerability ON vex_statements (subscription_id, vulnerability);
