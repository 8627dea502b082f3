#!/usr/bin/env python3
"""Benchmark: how soon a fix attempt starts after a pull request's check
goes red, and what following an idle pull request costs in API calls.

`baton serve` with `[land] mode = "pr"`, `follow = true` against the GitHub
stand-in (`github-stand-in` from baton-testutils: GitHub's REST shapes, a
bare git repository as the remote, a CI check run on each pushed head that
takes CI_SECS, signed webhook deliveries). Each round hands a one-task run
to the server (`baton run`); its task writes a file the check fails on; the
server opens the pull request, follows it, and a fix attempt (a script)
makes the check pass. Figures:

- from the red check's completion to baton's "fixing" comment on the pull
  request, with signed webhooks (`webhook_secret_env`; poll 60 s, the
  default), goal: under 2 s;
- the same with polling only (poll POLL s), goal: at most one poll (a
  running check keeps the looks at `poll`, unstretched; the follower's
  first look is when the pull request opens, so here the wait is about
  `poll` less the CI's CI_SECS);
- the API calls one idle pull request costs in an hour (green, waiting for
  an approval, nothing happening): measured over IDLE s at POLL, once the
  looks have stretched to their longest (8 polls), and scaled to the
  default poll of 60 s. Each look is 4 calls (the pull request, its checks,
  reviews and review comments).

    bench/follow.py                      # 5 webhook rounds, 3 polling rounds
    ROUNDS=10 IDLE=240 bench/follow.py
    BATON=/path/to/baton STANDIN=/path/to/github-stand-in FAKE=/path/to/fake-agent bench/follow.py
"""
import json, os, re, statistics, subprocess, sys, tempfile, threading, time
import urllib.request

import ghbench  # bench/ghbench.py

ROUNDS = int(os.environ.get("ROUNDS", 5))
POLL = int(os.environ.get("POLL", 5))
IDLE = int(os.environ.get("IDLE", 160))
CI_SECS = 2
baton, standin, fake = ghbench.binaries()
TOKEN, SECRET = ghbench.TOKEN, ghbench.SECRET
work = tempfile.mkdtemp()
env = ghbench.environment()

def git(*args, cwd=None):
    subprocess.run(["git", *args], cwd=cwd, check=True, env=env, stdout=subprocess.DEVNULL)

repo, origin = os.path.join(work, "repo"), os.path.join(work, "origin.git")
git("init", "-q", "--bare", "-b", "main", origin)
git("init", "-q", "-b", "main", repo)
git("remote", "add", "origin", origin, cwd=repo)
open(os.path.join(repo, "README"), "w").write("bench\n")
git("add", "-A", cwd=repo)
git("commit", "-q", "-m", "start", cwd=repo)
git("push", "-q", "origin", "main", cwd=repo)

# The stand-in, and every line it prints (time, line): requests and deliveries.
url_file = os.path.join(work, "url")
ci = 'for f in app-*.txt; do grep -q fixed "$f" || { echo "FAIL: $f is broken"; exit 1; }; done'
gh = subprocess.Popen([standin, "serve", "--repo", "acme/app", "--token", TOKEN, "--url-file", url_file,
                       "--remote", origin, "--ci-script", ci, "--ci-secs", str(CI_SECS)],
                      stdout=subprocess.PIPE, text=True)
lines = []
threading.Thread(target=lambda: [lines.append((time.monotonic(), l.strip())) for l in gh.stdout], daemon=True).start()
while not os.path.exists(url_file) or not open(url_file).read():
    time.sleep(0.05)
api = open(url_file).read().strip()

def plan(i, poll, hooks, merge_when):
    fixer = 'for f in app-*.txt; do echo fixed >> "$f"; done'
    hook = 'webhook_secret_env = "BENCH_HOOK_SECRET"\n' if hooks else ""
    return f"""[agent.fake]
adapter = "exec"
command = ["{fake}"]

[agent.fixer]
adapter = "exec"
command = ["bash", "-c", {json.dumps(fixer)}]

[defaults]
agent = "fake"

[[task]]
id = "t"
prompt = "write app-{i}.txt broken"

[land]
mode = "pr"
follow = true
merge_when = "{merge_when}"
fixer = "fixer"
repo = "acme/app"
api_url = "{api}"
token_env = "BENCH_GH_TOKEN"
poll = "{poll}s"
{hook}"""

def serve():
    p = subprocess.Popen([baton, "serve", "--addr", "127.0.0.1:0"], cwd=repo, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if line.startswith("baton serve: listening on "):
            url = line.split("listening on ", 1)[1].strip()
            break
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    return p, url

def first(pattern, since, timeout=120):
    """The time and match of the first line after `since` matching `pattern`."""
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        for t, line in list(lines):
            m = rx.search(line)
            if t >= since and m:
                return t, m
        time.sleep(0.01)
    sys.exit(f"bench/follow.py: nothing matched {pattern!r} in {timeout} s")

def rounds(count, start, poll, hooks, merge_when, done):
    """Red check -> fix comment latencies of `count` pull requests."""
    out = []
    for i in range(start, start + count):
        name = f"round-{i}.toml"
        open(os.path.join(repo, name), "w").write(plan(i, poll, hooks, merge_when))
        t0 = time.monotonic()
        subprocess.Popen([baton, "run", name], cwd=repo, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        red, m = first(r"^HOOK check_run completed failure #(\d+)", t0)
        n = m.group(1)
        fixing, _ = first(rf"^POST /repos/acme/app/issues/{n}/comments$", red)
        out.append(fixing - red)
        first(done(n), fixing)
    return out

try:
    server, url = serve()
    req = urllib.request.Request(api + "/_hook", method="POST", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"url": url + "/api/hooks/github", "secret": SECRET}).encode())
    urllib.request.urlopen(req).read()
    merged = lambda n: rf"^PUT /repos/acme/app/pulls/{n}/merge$"
    hooked = rounds(ROUNDS, 0, 60, True, "green", merged)
    green = lambda n: rf"^HOOK check_run completed success #{n} "
    polled = rounds(3, ROUNDS, POLL, False, "approved", green)
    # The polled pull requests now wait for an approval that does not come.
    idle_prs = 3
    settle = POLL * (1 + 2 + 4) + 2
    time.sleep(settle)
    t0 = time.monotonic()
    time.sleep(IDLE)
    idle = [l for t, l in list(lines) if t >= t0 and not l.startswith("HOOK ")]
finally:
    server.terminate()
    server.wait(timeout=30)
    gh.terminate()

per_hour = len(idle) / idle_prs * 3600 / IDLE
print(f"red check to the fix attempt, webhooks (poll 60 s): median {statistics.median(hooked):.3f} s, "
      f"max {max(hooked):.3f} s over {ROUNDS} (goal: under 2 s)")
print(f"red check to the fix attempt, polling only (poll {POLL} s): median {statistics.median(polled):.2f} s, "
      f"max {max(polled):.2f} s over 3 (goal: at most {POLL} s)")
print(f"idle pull request: {len(idle)} API calls for {idle_prs} in {IDLE} s at poll {POLL} s = "
      f"{per_hour:.0f} an hour each; at the default poll of 60 s: {per_hour * POLL / 60:.0f} an hour "
      f"(4 calls a look, looks stretched to 8 polls)")
