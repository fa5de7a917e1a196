-- Kind meta.ad_change (Sources/ConveyorKindMetaAds): its own tables, prefixed conveyor_meta_ad_.

-- Every change applied to Meta (or, in dry-run mode, that would have been): one row per object and
-- field. The newest requested_at per object and field is what a later, older request loses to; the
-- budget rows of the last hour are the 4-changes-per-hour count.
CREATE TABLE conveyor_meta_ad_audit (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ad_account_id text NOT NULL,
    object_type   text NOT NULL CHECK (object_type IN ('ad', 'adset', 'campaign')),
    object_id     text NOT NULL,
    field         text NOT NULL,
    old_value     text,
    new_value     text NOT NULL,
    -- the job whose value was sent first, then the jobs it superseded
    job_ids       uuid[] NOT NULL,
    -- one Graph batch call; null for a change found applied after a timed-out batch
    batch_id      uuid,
    fbtrace_id    text,
    dry_run       boolean NOT NULL DEFAULT false,
    -- 'applied', 'dry_run', or 'confirmed' (a null item of a timed-out batch that Meta had applied)
    how           text NOT NULL,
    requested_at  timestamptz NOT NULL,
    requested_by  text,
    applied_at    timestamptz NOT NULL
);
CREATE INDEX conveyor_meta_ad_audit_object_idx ON conveyor_meta_ad_audit (object_id, field, requested_at DESC);
CREATE INDEX conveyor_meta_ad_audit_recent_idx ON conveyor_meta_ad_audit (applied_at DESC);

-- Budget changes over the guardrail, waiting for a person: the job sleeps until approved or rejected.
CREATE TABLE conveyor_meta_ad_approvals (
    job_id        uuid PRIMARY KEY,
    ad_account_id text NOT NULL,
    object_type   text NOT NULL,
    object_id     text NOT NULL,
    field         text NOT NULL,
    old_value     text,
    new_value     text NOT NULL,
    currency      text,
    reason        text NOT NULL,
    state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'rejected')),
    held_at       timestamptz NOT NULL,
    decided_at    timestamptz,
    decided_by    text
);
CREATE INDEX conveyor_meta_ad_approvals_pending_idx ON conveyor_meta_ad_approvals (held_at) WHERE state = 'pending';

-- Which chunk is sending an ad account's changes: one at a time, cluster-wide, so two chunks never
-- race on one object. Expires on its own when its holder dies.
CREATE TABLE conveyor_meta_ad_account_locks (
    ad_account_id text PRIMARY KEY,
    holder        uuid NOT NULL,
    until         timestamptz NOT NULL
);
