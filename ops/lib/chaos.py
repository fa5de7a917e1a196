#!/usr/bin/env python3
"""The chaos run (driven by ops/chaos, which owns the servers and the build).

Pushes envelopes of no-op, slow and failing kinds into Redis while three worker processes run;
SIGKILLs a random worker every few seconds and restarts it; restarts Redis once and PostgreSQL once
mid-run; waits for the queue to settle; then checks the guarantees and exits non-zero on any violation:

- every valid envelope became exactly one job; every hostile one (far-future dates, combining unique
  keys, keys that hide nesting, NUL, oversized, terminal escapes, invalid UTF-8) was quarantined and no
  valid one was; jobs of kinds no handler knows were dead-lettered;
- every job ended `completed` or `dead` exactly as its kind dictates (a failing job is dead only when
  its deliberate failures reach max_attempts, or a killed worker's lease expiry spent its last attempt);
- no job is stuck `running` or `available`; the ingress and processing lists are empty;
- a job ran more than once only after a lease expiry of a worker this run killed.
It prints how many jobs ran more than once.
"""
import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid

import redis

ENV = os.environ


def log(message):
    print(f"==> chaos: {message}", flush=True)


def psql(sql):
    out = subprocess.run(
        ["psql", ENV["DATABASE_URL"], "-AtqX", "-F", "\t", "-c", sql],
        check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def servers(action, which):
    """Restarts (action='restart') a server through ops/lib/common.sh."""
    if which == "postgres":
        script = f'stop_postgres "$CHAOS_PG_DIR"; start_postgres "$CHAOS_PG_DIR" "$CHAOS_PG_PORT"'
    else:
        script = ('redis-cli -p "$CHAOS_REDIS_PORT" shutdown >/dev/null 2>&1 || true; '
                  'while kill -0 "$(cat "$CHAOS_REDIS_DIR/redis.pid" 2>/dev/null)" 2>/dev/null; do sleep 0.05; done; '
                  'start_redis "$CHAOS_REDIS_DIR" "$CHAOS_REDIS_PORT"')
    subprocess.run(["bash", "-c", f'source "{ENV["CONVEYOR_ROOT"]}/ops/lib/common.sh"; {script}'], check=True)


class Workers:
    def __init__(self, binary, count, logdir, lease):
        self.binary, self.logdir, self.lease = binary, logdir, lease
        self.procs = {}          # slot -> (Popen, worker id)
        self.incarnation = 0
        self.killed = set()      # worker ids that were SIGKILLed
        self.unavailable = []    # worker ids that exited 69 at start (a server was down) and were restarted
        for slot in range(count):
            self.start(slot)

    def start(self, slot):
        self.incarnation += 1
        worker_id = f"chaos-{slot}-{self.incarnation}"
        out = open(os.path.join(self.logdir, f"{worker_id}.log"), "w")
        proc = subprocess.Popen(
            [self.binary, "worker", "--queues", "default=20", "--lease", str(self.lease), "--leader-ttl", "3",
             "--worker-id", worker_id, "--grace-period", "5"],
            stdout=out, stderr=subprocess.STDOUT, env={**ENV, "CONVEYOR_LOG_LEVEL": "notice"})
        self.procs[slot] = (proc, worker_id)

    def kill_random(self, rng):
        slot = rng.choice(sorted(self.procs))
        proc, worker_id = self.procs[slot]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.killed.add(worker_id)
        self.start(slot)
        return worker_id

    def crashed(self):
        """Workers that exited on their own (a crash): a violation.

        One exception, played as a process supervisor would: a worker (re)started while PostgreSQL or
        Redis is restarting cannot connect, says so in one line and exits 69 (EX_UNAVAILABLE) by design;
        it is started again and counted, not reported."""
        crashed = []
        for slot, (proc, wid) in list(self.procs.items()):
            status = proc.poll()
            if status is None:
                continue
            if status == 69:
                self.unavailable.append(wid)
                self.start(slot)
            else:
                crashed.append(f"{wid} (exit {status})")
        return crashed

    def stop(self):
        for proc, _ in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def make_envelopes(count, rng):
    """Envelopes with ids, and what each one's kind dictates."""
    envelopes, expected = [], {}
    for _ in range(count):
        job_id = str(uuid.uuid4())
        roll = rng.random()
        if roll < 0.70:
            env = {"v": 1, "kind": "conveyor.noop", "id": job_id, "args": {}}
            expected[job_id] = ("noop", 0, 25)
        elif roll < 0.80:
            env = {"v": 1, "kind": "conveyor.sleep", "id": job_id, "args": {"seconds": round(rng.uniform(0.2, 2.0), 2)}}
            expected[job_id] = ("sleep", 0, 25)
        else:
            failures, max_attempts = rng.randint(0, 3), rng.randint(1, 4)
            env = {"v": 1, "kind": "conveyor.fail", "id": job_id, "args": {"failures": failures}, "max_attempts": max_attempts}
            expected[job_id] = ("fail", failures, max_attempts)
        envelopes.append(json.dumps(env))
    return envelopes, expected


def hostile_envelopes(count, rng):
    """Envelopes that must be quarantined (bytes), varied by index; each is a single input that once took
    the pipeline down or could."""
    makers = [
        lambda i: json.dumps({"v": 1, "kind": "conveyor.noop", "run_at": f"{rng.randint(10000, 999999)}-01-01T00:00:00Z"}),
        lambda i: json.dumps({"v": 1, "kind": "conveyor.noop", "enqueued_at": "+275760-09-13T00:00:00Z", "args": {"i": i}}),
        lambda i: json.dumps({"v": 1, "kind": "conveyor.noop", "unique_key": "a\u0301" * rng.randint(128, 255)}),
        lambda i: '{"v":1,"kind":"conveyor.noop","args":{"\u00e9":' + "[" * 100 + "]" * 100 + ',"e\u0301":' + str(i) + '}}',
        lambda i: '{"v":1,"kind":"conveyor.noop","args":{"s":"nul\\u0000' + str(i) + '"}}',
        lambda i: "\x1b]0;pwned\x07\x1b[2J" + str(i),
        lambda i: b"\xff\xfe" + str(i).encode(),
        lambda i: b'{"v":1,"kind":"conveyor.noop","args":{"s":"' + b"x" * (3 << 20) + str(i).encode() + b'"}}',
    ]
    result = []
    for i in range(count):
        # The 3 MiB one rarely: it is the slowest to push and to ingest.
        maker = makers[i % (len(makers) - 1)] if i % 50 else makers[-1]
        envelope = maker(i)
        result.append(envelope if isinstance(envelope, bytes) else envelope.encode())
    return result


def push(envelopes, key, stop_at):
    """Pushes in chunks, retrying a chunk across a Redis restart (a chunk pushed twice is dropped at
    ingest by its ids: that is what ids are for)."""
    client = redis.Redis.from_url(ENV["REDIS_URL"], socket_timeout=5)
    chunk = 250
    for start in range(0, len(envelopes), chunk):
        part = envelopes[start:start + chunk]
        while True:
            try:
                pipe = client.pipeline(transaction=False)
                for envelope in part:
                    pipe.lpush(key, envelope)
                pipe.execute()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > stop_at:
                    raise
                time.sleep(0.2)
                client = redis.Redis.from_url(ENV["REDIS_URL"], socket_timeout=5)
        yield start + len(part)


# conveyor's default --max-rescues.
MAX_RESCUES = 3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--envelopes", type=int, default=30000)
    parser.add_argument("--chaos-seconds", type=float, default=60, help="how long workers are killed and servers restarted")
    parser.add_argument("--kill-every", type=float, default=4)
    parser.add_argument("--lease", type=float, default=5)
    parser.add_argument("--settle-timeout", type=float, default=180)
    parser.add_argument("--hostile", type=int, default=200, help="hostile envelopes mixed in (and a quarter as many of unknown kinds)")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--logdir", required=True)
    parser.add_argument("--binary", required=True)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    log(f"seed {args.seed}: {args.envelopes} envelopes and {args.hostile} hostile ones, {args.chaos_seconds:.0f} s of chaos, "
        f"a worker killed every {args.kill_every} s")

    envelopes, expected = make_envelopes(args.envelopes, rng)
    hostile = hostile_envelopes(args.hostile, rng)
    unknown = {}
    for _ in range(args.hostile // 4):
        job_id = str(uuid.uuid4())
        unknown[job_id] = f"made.up.{rng.randint(0, 10**9)}"
        envelopes.append(json.dumps({"v": 1, "kind": unknown[job_id], "id": job_id}))
    envelopes += hostile
    rng.shuffle(envelopes)
    key = ENV.get("CONVEYOR_REDIS_NAMESPACE", "{conveyor}") + ":ingress"
    workers = Workers(args.binary, 3, args.logdir, args.lease)
    started = time.monotonic()
    chaos_until = started + args.chaos_seconds
    deadline = chaos_until + args.settle_timeout
    restarts = {"redis": started + args.chaos_seconds / 3, "postgres": started + 2 * args.chaos_seconds / 3}
    next_kill = started + args.kill_every
    pusher = push(envelopes, key, deadline)
    pushed = 0
    violations = []

    # Chaos phase: push in chunks spread over the phase, kill workers, restart the servers once each.
    chunks = -(-len(envelopes) // 250)
    chunks_per_tick = -(-chunks // max(1, int(args.chaos_seconds * 0.6 / 0.1)))
    while time.monotonic() < chaos_until or pushed < len(envelopes):
        now = time.monotonic()
        for _ in range(chunks_per_tick):
            if pushed < len(envelopes):
                pushed = next(pusher)
        if now >= next_kill and now < chaos_until:
            log(f"SIGKILL {workers.kill_random(rng)}")
            next_kill = now + args.kill_every * rng.uniform(0.5, 1.5)
        for which, at in list(restarts.items()):
            if now >= at:
                log(f"restarting {which}")
                servers("restart", which)
                del restarts[which]
        crashed = workers.crashed()
        if crashed:
            violations.append(f"worker(s) exited on their own: {crashed}")
            break
        if now > deadline:
            violations.append("pushing did not finish in time")
            break
        time.sleep(0.1)
    log(f"pushed {pushed} envelopes; killed {len(workers.killed)} workers; waiting for the queue to settle")

    # Settle: every envelope ingested and every job final.
    r = redis.Redis.from_url(ENV["REDIS_URL"])
    while time.monotonic() < deadline:
        counts = dict((s, int(c)) for s, c in psql("SELECT state, count(*) FROM conveyor_jobs GROUP BY state"))
        processing = r.smembers(ENV.get("CONVEYOR_REDIS_NAMESPACE", "{conveyor}") + ":processing")
        backlog = r.llen(key) + sum(r.llen(member) for member in processing)
        unfinished = counts.get("available", 0) + counts.get("running", 0)
        if backlog == 0 and unfinished == 0 and sum(counts.values()) >= len(expected):
            break
        time.sleep(0.5)
    else:
        violations.append(f"did not settle in {args.settle_timeout:.0f} s: {counts}, Redis backlog {backlog}")
    crashed = workers.crashed()
    if crashed:
        violations.append(f"worker(s) exited on their own: {crashed}")
    workers.stop()
    if workers.unavailable:
        log(f"{len(workers.unavailable)} worker start(s) found a server restarting, exited 69 and were started again: "
            f"{workers.unavailable}")

    rows = psql("SELECT id, kind, state, attempt, max_attempts, errors::text FROM conveyor_jobs")
    quarantined = {row[0] for row in psql("SELECT coalesce(sha256, encode(sha256(payload), 'hex')) FROM conveyor_rejected_envelopes")}
    ids = [row[0] for row in rows]
    if len(ids) != len(set(ids)) or set(ids) != set(expected) | set(unknown):
        violations.append(f"jobs do not match envelopes one to one: {len(expected) + len(unknown)} envelopes, {len(ids)} rows, "
                          f"{len(set(expected) - set(ids))} missing, {len(set(ids) - set(expected) - set(unknown))} unknown")
    hostile_hashes = {hashlib.sha256(envelope).hexdigest() for envelope in hostile}
    if quarantined - hostile_hashes:
        violations.append(f"{len(quarantined - hostile_hashes)} valid envelopes were quarantined")
    if hostile_hashes - quarantined:
        violations.append(f"{len(hostile_hashes - quarantined)} of {len(hostile_hashes)} hostile envelopes were not quarantined")
    for job_id, kind, state, attempt, max_attempts, errors_text in rows:
        if job_id in unknown and (state != "dead" or "unknown_kind" not in errors_text):
            violations.append(f"job {job_id} of unknown kind {kind} ended {state}: {errors_text}")
    ran_again = 0
    rescue_dead = 0
    for job_id, kind, state, attempt, max_attempts, errors_text in rows:
        if job_id not in expected:
            continue
        name, failures, limit = expected[job_id]
        attempt, errors = int(attempt), json.loads(errors_text)
        expiries = [e for e in errors if e.get("kind") == "lease_expired"]
        if expiries:
            ran_again += 1
        for expiry in expiries:
            worker = expiry["message"].split("worker ", 1)[-1].split(" ", 1)[0]
            if worker not in workers.killed:
                violations.append(f"job {job_id}: lease expired for worker {worker}, which was never killed")
        # A job that lost its worker MAX_RESCUES times is dead-lettered by design (poison-job protection).
        rescue_limited = state == "dead" and len(expiries) >= MAX_RESCUES
        if rescue_limited:
            rescue_dead += 1
        if state not in ("completed", "dead"):
            violations.append(f"job {job_id} ({name}) ended {state}")
        elif rescue_limited:
            pass
        elif name in ("noop", "sleep") and state != "completed":
            violations.append(f"job {job_id} ({name}) ended {state}: {errors}")
        elif name == "fail":
            if state == "completed" and not (failures < attempt <= limit):
                violations.append(f"job {job_id} (fail {failures} of {limit}) completed at attempt {attempt}")
            if state == "dead" and failures < limit and not expiries:
                violations.append(f"job {job_id} (fail {failures} of {limit}) dead without a lease expiry: {errors}")
            if state == "dead" and attempt != limit:
                violations.append(f"job {job_id} (fail {failures} of {limit}) dead at attempt {attempt}")
    states = {}
    for row in rows:
        states[row[2]] = states.get(row[2], 0) + 1
    log(f"{len(rows)} jobs: {states}; {ran_again} ran more than once (each after a killed worker's lease expired)")
    if rescue_dead:
        log(f"{rescue_dead} jobs were dead-lettered after losing {MAX_RESCUES} workers")
    log(f"took {time.monotonic() - started:.0f} s")
    if violations:
        for violation in violations[:50]:
            print(f"VIOLATION: {violation}", file=sys.stderr)
        print(f"chaos run FAILED with {len(violations)} violation(s); worker logs in {args.logdir}", file=sys.stderr)
        sys.exit(1)
    log("passed: no lost, duplicated or stuck job")


if __name__ == "__main__":
    main()
