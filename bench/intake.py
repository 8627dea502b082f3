#!/usr/bin/env python3
"""Benchmark: how soon work taken from GitHub issues starts, and what an
idle source costs in API calls.

`baton serve` with a `[[source]] kind = "github"` against the GitHub
stand-in (it speaks GitHub's REST shapes; `github-stand-in` from
baton-testutils). An issue is labelled; its task starts and baton comments
on the issue. Figures:

- from a signed webhook delivery to baton's "started" comment (goal: under
  2 s);
- from the issue's creation to that comment, with polling only (goal: at
  most the source's `poll`, 10 s here, and one round's calls; half of it
  on average);
- the API calls the source makes in an hour while nothing happens (goal:
  3600 / poll, one list call per poll; 360 here).

    bench/intake.py                     # 5 webhook rounds, 3 polling rounds
    ROUNDS=10 bench/intake.py
    BATON=/path/to/baton STANDIN=/path/to/github-stand-in FAKE=/path/to/fake-agent bench/intake.py
"""
import hashlib, hmac, json, os, random, statistics, subprocess, sys, tempfile, threading, time
import urllib.request

import ghbench  # bench/ghbench.py

ROUNDS = int(os.environ.get("ROUNDS", 5))
POLL = 10
IDLE = 30
baton, standin, fake = ghbench.binaries()
TOKEN, SECRET = ghbench.TOKEN, ghbench.SECRET
work = tempfile.mkdtemp()
env = ghbench.environment()

# The stand-in, and every request it gets (time, line).
url_file = os.path.join(work, "url")
gh = subprocess.Popen([standin, "serve", "--repo", "acme/app", "--token", TOKEN, "--url-file", url_file],
                      stdout=subprocess.PIPE, text=True)
calls = []
threading.Thread(target=lambda: [calls.append((time.monotonic(), l.strip())) for l in gh.stdout], daemon=True).start()
while not os.path.exists(url_file) or not open(url_file).read():
    time.sleep(0.05)
api = open(url_file).read().strip()

repo = os.path.join(work, "repo")
subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True, env=env)
open(os.path.join(repo, "baton.toml"), "w").write(f"""[agent.fake]
adapter = "exec"
command = ["{fake}"]

[defaults]
agent = "fake"

[[source]]
kind = "github"
repo = "acme/app"
label = "baton"
api_url = "{api}"
token_env = "BENCH_GH_TOKEN"
webhook_secret_env = "BENCH_HOOK_SECRET"
poll = "{POLL}s"
""")
subprocess.run(["git", "-C", repo, "add", "-A"], check=True, env=env)
subprocess.run(["git", "-C", repo, "commit", "-q", "-m", "plan"], check=True, env=env)
serve = subprocess.Popen([baton, "serve", "--addr", "127.0.0.1:0"], cwd=repo, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
for line in serve.stderr:
    if line.startswith("baton serve: listening on "):
        baton_url = line.split("listening on ", 1)[1].strip()
        break
threading.Thread(target=lambda: [None for _ in serve.stderr], daemon=True).start()

def call(method, path, body=None, base=api, headers=None):
    req = urllib.request.Request(base + path, method=method, data=body,
                                 headers=dict({"Authorization": f"Bearer {TOKEN}", "User-Agent": "bench",
                                               "Content-Type": "application/json"}, **(headers or {})))
    with urllib.request.urlopen(req) as r:
        return r.status, json.loads(r.read() or b"null")

def open_issue(title):
    _, issue = call("POST", "/repos/acme/app/issues", json.dumps({"title": title, "labels": ["baton"]}).encode())
    return issue["number"]

def commented(n, since):
    """When baton first wrote on issue n after `since`."""
    want = f"POST /repos/acme/app/issues/{n}/comments"
    while True:
        for t, line in list(calls):
            if t >= since and line == want:
                return t
        time.sleep(0.01)

def webhook(n):
    body = json.dumps({"action": "labeled", "issue": {"number": n}, "label": {"name": "baton"},
                       "repository": {"full_name": "acme/app"}, "sender": {"login": "bench"}}).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return call("POST", "/api/hooks/github", body, base=baton_url,
                headers={"X-GitHub-Event": "issues", "X-Hub-Signature-256": sig, "Authorization": ""})

try:
    # Let the first look (at start) pass.
    while not calls:
        time.sleep(0.05)
    hooked = []
    for i in range(ROUNDS):
        n = open_issue(f"say webhook round {i}")
        t0 = time.monotonic()
        webhook(n)
        hooked.append(commented(n, t0) - t0)
    polled = []
    for i in range(3):
        # At a random point between two polls, as an issue would come.
        time.sleep(random.uniform(0, POLL))
        n = open_issue(f"say polling round {i}")
        t0 = time.monotonic()
        polled.append(commented(n, t0) - t0)
    # Every task ends and is reported, then nothing happens for IDLE s.
    time.sleep(POLL + 2)
    t0 = time.monotonic()
    time.sleep(IDLE)
    idle = [l for t, l in list(calls) if t >= t0]
finally:
    serve.terminate(); serve.wait(timeout=30)
    gh.terminate()

print(f"webhook to the started comment: median {statistics.median(hooked):.3f} s, max {max(hooked):.3f} s over {ROUNDS} (goal: under 2 s)")
print(f"polling only (poll {POLL} s): median {statistics.median(polled):.1f} s, max {max(polled):.1f} s over 3 (goal: at most {POLL} s and a round's calls)")
print(f"idle: {len(idle)} API calls in {IDLE} s = {len(idle) * 3600 // IDLE} an hour (goal: {3600 // POLL}, one list per poll)")
