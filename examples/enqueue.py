"""Enqueue a Conveyor job from Python with nothing but redis-py (pip install redis).

Usage: REDIS_URL=redis://127.0.0.1:6379/0 python3 examples/enqueue.py
Prints the job id. The README shows this file; the tests run it.
"""
import datetime
import json
import os
import uuid

import redis

client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
ingress = os.environ.get("CONVEYOR_REDIS_NAMESPACE", "{conveyor}") + ":ingress"

envelope = {
    "v": 1,                                  # envelope version
    "kind": "conveyor.noop",                 # which handler runs it
    "id": str(uuid.uuid4()),                 # idempotency key: pushing it twice makes one job
    "args": {"campaign_id": 42},             # the handler's input
    "queue": "default",
    "priority": 5,                           # 0 runs first
    "enqueued_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
}
client.lpush(ingress, json.dumps(envelope))
print(envelope["id"])
