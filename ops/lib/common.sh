# Shared helpers for the ops scripts: installing what is missing, and starting/stopping a PostgreSQL and a
# Redis owned by the project (loopback only, data in a folder we choose). Sourced, not executed.

CONVEYOR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $* (install it by hand or run as root)"
  fi
}

pg_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

# Installs the Debian packages Conveyor needs when they are missing.
ensure_packages() {
  local missing=()
  [ -n "$(pg_bindir)" ] || missing+=(postgresql)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  dpkg -s libhiredis-dev >/dev/null 2>&1 || missing+=(libhiredis-dev)
  # The dashboard's browser smoke test (Tests/smoke) and the render kind's tests.
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  command -v swift >/dev/null 2>&1 || die "swift is not on PATH (Swift 6 toolchain required)"
  # redis-py, for the README's Python producer example (the tests run it).
  python3 -c 'import redis' 2>/dev/null || {
    log "installing redis-py"
    python3 -m pip install --quiet redis || die "pip install redis failed"
  }
  # croniter: the reference cron implementation the cron tests compare against.
  python3 -c 'import croniter' 2>/dev/null || {
    log "installing croniter"
    python3 -m pip install --quiet croniter || die "pip install croniter failed"
  }
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# PostgreSQL refuses to run as root: when we are root, its files belong to and it runs as `postgres`.
pg_user_run() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# start_postgres DIR PORT [OPTIONS]: initialises DIR if needed and starts a server on 127.0.0.1:PORT
# with a trust-authenticated `conveyor` superuser and a `conveyor` database, passing OPTIONS (e.g.
# "-c fsync=off") to the server. Reuses a running server.
start_postgres() {
  local dir="$1" port="$2" extra="${3:-}" bin
  bin=$(pg_bindir) || die "PostgreSQL binaries not found under /usr/lib/postgresql"
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir" 2>/dev/null
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    pg_user_run "$bin/initdb" -D "$dir/data" -U conveyor --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed in $dir"; }
  fi
  if pg_user_run "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    log "PostgreSQL already running in $dir"
  else
    pg_user_run "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
      -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c max_connections=300 -c shared_buffers=256MB $extra" >/dev/null \
      || { tail -n 20 "$dir/postgres.log" >&2; die "PostgreSQL did not start (log: $dir/postgres.log)"; }
  fi
  if ! psql -h 127.0.0.1 -p "$port" -U conveyor -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='conveyor'" | grep -q 1; then
    psql -h 127.0.0.1 -p "$port" -U conveyor -d postgres -qc "CREATE DATABASE conveyor" >/dev/null
  fi
}

stop_postgres() {
  local dir="$1" bin
  bin=$(pg_bindir) || return 0
  [ -f "$dir/data/PG_VERSION" ] || return 0
  pg_user_run "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# start_redis DIR PORT: starts a Redis on 127.0.0.1:PORT with its files in DIR, unless one runs there.
start_redis() {
  local dir="$1" port="$2"
  mkdir -p "$dir"
  if [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then
    log "Redis already running in $dir"
    return 0
  fi
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" \
    --logfile "$dir/redis.log" --appendonly yes --save "" >/dev/null || die "Redis did not start (log: $dir/redis.log)"
  for _ in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "Redis did not answer on port $port (log: $dir/redis.log)"
}

stop_redis() {
  local dir="$1"
  [ -f "$dir/redis.pid" ] || return 0
  local pid; pid=$(cat "$dir/redis.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}
