-- Crash safety and control: cancellation requests, queue pauses, the leadership lease, pruning.

-- A cancellation asked for while the job runs: its worker stops it (notified at once, or at its next
-- heartbeat); a rescue or a retry of such a job ends it `cancelled` instead of running it again.
ALTER TABLE conveyor_jobs
    ADD COLUMN cancel_requested_at timestamptz,
    ADD COLUMN cancelled_by text;

-- Pruning finds finished jobs by age. Partial: the claim path never touches it.
CREATE INDEX conveyor_jobs_finished_idx ON conveyor_jobs (finished_at)
    WHERE state IN ('completed', 'cancelled', 'dead');

-- Paused queues: workers claim nothing from them (the claim statement checks this table); ingestion
-- into them goes on.
CREATE TABLE conveyor_queue_pauses (
    queue     text PRIMARY KEY CHECK (queue ~ '^[a-z0-9_-]{1,64}$'),
    paused_at timestamptz NOT NULL,
    paused_by text NOT NULL
);

-- Leadership leases (one row per role, e.g. 'maintenance'). The holder renews `expires_at`; anyone may
-- take the row once it has expired. A row, not a session advisory lock, so it works through
-- transaction-pooling PgBouncer.
CREATE TABLE conveyor_leaders (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
