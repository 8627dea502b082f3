//! Attempts that run somewhere else than baton's own process groups (a
//! [`Remote`] executor). Such an attempt is described once
//! ([`PodAttempt`]); over there, baton itself ([`pod::run`]) fetches the
//! task's branch, runs the agent with the adapter's launch as prepared
//! here, commits what it left, runs the gates and pushes the attempt's ref
//! back. Its output is the agent's stream line for line, with baton's own
//! lines ([`PodLine`]) tagged, so that it is the attempt's stream for the
//! engine.
//!
//! Here, the engine supervises a follower (`baton __follow <request>`, a
//! [`FollowRequest`]), which the executor's [`Driver`] runs: it makes the
//! attempt run there, prints its output and writes its [`PodEnd`]. A
//! driver needs a client baton-core does not hold (a cluster's API), so the
//! binary registers one per kind.

pub mod follower;
pub mod host;
mod input;
pub mod pod;
mod relocate;
mod setup;
pub mod warm;

use crate::plan::Remote;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// A future a driver returns.
pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `baton doctor`'s lines about an executor, each with whether it passed.
pub type Checks = Vec<(bool, String)>;

/// What the binary does for one kind of remote executor.
pub struct Driver {
    /// The [`Remote::kind`] it drives.
    pub kind: &'static str,
    /// `baton __follow <request>`: makes the attempt run there and follows
    /// it to its end; the follower's exit status.
    pub follow: for<'a> fn(&'a Path, FollowRequest) -> Boxed<'a, Result<i32, String>>,
    /// Removes whatever `run` left there (at the run's end); how many.
    pub sweep: for<'a> fn(&'a Remote, &'a str) -> Boxed<'a, Result<usize, String>>,
    /// `baton doctor`'s checks of it: a line each, and whether it passed.
    pub doctor: for<'a> fn(&'a Remote) -> Boxed<'a, Checks>,
    /// Keeps what it holds ready for the run's attempts (warm pods) while
    /// the run goes on: the engine starts it with the run and drops it at
    /// the run's end. None: it holds nothing ready.
    pub keep_warm: Option<fn(Remote, Warm) -> Boxed<'static, ()>>,
}

/// Where a run's followers claim what its executor holds ready.
#[derive(Debug, Clone)]
pub struct Warm {
    pub run: String,
    /// The socket followers ask on ([`warm_socket`]).
    pub socket: PathBuf,
}

/// The socket a run's followers claim warm pods on, by the run's logs
/// directory (a short path: a socket's has about 100 bytes).
pub fn warm_socket(logs: &Path) -> PathBuf {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(logs.to_string_lossy().as_bytes());
    let name: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    // SAFETY: getuid(2) cannot fail.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir()
        .join(format!("baton-warm-{uid}"))
        .join(format!("{name}.sock"))
}

/// The driver of `kind` among `drivers`.
pub fn driver<'a>(drivers: &[&'a Driver], kind: &str) -> Option<&'a Driver> {
    drivers.iter().copied().find(|d| d.kind == kind)
}

/// What a pod needs to make one attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PodAttempt {
    pub run: String,
    pub task: String,
    pub attempt: u32,
    /// Fetched from and pushed to (baton's own endpoint with the attempt's
    /// token in its path, or a remote both sides reach).
    pub git_url: String,
    /// The task's branch, fetched as the attempt's start.
    pub branch: String,
    /// The commit the branch is expected at (checked, so a pod never works
    /// on something else).
    pub start: String,
    /// Where the attempt's end is pushed (`refs/baton/<run>/<task>/<n>`).
    pub keep_ref: String,
    /// The same path as the task's worktree here, so that the adapter's
    /// arguments name the same files.
    pub worktree: PathBuf,
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Written to the agent's stdin, which is then closed (unless `live`).
    pub stdin_lines: Vec<String>,
    /// The adapter whose agent takes messages on its input while it runs:
    /// its stdin stays open for them ([`input`]) and its parser tells when
    /// its turns are done. None: a message restarts the attempt.
    #[serde(default)]
    pub live: Option<String>,
    /// Files the adapter and baton wrote for the agent outside the
    /// worktree (its prompt, its settings), written before it starts.
    pub files: Vec<(PathBuf, String)>,
    /// Directories made before it starts (a hermetic home).
    pub dirs: Vec<PathBuf>,
    pub gates: Vec<String>,
    pub gate_env: Vec<(String, String)>,
    /// `[workspace] setup`, run where the agent works, after the fetch.
    #[serde(default)]
    pub setup: Vec<String>,
    /// What setup's result depends on (its commands, `setup_inputs` at the
    /// start commit): a host keeps what setup made under it and reuses it.
    #[serde(default)]
    pub setup_key: Option<String>,
    /// Each setup command's time.
    #[serde(default)]
    pub setup_timeout_secs: u64,
    /// The agent's time and each gate's.
    pub timeout_secs: u64,
    pub message: String,
}

