#!/usr/bin/env python3
"""ops/measure/ad_changes_seed.py BASE SCENARIO N OUT_SQL — seeds the sandbox's Marketing API objects for
one scenario of ops/measure/ad-changes.sh and writes the SQL that inserts its N meta.ad_change jobs.

Scenarios:
- distinct: N changes, each to its own ad set (N ad sets, 10 per campaign): nothing to coalesce,
  batching alone.
- bursty: N changes over N/12.5 ad sets, 5 per campaign (the issue's 500 over 40 in 8): repeated edits
  of the same objects, as a bulk editor or a bidding loop makes them.
"""
import json
import sys
import urllib.request

base, scenario, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if scenario == "distinct":
    adsets, per_campaign = n, 10
else:
    adsets, per_campaign = max(1, round(n / 12.5)), 5


def post(path, body):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request).read()


post("/_sandbox/reset", {})
post("/_sandbox/marketing/accounts", [{"id": "act_1", "currency": "USD"}])
objects = []
for index in range(adsets):
    objects.append({"id": f"7{index:06d}", "type": "adset", "account": "act_1", "campaign_id": f"8{index // per_campaign:06d}",
                    "fields": {"status": "ACTIVE", "name": f"adset {index}", "daily_budget": "10000"}})
post("/_sandbox/marketing/objects", objects)

rows = []
for index in range(n):
    adset = objects[index % adsets]
    field = ("status", "daily_budget", "name")[index % 3]
    visit = index // adsets  # how many changes this ad set had before: each one changes something
    change = {"status": {"status": "PAUSED" if visit % 2 == 0 else "ACTIVE"},
              "daily_budget": {"daily_budget": {"amount": 110 + visit % 30, "currency": "USD"}},
              "name": {"name": f"adset v{index}"}}[field]
    args = {"ad_account_id": "act_1", "object_type": "adset", "object_id": adset["id"], "campaign_id": adset["campaign_id"],
            "change": change, "requested_at": f"2026-12-02T09:{(index // 60) % 60:02d}:{index % 60:02d}Z", "requested_by": "measure"}
    rows.append("(gen_random_uuid(), 'meta.ad_change', 'default', '" + json.dumps(args).replace("'", "''") + "'::jsonb, 10, 'meta-ad-account:act_1', now(), now())")
with open(out, "w") as sql:
    sql.write("INSERT INTO conveyor_jobs (id, kind, queue, args, max_attempts, limit_key, run_at, inserted_at) VALUES\n" + ",\n".join(rows) + ";\n")
# The same changes for the one-call-per-change baseline: (object id, form body).
with open(out + ".calls", "w") as calls:
    for index in range(n):
        adset = objects[index % adsets]
        field = ("status", "daily_budget", "name")[index % 3]
        visit = index // adsets
        value = {"status": "PAUSED" if visit % 2 == 0 else "ACTIVE", "daily_budget": str((110 + visit % 30) * 100), "name": f"adset v{index}"}[field]
        calls.write(json.dumps([adset["id"], field, value]) + "\n")
