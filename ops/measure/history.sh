#!/usr/bin/env bash
# Claim throughput with a long history: DESIGN §9 asks that claiming with 5 million finished rows in the
# table stays within 10 % of an empty table.
#
#   ops/measure/history.sh [ROWS] [RUNS] [bench options…]     default 5000000 rows, 3 runs
#
# On two fresh scratch databases (dropped afterwards): inserts ROWS finished jobs into `conveyor_bench`
# (completed, dead and cancelled, in the proportions of a real history, spread over 30 days, in
# 500,000-row statements) and runs VACUUM ANALYZE (as autovacuum would after such a load), leaving
# `conveyor_bench_empty` empty; then runs `conveyor bench --no-redis` RUNS times on each, alternating.
# Prints the medians.
# Needs the release build and the local services (ops/services start).
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=5000000
runs=3
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then rows=$1; shift; fi
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then runs=$1; shift; fi
eval "$(ops/services env)"
admin="${DATABASE_URL%/*}/postgres"
empty_url="${DATABASE_URL%/*}/conveyor_bench_empty"
export DATABASE_URL="${DATABASE_URL%/*}/conveyor_bench"
drop() { psql "$admin" -qc "DROP DATABASE IF EXISTS conveyor_bench WITH (FORCE)" -c "DROP DATABASE IF EXISTS conveyor_bench_empty WITH (FORCE)"; }
trap 'drop >/dev/null 2>&1 || true' EXIT
drop >/dev/null 2>&1
psql "$admin" -qc "CREATE DATABASE conveyor_bench" -c "CREATE DATABASE conveyor_bench_empty" >/dev/null
.build/release/conveyor migrate >/dev/null
DATABASE_URL=$empty_url .build/release/conveyor migrate >/dev/null
started=$(date +%s)
for start in $(seq 0 500000 $((rows - 1))); do
  count=$(( rows - start < 500000 ? rows - start : 500000 ))
  psql "$DATABASE_URL" -qX -v ON_ERROR_STOP=1 -c "
    INSERT INTO conveyor_jobs (id, state, queue, kind, args, attempt, max_attempts, run_at, inserted_at,
                               attempted_at, finished_at, errors)
    SELECT gen_random_uuid(),
           CASE WHEN i % 50 = 0 THEN 'dead' WHEN i % 97 = 0 THEN 'cancelled' ELSE 'completed' END::conveyor_job_state,
           (ARRAY['default', 'render', 'ml', 'webhooks'])[1 + i % 4], 'history.kind' || (i % 7),
           jsonb_build_object('n', i), 1 + (i % 50 = 0)::int * 4, 5, t, t, t, t + interval '1 second',
           CASE WHEN i % 50 = 0 THEN '[{\"attempt\": 5, \"message\": \"boom\", \"kind\": \"error\"}]'::jsonb ELSE '[]' END
    FROM generate_series($start + 1, $start + $count) AS i,
         LATERAL (SELECT now() - interval '30 days' * random() AS t) AS at"
done
psql "$DATABASE_URL" -qX -c "VACUUM ANALYZE conveyor_jobs"
loaded=$(( $(date +%s) - started ))
size=$(psql "$DATABASE_URL" -qAtX -c "SELECT pg_size_pretty(pg_total_relation_size('conveyor_jobs'))")
# Interleaved, empty then full, so the machine's drift (this class of VM moves by tens of percent within
# an hour) lands on both sides instead of in the difference.
empty="" full=""
for _ in $(seq 1 "$runs"); do
  empty+=$(DATABASE_URL=$empty_url .build/release/conveyor bench --no-redis --json "$@")$'\n'
  full+=$(.build/release/conveyor bench --no-redis --json "$@")$'\n'
done
python3 - "$rows" "$loaded" "$size" <<PY
import json, statistics, sys
rows, loaded, size = sys.argv[1:]
def med(text, key):
    return statistics.median(json.loads(l)[key] for l in text.splitlines() if l.strip())
empty, full = """$empty""", """$full"""
print(f"history: {int(rows):,} finished rows loaded in {loaded} s, table with indexes {size}")
for key in ("runtime_jobs_per_second", "ceiling_jobs_per_second"):
    e, f = med(empty, key), med(full, key)
    print(f"  {key:26} empty {e:>8.0f}   with history {f:>8.0f}   ({(f / e - 1) * 100:+.1f} %)")
PY
