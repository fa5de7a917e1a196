#!/usr/bin/env bash
# ops/measure/churn.sh DATABASE_URL [fillfactor] [tuned]: the jobs table's life in fast-forward, to choose
# fill factor and autovacuum settings by measurement (docs/performance.md, "Table churn").
#
# Each round inserts 20,000 jobs, claims them (available → running), completes them (running →
# completed) in 2,000-row statements, and prunes the previous round's jobs in 1,000-row deletes: the
# steady state of a busy queue with short retention. It prints the table and index sizes, HOT updates
# and autovacuum runs after ROUNDS rounds (default 30). Needs a migrated, otherwise idle database.
set -euo pipefail
url="$1"; fillfactor="${2:-100}"; tuned="${3:-}"
rounds="${ROUNDS:-30}"
q() { psql "$url" -qAtX -c "$1"; }
q "TRUNCATE conveyor_jobs; ALTER TABLE conveyor_jobs SET (fillfactor = $fillfactor)"
if [ "$tuned" = tuned ]; then
  q "ALTER TABLE conveyor_jobs SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0)"
else
  q "ALTER TABLE conveyor_jobs RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor, autovacuum_vacuum_cost_delay)"
fi
q "SELECT pg_stat_reset_single_table_counters('conveyor_jobs'::regclass)"
start=$(date +%s)
for round in $(seq 1 "$rounds"); do
  q "INSERT INTO conveyor_jobs (id, queue, kind, max_attempts, run_at, inserted_at, tags)
     SELECT gen_random_uuid(), 'churn', 'conveyor.noop', 25, now(), now(), '{r$round}' FROM generate_series(1, 20000)"
  for _ in $(seq 1 10); do
    q "WITH p AS (SELECT id FROM conveyor_jobs WHERE state = 'available' AND queue = 'churn' ORDER BY priority, run_at, seq LIMIT 2000 FOR UPDATE SKIP LOCKED)
       UPDATE conveyor_jobs j SET state = 'running', attempt = attempt + 1, attempted_at = now(), locked_by = 'w', lease_expires_at = now() + interval '30 s' FROM p WHERE j.id = p.id"
    q "WITH p AS (SELECT id FROM conveyor_jobs WHERE state = 'running' ORDER BY lease_expires_at LIMIT 2000)
       UPDATE conveyor_jobs j SET state = 'completed', finished_at = now(), locked_by = NULL, lease_expires_at = NULL FROM p WHERE j.id = p.id"
  done
  while [ "$(q "WITH d AS (SELECT id FROM conveyor_jobs WHERE state IN ('completed','cancelled','dead') AND NOT ('r$round' = ANY(tags)) LIMIT 1000 FOR UPDATE SKIP LOCKED) DELETE FROM conveyor_jobs j USING d WHERE j.id = d.id RETURNING 1" | wc -l)" -gt 0 ]; do :; done
done
elapsed=$(( $(date +%s) - start ))
q "SELECT 'fillfactor=$fillfactor ${tuned:-default} rounds=$rounds elapsed=${elapsed}s'
   || ' table=' || pg_size_pretty(pg_relation_size('conveyor_jobs'))
   || ' indexes=' || pg_size_pretty(pg_indexes_size('conveyor_jobs'))
   || ' live=' || n_live_tup || ' dead=' || n_dead_tup
   || ' updates=' || n_tup_upd || ' hot=' || n_tup_hot_upd
   || ' autovacuums=' || autovacuum_count
   FROM pg_stat_user_tables WHERE relname = 'conveyor_jobs'"
