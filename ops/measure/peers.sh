#!/usr/bin/env bash
# Conveyor beside its peers, in one interleaved run of the shared harness (../shared/bench, its README):
# `conveyor worker` with no flags and tuned, the Python sketch of the same design, Sidekiq, and the raw
# SQL ceiling of this machine. The numbers go to docs/performance.md with this command next to them.
#
#   ops/measure/peers.sh [--reps N] [--only REGEX]     defaults: 3 repetitions, the entries below
#   ops/measure/peers.sh --prepare                      only the copy and the build (cpu-per-job.sh)
#
# Copies the harness to $BENCH_COPY (default /tmp/conveyor-bench; setup.sh runs once per machine),
# appends ops/measure/peer-entries.toml to the copy's entries, builds `conveyor` in release mode
# (.build-release) and runs the harness on its own private PostgreSQL 15 and Redis (ports
# BENCH_PG_PORT / BENCH_REDIS_PORT, default 58432 / 58379, so the test servers may keep theirs).
# Prints the summary table's path last. About 6 minutes for the default entries; keep the machine quiet.
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=3
prepare_only=
only='conveyor default x1|conveyor c2000 i2 x1|conveyor c100 i1 x1|ref-sut python x1|sidekiq c10 x1$|pg-sql sync=on'
while [ $# -gt 0 ]; do
  case $1 in
    --reps) reps=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --prepare) prepare_only=1; shift ;;
    *) echo "usage: ops/measure/peers.sh [--reps N] [--only REGEX]" >&2; exit 64 ;;
  esac
done
copy=${BENCH_COPY:-/tmp/conveyor-bench}
shared=$(cd ../shared/bench 2>/dev/null && pwd) || { echo "the shared harness ../shared/bench is not here" >&2; exit 1; }
if [ ! -d "$copy/.venv" ]; then
  rm -rf "$copy" && cp -r "$shared" "$copy"
  "$copy/setup.sh"
fi
# The harness's own entries, then ours (re-appended on every run, so edits to ours take effect).
cp "$shared/entries.toml" "$copy/entries.toml"
cat ops/measure/peer-entries.toml >>"$copy/entries.toml"
swift build -c release --product conveyor --build-path .build-release
export CONVEYOR_BIN=$PWD/.build-release/release/conveyor
[ -z "$prepare_only" ] || exit 0
cd "$copy"
BENCH_PG_PORT=${BENCH_PG_PORT:-58432} BENCH_REDIS_PORT=${BENCH_REDIS_PORT:-58379} \
  ./run-peers.sh --reps "$reps" --sizes 100000 --no-latency --only "$only"
echo "summary: $(ls -td "$copy"/results/*/ | head -1)summary.md"
