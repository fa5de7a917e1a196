-- Throttled keys: a job may count against a key (`limit_key`, e.g. `meta:act_123`, an ad account).
ALTER TABLE conveyor_jobs ADD COLUMN limit_key text
    CONSTRAINT conveyor_jobs_limit_key_check CHECK (char_length(limit_key) BETWEEN 1 AND 255);

-- Paused keys: a handler threw `throttled(key:until:)` (the API said "wait 20 minutes"), or an operator
-- paused one. No job with the key starts before `until`, on any worker: the claim checks this table.
-- Expired rows are ignored by the claim and deleted by the maintenance leader.
CREATE TABLE conveyor_key_pauses (
    key       text PRIMARY KEY,
    until     timestamptz NOT NULL,
    reason    text NOT NULL,
    paused_by text NOT NULL,
    paused_at timestamptz NOT NULL
);

-- Rate limits: starts per kind, key and fixed window (aligned to the epoch), counted by the claim
-- under the kind's lock. Windows that ended are deleted by the maintenance leader.
CREATE TABLE conveyor_key_starts (
    kind         text NOT NULL,
    key          text NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    starts       integer NOT NULL,
    PRIMARY KEY (kind, key, window_start)
);
