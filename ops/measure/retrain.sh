#!/usr/bin/env bash
# ops/measure/retrain.sh [SIZES] — the retraining loop's costs on a scratch database of the project's
# servers, one release `conveyor worker` with defaults:
#
# 1. for each size (default "10000 100000 1000000") that many completed predictions over 25 days
#    (three hook types, two templates, a numeric feature; the recorded predictions off by design so the
#    check retrains): one ml.retrain_check, its time from start to finish (from the row) and the
#    worker's peak resident memory (VmHWM) against its idle peak;
# 2. outcome ingestion: 100,000 ml.record_prediction then 100,000 ml.record_outcome jobs, outcomes
#    per second from the first start to the last finish (from the rows).
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$CONVEYOR_ROOT"
sizes="${1:-10000 100000 1000000}"
swift build -c release --product conveyor >/dev/null
bin="$CONVEYOR_ROOT/.build/release"
"$CONVEYOR_ROOT/ops/services" start >/dev/null
eval "$("$CONVEYOR_ROOT/ops/services" env)"
db="conveyor_ml_$(date +%s)"
psql -q "$DATABASE_URL" -c "CREATE DATABASE $db"
export DATABASE_URL="${DATABASE_URL%/*}/$db"
"$bin/conveyor" migrate >/dev/null
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; psql -q "${DATABASE_URL%/*}/conveyor" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT

wait_done() {  # kind
  for _ in $(seq 1 2400); do
    left=$(psql -qtA "$DATABASE_URL" -c "SELECT count(*) FROM conveyor_jobs WHERE kind = '$1' AND state NOT IN ('completed', 'dead')")
    [ "$left" = 0 ] && return 0
    sleep 0.25
  done
  echo "timed out waiting for $1" >&2
  return 1
}

for n in $sizes; do
  psql -q "$DATABASE_URL" -c "TRUNCATE conveyor_jobs, conveyor_ml_predictions, conveyor_ml_models, conveyor_ml_checks"
  # CTR = σ(-3 + hook effect + template effect + 0.02·(duration − 30)), clicks its expectation out of 1000.
  psql -q "$DATABASE_URL" -c "
    INSERT INTO conveyor_ml_predictions (prediction_id, ad_id, predicted_ctr, hook_type, template_id, features, status, impressions, clicks,
        actual_ctr, ctr_error, predicted_at, completed_at)
    SELECT 'p' || g, 'ad' || g, 0.08, h, t, jsonb_build_object('duration', d), 'completed', 1000, c, c / 1000.0, 0.08 - c / 1000.0, at, at
    FROM (SELECT g, (ARRAY['question', 'shock', 'story'])[1 + g % 3] AS h, (ARRAY['t1', 't2'])[1 + (g / 3) % 2] AS t, 5 + (g::bigint * 7919) % 56 AS d,
                 now() - (25 * 86400.0 * (1 - g::float8 / $n)) * interval '1 second' AS at
          FROM generate_series(1, $n) g) s,
    LATERAL (SELECT round(1000 / (1 + exp(-(-3 + CASE h WHEN 'shock' THEN 0.5 WHEN 'story' THEN -0.3 ELSE 0 END
                                            + CASE t WHEN 't2' THEN 0.25 ELSE 0 END + 0.02 * (d - 30)))))::bigint AS c) k"
  CONVEYOR_LOG_LEVEL=warning "$bin/conveyor" worker --no-ingest &
  worker=$!
  sleep 2
  idle=$(awk '/VmHWM/ {print $2}' "/proc/$worker/status")
  "$bin/conveyor" enqueue ml.retrain_check --direct >/dev/null
  wait_done ml.retrain_check
  peak=$(awk '/VmHWM/ {print $2}' "/proc/$worker/status")
  kill -TERM "$worker"; wait "$worker" || true
  psql -qtA "$DATABASE_URL" -c "SELECT '$n records: ' || (result->>'status') || ' (' || coalesce(result->>'reason', '') || '), ' || coalesce(result->>'samples', '?') || ' trained on, holdout MAE '
      || coalesce(round((result->'old_metrics'->>'test_mae')::numeric, 5)::text, '?') || ' -> ' || coalesce(round((result->'metrics'->>'test_mae')::numeric, 5)::text, '?')
      || ', ' || round(extract(epoch FROM finished_at - attempted_at)::numeric, 2) || ' s' FROM conveyor_jobs WHERE kind = 'ml.retrain_check'"
  echo "  worker peak RSS: $((peak / 1024)) MiB (idle: $((idle / 1024)) MiB)"
done

log "ingestion: 100000 predictions, then 100000 outcomes"
psql -q "$DATABASE_URL" -c "TRUNCATE conveyor_jobs, conveyor_ml_predictions"
psql -q "$DATABASE_URL" -c "INSERT INTO conveyor_jobs (id, kind, queue, args, max_attempts, run_at, inserted_at)
  SELECT gen_random_uuid(), 'ml.record_prediction', 'default', jsonb_build_object('prediction_id', 'p' || g, 'ad_id', 'ad' || g, 'predicted_ctr', 0.03,
    'hook_type', 'question', 'template_id', 't1', 'features', jsonb_build_object('duration', g % 60)), 5, now(), now() FROM generate_series(1, 100000) g"
CONVEYOR_LOG_LEVEL=warning "$bin/conveyor" worker --no-ingest &
worker=$!
wait_done ml.record_prediction
psql -q "$DATABASE_URL" -c "INSERT INTO conveyor_jobs (id, kind, queue, args, max_attempts, run_at, inserted_at)
  SELECT gen_random_uuid(), 'ml.record_outcome', 'default', jsonb_build_object('prediction_id', 'p' || g, 'impressions', 1000, 'clicks', g % 50,
    'conversions', g % 3, 'spend', 10, 'revenue', g % 7), 8, now(), now() FROM generate_series(1, 100000) g"
wait_done ml.record_outcome
kill -TERM "$worker"; wait "$worker" || true
psql -qtA "$DATABASE_URL" -c "SELECT kind || ': ' || count(*) FILTER (WHERE state = 'completed') || ' completed, '
    || round(count(*) / extract(epoch FROM max(finished_at) - min(attempted_at))) || ' per second' FROM conveyor_jobs GROUP BY kind ORDER BY kind"
