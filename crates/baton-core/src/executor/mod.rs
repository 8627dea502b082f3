//! Attempts that run somewhere else than baton's own process groups. An
//! attempt on a cluster is described once ([`PodAttempt`]); inside the pod,
//! baton itself ([`pod::run`]) fetches the task's branch, runs the agent
//! with the adapter's launch as prepared here, commits what it left, runs
//! the gates and pushes the attempt's ref back. Its output is the agent's
//! stream line for line, with baton's own lines ([`PodLine`]) tagged, so
//! that the pod's log is the attempt's stream for the engine.

pub mod pod;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
    /// Written to the agent's stdin, which is then closed.
    pub stdin_lines: Vec<String>,
    /// Files the adapter and baton wrote for the agent outside the
    /// worktree (its prompt, its settings), written before it starts.
    pub files: Vec<(PathBuf, String)>,
    /// Directories made before it starts (a hermetic home).
    pub dirs: Vec<PathBuf>,
    pub gates: Vec<String>,
    pub gate_env: Vec<(String, String)>,
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
}

/// A line of baton's own in a pod's output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum PodLine {
    /// A line the agent wrote to its stderr.
    Stderr(String),
    /// Something baton did (fetching, a gate), for the attempt's log.
    Note(String),
    End(PodEnd),
}

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

/// What `baton __kube-attempt` (the attempt's process on this machine)
/// needs to run a [`PodAttempt`] as a Job and follow it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobRequest {
    pub pod: PodAttempt,
    pub cluster: crate::plan::Kubernetes,
    /// The repository's git directory, offered to the pod.
    pub git_dir: PathBuf,
    /// Where the follower writes the [`PodEnd`].
    pub end_file: PathBuf,
    /// The endpoint the pod was told (address and token), once it is
    /// bound: a resumed follower serves the same one.
    pub door: Option<Door>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Door {
    pub addr: String,
    pub token: String,
}

/// The environment variable that carries a [`PodAttempt`] into the pod.
pub const SPEC_ENV: &str = "BATON_POD_ATTEMPT";

/// A Job's name for attempt `n` of a task: DNS-1123, at most 63 bytes,
/// unique per run, task and attempt even when the names are cut.
pub fn job_name(run: &str, task: &str, n: u32) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{run}\0{task}\0{n}").as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let clean: String = format!("{task}-{n}")
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let cut: String = clean.chars().take(40).collect();
    format!("baton-{}-{hash}", cut.trim_matches('-'))
}

/// A label's value: at most 63 of `[A-Za-z0-9._-]`, starting and ending
/// with a letter or digit.
pub fn label_value(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    clean
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_name_is_dns_safe_short_and_unique_per_attempt() {
        let long = "Add_a_very_long_task_name_that_goes_on_and_on_and_on_forever";
        let a = job_name("run-1", long, 1);
        let b = job_name("run-1", long, 2);
        let c = job_name("run-2", long, 1);
        assert!(a.len() <= 63, "{a}");
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert!(a != b && a != c && b != c);
        assert_eq!(a, job_name("run-1", long, 1));
    }

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

    #[test]
    fn label_values_keep_what_kubernetes_allows() {
        assert_eq!(label_value("run-20261203-1"), "run-20261203-1");
        assert_eq!(label_value("a/b c"), "a_b_c");
        assert_eq!(label_value(&"x".repeat(80)).len(), 63);
    }
}
