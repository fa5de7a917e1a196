#!/usr/bin/env bash
# Runs `conveyor bench` RUNS times, each on a freshly created and migrated database (a bench run leaves
# dead index entries behind that slow the next one), and prints every run's JSON and the medians.
#
#   ops/measure/bench.sh [RUNS] [bench options…]     e.g. ops/measure/bench.sh 5 --jobs 30000
#
# Needs the release build (swift build -c release --product conveyor) and the local services
# (ops/services start); uses a scratch database `conveyor_bench` on that server, dropped afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=3
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then runs=$1; shift; fi
eval "$(ops/services env)"
admin="${DATABASE_URL%/*}/postgres"
export DATABASE_URL="${DATABASE_URL%/*}/conveyor_bench"
results=$(mktemp)
trap 'rm -f "$results"; psql "$admin" -qc "DROP DATABASE IF EXISTS conveyor_bench WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
for run in $(seq 1 "$runs"); do
  psql "$admin" -qc "DROP DATABASE IF EXISTS conveyor_bench WITH (FORCE)" -c "CREATE DATABASE conveyor_bench" >/dev/null
  .build/release/conveyor migrate >/dev/null
  .build/release/conveyor bench --json "$@" | tee -a "$results"
  echo
done
python3 - "$results" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print(f"median of {len(runs)} runs (min–max):")
for key in runs[0]:
    values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
    if values and key not in ("jobs", "concurrency", "claimers", "latency_samples"):
        print(f"  {key:32} {statistics.median(values):>12g}   ({min(values):g}–{max(values):g})")
PY
