-- How far a running job got, as its handler last reported (`context.progress(0.42, "encoding")`):
-- a fraction from 0 to 1, a short note, and when it was written. Written with lease renewals (at most
-- about once a second per job), kept across restarts and retries until the handler reports anew.
ALTER TABLE conveyor_jobs
    ADD COLUMN progress real,
    ADD COLUMN progress_note text,
    ADD COLUMN progress_at timestamptz;
