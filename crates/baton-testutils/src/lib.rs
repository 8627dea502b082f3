//! Test support for baton: a hermetic git repository per test, the path of
//! the scriptable fake agent, and [`model_server`], a scripted model server
//! that the real agent CLIs can be run against.
//!
//! The fake agent (`fake-agent`) reads a script from its last argument (the
//! prompt baton renders), up to the first blank line. Statements, separated
//! by newlines or `;`:
//! `write PATH TEXT`, `append PATH TEXT`, `touch PATH`, `commit MSG`,
//! `say TEXT` (stdout), `err TEXT` (stderr), `sleep SECS`, `hang`,
//! `ignore-signals`, `grandchild PIDFILE`, `pid PATH`, `env NAME PATH`,
//! `feedback PATH`, `prompt PATH`, `prompts PATH` (appends each prompt), `spam BYTES`, `stream N PAUSE_MS`, `wait-file PATH`, `exit N`,
//! `on-attempt N STATEMENT`. `\n` in TEXT is a newline. With
//! `FAKE_AGENT_SCRIPT` set, the script is read from there instead (for
//! standing in for a real CLI, whose last argument is not the prompt).

pub mod github;
mod http;
pub mod model_server;
pub mod netns;
pub mod ntfy;
pub mod push;
pub mod sshd;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// A temporary directory with a git repository at `repo` (one commit), and
/// an environment that keeps git and baton away from the user's config.
pub struct TestEnv {
    dir: tempfile::TempDir,
    pub repo: PathBuf,
}

pub const AUTHOR_DATE: &str = "2026-01-01T00:00:00+00:00";

/// Environment every git and baton process in a test gets.
pub fn hermetic_env() -> Vec<(&'static str, String)> {
    vec![
        ("GIT_CONFIG_GLOBAL", "/dev/null".into()),
        ("GIT_CONFIG_NOSYSTEM", "1".into()),
        ("GIT_AUTHOR_NAME", "Test Author".into()),
        ("GIT_AUTHOR_EMAIL", "author@example.com".into()),
        ("GIT_COMMITTER_NAME", "Test Committer".into()),
        ("GIT_COMMITTER_EMAIL", "committer@example.com".into()),
        ("GIT_AUTHOR_DATE", AUTHOR_DATE.into()),
        ("GIT_COMMITTER_DATE", AUTHOR_DATE.into()),
        ("BATON_LOG", "warn".into()),
    ]
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("baton-test-")
            .tempdir()
            .expect("tempdir");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir repo");
        let env = TestEnv { dir, repo };
        env.git(&["init", "-q", "-b", "main"]);
        env.write("README.md", "test repository\n");
        env.git(&["add", "-A"]);
        env.git(&["commit", "-q", "-m", "initial"]);
        env
    }

    /// The temporary directory (outside the repository) for markers and files tests look at.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path outside the repository, for a fake agent to write what tests inspect.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.repo);
        for (k, v) in hermetic_env() {
            c.env(k, v);
        }
        c.env("HOME", self.dir.path());
        // The user config is the test's own ($HOME/.config/baton), never
        // the machine's.
        c.env_remove("XDG_CONFIG_HOME");
        c.env_remove("BATON_CONFIG");
        // A test run on GitHub Actions must not turn on baton's CI output.
        c.env_remove("GITHUB_ACTIONS");
        c.env_remove("GITHUB_STEP_SUMMARY");
        c
    }

    /// Runs git in the repository; panics with its output on failure.
    pub fn git(&self, args: &[&str]) -> String {
        let out = self.command("git").args(args).output().expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs git and returns its output whatever the exit status.
    pub fn git_output(&self, args: &[&str]) -> Output {
        self.command("git").args(args).output().expect("run git")
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.repo.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(p, text).expect("write file");
    }

    pub fn commit_all(&self, msg: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", msg]);
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        TestEnv::new()
    }
}

/// The fake agent binary, built on first use if the test run did not build it.
pub fn fake_agent() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        // Test binaries live in target/<profile>/deps; binaries one level up.
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .to_path_buf();
        let bin = profile_dir.join("fake-agent");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin/fake_agent.rs");
        let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
        // A test run of one crate does not rebuild another crate's binaries.
        let stale = || match (modified(&bin), modified(&source)) {
            (Some(b), Some(s)) => b < s,
            _ => true,
        };
        if stale() {
            // Tests run in parallel processes: one builds, the others wait.
            let lock =
                std::fs::File::create(profile_dir.join(".fake-agent.lock")).expect("lock file");
            use std::os::fd::AsRawFd;
            // SAFETY: flock on an open descriptor we own.
            unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
            if stale() {
                let status =
                    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                        .args([
                            "build",
                            "-q",
                            "-p",
                            "baton-testutils",
                            "--bin",
                            "fake-agent",
                        ])
                        .status()
                        .expect("run cargo to build fake-agent");
                assert!(status.success(), "building fake-agent failed");
            }
        }
        assert!(bin.exists(), "fake-agent not found at {}", bin.display());
        bin
    })
    .clone()
}
