-- The scheduler's memory: per schedule, the newest slot already handled (emitted or skipped by its
-- catch-up policy), so a restart never emits a slot twice.
CREATE TABLE conveyor_schedules (
    name       text PRIMARY KEY,
    last_slot  timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- The jobs table churns: every job is inserted, updated twice or more and deleted by pruning, and no
-- update can be HOT (the state column is in the partial indexes' predicates). With the default
-- thresholds (20 % of the table) autovacuum lets hundreds of thousands of dead rows pile up on a busy
-- queue; at 1 % plus 1,000 rows, without cost delay, it keeps up. Measured: docs/performance.md,
-- "Table churn" (ops/measure/churn.sh).
ALTER TABLE conveyor_jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.01,
    autovacuum_vacuum_cost_delay = 0
);
