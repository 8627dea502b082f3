#!/usr/bin/env python3
"""Benchmark: how soon a person's phone hears an agent's question, what a
waiting task costs, and how soon a tapped answer puts the agent back to
work.

`baton serve` with `[notify] ntfy` pointed at a small ntfy-like receiver in
this script (it takes ntfy's JSON publishing, as ntfy.sh does). N tasks
each run an agent (a Python script, through `exec`) that asks a question
through its door (`BATON_ASK_SOCKET`, as the `ask` MCP tool does) and ends
its turn. Figures:

- question to notification: from the agent's call to the ntfy POST
  arriving, goal: under 1 s;
- a waiting task's cost: its processes (none of its own: the door is in
  baton's process and the agent has ended) and `baton serve`'s memory with
  N tasks waiting against none;
- tap to work: from POSTing a notification's action link (what ntfy's app
  does on a tap) to the agent's next attempt running.

    bench/ask.py                # 10 questions
    N=30 bench/ask.py
    BATON=/path/to/baton bench/ask.py
"""
import http.server, json, os, re, statistics, subprocess, sys, tempfile, threading, time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(os.environ.get("N", 10))
baton = os.environ.get("BATON")
if not baton:
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "baton-cli"], cwd=ROOT, check=True)
    baton = os.path.join(ROOT, "target/release/baton")
work = tempfile.mkdtemp()
env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@l",
           GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@l", BATON_LOG="warn")
marks = os.path.join(work, "marks")
os.makedirs(marks)

# The ntfy receiver: each message with the time it arrived.
received = []
class Ntfy(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        received.append((time.time(), body))
        out = json.dumps({"id": str(len(received)), "event": "message", **body}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a):
        pass
ntfy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ntfy)
threading.Thread(target=ntfy.serve_forever, daemon=True).start()

# The agent: asks (the time it asked is marked) and ends its turn; its next
# attempt marks the time it started and writes the answer down.
agent = os.path.join(work, "asker.py")
open(agent, "w").write(f'''
import json, os, socket, sys, time
task, said = os.environ["BATON_TASK"], os.environ.get("BATON_MESSAGES", "")
if " is: " in said:
    open({marks!r} + "/" + task + ".back", "w").write(repr(time.time()))
    open("answer.txt", "w").write(said.split(" is: ", 1)[1] + "\\n")
    sys.exit(0)
open({marks!r} + "/" + task + ".asked", "w").write(repr(time.time()))
door = socket.socket(socket.AF_UNIX)
door.connect(os.environ["BATON_ASK_SOCKET"])
door.sendall((json.dumps({{"question": "Ship " + task + "?", "options": ["yes", "no"]}}) + "\\n").encode())
door.makefile().readline()
''')

repo = os.path.join(work, "repo")
subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True, env=env)
subprocess.run(["git", "-C", repo, "commit", "-q", "--allow-empty", "-m", "start"], check=True, env=env)
plan = (f'[run]\nmax_parallel = {N}\n\n[notify]\nntfy = "http://127.0.0.1:{ntfy.server_port}/bench"\nkinds = ["question"]\n\n'
        f'[agent.py]\nadapter = "exec"\ncommand = ["python3", {json.dumps(agent)}]\n\n[defaults]\nagent = "py"\n')
plan += "".join(f'\n[[task]]\nid = "t{i}"\nprompt = "ask"\n' for i in range(N))
open(os.path.join(repo, "baton.toml"), "w").write(plan)

serve = subprocess.Popen([baton, "serve", "--addr", "127.0.0.1:0"], cwd=repo, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
run = None

def cleanup():
    for p in (run, serve):
        if p and p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
import atexit
atexit.register(cleanup)
url = None
for line in serve.stderr:
    m = re.search(r"listening on (http://\S+)", line)
    if m:
        url = m.group(1)
        break
threading.Thread(target=lambda: [None for _ in serve.stderr], daemon=True).start()

def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0

def task_processes():
    """Processes that belong to a task (their environment names one)."""
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == serve.pid:
            continue
        try:
            environ = open(f"/proc/{p}/environ", "rb").read()
        except OSError:
            continue
        if b"BATON_TASK=" in environ and b"BATON_ASK_SOCKET=" in environ:
            found.append(p)
    return found

time.sleep(1)
idle_rss = rss_kib(serve.pid)
run = subprocess.Popen([baton, "run", "--json"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
deadline = time.time() + 120
while len([r for r in received if "question" in r[1].get("tags", [])]) < N and time.time() < deadline:
    time.sleep(0.05)
questions = [r for r in received if "question" in r[1].get("tags", [])]
if len(questions) < N:
    sys.exit(f"only {len(questions)} of {N} questions reached ntfy")

latency = []
for at, body in questions:
    task = re.search(r"Ship (t\d+)\?", body["message"]).group(1)
    latency.append(at - float(open(f"{marks}/{task}.asked").read()))
time.sleep(1)  # every agent has ended its turn
waiting_rss = rss_kib(serve.pid)
stray = task_processes()

# Tap "yes" on each, as the phone app does (a POST, no token).
tap = []
for at, body in questions:
    task = re.search(r"Ship (t\d+)\?", body["message"]).group(1)
    link = next(a["url"] for a in body["actions"] if a["label"] == "yes")
    t0 = time.time()
    urllib.request.urlopen(urllib.request.Request(link, data=b"", method="POST"), timeout=30).read()
    back = f"{marks}/{task}.back"
    while not os.path.exists(back) and time.time() < t0 + 60:
        time.sleep(0.01)
    tap.append(float(open(back).read()) - t0)
out, _ = run.communicate(timeout=120)
report = json.loads(out)
ok = sum(1 for t in report["tasks"] if t["status"] == "succeeded")
cleanup()
ntfy.shutdown()

def figs(xs):
    xs = sorted(xs)
    return f"median {statistics.median(xs) * 1000:.0f} ms, p90 {xs[int(0.9 * (len(xs) - 1))] * 1000:.0f} ms, max {xs[-1] * 1000:.0f} ms"

print(f"baton {subprocess.run([baton, '--version'], capture_output=True, text=True).stdout.strip()}, {N} questions")
print(f"question to notification: {figs(latency)}")
print(f"waiting tasks: {len(stray)} processes of their own; baton serve RSS {idle_rss / 1024:.1f} MiB idle, "
      f"{waiting_rss / 1024:.1f} MiB with {N} waiting ({(waiting_rss - idle_rss) / max(N, 1):.0f} KiB each)")
print(f"tap to the agent working again: {figs(tap)}")
print(f"tasks succeeded: {ok}/{N}")
