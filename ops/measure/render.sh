#!/usr/bin/env bash
# ops/measure/render.sh [RENDERS] [SECONDS] — video.render's overhead beside ffmpeg's own time, and
# progress writes per render-minute, on a scratch database of the project's servers.
#
# RENDERS (default 10) renders of a generated clip of SECONDS (default 10) at 1280x720, preset medium:
# 1. ffmpeg alone, the same argument list the kind builds (from the first job's row), one after another;
# 2. the same renders as video.render jobs through one release `conveyor worker` (queue default,
#    cluster cap 1 so they run one at a time like step 1): per render, the job's start-to-finish time
#    from its row next to ffmpeg's; progress writes from the worker's conveyor_progress_writes_total.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$CONVEYOR_ROOT"
renders="${1:-10}"; seconds="${2:-10}"
swift build -c release --product conveyor >/dev/null
bin="$CONVEYOR_ROOT/.build/release"
"$CONVEYOR_ROOT/ops/services" start >/dev/null
eval "$("$CONVEYOR_ROOT/ops/services" env)"
db="conveyor_render_$(date +%s)"
psql -q "$DATABASE_URL" -c "CREATE DATABASE $db"
export DATABASE_URL="${DATABASE_URL%/*}/$db"
"$bin/conveyor" migrate >/dev/null
media=$(mktemp -d)
mkdir -p "$media/renders"
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$media"; psql -q "${DATABASE_URL%/*}/conveyor" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT

spec() { echo "{\"inputs\": [{\"generate\": \"testsrc2\", \"duration\": $seconds}], \"output\": {\"path\": \"renders/$1.mp4\"}, \"size\": {\"width\": 1280, \"height\": 720}, \"fps\": 30, \"video\": {\"codec\": \"libx264\", \"preset\": \"medium\"}}"; }

log "ffmpeg alone: $renders renders of $seconds s"
start=$(date +%s.%N)
for i in $(seq 1 "$renders"); do
  ffmpeg -hide_banner -nostats -loglevel error -progress pipe:1 -y -f lavfi -i "testsrc2=duration=$seconds:size=1280x720:rate=30" \
    -filter_complex "[0:v]scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=30,format=yuv420p[v0];[v0]concat=n=1:v=1:a=0[vc]" \
    -map "[vc]" -an -c:v libx264 -preset medium -crf 23 -r 30 -movflags +faststart -f mp4 "$media/renders/alone$i.mp4" >/dev/null
done
alone=$(python3 -c "import sys; print(f'{(float(sys.argv[2]) - float(sys.argv[1])) / int(sys.argv[3]):.3f}')" "$start" "$(date +%s.%N)" "$renders")
echo "  ffmpeg alone: $alone s per render"

log "the same renders as video.render jobs"
for i in $(seq 1 "$renders"); do "$bin/conveyor" enqueue video.render --direct --args "$(spec "job$i")" >/dev/null; done
metrics_port=$(free_port)
CONVEYOR_MEDIA_ROOT="$media" VIDEO_RENDER_CONCURRENCY=1 CONVEYOR_LOG_LEVEL=warning \
  "$bin/conveyor" worker --no-ingest --metrics-address "127.0.0.1:$metrics_port" &
worker=$!
for _ in $(seq 1 2400); do
  left=$(psql -qtA "$DATABASE_URL" -c "SELECT count(*) FROM conveyor_jobs WHERE kind = 'video.render' AND state NOT IN ('completed', 'dead', 'cancelled')")
  [ "$left" = 0 ] && break
  sleep 0.5
done
writes=$(curl -s "http://127.0.0.1:$metrics_port/metrics" | awk '/^conveyor_progress_writes_total/ {s += $2} END {print s + 0}')
kill -TERM "$worker"; wait "$worker" || true
psql -qtA "$DATABASE_URL" -c "SELECT count(*) FILTER (WHERE state = 'completed') || ' completed; per render: '
    || round(avg(extract(epoch FROM finished_at - attempted_at))::numeric, 3) || ' s start to finish (ffmpeg alone $alone s), '
    || round(avg((result->>'render_seconds')::numeric), 3) || ' s inside the handler; '
    || round(sum(extract(epoch FROM finished_at - attempted_at))::numeric / 60, 2) || ' render-minutes, $writes progress writes = '
    || round($writes / (sum(extract(epoch FROM finished_at - attempted_at))::numeric / 60), 1) || ' per render-minute'
  FROM conveyor_jobs WHERE kind = 'video.render'"
