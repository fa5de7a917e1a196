-- Conveyor's job table, its state enum and the indexes that serve claiming and admin reads.
-- The states mirror `JobState` in Sources/ConveyorCore/JobState.swift.

CREATE TYPE conveyor_job_state AS ENUM ('available', 'running', 'completed', 'dead', 'cancelled');

CREATE TABLE conveyor_jobs (
    id               uuid PRIMARY KEY,
    -- insertion order, the last claim tie-breaker
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    state            conveyor_job_state NOT NULL DEFAULT 'available',
    queue            text NOT NULL CHECK (queue ~ '^[a-z0-9_-]{1,64}$'),
    kind             text NOT NULL CHECK (kind ~ '^[a-z0-9_.-]{1,100}$'),
    args             jsonb NOT NULL DEFAULT '{}',
    priority         smallint NOT NULL DEFAULT 5 CHECK (priority BETWEEN 0 AND 9),
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 1000),
    run_at           timestamptz NOT NULL,
    unique_key       text CHECK (char_length(unique_key) <= 255),
    tags             text[] NOT NULL DEFAULT '{}',
    -- [{attempt, at, message, kind}], oldest first
    errors           jsonb NOT NULL DEFAULT '[]',
    inserted_at      timestamptz NOT NULL,
    enqueued_at      timestamptz,
    attempted_at     timestamptz,
    finished_at      timestamptz,
    -- the worker holding a running job, and until when its lease lasts
    locked_by        text,
    lease_expires_at timestamptz,
    cancel_reason    text
);

-- Claiming: the next available jobs of a queue, in priority, run_at, insertion order.
-- Partial, so finished rows (the bulk of the table) never enter it.
CREATE INDEX conveyor_jobs_claim_idx ON conveyor_jobs (queue, priority, run_at, seq)
    WHERE state = 'available';

-- Running jobs: completion and failure writes find them here (instead of scanning the table), and
-- expired leases are found by lease_expires_at.
CREATE INDEX conveyor_jobs_running_idx ON conveyor_jobs (lease_expires_at) WHERE state = 'running';

-- Listing newest first and paging (`conveyor jobs list`).
CREATE INDEX conveyor_jobs_seq_idx ON conveyor_jobs (seq);

-- Dead jobs by kind (listing and `conveyor jobs retry --kind`). Partial: the hot path never touches it.
CREATE INDEX conveyor_jobs_dead_idx ON conveyor_jobs (kind, seq) WHERE state = 'dead';

-- At most one unfinished job per unique key.
CREATE UNIQUE INDEX conveyor_jobs_unique_key_idx ON conveyor_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available', 'running');
