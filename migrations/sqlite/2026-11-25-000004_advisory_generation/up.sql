-- Moves forward in every transaction that changes the advisories, so a matcher may keep what it
-- read until the number moves (one cheap look-up instead of the candidate query).
CREATE TABLE advisory_generation (
    id INTEGER PRIMARY KEY NOT NULL,
    generation BIGINT NOT NULL
);
INSERT INTO advisory_generation (id, generation) VALUES (1, 0);
