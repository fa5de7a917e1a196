-- Cluster-wide limits as the workers declare them (each kind's own, or CONVEYOR_LIMITS): for
-- `conveyor limits`, the dashboard and /metrics. Enforcement does not read this table: each claim
-- carries its worker's limits (JobClaimBatch.limitedQuery), so a stale row cannot hold jobs back.
CREATE TABLE conveyor_kind_limits (
    kind         text PRIMARY KEY,
    -- the most running jobs of the kind across the cluster, if limited
    concurrency  integer CHECK (concurrency > 0),
    -- the most starts per window and limit key, if rate-limited
    rate_starts  integer CHECK (rate_starts > 0),
    rate_seconds double precision CHECK (rate_seconds > 0),
    declared_by  text NOT NULL,
    declared_at  timestamptz NOT NULL
);
