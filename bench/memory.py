#!/usr/bin/env python3
"""Benchmark: baton's peak memory while AGENTS agents stream LINES lines
each at once, on a quiet machine and on one whose cores are all busy.

Each agent is the fake agent standing in for Claude Code's stream-json; the
plan runs all of them in parallel under `baton run`. The figure is the
baton process's peak resident set (VmHWM), read from /proc while it runs.
Memory must not grow with the machine's load (queues between the agents'
output and the store filling up while the store falls behind) nor with
the number of agents beyond a small fixed cost each. Goal: at most 30 MiB
either way.

    bench/memory.py                     # 50 agents x 2000 lines
    AGENTS=20 LINES=500 bench/memory.py
    BATON=/path/to/baton FAKE=/path/to/fake-agent bench/memory.py
"""
import multiprocessing, os, subprocess, sys, tempfile, time

AGENTS = int(os.environ.get("AGENTS", 50))
LINES = int(os.environ.get("LINES", 2000))
PAUSE_MS = int(os.environ.get("PAUSE_MS", 0))
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

baton = os.environ.get("BATON")
fake = os.environ.get("FAKE")
if not (baton and fake):
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "baton-cli", "-p", "baton-testutils", "--bins"],
                   cwd=root, check=True)
    baton = baton or os.path.join(root, "target/release/baton")
    fake = fake or os.path.join(root, "target/release/fake-agent")

env = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="b@localhost",
           GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="b@localhost")


# Claude Code's last line: the run's tasks succeed.
RESULT = '{"type":"result","subtype":"success","is_error":false,"result":"streamed"}'


def plan():
    text = (f'[run]\nmax_parallel = {AGENTS}\n\n'
            f'[agent.stream]\nadapter = "claude"\ncommand = ["{fake}"]\n'
            f"env = {{ FAKE_AGENT_SCRIPT = '''stream {LINES} {PAUSE_MS}; say {RESULT}''' }}\n\n"
            '[defaults]\nagent = "stream"\n')
    for i in range(AGENTS):
        text += f'\n[[task]]\nid = "s{i}"\nprompt = "stream {i}"\n'
    return text


def peak_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def one_run():
    """The peak resident set of one `baton run`, in KiB, and its wall time."""
    work = tempfile.mkdtemp(prefix="baton-memory-bench-")
    subprocess.run(["git", "init", "-q", "-b", "main", work], check=True, env=env)
    subprocess.run(["git", "-C", work, "commit", "-q", "--allow-empty", "-m", "init"], check=True, env=env)
    with open(os.path.join(work, "baton.toml"), "w") as f:
        f.write(plan())
    start = time.time()
    proc = subprocess.Popen([baton, "run"], cwd=work, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, peak_kib(proc.pid))
        time.sleep(0.02)
    elapsed = time.time() - start
    subprocess.run(["rm", "-rf", work])
    if proc.returncode != 0:
        sys.exit(f"baton run failed ({proc.returncode})")
    return peak, elapsed


def burn(stop):
    while not stop.is_set():
        sum(i * i for i in range(10000))


quiet, quiet_s = one_run()
stop = multiprocessing.Event()
burners = [multiprocessing.Process(target=burn, args=(stop,)) for _ in range(os.cpu_count() or 2)]
for b in burners:
    b.start()
try:
    loaded, loaded_s = one_run()
finally:
    stop.set()
    for b in burners:
        b.join()

print(f"agents: {AGENTS} at once, {LINES} lines each (every {PAUSE_MS} ms)")
print(f"quiet machine:  baton's peak RSS {quiet / 1024:.1f} MiB (run took {quiet_s:.1f} s)")
print(f"every core busy: baton's peak RSS {loaded / 1024:.1f} MiB (run took {loaded_s:.1f} s)")
print("goal: at most 30 MiB either way")
