-- A job's result: the JSON a handler completed it with (`.completed(result:)`), at most 256 KiB, checked
-- by the runtime before it is written (JobOutcome.problem(withResult:)). NULL for jobs completed
-- without one, and for every other state. Adding a nullable column without a default rewrites nothing.
ALTER TABLE conveyor_jobs ADD COLUMN result jsonb;
