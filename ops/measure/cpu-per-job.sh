#!/usr/bin/env bash
# Where a no-op job's CPU goes: `conveyor worker` (no flags, and --concurrency 2000) beside the
# harness's Python sketch of the same design (../shared/bench/sut-example/ref_sut.py), 100,000 jobs
# each, interleaved, on the harness's private PostgreSQL 15 (synchronous commit on) and Redis.
#
#   ops/measure/cpu-per-job.sh [REPS]        default 3
#
# For each run: the drain rate (first progress to empty, polled every 200 ms), the CPU the worker
# process and all PostgreSQL processes used meanwhile (utime + stime from /proc, in µs per
# job), and how busy the machine was (from /proc/stat). It answers whether a rate is bound by CPU
# (both cores busy) or by waiting, and what a job costs each side. Prepares the harness copy and the
# release build with ops/measure/peers.sh --prepare; ports BENCH_PG_PORT / BENCH_REDIS_PORT
# (default 58432 / 58379).
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=${1:-3}
ops/measure/peers.sh --prepare
copy=${BENCH_COPY:-/tmp/conveyor-bench}
bin=$PWD/.build-release/release/conveyor
state=$(mktemp -d /tmp/conveyor-cpu.XXXXXX)
export BENCH_PG_PORT=${BENCH_PG_PORT:-58432} BENCH_REDIS_PORT=${BENCH_REDIS_PORT:-58379}
"$copy/lib/servers.sh" start "$state"
trap '"$copy/lib/servers.sh" stop "$state" >/dev/null 2>&1 || true; rm -rf "$state"' EXIT
# shellcheck disable=SC1091
source "$state/env"
cd "$copy"
# shellcheck disable=SC1091
source .venv/bin/activate
export BENCH_N=100000 BENCH_OUT=$state/out
mkdir -p "$BENCH_OUT"
DATABASE_URL=$BENCH_PG_URL "$bin" migrate >/dev/null 2>&1
python sut-example/ref_sut.py install
hz=$(getconf CLK_TCK)

ticks() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
machine() { awk '/^cpu /{print $2 + $3 + $4, $5}' /proc/stat; }

# run NAME REMAINING-SQL LIST WORKER-COMMAND…: one drain, one line of figures
run() {
  local name=$1 sql=$2 list=$3; shift 3
  "$@" & local pid=$!
  local pg0 busy0 idle0 started="" rem0=0 rem
  pg0=$(ticks $(pgrep -u postgres postgres)); read -r busy0 idle0 < <(machine)
  while :; do
    rem=$(( $(redis-cli -p "$BENCH_REDIS_PORT" llen "$list") + $(psql "$BENCH_PG_URL" -Atqc "$sql") ))
    if [ -z "$started" ] && [ "$rem" -lt "$BENCH_N" ]; then started=$(date +%s.%N); rem0=$rem; fi
    [ "$rem" = 0 ] && break
    sleep 0.2
  done
  local ended worker pg1 busy1 idle1
  ended=$(date +%s.%N); worker=$(ticks $pid $(pgrep -P $pid)); pg1=$(ticks $(pgrep -u postgres postgres)); read -r busy1 idle1 < <(machine)
  kill -TERM $pid; wait $pid || true
  python3 -c "
n, s, hz = $rem0, $ended - $started, $hz
us = lambda t: t * 1e6 / hz / n
print(f'| $name | {n / s:,.0f} | {us($worker):.1f} | {us($pg1 - $pg0):.1f} | {100 * ($busy1 - $busy0) / (($busy1 - $busy0) + ($idle1 - $idle0)):.0f} % |')"
}

echo "| run | drain/s | worker CPU µs per job | PostgreSQL CPU µs per job | machine busy |"
echo "|---|---:|---:|---:|---:|"
for rep in $(seq 1 "$reps"); do
  export DATABASE_URL=$BENCH_PG_URL REDIS_URL=$BENCH_REDIS_URL CONVEYOR_LOG_LEVEL=warning
  for entry in default c2000 sketch; do
    case $entry in
      sketch)
        python sut-example/ref_sut.py reset && python sut-example/ref_sut.py enqueue >/dev/null
        run "sketch, rep $rep" "SELECT count(*) FROM sut_jobs WHERE state <> 'done'" sut:inbound python sut-example/ref_sut.py worker ;;
      *)
        peers/conveyor/reset.sh && python peers/conveyor/push.py throughput >/dev/null
        flags=(); [ "$entry" = c2000 ] && flags=(--concurrency 2000)
        run "conveyor $entry, rep $rep" "SELECT count(*) FROM conveyor_jobs WHERE state IN ('available', 'running')" '{conveyor}:ingress' \
          "$bin" worker "${flags[@]}" ;;
    esac
  done
done
