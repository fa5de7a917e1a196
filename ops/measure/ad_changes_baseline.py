#!/usr/bin/env python3
"""ops/measure/ad_changes_baseline.py BASE CALLS_FILE TOKEN — what the platform's gateway does today: one
Graph call per change, one after another, on one keep-alive connection. Prints calls and wall time."""
import http.client
import json
import sys
import time
import urllib.parse

base, path, token = sys.argv[1], sys.argv[2], sys.argv[3]
url = urllib.parse.urlparse(base)
connection = http.client.HTTPConnection(url.hostname, url.port)
changes = [json.loads(line) for line in open(path)]
start = time.monotonic()
failed = 0
for object_id, field, value in changes:
    body = urllib.parse.urlencode({"access_token": token, field: value})
    connection.request("POST", f"/v23.0/{object_id}", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    response.read()
    failed += response.status != 200
elapsed = time.monotonic() - start
print(f"one call per change: {len(changes)} calls, {elapsed:.2f} s, {failed} refused")
