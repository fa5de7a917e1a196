-- Circuit breakers as each worker process sees them (one row per upstream and worker), published every
-- few seconds while the worker runs, so the dashboard shows which upstream is cut off where. Rows not
-- published for a day are deleted by the maintenance leader.
CREATE TABLE conveyor_circuits (
    upstream    text NOT NULL,
    worker      text NOT NULL,
    state       text NOT NULL CHECK (state IN ('closed', 'half_open', 'open')),
    since       timestamptz NOT NULL,
    open_until  timestamptz,
    reported_at timestamptz NOT NULL,
    PRIMARY KEY (upstream, worker)
);
