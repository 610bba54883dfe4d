-- How many sub-assessments a finding is under the MDVM assessment key (its rows in `mdvm_names`),
-- kept on the finding so that counting sub-assessments by status or severity is one aggregate over
-- `findings`. Findings not yet named get theirs when the service starts (see `mdvm_names`).
ALTER TABLE findings ADD COLUMN mdvm_vulnerabilities INTEGER NOT NULL DEFAULT 0;
UPDATE findings SET mdvm_vulnerabilities =
    (SELECT count(*) FROM mdvm_names WHERE mdvm_names.finding_id = findings.id)
WHERE EXISTS (SELECT 1 FROM mdvm_names WHERE mdvm_names.finding_id = findings.id);
