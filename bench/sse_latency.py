#!/usr/bin/env python3
"""Benchmark: latency from an agent's output line to an SSE client of
`baton serve`, with AGENTS agents writing at once, and the server's memory.

Each agent (the fake agent standing in for Claude Code's stream-json) writes
LINES message lines stamped with the time they were written; the client
reads /api/events and measures now - stamp for every agent message.

    bench/sse_latency.py                # 20 agents x 200 lines, 10 ms apart
    AGENTS=40 LINES=100 bench/sse_latency.py
"""
import http.client, json, os, re, subprocess, sys, tempfile, threading, time

AGENTS = int(os.environ.get("AGENTS", 20))
LINES = int(os.environ.get("LINES", 200))
PAUSE_MS = int(os.environ.get("PAUSE_MS", 10))
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

subprocess.run(["cargo", "build", "--release", "-q", "-p", "baton-cli", "-p", "baton-testutils", "--bins"], cwd=root, check=True)
baton = os.path.join(root, "target/release/baton")
fake = os.path.join(root, "target/release/fake-agent")

work = tempfile.mkdtemp(prefix="baton-sse-bench-")
env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="b@localhost",
           GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="b@localhost")
subprocess.run(["git", "init", "-q", "-b", "main", work], check=True, env=env)
subprocess.run(["git", "-C", work, "commit", "-q", "--allow-empty", "-m", "init"], check=True, env=env)
with open(os.path.join(work, "baton.toml"), "w") as f:
    f.write(f'[agent.stream]\nadapter = "claude"\ncommand = ["{fake}"]\n'
            f'env = {{ FAKE_AGENT_SCRIPT = "stream {LINES} {PAUSE_MS}" }}\n\n[defaults]\nagent = "stream"\n')

server = subprocess.Popen([baton, "serve", "--addr", "127.0.0.1:0"], cwd=work, env=env,
                          stderr=subprocess.PIPE, text=True)
url = None
for line in server.stderr:
    m = re.search(r"listening on http://([\d.]+):(\d+)", line)
    if m:
        host, port = m.group(1), int(m.group(2))
        break
threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
# Every request needs a token, on loopback too: this user's own.
link = subprocess.run([baton, "token", "url"], cwd=work, env=env, check=True,
                      capture_output=True, text=True).stdout.strip()
auth = {"Authorization": "Bearer " + link.split("#token=")[1]}

latencies = []
done = threading.Event()

def listen():
    c = http.client.HTTPConnection(host, port, timeout=60)
    c.request("GET", "/api/events", headers={"Accept": "text/event-stream", **auth})
    r = c.getresponse()
    ready.set()
    while len(latencies) < AGENTS * LINES:
        line = r.fp.readline()
        if not line:
            break
        if not line.startswith(b"data: "):
            continue
        now = time.time() * 1e6
        ev = json.loads(line[6:])
        if ev["kind"] == "agent_message":
            m = re.search(r"at (\d+)$", ev["data"].get("text", ""))
            if m:
                latencies.append((now - int(m.group(1))) / 1000.0)
    done.set()

ready = threading.Event()
threading.Thread(target=listen, daemon=True).start()
ready.wait(10)

def post(path, body):
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **auth})
    r = c.getresponse()
    return r.status, r.read()

peak = 0
start = time.time()
for i in range(AGENTS):
    status, body = post("/api/tasks", {"prompt": f"stream {i}"})
    assert status == 201, body

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return {k: int(v.split()[0]) for k, v in (l.split(":", 1) for l in f) if k in ("VmRSS", "VmHWM")}

while not done.wait(0.2):
    peak = max(peak, rss_kib(server.pid)["VmRSS"])
    if time.time() - start > 120:
        break
mem = rss_kib(server.pid)
server.terminate()
server.wait(timeout=30)

lat = sorted(latencies)
def pct(p):
    return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]
print(f"agents: {AGENTS}, lines each: {LINES} every {PAUSE_MS} ms, messages received: {len(lat)} of {AGENTS * LINES}")
if lat:
    print(f"output line -> SSE client latency: median {pct(50):.1f} ms, p99 {pct(99):.1f} ms, max {lat[-1]:.1f} ms")
print(f"server memory: VmRSS {mem['VmRSS'] / 1024:.1f} MiB now, {peak / 1024:.1f} MiB peak seen, VmHWM {mem['VmHWM'] / 1024:.1f} MiB")
sys.exit(0 if len(lat) == AGENTS * LINES else 1)
