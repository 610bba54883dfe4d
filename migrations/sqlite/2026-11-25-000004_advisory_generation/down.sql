DROP TABLE advisory_generation;
