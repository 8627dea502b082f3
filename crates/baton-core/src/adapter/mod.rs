//! The seam between the engine and an agent CLI. An adapter says how to
//! launch its agent for one attempt and how to read what it prints; the
//! engine does everything else (process group, timeout, logs, commit, gates,
//! usage, budgets).

mod aider;
mod claude;
mod codex;
mod events;
pub mod exec;
mod gemini;
pub mod limits;
mod mcp;
mod opencode;
mod prices;

pub use events::{clip, AgentEvent, ToolKind, UsageMode, UsageReport};
pub use exec::ExecAdapter;
pub use mcp::{McpServer, McpWiring};
pub use prices::{Price, Prices};

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What an adapter reads of a profile: the CLI, how it is started, its
/// model, arguments and environment. A plan's profile gives it
/// (`AgentProfile::cli`); the rest of a profile is the engine's.
#[derive(Debug, Clone, Default)]
pub struct CliProfile {
    pub name: String,
    pub adapter: String,
    pub model: Option<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub command: Option<Vec<String>>,
}

/// What the engine knows when it launches an attempt.
pub struct LaunchRequest<'a> {
    pub profile: &'a CliProfile,
    /// The full prompt: instructions, rendered template, context files, feedback.
    pub prompt: &'a str,
    pub worktree: &'a Path,
    pub attempt: u32,
    /// The agent's own session id from an earlier attempt, to resume it.
    pub session: Option<&'a str>,
    /// The task's context files (relative to the worktree).
    pub files: &'a [String],
    /// An MCP server the agent gets (a lead task's tools).
    pub mcp: Option<&'a McpServer>,
    /// baton runs it in its own sandbox: a CLI's own sandbox would only
    /// stand in the way (Codex nests bubblewrap and hides /tmp).
    pub sandboxed: bool,
    /// Its provider is reached through baton's model gateway: the CLI is
    /// pointed there (the engine sets the variables of
    /// [`crate::gateway::agent_env`]; a CLI configured by arguments gets
    /// them here).
    pub gateway: Option<&'a crate::gateway::Access>,
}

/// A program to start; the engine adds cwd, group and BATON_* variables.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    /// Lines to write on a stdin pipe kept open for live steering; None: /dev/null.
    pub stdin_lines: Option<Vec<String>>,
    /// Files the engine writes before starting it (its MCP config).
    pub files: Vec<(std::path::PathBuf, String)>,
}

/// How an attempt's output ended, as the adapter reads it.
#[derive(Debug, Clone, Default)]
pub struct Finish {
    pub final_message: String,
    /// Set when the stream says the agent failed, even if it exited 0.
    pub error: Option<String>,
    /// Whether the stream reached its final event; a stream cut short means
    /// the agent was interrupted, whatever its exit status.
    pub complete: bool,
    /// The rate limit, overload or quota its failure was (set by
    /// [`Adapter::parser`], not by the CLI's own parser).
    pub limit: Option<limits::Limit>,
}

pub trait StreamParser: Send {
    /// One line of the agent's stdout (without the newline).
    fn line(&mut self, line: &str) -> Vec<AgentEvent>;
    /// Called once the process has exited; `stdout_tail` is the end of its
    /// standard output (bounded), for adapters whose result is plain text.
    fn finish(&mut self, stdout_tail: &str) -> Finish;
    /// How much of the end of stdout `finish` needs: a CLI whose result is
    /// in its stream needs little, and each running agent holds this much.
    fn tail_wanted(&self) -> usize {
        SMALL_TAIL
    }
}

/// The end of stdout kept for a CLI whose result is in its stream.
pub const SMALL_TAIL: usize = 16 * 1024;
/// The end of stdout kept for one whose result is its plain output.
pub const TEXT_TAIL: usize = 256 * 1024;

pub trait Adapter: Send + Sync {
    fn launch(&self, req: &LaunchRequest) -> Result<Launch, String>;
    /// What reads the CLI's own output.
    fn stream_parser(&self) -> Box<dyn StreamParser>;
    /// The parser the engine uses: the CLI's, with rate limits, overload
    /// and used-up quotas recognised in whatever it says.
    fn parser(&self) -> Box<dyn StreamParser> {
        Box::new(limits::Recognise::new(self.stream_parser()))
    }
    /// The stdin line that hands a running agent a message, for agents that
    /// take input while they run; None: steering stops it and resumes its session.
    fn steer_line(&self, _message: &str) -> Option<String> {
        None
    }
    /// Whether the prompt is text for a model, so that feedback on a failed
    /// attempt can be appended to it. An `exec` prompt is a command: text
    /// appended to it would break it.
    fn prompt_is_text(&self) -> bool {
        true
    }
}

