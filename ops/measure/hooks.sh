#!/usr/bin/env bash
# ops/measure/hooks.sh [RATE] [SECONDS] [EVENTS] — the HubSpot receiver under a fixed-rate load, and the
# Conversions API path's throughput against the sandbox, on a scratch database of the project's servers.
#
# 1. `conveyor web --hooks-address` (release build) takes RATE signed deliveries per second (default 200,
#    of EVENTS events each, default 10) for SECONDS (default 30) from ops/measure/hooks_load.py: p50/p99.
# 2. 20,000 meta.capi_event jobs are inserted and one `conveyor worker` sends them to the sandbox
#    (1,000 per request): events per second from the first start to the last finish, from the rows.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$CONVEYOR_ROOT"
rate="${1:-200}"; seconds="${2:-30}"; events="${3:-10}"
swift build -c release --product conveyor >/dev/null
swift build -c release --product conveyor-sandbox >/dev/null
bin="$CONVEYOR_ROOT/.build/release"
"$CONVEYOR_ROOT/ops/services" start >/dev/null
eval "$("$CONVEYOR_ROOT/ops/services" env)"
db="conveyor_hooks_$(date +%s)"
psql -q "$DATABASE_URL" -c "CREATE DATABASE $db"
export DATABASE_URL="${DATABASE_URL%/*}/$db"
"$bin/conveyor" migrate >/dev/null
sandbox_port=$(free_port); hooks_port=$(free_port); web_port=$(free_port)
"$bin/conveyor-sandbox" --port "$sandbox_port" >/dev/null &
pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; psql -q "${DATABASE_URL%/*}/conveyor" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
export HUBSPOT_CLIENT_SECRET=measure-secret META_GRAPH_BASE_URL="http://127.0.0.1:$sandbox_port" META_ACCESS_TOKEN=sandbox-meta-token META_PIXEL_ID=1234567890
CONVEYOR_LOG_LEVEL=warning "$bin/conveyor" web --address "127.0.0.1:$web_port" --hooks-address "127.0.0.1:$hooks_port" &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$hooks_port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
log "receiver: $rate deliveries/s of $events events for $seconds s"
python3 ops/measure/hooks_load.py "http://127.0.0.1:$hooks_port/hooks/hubspot" measure-secret "$rate" "$seconds" "$events"
psql -qtA "$DATABASE_URL" -c "SELECT 'rows stored: ' || count(*) FROM conveyor_jobs WHERE kind = 'hubspot.deal_event'"

log "Conversions API path: 20000 meta.capi_event jobs, one worker, the sandbox as Meta"
psql -q "$DATABASE_URL" -c "DELETE FROM conveyor_jobs"
now=$(date +%s)
psql -q "$DATABASE_URL" -c "INSERT INTO conveyor_jobs (id, kind, queue, args, max_attempts, limit_key, run_at, inserted_at)
  SELECT gen_random_uuid(), 'meta.capi_event', 'default',
    jsonb_build_object('event', jsonb_build_object('event_name', 'Purchase', 'event_time', $now, 'event_id', 'e' || g,
      'action_source', 'system_generated', 'user_data', jsonb_build_object('em', jsonb_build_array(encode(sha256(('p' || g || '@example.com')::bytea), 'hex'))),
      'custom_data', jsonb_build_object('value', 10, 'currency', 'USD'))), 12, 'meta-pixel:1234567890', now(), now()
  FROM generate_series(1, 20000) g"
CONVEYOR_LOG_LEVEL=warning "$bin/conveyor" worker --no-ingest &
pids+=($!)
for _ in $(seq 1 600); do
  left=$(psql -qtA "$DATABASE_URL" -c "SELECT count(*) FROM conveyor_jobs WHERE state NOT IN ('completed', 'dead')")
  [ "$left" = 0 ] && break
  sleep 0.5
done
psql -qtA "$DATABASE_URL" -c "SELECT 'completed: ' || count(*) FILTER (WHERE state = 'completed') || ', dead: ' || count(*) FILTER (WHERE state = 'dead')
  || ', events/s: ' || round(count(*) / extract(epoch FROM max(finished_at) - min(attempted_at))) FROM conveyor_jobs"
curl -s "http://127.0.0.1:$sandbox_port/_sandbox/stats"; echo
