#!/usr/bin/env python3
"""Benchmark: what baton's model gateway adds to an agent's requests, and
baton's memory with many agents streaming through it.

An upstream stands in for Anthropic's Messages API (a streamed answer of
DELTAS events, DELTA_MS apart). Each agent is a small program run as a
`claude` profile: it makes REQUESTS requests to its ANTHROPIC_BASE_URL (the
gateway, with its token) and as many straight to the upstream, alternating,
and writes each one's time to first byte and to its end. The figures are
the differences, request for request: what the gateway adds.

    bench/gateway.py                       # 1 agent x 200 requests, then 50 agents streaming
    REQUESTS=500 AGENTS=50 bench/gateway.py

Prints the added latency (p50, p99) to the first byte and to the end (for
a stream paced as a model's and for one written at once), and
baton's peak memory (VmHWM) with AGENTS agents streaming through the gateway
against the same run with `gateway = false`.
"""
import http.server, json, os, socketserver, statistics, subprocess, sys, tempfile, threading, time

REQUESTS = int(os.environ.get("REQUESTS", 200))
AGENTS = int(os.environ.get("AGENTS", 50))
DELTAS = int(os.environ.get("DELTAS", 20))
DELTA_MS = float(os.environ.get("DELTA_MS", 2))
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
baton = os.environ.get("BATON")
if not baton:
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "baton-cli"], cwd=root, check=True)
    baton = os.path.join(root, "target/release/baton")


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def event(kind, data):
            body = f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
            self.wfile.flush()

        event("message_start", {"type": "message_start", "message": {"model": "bench-model", "usage": {"input_tokens": 100, "output_tokens": 1}}})
        for _ in range(DELTAS):
            time.sleep(DELTA_MS / 1000)
            event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x" * 40}})
        event("message_delta", {"type": "message_delta", "usage": {"output_tokens": DELTAS * 10}})
        event("message_stop", {"type": "message_stop"})
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


upstream = Server(("127.0.0.1", 0), Upstream)
threading.Thread(target=upstream.serve_forever, daemon=True).start()
up_url = f"http://127.0.0.1:{upstream.server_address[1]}"

# The "CLI": requests through its base URL and straight to the upstream,
# alternating; its times on a file; a Claude Code-shaped stream for baton.
AGENT = r'''
import http.client, json, os, sys, time, urllib.parse
def timed(url, key):
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port)
    body = json.dumps({"model": "bench-model", "stream": True, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    t0 = time.perf_counter()
    c.request("POST", u.path.rstrip("/") + "/v1/messages", body, {"x-api-key": key, "content-type": "application/json"})
    r = c.getresponse()
    r.read(1)
    first = time.perf_counter() - t0
    r.read()
    end = time.perf_counter() - t0
    c.close()
    return first, end
n = int(os.environ["BENCH_REQUESTS"])
out = []
for i in range(n):
    g = timed(os.environ["ANTHROPIC_BASE_URL"], os.environ["ANTHROPIC_API_KEY"])
    d = timed(os.environ["BENCH_UPSTREAM"], "direct") if os.environ.get("BENCH_PAIRED") else (0, 0)
    out.append([g[0], g[1], d[0], d[1]])
open(os.path.join(os.environ["BENCH_DIR"], os.environ["BATON_TASK"] + ".json"), "w").write(json.dumps(out))
print(json.dumps({"type": "system", "subtype": "init", "session_id": "s", "model": "bench-model"}))
print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "ok", "session_id": "s"}))
'''

env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="b@localhost",
           GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="b@localhost", ANTHROPIC_API_KEY="sk-bench")


def run(agents, requests, gateway, paired):
    """One run of `agents` tasks; (per-request times, baton's VmHWM in kB)."""
    work = tempfile.mkdtemp(prefix="baton-gw-bench-")
    subprocess.run(["git", "init", "-q", "-b", "main", work], check=True, env=env)
    subprocess.run(["git", "-C", work, "commit", "-q", "--allow-empty", "-m", "init"], check=True, env=env)
    agent = os.path.join(work, "agent.py")
    open(agent, "w").write(AGENT)
    plan = f'[run]\nmax_parallel = {agents}\n\n[gateway.providers.anthropic]\nurl = "{up_url}"\n\n'
    plan += f'[agent.bench]\nadapter = "claude"\ncommand = ["python3", "{agent}"]\ngateway = {"true" if gateway else "false"}\n'
    plan += f'env = {{ BENCH_REQUESTS = "{requests}", BENCH_UPSTREAM = "{up_url}", BENCH_DIR = "{work}", BENCH_PAIRED = "{1 if paired else ""}"'
    plan += "" if gateway else f', ANTHROPIC_BASE_URL = "{up_url}"'
    plan += " }\n\n"
    for i in range(agents):
        plan += f'[[task]]\nid = "t{i}"\nagent = "bench"\nprompt = "bench"\nmerge = false\n\n'
    open(os.path.join(work, "baton.toml"), "w").write(plan)
    p = subprocess.Popen([baton, "run", "--json"], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    hwm = 0
    while p.poll() is None:
        try:
            for line in open(f"/proc/{p.pid}/status"):
                if line.startswith("VmHWM:"):
                    hwm = max(hwm, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.05)
    out, err = p.communicate()
    if p.returncode != 0:
        sys.exit(f"the run failed ({p.returncode}):\n{err.decode()[-2000:]}")
    times = json.load(open(os.path.join(work, "t0.json")))
    return times, hwm


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def latency(title):
    times, _ = run(1, REQUESTS, gateway=True, paired=True)
    first = [(g1 - d1) * 1000 for g1, _, d1, _ in times]
    end = [(g2 - d2) * 1000 for _, g2, _, d2 in times]
    print(f"added by the gateway, {len(times)} streamed requests ({title}):")
    print(f"  first byte: p50 {statistics.median(first):.3f} ms, p99 {pct(first, 0.99):.3f} ms")
    print(f"  whole answer: p50 {statistics.median(end):.3f} ms, p99 {pct(end, 0.99):.3f} ms")
    # The same figures as two distributions: a pair's difference carries the
    # noise of both requests; the quantiles of each side carry their own only.
    for name, g, d in [("first byte", 0, 2), ("whole answer", 1, 3)]:
        through = [t[g] * 1000 for t in times]
        direct = [t[d] * 1000 for t in times]
        print(f"  {name}: through the gateway p50 {statistics.median(through):.3f} / p99 {pct(through, 0.99):.3f} ms, "
              f"straight p50 {statistics.median(direct):.3f} / p99 {pct(direct, 0.99):.3f} ms")


latency(f"{DELTAS} events {DELTA_MS} ms apart")
# The upstream writes with Nagle's algorithm on (Python's default), so an
# answer written at once waits for ACKs: a gateway whose kept connection
# delayed them would add 40 ms here.
delta_ms, DELTA_MS = DELTA_MS, 0
latency(f"{DELTAS} events written at once")
DELTA_MS = delta_ms

_, with_gw = run(AGENTS, 20, gateway=True, paired=False)
_, without = run(AGENTS, 20, gateway=False, paired=False)
print(f"baton's peak memory, {AGENTS} agents streaming 20 requests each:")
print(f"  through the gateway {with_gw / 1024:.1f} MiB, straight to the provider {without / 1024:.1f} MiB, "
      f"difference {(with_gw - without) / 1024:+.1f} MiB")
