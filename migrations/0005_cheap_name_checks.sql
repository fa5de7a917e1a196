-- The queue and kind CHECK constraints of 0001 used bounded repetition (`{1,64}`), which PostgreSQL's
-- regex engine expands into a large automaton, and a CHECK runs on every INSERT *and* UPDATE of a row:
-- three times per job. Profiled during the end-to-end benchmark they were ~40 % of PostgreSQL's CPU.
-- Same rule, cheaply: a length check plus an unbounded character-class match (docs/performance.md).
-- Every existing row satisfied the old constraints, hence these; VALIDATE only re-reads the table.
ALTER TABLE conveyor_jobs
    DROP CONSTRAINT conveyor_jobs_queue_check,
    DROP CONSTRAINT conveyor_jobs_kind_check,
    ADD CONSTRAINT conveyor_jobs_queue_check
        CHECK (char_length(queue) BETWEEN 1 AND 64 AND queue ~ '^[a-z0-9_-]+$') NOT VALID,
    ADD CONSTRAINT conveyor_jobs_kind_check
        CHECK (char_length(kind) BETWEEN 1 AND 100 AND kind ~ '^[a-z0-9_.-]+$') NOT VALID;

ALTER TABLE conveyor_jobs VALIDATE CONSTRAINT conveyor_jobs_queue_check;
ALTER TABLE conveyor_jobs VALIDATE CONSTRAINT conveyor_jobs_kind_check;
