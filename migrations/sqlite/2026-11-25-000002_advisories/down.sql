DROP TABLE advisory_imports;
DROP TABLE advisory_aliases;
DROP TABLE affected_ranges;
DROP TABLE advisories;
