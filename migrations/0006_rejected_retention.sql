-- Quarantined envelopes are now pruned after a retention (default 30 days, `--retention-rejected`,
-- `off` keeps them until purged by hand): a producer gone wrong must not fill the disk. The leader's
-- pruning deletes the oldest first, in small batches; this index finds them without a scan.
CREATE INDEX conveyor_rejected_envelopes_received_idx ON conveyor_rejected_envelopes (received_at);
