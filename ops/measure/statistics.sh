#!/usr/bin/env bash
# The cost of the queue statistics (dashboard queue view, `conveyor queues`, `/metrics`) with a small
# and a large history: issue 14 asks that it be the same at 5 million finished jobs as at 5 thousand.
#
#   ops/measure/statistics.sh [ROWS…]          default: 5000 5000000
#
# For each ROWS, on a scratch database (dropped afterwards): migrates, inserts ROWS finished jobs
# (completed, dead, cancelled over 4 queues, as ops/measure/history.sh does) and 1,000 waiting ones,
# runs VACUUM ANALYZE, then times 20 runs each of the statistics statement and of the full-table
# GROUP BY it replaced (server-side execution time from EXPLAIN ANALYZE), and prints the medians.
# Uses DATABASE_URL's server when set, else the local services (ops/services start); needs a built
# `conveyor` (CONVEYOR_BIN, default .build/debug/conveyor).
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(5000 5000000)
[ -n "${DATABASE_URL:-}" ] || eval "$(ops/services env)"
bin=${CONVEYOR_BIN:-.build/debug/conveyor}
admin="${DATABASE_URL%/*}/postgres"
url="${DATABASE_URL%/*}/conveyor_statistics"
drop() { psql "$admin" -qc "DROP DATABASE IF EXISTS conveyor_statistics WITH (FORCE)"; }
trap 'drop >/dev/null 2>&1 || true' EXIT

# The statement as the store sends it, with PostgreSQL's clock: read from the store's own test hook.
statistics_sql=$(sed -n '/^enum QueueStatistics/,/^}/p' Sources/ConveyorPostgres/JobAdminStatements.swift |
  python3 -c '
import re, sys
text = sys.stdin.read()
body = text.split("return \"\"\"", 1)[1].split("\"\"\"", 1)[0]
body = body.replace("\\(now)::timestamptz", "NULL::timestamptz")
body = re.sub(r"\\\(unescaped: JobState\.(\w+)\.sql\)", lambda m: "'"'"'%s'"'"'::conveyor_job_state" % m.group(1), body)
body = body.replace("\\(unescaped: priorities)", "generate_series(0, 9)")
print(body)')
case "$statistics_sql" in *conveyor_queue_counts*) ;; *) echo "could not read the statement from JobAdminStatements.swift" >&2; exit 1 ;; esac
old_sql="SELECT queue, state::text, count(*)::int8,
  extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'available' AND run_at <= now()))::float8
  FROM conveyor_jobs GROUP BY queue, state ORDER BY queue, state"

timed() { # median execution time (ms) of 20 runs of $1
  for _ in $(seq 1 20); do
    psql "$url" -qAtX -c "EXPLAIN (ANALYZE, FORMAT JSON) $1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Execution Time"])'
  done | sort -n | sed -n 10p
}

printf '%12s  %14s  %22s  %s\n' "finished" "statistics ms" "full GROUP BY ms (old)" "table with indexes"
for rows in "${sizes[@]}"; do
  drop >/dev/null 2>&1
  psql "$admin" -qc "CREATE DATABASE conveyor_statistics"
  DATABASE_URL=$url "$bin" migrate >/dev/null 2>&1
  for start in $(seq 0 500000 $((rows - 1))); do
    count=$(( rows - start < 500000 ? rows - start : 500000 ))
    psql "$url" -qX -v ON_ERROR_STOP=1 -c "
      INSERT INTO conveyor_jobs (id, state, queue, kind, args, attempt, max_attempts, run_at, inserted_at,
                                 attempted_at, finished_at)
      SELECT gen_random_uuid(),
             CASE WHEN i % 50 = 0 THEN 'dead' WHEN i % 97 = 0 THEN 'cancelled' ELSE 'completed' END::conveyor_job_state,
             (ARRAY['default', 'render', 'ml', 'webhooks'])[1 + i % 4], 'history.kind' || (i % 7),
             jsonb_build_object('n', i), 1, 5, t, t, t, t + interval '1 second'
      FROM generate_series($start + 1, $start + $count) AS i,
           LATERAL (SELECT now() - interval '30 days' * random() AS t) AS at"
  done
  psql "$url" -qX -v ON_ERROR_STOP=1 -c "
    INSERT INTO conveyor_jobs (id, queue, kind, args, priority, max_attempts, run_at, inserted_at)
    SELECT gen_random_uuid(), (ARRAY['default', 'render', 'ml', 'webhooks'])[1 + i % 4], 'waiting', '{}', i % 10, 5,
           now() - interval '1 minute' * (i % 60), now()
    FROM generate_series(1, 1000) AS i" -c "VACUUM ANALYZE conveyor_jobs"
  size=$(psql "$url" -qAtX -c "SELECT pg_size_pretty(pg_total_relation_size('conveyor_jobs'))")
  printf '%12s  %14s  %22s  %s\n' "$rows" "$(timed "$statistics_sql")" "$(timed "$old_sql")" "$size"
done
