#!/usr/bin/env bash
# Interleaved A/B of one bench switch: end-to-end runs (Redis → completed) without (A) and with (B) the
# given flags, alternated, each on a freshly created and migrated database, so the VM's drift lands in
# both columns alike. Prints every run and the medians.
#
#   ops/measure/ab.sh [ROUNDS] 'B FLAGS' [bench options…]
#   e.g. ops/measure/ab.sh 5 --prometheus --concurrency 1000 --ingesters 2
#
# AB_A_SQL, when set, runs on A's database after it is migrated, to measure a schema change with one
# binary; e.g. the queue counts' triggers (migration 0009) against none:
#   AB_A_SQL="DROP TRIGGER conveyor_jobs_count_insert ON conveyor_jobs; DROP TRIGGER conveyor_jobs_count_update ON conveyor_jobs; DROP TRIGGER conveyor_jobs_count_delete ON conveyor_jobs" ops/measure/ab.sh 5 '' --concurrency 1000 --ingesters 2
#
# Needs the release build and the local services (ops/services start); scratch database conveyor_bench.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=3
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
read -r -a b_flags <<< "${1?usage: ops/measure/ab.sh [ROUNDS] 'B FLAGS' [bench options…]}"
shift
eval "$(ops/services env)"
admin="${DATABASE_URL%/*}/postgres"
export DATABASE_URL="${DATABASE_URL%/*}/conveyor_bench"
results=$(mktemp)
trap 'rm -f "$results"; psql "$admin" -qc "DROP DATABASE IF EXISTS conveyor_bench WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
for round in $(seq 1 "$rounds"); do
  for mode in A B; do
    psql "$admin" -qc "DROP DATABASE IF EXISTS conveyor_bench WITH (FORCE)" -c "CREATE DATABASE conveyor_bench" >/dev/null 2>&1
    .build/release/conveyor migrate >/dev/null
    if [[ $mode == A && -n "${AB_A_SQL:-}" ]]; then psql "$DATABASE_URL" -qX -v ON_ERROR_STOP=1 -c "$AB_A_SQL" >/dev/null; fi
    flags=(); [[ $mode == B ]] && flags=("${b_flags[@]}")
    line=$(.build/release/conveyor bench --json --end-to-end-only --jobs 50000 --samples 200 "${flags[@]}" "$@")
    echo "$mode $line" | tee -a "$results"
  done
done
python3 - "$results" "${b_flags[*]}" <<'PY'
import json, statistics, sys
runs = {"A": [], "B": []}
for line in open(sys.argv[1]):
    mode, _, payload = line.partition(" ")
    runs[mode].append(json.loads(payload))
print(f"A: without, B: with {sys.argv[2] or 'the schema as migrated'}; medians (min–max)")
for key in ("end_to_end_jobs_per_second", "latency_p50_ms", "latency_p99_ms"):
    cells = []
    for mode in ("A", "B"):
        values = [r[key] for r in runs[mode]]
        cells.append(f"{mode}: {statistics.median(values):g} ({min(values):g}–{max(values):g})")
    print(f"{key:28} " + "   ".join(cells))
PY
