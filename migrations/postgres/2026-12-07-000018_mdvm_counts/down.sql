ALTER TABLE findings DROP COLUMN mdvm_vulnerabilities;
