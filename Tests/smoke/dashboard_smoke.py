"""Drives every page of a running dashboard and one action in headless Chromium, as a person would.

usage: dashboard_smoke.py BASE_URL DEAD_JOB_ID
Speaks the DevTools protocol over --remote-debugging-pipe (file descriptors 3 and 4, NUL-separated
JSON), so it needs nothing beyond Python and Debian's chromium. Prints one line per step; exits 1 at
the first page that does not render as expected.
"""
import json, os, select, shutil, subprocess, sys, tempfile, time

base, dead = sys.argv[1].rstrip("/"), sys.argv[2]
browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
if not browser:
    print("chromium is not installed (ops/test installs it)")
    sys.exit(2)

to_browser_r, to_browser_w = os.pipe()
from_browser_r, from_browser_w = os.pipe()
profile = tempfile.mkdtemp(prefix="conveyor-smoke-")
process = subprocess.Popen(
    [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
     "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"],
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    # Duplicated first: dup2 onto the same number would keep the close-on-exec flag.
    preexec_fn=lambda: (os.dup2(os.dup(to_browser_r), 3), os.dup2(os.dup(from_browser_w), 4)),
    close_fds=False)
os.close(to_browser_r)
os.close(from_browser_w)
reader = os.fdopen(from_browser_r, "rb", buffering=0)
pending = b""
next_id = 0
events = []


def send(method, params=None, session=None):
    global next_id
    next_id += 1
    message = {"id": next_id, "method": method, "params": params or {}}
    if session:
        message["sessionId"] = session
    os.write(to_browser_w, json.dumps(message).encode() + b"\0")
    return receive(lambda m: m.get("id") == next_id)


def receive(matches, timeout=30):
    global pending
    deadline = time.time() + timeout
    for i, event in enumerate(events):
        if matches(event):
            return events.pop(i)
    while time.time() < deadline:
        while b"\0" in pending:
            raw, pending = pending.split(b"\0", 1)
            message = json.loads(raw)
            if matches(message):
                if "error" in message:
                    raise RuntimeError(message["error"])
                return message
            events.append(message)
        ready, _, _ = select.select([reader], [], [], max(0.0, deadline - time.time()))
        if not ready:
            break
        chunk = reader.read(65536)
        if not chunk:
            raise RuntimeError("chromium closed the pipe")
        pending += chunk
    raise TimeoutError("no answer from chromium")


def evaluate(session, expression):
    answer = send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, session)
    return answer["result"]["result"].get("value")


def load(session, action):
    events.clear()
    action()
    receive(lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == session)


failures = 0
try:
    target = send("Target.createTarget", {"url": "about:blank"})["result"]["targetId"]
    session = send("Target.attachToTarget", {"targetId": target, "flatten": True})["result"]["sessionId"]
    send("Page.enable", session=session)
    send("Runtime.enable", session=session)
    pages = [
        ("/", "Queues", "default"),
        ("/jobs", "Jobs", dead[:8]),
        ("/jobs?state=dead", "Jobs", dead[:8]),
        (f"/jobs/{dead}", "Job", "Errors"),
        ("/rejected", "Quarantined envelopes", ""),
        ("/schedules", "Schedules", "conveyor.canary"),
        ("/panels/ad-changes", "Ad changes", "Waiting for approval"),
        ("/panels/retraining", "CTR retraining", "Checks"),
    ]
    for path, title, expected in pages:
        load(session, lambda: send("Page.navigate", {"url": base + path}, session))
        shown_title = evaluate(session, "document.title") or ""
        text = evaluate(session, "document.body.innerText") or ""
        ok = title in shown_title and expected in text
        failures += 0 if ok else 1
        print(f"{'ok ' if ok else 'BAD'} GET {path}: title {shown_title!r}, {len(text)} characters of text")
    # One action, as a person does it: press the dead job's Retry button.
    load(session, lambda: send("Page.navigate", {"url": f"{base}/jobs/{dead}"}, session))
    load(session, lambda: evaluate(session, "document.querySelector('form[action$=\"/retry\"] button').click()"))
    text = evaluate(session, "document.body.innerText") or ""
    ok = "Retried" in text
    failures += 0 if ok else 1
    print(f"{'ok ' if ok else 'BAD'} pressed Retry on {dead}: {'flash shown' if ok else text[:300]!r}")
finally:
    try:
        send("Browser.close")
    except Exception:
        pass
    process.wait(timeout=10) if process.poll() is None else None
    shutil.rmtree(profile, ignore_errors=True)
sys.exit(1 if failures else 0)
