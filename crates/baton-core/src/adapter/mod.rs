//! The seam between the engine and an agent CLI. An adapter says how to
//! launch its agent for one attempt and how to read what it prints; the
//! engine does everything else (process group, timeout, logs, commit, gates).

mod exec;

pub use exec::ExecAdapter;

use crate::plan::AgentProfile;
use std::ffi::OsString;
use std::path::Path;

/// What the engine knows when it launches an attempt.
pub struct LaunchRequest<'a> {
    pub profile: &'a AgentProfile,
    /// The full prompt: instructions, rendered template, context files, feedback.
    pub prompt: &'a str,
    pub worktree: &'a Path,
    pub attempt: u32,
    /// The agent's own session id from an earlier attempt, where it has one.
    pub session: Option<&'a str>,
}

/// A program to start; the engine adds cwd, stdin, group and BATON_* variables.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
}

/// What an agent's output stream says, in one vocabulary for every agent.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    Message(String),
    SessionId(String),
    Error(String),
}

/// How an attempt's output ended, as the adapter reads it.
#[derive(Debug, Clone, Default)]
pub struct Finish {
    pub final_message: String,
    /// Set when the stream says the agent failed even if it exited 0.
    pub error: Option<String>,
}

pub trait StreamParser: Send {
    /// One line of the agent's stdout (without the newline).
    fn line(&mut self, line: &str) -> Vec<AgentEvent>;
    /// Called once the process has exited; `stdout_tail` is the end of its
    /// standard output (bounded), for adapters whose result is plain text.
    fn finish(&mut self, stdout_tail: &str) -> Finish;
}

pub trait Adapter: Send + Sync {
    fn launch(&self, req: &LaunchRequest) -> Result<Launch, String>;
    fn parser(&self) -> Box<dyn StreamParser>;
}

/// The adapter for a profile, or why there is none.
pub fn for_profile(profile: &AgentProfile) -> Result<Box<dyn Adapter>, String> {
    match profile.adapter.as_str() {
        "exec" => Ok(Box::new(ExecAdapter)),
        other => Err(format!(
            "adapter {other:?} (profile {:?}) is not available in this build of baton; use adapter = \"exec\" with the agent's command",
            profile.name
        )),
    }
}
