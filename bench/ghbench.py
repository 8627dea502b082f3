"""What the GitHub benchmarks (intake.py, follow.py) share: the binaries
they drive (built here unless BATON, STANDIN and FAKE name them) and the
environment their git and baton run with."""
import os, subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN, SECRET = "bench-token", "bench-secret"


def binaries():
    """baton, the GitHub stand-in and the fake agent."""
    baton, standin, fake = (os.environ.get(k) for k in ("BATON", "STANDIN", "FAKE"))
    if not (baton and standin and fake):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "baton-cli", "-p", "baton-testutils", "--bins"],
                       cwd=ROOT, check=True)
        rel = os.path.join(ROOT, "target/release")
        baton = baton or os.path.join(rel, "baton")
        standin = standin or os.path.join(rel, "github-stand-in")
        fake = fake or os.path.join(rel, "fake-agent")
    return baton, standin, fake


def environment():
    """A hermetic git identity, the stand-in's token and the webhook secret."""
    return dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@l",
                GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@l",
                BENCH_GH_TOKEN=TOKEN, BENCH_HOOK_SECRET=SECRET, BATON_LOG="warn")
