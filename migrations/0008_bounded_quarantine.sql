-- Quarantined envelopes are stored bounded (DESIGN §2; issue 13): a Redis string can be 512 MB, so the
-- quarantine keeps at most the first 64 KiB of an envelope, with its full length and the SHA-256 of all
-- of it, so an operator can still match it against the producer's copy. Rows from before this keep
-- NULL here: their payload is whole.
ALTER TABLE conveyor_rejected_envelopes
    ADD COLUMN size bigint CHECK (size >= 0),
    ADD COLUMN sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$');
