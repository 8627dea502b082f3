//! A task's events as the lines of its transcript: what the agent said, the
//! tools it called, its gates, and what became of its work.

use super::app::{Line, Tone};
use baton_core::duration::human;
use baton_core::model::EventKind;
use baton_core::store::Event;
use serde_json::Value;
use std::time::Duration;

/// Longest a single event may take on screen; the log has the rest.
const MAX_LINES_PER_EVENT: usize = 30;

/// The transcript of `events`, times counted from `started` (the run's start).
pub fn lines(events: &[Event], started: i64) -> Vec<Line> {
    let mut out = Vec::new();
    for e in events {
        let Some((tone, text)) = describe(e) else {
            continue;
        };
        let at = human(Duration::from_millis((e.ts - started).max(0) as u64));
        let mut rows = text.lines();
        let first = rows.next().unwrap_or("");
        out.push(Line {
            tone,
            text: format!("{at:>7}  {first}"),
        });
        let rest: Vec<&str> = rows.collect();
        for row in rest.iter().take(MAX_LINES_PER_EVENT) {
            out.push(Line {
                tone,
                text: format!("{:>7}  {row}", ""),
            });
        }
        if rest.len() > MAX_LINES_PER_EVENT {
            out.push(Line {
                tone: Tone::Dim,
                text: format!(
                    "{:>7}  … {} more lines (baton logs)",
                    "",
                    rest.len() - MAX_LINES_PER_EVENT
                ),
            });
        }
    }
    out
}

fn describe(e: &Event) -> Option<(Tone, String)> {
    let d = &e.data;
    let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let passed = d.get("passed").and_then(Value::as_bool) == Some(true);
    let list = |k: &str| {
        d.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let gate = |what: &str| {
        let mut t = format!(
            "{what} `{}` {}",
            s("gate"),
            if passed { "passed" } else { "failed" }
        );
        if let Some(ms) = d.get("duration_ms").and_then(Value::as_u64) {
            t.push_str(&format!(" in {}", human(Duration::from_millis(ms))));
        }
        if !passed && !s("reason").is_empty() {
            t = format!("{t}\n{}", s("reason"));
        }
        (if passed { Tone::Good } else { Tone::Bad }, t)
    };
    Some(match e.kind {
        EventKind::TaskStarted => (Tone::Dim, "task started".into()),
        EventKind::AttemptStarted => {
            let n = d
                .get("attempt")
                .and_then(Value::as_u64)
                .or(e.attempt.map(u64::from));
            let what = if s("kind") == "resolve" {
                "resolution attempt"
            } else {
                "attempt"
            };
            let fed = if d.get("feedback") == Some(&Value::Bool(true)) {
                " (with feedback)"
            } else {
                ""
            };
            (
                Tone::Dim,
                format!("── {what} {} started{fed}", n.unwrap_or(0)),
            )
        }
        EventKind::AgentMessage => (Tone::Said, s("text")),
        EventKind::AgentResult => (Tone::Said, s("result")),
        EventKind::ToolCall => (Tone::Tool, format!("▸ {} {}", s("name"), s("detail"))),
        EventKind::ToolResult if d.get("ok") == Some(&Value::Bool(false)) => {
            (Tone::Bad, format!("  ✗ {}", s("detail")))
        }
        EventKind::ToolResult if s("detail").is_empty() => return None,
        EventKind::ToolResult => (Tone::Dim, format!("  ✓ {}", s("detail"))),
        EventKind::AgentRetry => (Tone::Dim, format!("agent retries: {}", s("detail"))),
        EventKind::AgentError => (Tone::Bad, format!("agent error: {}", s("message"))),
        EventKind::GateStarted => (Tone::Dim, format!("gate `{}` running", s("gate"))),
        EventKind::GateFinished => gate("gate"),
        EventKind::SetupFinished => gate("setup"),
        EventKind::VerifyFinished => gate("run check"),
        EventKind::Committed => (Tone::Dim, format!("committed {}", short(&s("commit")))),
        EventKind::AttemptFailed => (
            Tone::Bad,
            format!(
                "attempt {} failed: {}",
                d.get("attempt").and_then(Value::as_u64).unwrap_or(0),
                s("reason")
            ),
        ),
        EventKind::MergeQueued => (Tone::Dim, "queued for merging".into()),
        EventKind::Merged => (Tone::Good, "merged into the integration branch".into()),
        EventKind::Succeeded => (Tone::Good, "succeeded".into()),
        EventKind::Failed => (Tone::Bad, format!("failed: {}", s("reason"))),
        EventKind::Stopped if s("reason").is_empty() => (Tone::Bad, "stopped".into()),
        EventKind::Stopped => (Tone::Bad, s("reason")),
        EventKind::Skipped => (Tone::Dim, format!("skipped: {}", s("reason"))),
        EventKind::Conflicted => (Tone::Bad, format!("merge conflict in {}", list("paths"))),
        EventKind::Resolving => (
            Tone::Plain,
            format!(
                "merge conflict in {}: a resolution attempt starts",
                list("paths")
            ),
        ),
        EventKind::ConflictAhead => (
            Tone::Bad,
            format!(
                "will conflict with the integration branch in {}",
                list("paths")
            ),
        ),
        EventKind::VerifyFailed => (Tone::Bad, s("reason")),
        EventKind::ApprovalNeeded => (Tone::Plain, "waiting for approval (a: approve)".into()),
        EventKind::Approved => (Tone::Good, "approved".into()),
        EventKind::Steered => (Tone::Plain, format!("steered: “{}”", s("message"))),
        EventKind::SandboxConnection if d.get("allowed") == Some(&Value::Bool(true)) => {
            (Tone::Dim, format!("network: connected to {}", s("host")))
        }
        EventKind::SandboxConnection => (
            Tone::Bad,
            format!("network: refused {} (not in the allow-list)", s("host")),
        ),
        EventKind::Fallback => (
            Tone::Plain,
            format!(
                "handed over from {} to {}: {}",
                s("from"),
                s("to"),
                s("reason")
            ),
        ),
        EventKind::RateLimited => {
            let wait = d
                .get("retry_after_ms")
                .and_then(Value::as_u64)
                .map(|ms| format!(", it waits {}", human(Duration::from_millis(ms))))
                .unwrap_or_default();
            (
                Tone::Bad,
                format!(
                    "limited by the provider ({}{wait}): {}",
                    s("kind").replace('_', " "),
                    s("detail")
                ),
            )
        }
        EventKind::SandboxNotice => (Tone::Bad, format!("sandbox: {}", s("notice"))),
        EventKind::MessageSent => (
            Tone::Plain,
            format!("→ message to {}: {}", s("to"), s("text")),
        ),
        EventKind::MessageReceived => {
            let from = d.get("from").and_then(Value::as_str).unwrap_or("a person");
            (Tone::Plain, format!("← message from {from}: {}", s("text")))
        }
        EventKind::Stalled => (Tone::Bad, "no output for a while: stalled?".into()),
        EventKind::Interrupted => (Tone::Dim, "interrupted".into()),
        EventKind::Waiting => (Tone::Dim, s("reason")),
        EventKind::BranchRewritten => (Tone::Bad, format!("warning: {}", list("warnings"))),
        _ => return None,
    })
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}
