"""A fixed-rate load of signed HubSpot deliveries against the hooks listener; prints latency percentiles.

usage: hooks_load.py HOOK_URL CLIENT_SECRET [RATE_PER_S] [SECONDS] [EVENTS_PER_DELIVERY]
Open loop: each delivery is sent at its scheduled time by a pool of 64 threads (keep-alive connections),
and its latency counts from that scheduled time, so a slow server cannot hide behind a slow client.
Every delivery carries new events (new objectIds), so each one inserts rows.
"""
import base64, hashlib, hmac, http.client, json, sys, threading, time, urllib.parse
from concurrent.futures import ThreadPoolExecutor

url, secret = sys.argv[1], sys.argv[2]
rate = float(sys.argv[3]) if len(sys.argv) > 3 else 200
seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 30
per = int(sys.argv[5]) if len(sys.argv) > 5 else 10
parsed = urllib.parse.urlsplit(url)
local = threading.local()
run = int(time.time())


def connection():
    if not hasattr(local, "conn"):
        local.conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    return local.conn


def deliver(index, scheduled):
    delay = scheduled - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    events = [{"eventId": i, "subscriptionId": 7, "portalId": 62515, "appId": 1, "occurredAt": run * 1000 + index,
               "subscriptionType": "deal.propertyChange", "attemptNumber": 0, "objectId": index * per + i,
               "propertyName": "dealstage", "propertyValue": "contractsent", "changeSource": "CRM"} for i in range(per)]
    body = json.dumps(events, separators=(",", ":")).encode()
    stamp = str(int(time.time() * 1000))
    signature = base64.b64encode(hmac.new(secret.encode(), b"POST" + url.encode() + body + stamp.encode(), hashlib.sha256).digest()).decode()
    headers = {"Content-Type": "application/json", "X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp}
    try:
        conn = connection()
        conn.request("POST", parsed.path, body, headers)
        response = conn.getresponse()
        response.read()
        status = response.status
    except Exception:
        local.__dict__.pop("conn", None)
        status = 0
    return status, time.perf_counter() - scheduled


total = int(rate * seconds)
start = time.perf_counter() + 0.5
with ThreadPoolExecutor(max_workers=64) as pool:
    results = list(pool.map(lambda i: deliver(i, start + i / rate), range(total)))
latencies = sorted(latency for status, latency in results if status == 204)
failed = sum(1 for status, _ in results if status != 204)


def percentile(p):
    return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000 if latencies else float("nan")


print(f"deliveries={total} events_each={per} rate={rate}/s failed={failed} "
      f"p50={percentile(50):.1f}ms p90={percentile(90):.1f}ms p99={percentile(99):.1f}ms max={latencies[-1] * 1000 if latencies else 0:.1f}ms")
