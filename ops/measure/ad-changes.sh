#!/usr/bin/env bash
# ops/measure/ad-changes.sh [SIZES] — meta.ad_change against the sandbox: HTTP calls and wall time for
# 50, 500 and 5,000 pending changes (default SIZES "50 500 5000"), in two scenarios (ad_changes_seed.py:
# `distinct` objects, and `bursty` repeated edits of N/12.5 ad sets), next to one call per change
# (ad_changes_baseline.py, what the platform's gateway does today) on the same seeded sandbox.
#
# Conveyor's time is from the first job's start to the last job's finish, from the rows; one release
# `conveyor worker` with defaults; the sandbox's own count of the calls it received.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$CONVEYOR_ROOT"
sizes="${1:-50 500 5000}"
# Every Graph call waits this long in the sandbox, as a network round trip to Meta would (default 50 ms,
# on the low side of what Graph writes take; 0 for loopback speed).
export SANDBOX_GRAPH_LATENCY_MS="${SANDBOX_GRAPH_LATENCY_MS:-50}"
swift build -c release --product conveyor >/dev/null
swift build -c release --product conveyor-sandbox >/dev/null
bin="$CONVEYOR_ROOT/.build/release"
"$CONVEYOR_ROOT/ops/services" start >/dev/null
eval "$("$CONVEYOR_ROOT/ops/services" env)"
db="conveyor_ads_$(date +%s)"
psql -q "$DATABASE_URL" -c "CREATE DATABASE $db"
export DATABASE_URL="${DATABASE_URL%/*}/$db"
"$bin/conveyor" migrate >/dev/null
sandbox_port=$(free_port)
base="http://127.0.0.1:$sandbox_port"
work=$(mktemp -d)
"$bin/conveyor-sandbox" --port "$sandbox_port" >/dev/null &
pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; psql -q "${DATABASE_URL%/*}/conveyor" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
for _ in $(seq 1 100); do curl -sf "$base/_sandbox/stats" >/dev/null 2>&1 && break; sleep 0.1; done
export META_GRAPH_BASE_URL="$base" META_ACCESS_TOKEN=sandbox-meta-token
for scenario in distinct bursty; do
  for n in $sizes; do
    python3 ops/measure/ad_changes_seed.py "$base" "$scenario" "$n" "$work/jobs.sql"
    psql -q "$DATABASE_URL" -c "TRUNCATE conveyor_jobs, conveyor_meta_ad_audit, conveyor_meta_ad_approvals, conveyor_meta_ad_account_locks"
    psql -q "$DATABASE_URL" -f "$work/jobs.sql"
    CONVEYOR_LOG_LEVEL=warning "$bin/conveyor" worker --no-ingest &
    worker=$!
    for _ in $(seq 1 1200); do
      # A change deferred by the four-per-hour rule waits its minute: counted apart, not waited for.
      left=$(psql -qtA "$DATABASE_URL" -c "SELECT count(*) FROM conveyor_jobs WHERE state NOT IN ('completed', 'dead', 'cancelled') AND run_at < now() + interval '1 minute'")
      [ "$left" = 0 ] && break
      sleep 0.25
    done
    kill -TERM "$worker"; wait "$worker" || true
    calls=$(curl -s "$base/_sandbox/marketing/calls" | python3 -c 'import json,sys; c=json.load(sys.stdin); print(len(c), "calls (", sum(1 for x in c if x["what"]=="batch"), "batches,", sum(1 for x in c if x["method"]=="GET"), "reads ), max ad sets of one campaign per batch:", max([x["max_adsets_per_campaign"] for x in c] or [0]))')
    psql -qtA "$DATABASE_URL" -c "SELECT '$scenario $n: conveyor ' || count(*) FILTER (WHERE state = 'completed') || ' completed, '
      || count(*) FILTER (WHERE result->>'superseded_by' IS NOT NULL) || ' superseded, ' || count(*) FILTER (WHERE state = 'dead') || ' dead, '
      || count(*) FILTER (WHERE state = 'available') || ' deferred (a fifth budget change in an hour), '
      || round(extract(epoch FROM max(finished_at) - min(attempted_at))::numeric, 2) || ' s' FROM conveyor_jobs"
    echo "  $calls"
    # The same changes on a freshly seeded sandbox, one call each.
    python3 ops/measure/ad_changes_seed.py "$base" "$scenario" "$n" "$work/unused.sql"
    echo "  $(python3 ops/measure/ad_changes_baseline.py "$base" "$work/jobs.sql.calls" sandbox-meta-token)"
  done
done
