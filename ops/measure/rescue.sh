#!/usr/bin/env bash
# ops/measure/rescue.sh [LEASE_SECONDS]: how long after a worker is SIGKILLed its job runs again.
# Needs DATABASE_URL (a migrated database) and a built `conveyor` (CONVEYOR_BIN, default the debug build).
# Starts worker A, gives it a 10-minute conveyor.sleep job, SIGKILLs A while the job runs, starts B, and
# prints the time from the kill until B runs the job (bar: lease + one heartbeat = 4/3 of the lease).
set -euo pipefail
lease="${1:-6}"
bin="${CONVEYOR_BIN:-$(cd "$(dirname "$0")/../.." && swift build --show-bin-path)/conveyor}"
q() { psql "$DATABASE_URL" -qAtX -c "$1"; }
id=$(q "INSERT INTO conveyor_jobs (id, queue, kind, args, max_attempts, run_at, inserted_at)
        VALUES (gen_random_uuid(), 'rescue-measure', 'conveyor.sleep', '{\"seconds\": 600}', 5, now(), now()) RETURNING id")
export CONVEYOR_LOG_LEVEL=warning CONVEYOR_LEADER_TTL=3
"$bin" worker --no-ingest --queues rescue-measure=1 --lease "$lease" --worker-id measure-a & a=$!
until [ "$(q "SELECT locked_by FROM conveyor_jobs WHERE id = '$id'")" = measure-a ]; do sleep 0.05; done
"$bin" worker --no-ingest --queues rescue-measure=1 --lease "$lease" --worker-id measure-b & b=$!
sleep 1   # B is up and B's maintenance has joined the election
kill -9 "$a"; killed=$(date +%s.%N)
until [ "$(q "SELECT locked_by FROM conveyor_jobs WHERE id = '$id'")" = measure-b ]; do sleep 0.05; done
again=$(date +%s.%N)
kill "$b"; wait "$b" 2>/dev/null || true
q "DELETE FROM conveyor_jobs WHERE id = '$id'" >/dev/null
python3 -c "print(f'lease {float($lease):.0f} s, heartbeat {float($lease)/3:.1f} s: job running again {float($again) - float($killed):.2f} s after SIGKILL (bar: {float($lease) * 4 / 3:.1f} s)')"