/// One gate run in a pod: how it ended, which the engine words as it
/// words a local gate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PodGate {
    pub gate: String,
    /// Its exit status; None: it timed out, could not run or was ended.
    pub code: Option<i32>,
    pub timed_out: bool,
    /// Why it could not run (or that a stop ended it).
    pub error: Option<String>,
    pub duration_ms: u64,
    /// The end of its output (for the next attempt's feedback).
    pub tail: String,
}

/// How a pod's attempt ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PodEnd {
    /// The agent's exit status; None: it was ended (SIGTERM, its timeout).
    pub code: Option<i32>,
    pub timed_out: bool,
    /// The commit at the attempt's end, pushed to `keep_ref`.
    pub commit: Option<String>,
    pub pushed: bool,
    /// In order; empty when the agent failed or was ended (none ran).
    pub gates: Vec<PodGate>,
    /// What went wrong on baton's side in the pod (fetch, commit, push).
    pub error: Option<String>,
    /// Its machine could not be reached (an SSH host that went away): the
    /// next attempt goes elsewhere when it can.
    #[serde(default)]
    pub unreachable: bool,
    /// A SIGTERM came while it ran (a stop, its pod's deletion or
    /// eviction): its pod is on its way out.
    #[serde(default)]
    pub terminated: bool,
}

/// A line of baton's own in a pod's output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum PodLine {
    /// A line the agent wrote to its stderr.
    Stderr(String),
    /// Something baton did (fetching, a gate), for the attempt's log.
    Note(String),
    /// A warm pod begins the attempt of this mark
    /// ([`PodAttempt::begin_mark`]): its log holds the attempts it ran
    /// before, which the follower passes over.
    Begin(String),
    End(PodEnd),
}

/// The git door's path segment that stands for a token given in an
/// `Authorization: Bearer` header instead.
pub const BEARER_PATH: &str = "~";

/// Starts each of baton's own lines in a pod's output; an agent's stream
/// never holds it (a record separator, then a word).
pub const TAG: &str = "\u{1e}baton ";

impl PodLine {
    pub fn to_line(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_else(|_| "null".into());
        format!("{TAG}{json}")
    }

    /// A line of a pod's output: Some if it is baton's own.
    pub fn parse(line: &str) -> Option<PodLine> {
        serde_json::from_str(line.strip_prefix(TAG)?).ok()
    }
}

/// What `baton __follow` (the attempt's process on this machine) needs to
/// run a [`PodAttempt`] where its executor says and follow it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FollowRequest {
    pub pod: PodAttempt,
    pub executor: Remote,
    /// The repository's git directory, offered to the pod.
    pub git_dir: PathBuf,
    /// Where the follower writes the [`PodEnd`].
    pub end_file: PathBuf,
    /// The endpoint the pod was told (address and token), once it is
    /// bound: a resumed follower serves the same one.
    pub door: Option<Door>,
    /// The agent's variables that hold its model gateway token (not a
    /// key: good only while its attempt runs), which go into the Job
    /// although their names read like secrets.
    #[serde(default)]
    pub gateway_env: Vec<String>,
    /// That token, honoured again for a Job a later baton adopts.
    #[serde(default)]
    pub gateway_token: Option<String>,
    /// The SSH host the engine placed it on (its [`crate::plan::SshHost`]
    /// name).
    #[serde(default)]
    pub host: Option<String>,
    /// The model gateway as the agent was told it (`http://127.0.0.1:port`),
    /// which an SSH host reaches through a tunnel of its own.
    #[serde(default)]
    pub gateway_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Door {
    pub addr: String,
    pub token: String,
    /// The port on an SSH host's loopback that tunnels to `addr`.
    #[serde(default)]
    pub remote_port: Option<u16>,
    /// The port on an SSH host's loopback that tunnels to the model
    /// gateway, and the gateway's address here it was made for.
    #[serde(default)]
    pub gateway: Option<(u16, String)>,
}

/// The environment variable that carries a [`PodAttempt`] into the pod.
pub const SPEC_ENV: &str = "BATON_POD_ATTEMPT";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baton_lines_round_trip_and_agent_lines_are_not_taken_for_them() {
        let end = PodLine::End(PodEnd {
            code: Some(0),
            commit: Some("abc".into()),
            pushed: true,
            ..Default::default()
        });
        assert_eq!(PodLine::parse(&end.to_line()), Some(end));
        assert_eq!(PodLine::parse(r#"{"type":"result"}"#), None);
        assert_eq!(PodLine::parse(&format!("{TAG}not json")), None);
    }
}
