-- Cluster-wide concurrency limits as the workers declare them (each kind's own, or CONVEYOR_LIMITS):
-- for `conveyor limits`, the dashboard and /metrics. Enforcement does not read this table: each claim
-- carries its worker's limits (JobClaimBatch.limitedQuery), so a stale row cannot hold jobs back.
CREATE TABLE conveyor_kind_limits (
    kind        text PRIMARY KEY,
    concurrency integer NOT NULL CHECK (concurrency > 0),
    declared_by text NOT NULL,
    declared_at timestamptz NOT NULL
);