/// One kind of agent baton can run, described whole: its name in a
/// profile, the CLI it starts when the profile gives no `command`, how to
/// make it, and what the rest of baton must know of it (every field is
/// required, so an adapter cannot forget one).
pub struct AdapterInfo {
    pub name: &'static str,
    /// The program on PATH (None: `exec` runs the profile's `command`).
    pub cli: Option<&'static str>,
    pub make: fn() -> Box<dyn Adapter>,
    /// Where the CLI keeps its own state under a home (and where its
    /// environment moves it): the only parts of an inherited home the
    /// sandbox lets it write.
    pub state: fn(&Home) -> Vec<PathBuf>,
    /// How it is handed an MCP server (a lead's tools); None: it speaks no
    /// MCP, and cannot lead.
    pub mcp: Option<fn(&McpServer) -> McpWiring>,
    /// A model it cannot run without, as an example for `baton init`'s
    /// plan; None: the CLI picks one itself.
    pub needs_model: Option<&'static str>,
}

/// A home directory and the environment an agent gets in it.
pub struct Home<'a> {
    pub dir: &'a Path,
    pub env: &'a [(OsString, OsString)],
}

impl Home<'_> {
    /// The agent's value of `key` (the last one set wins).
    pub fn var(&self, key: &str) -> Option<PathBuf> {
        let found = self.env.iter().rev().find(|(k, _)| k == key);
        found.map(|(_, v)| PathBuf::from(v))
    }

    /// An XDG base directory: the agent's `key`, else `default` in the home.
    pub fn xdg(&self, key: &str, default: &str) -> PathBuf {
        self.var(key).unwrap_or_else(|| self.dir.join(default))
    }
}

/// Every adapter, in the order `baton doctor` lists them. A new adapter is a
/// file of its own, one line here, and its parser tests; plan validation and
/// `doctor` read this list.
pub const ADAPTERS: &[AdapterInfo] = &[
    claude::INFO,
    codex::INFO,
    gemini::INFO,
    opencode::INFO,
    aider::INFO,
    exec::INFO,
];

/// The adapter called `name`.
pub fn find(name: &str) -> Option<&'static AdapterInfo> {
    ADAPTERS.iter().find(|a| a.name == name)
}

/// The names of every adapter, for messages.
pub fn names() -> Vec<&'static str> {
    ADAPTERS.iter().map(|a| a.name).collect()
}

/// The names of the adapters that speak MCP, for messages.
pub fn mcp_names() -> Vec<&'static str> {
    ADAPTERS
        .iter()
        .filter(|a| a.mcp.is_some())
        .map(|a| a.name)
        .collect()
}

/// The adapter named by a profile.
pub fn for_profile(profile: &CliProfile) -> Result<Box<dyn Adapter>, String> {
    match find(&profile.adapter) {
        Some(a) => Ok((a.make)()),
        None => Err(format!(
            "unknown adapter {:?} (profile {:?})",
            profile.adapter, profile.name
        )),
    }
}

/// The program a profile runs: its `command` (program and leading
/// arguments) or the adapter's CLI found on PATH.
pub fn program(profile: &CliProfile, default: &str) -> (OsString, Vec<OsString>) {
    match profile.command.as_ref().filter(|c| !c.is_empty()) {
        Some(c) => (c[0].clone().into(), c[1..].iter().map(Into::into).collect()),
        None => (default.into(), Vec::new()),
    }
}

/// The CLI a profile would start, for `baton doctor`.
pub fn program_name(profile: &CliProfile) -> String {
    let default = find(&profile.adapter).and_then(|a| a.cli).unwrap_or("");
    program(profile, default).0.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An adapter that says it speaks MCP hands its CLI the server: every
    /// argument (in order), variable and file of its wiring is in its launch.
    #[test]
    fn every_adapter_that_speaks_mcp_wires_the_server_into_its_launch() {
        let server = McpServer {
            name: "baton".into(),
            command: "/bin/baton".into(),
            args: vec!["mcp".into(), "--connect".into()],
            config_dir: "/tmp/attempt".into(),
        };
        let mut speaking = 0;
        for info in ADAPTERS {
            let Some(wire) = info.mcp else { continue };
            speaking += 1;
            let w = wire(&server);
            let name = info.name;
            assert!(
                !(w.args.is_empty() && w.env.is_empty()),
                "{name}: no wiring"
            );
            let profile = CliProfile {
                name: "p".into(),
                adapter: name.into(),
                command: Some(vec!["agent".into()]),
                ..CliProfile::default()
            };
            let req = LaunchRequest {
                profile: &profile,
                prompt: "do it",
                worktree: Path::new("/w"),
                attempt: 1,
                session: None,
                files: &[],
                mcp: Some(&server),
                sandboxed: true,
                gateway: None,
            };
            let launch = (info.make)().launch(&req).expect("launches");
            let found = w.args.is_empty() || launch.args.windows(w.args.len()).any(|a| a == w.args);
            assert!(found, "{name}: {:?} not in {:?}", w.args, launch.args);
            for e in &w.env {
                assert!(launch.env.contains(e), "{name}: {e:?} not set");
            }
            for f in &w.files {
                assert!(launch.files.contains(f), "{name}: {:?} not written", f.0);
            }
        }
        assert_eq!(speaking, mcp_names().len());
        assert!(
            speaking >= 5,
            "claude, codex, gemini, opencode and exec speak MCP"
        );
    }
}
