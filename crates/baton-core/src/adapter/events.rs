//! One vocabulary for what every agent does, whatever its CLI prints.

use crate::model::EventKind;
use serde::{Deserialize, Serialize};

/// What a tool call does, for people scanning a transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    FileRead,
    FileEdit,
    Command,
    Search,
    Other,
}

/// How a usage report relates to the ones before it in the same attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageMode {
    /// Add to what the attempt used so far (one model call, one step).
    Add,
    /// The whole attempt (invocation) so far; replaces earlier reports.
    Total,
    /// The whole agent session, across resumed attempts (Codex threads).
    Session,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// What the agent itself says it cost, where it says so.
    pub cost_usd: Option<f64>,
    pub model: Option<String>,
    pub mode: UsageMode,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    /// The agent's own session id, for resuming it.
    Session {
        id: String,
        model: Option<String>,
    },
    Message {
        text: String,
    },
    ToolCall {
        id: String,
        name: String,
        kind: ToolKind,
        detail: String,
    },
    ToolResult {
        id: String,
        ok: bool,
        detail: String,
    },
    Usage(UsageReport),
    /// The provider limits the agent: too many requests, overloaded, or a
    /// quota used up.
    RateLimited(super::limits::Limit),
    /// The agent is retrying a failed model call (it waits on the model).
    Retrying {
        detail: String,
    },
    Error {
        message: String,
    },
    /// The end of a turn: the agent's final message for it.
    TurnEnd {
        result: String,
        is_error: bool,
    },
}

impl AgentEvent {
    /// The event kind as stored in the event log.
    pub fn kind(&self) -> EventKind {
        match self {
            AgentEvent::Session { .. } => EventKind::AgentSession,
            AgentEvent::Message { .. } => EventKind::AgentMessage,
            AgentEvent::ToolCall { .. } => EventKind::ToolCall,
            AgentEvent::ToolResult { .. } => EventKind::ToolResult,
            AgentEvent::Usage(_) => EventKind::Usage,
            AgentEvent::Retrying { .. } => EventKind::AgentRetry,
            AgentEvent::RateLimited(_) => EventKind::RateLimited,
            AgentEvent::Error { .. } => EventKind::AgentError,
            AgentEvent::TurnEnd { .. } => EventKind::AgentResult,
        }
    }
}

/// Shortens long text for events (the full text stays in the log file).
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

pub(crate) fn str_of<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v.get(key).and_then(|x| x.as_str()).unwrap_or("")
}

pub(crate) fn u64_of(v: &serde_json::Value, key: &str) -> u64 {
    v.get(key).and_then(|x| x.as_u64()).unwrap_or(0)
}
