DROP TABLE vex_statements;
