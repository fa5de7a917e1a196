-- Claims of limited kinds (cluster-wide concurrency or rate limits per kind, 0012) find a kind's due
-- jobs in a queue here, in claim order, instead of walking the queue's whole claim index for them.
-- Before it, a default worker (the video kind declares `video.render` at 2) read every due job of its
-- queue on every claim to find the few of a limited kind: a no-op claim took 15–80 ms instead of 2,
-- longer than an ingester waits for room to start jobs directly, so a burst went through the claim path
-- (1,000 of 100,000 jobs direct-started; drain 10,400–11,900 jobs/s instead of 13,100–14,800). The
-- claim now first probes this index for the limited kinds waiting in the queue and takes their locks
-- only when one does (docs/performance.md). Partial, like the claim index: running and finished rows
-- never enter it, and direct-started jobs are inserted `running`. It is the one index an `available`
-- version enters besides the claim index: inserting 50,000 waiting jobs in batches of 500 took about
-- 12 % longer with it (psql, this VM), against an O(backlog) read on every claim without it. Building
-- it holds off writes while it reads the table once (waiting jobs only enter it).
CREATE INDEX conveyor_jobs_kind_claim_idx ON conveyor_jobs (queue, kind, priority, run_at, seq)
    WHERE state = 'available';
