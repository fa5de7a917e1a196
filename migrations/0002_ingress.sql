-- Envelopes from the Redis ingress that could not be parsed or broke the envelope rules (DESIGN §2).
-- Kept with their raw bytes until an operator purges them (`conveyor rejected purge`).

CREATE TABLE conveyor_rejected_envelopes (
    -- derived from the ingest batch and position, so re-ingesting a recovered batch stores it once
    id          uuid PRIMARY KEY,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    payload     bytea NOT NULL,
    reason      text NOT NULL,
    received_at timestamptz NOT NULL,
    -- the ingester batch (Redis processing list) it came from
    source      text NOT NULL
);

CREATE INDEX conveyor_rejected_envelopes_seq_idx ON conveyor_rejected_envelopes (seq);
