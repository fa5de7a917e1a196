-- Job counts per queue and state, kept as they change, so the dashboard, `conveyor queues` and the
-- `conveyor_queue_jobs` gauge read a few dozen rows instead of grouping the whole jobs table (170 ms
-- per million rows, and finished jobs pile up to millions before pruning).
--
-- Statement-level triggers with transition tables append each statement's net change per (queue,
-- state) to conveyor_queue_count_changes: one row per group per statement, not per row (a completion
-- flush of 500 jobs appends one row), and lease renewals, which change neither, append nothing. The
-- changes are only ever inserted, never updated, so no writer waits on another's counter row, not
-- even behind a service's long transaction that enqueued a job. Maintenance's leader folds them into
-- conveyor_queue_counts every second (`conveyor_fold_queue_counts()`); readers add the two tables.
-- Every change to conveyor_jobs goes through the triggers, an operator's own SQL included; TRUNCATE
-- clears the counts. `conveyor_recount_queue_counts()` rebuilds them from the table (a full scan, for
-- repair only). Measured: docs/performance.md, "Queue statistics at scale".

CREATE TABLE conveyor_queue_counts (
    queue text NOT NULL,
    state conveyor_job_state NOT NULL,
    n     bigint NOT NULL,
    PRIMARY KEY (queue, state)
);

-- Appended to by every statement that changes a count; emptied by each fold. No index: nothing
-- looks a change up, and each index would be one more write per statement.
CREATE TABLE conveyor_queue_count_changes (
    queue text NOT NULL,
    state conveyor_job_state NOT NULL,
    n     bigint NOT NULL
);
ALTER TABLE conveyor_queue_count_changes SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0
);

CREATE FUNCTION conveyor_count_jobs() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO conveyor_queue_count_changes (queue, state, n)
        SELECT queue, state, count(*) FROM new_jobs GROUP BY queue, state;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO conveyor_queue_count_changes (queue, state, n)
        SELECT queue, state, -count(*) FROM old_jobs GROUP BY queue, state;
    ELSE
        INSERT INTO conveyor_queue_count_changes (queue, state, n)
        SELECT queue, state, sum(delta) FROM (
            SELECT queue, state, 1 AS delta FROM new_jobs
            UNION ALL
            SELECT queue, state, -1 FROM old_jobs
        ) AS changes
        GROUP BY queue, state HAVING sum(delta) <> 0;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION conveyor_clear_queue_counts() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM conveyor_queue_count_changes;
    DELETE FROM conveyor_queue_counts;
    RETURN NULL;
END
$fn$;

-- Folds the committed changes into the counts; returns how many change rows it folded. Concurrent
-- folds are safe: a change row is deleted, and so added, once.
CREATE FUNCTION conveyor_fold_queue_counts() RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    folded bigint;
BEGIN
    WITH taken AS (
        DELETE FROM conveyor_queue_count_changes RETURNING queue, state, n
    ), summed AS (
        SELECT queue, state, sum(n)::bigint AS n, count(*) AS rows FROM taken GROUP BY queue, state
    ), added AS (
        INSERT INTO conveyor_queue_counts AS c (queue, state, n)
        SELECT queue, state, n FROM summed ORDER BY queue, state
        ON CONFLICT (queue, state) DO UPDATE SET n = c.n + excluded.n
    )
    SELECT coalesce(sum(rows), 0) INTO folded FROM summed;
    DELETE FROM conveyor_queue_counts WHERE n = 0;
    RETURN folded;
END
$fn$;

-- Rebuilds the counts from the jobs table, blocking writers meanwhile (repair only: a full scan).
CREATE FUNCTION conveyor_recount_queue_counts() RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    LOCK TABLE conveyor_jobs IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM conveyor_queue_count_changes;
    DELETE FROM conveyor_queue_counts;
    INSERT INTO conveyor_queue_counts (queue, state, n)
    SELECT queue, state, count(*) FROM conveyor_jobs GROUP BY queue, state;
END
$fn$;

-- Writers wait from here to the end of the migration, so no change falls between count and trigger.
LOCK TABLE conveyor_jobs IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER conveyor_jobs_count_insert AFTER INSERT ON conveyor_jobs
    REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION conveyor_count_jobs();
CREATE TRIGGER conveyor_jobs_count_update AFTER UPDATE ON conveyor_jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION conveyor_count_jobs();
CREATE TRIGGER conveyor_jobs_count_delete AFTER DELETE ON conveyor_jobs
    REFERENCING OLD TABLE AS old_jobs FOR EACH STATEMENT EXECUTE FUNCTION conveyor_count_jobs();
CREATE TRIGGER conveyor_jobs_count_truncate AFTER TRUNCATE ON conveyor_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor_clear_queue_counts();

SELECT conveyor_recount_queue_counts();
