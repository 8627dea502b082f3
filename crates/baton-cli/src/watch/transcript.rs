//! A task's events as the lines of its transcript: what the agent said, the
//! tools it called, its gates, and what became of its work.

use super::app::{Line, Tone};
use baton_core::adapter::AgentEvent;
use baton_core::duration::human;
use baton_core::model::AttemptKind;
use baton_core::payload::{CheckEnd, Payload};
use baton_core::store::Event;
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
    use Payload as P;
    Some(match e.payload()? {
        P::TaskStarted { .. } => (Tone::Dim, "task started".into()),
        P::AttemptStarted {
            attempt,
            kind,
            feedback,
            ..
        } => {
            let what = match kind {
                AttemptKind::Resolve => "resolution attempt",
                AttemptKind::Judge => "judging attempt",
                _ => "attempt",
            };
            let fed = if feedback { " (with feedback)" } else { "" };
            (Tone::Dim, format!("── {what} {attempt} started{fed}"))
        }
        P::Agent(a) => return agent_said(a),
        P::GateStarted { gate } => (Tone::Dim, format!("gate `{gate}` running")),
        P::GateFinished(end) => check("gate", end),
        P::SetupFinished(end) => check("setup", end),
        P::VerifyFinished(end) => check("run check", end),
        P::Committed { commit } => (
            Tone::Dim,
            format!("committed {}", short(commit.as_deref().unwrap_or(""))),
        ),
        P::AttemptFailed {
            attempt, reason, ..
        } => (Tone::Bad, format!("attempt {attempt} failed: {reason}")),
        P::MergeQueued { .. } => (Tone::Dim, "queued for merging".into()),
        P::Merged { .. } => (Tone::Good, "merged into the integration branch".into()),
        P::Succeeded { .. } => (Tone::Good, "succeeded".into()),
        P::Failed { reason } => (Tone::Bad, format!("failed: {reason}")),
        P::Stopped { reason } if reason.is_empty() => (Tone::Bad, "stopped".into()),
        P::Stopped { reason } => (Tone::Bad, reason),
        P::Skipped { reason } => (Tone::Dim, format!("skipped: {reason}")),
        P::Conflicted {
            paths: Some(paths), ..
        } => (Tone::Bad, format!("merge conflict in {}", paths.join(", "))),
        P::Conflicted { reason, .. } => (Tone::Bad, reason.unwrap_or_default()),
        P::Resolving { paths } => (
            Tone::Plain,
            format!(
                "merge conflict in {}: a resolution attempt starts",
                paths.join(", ")
            ),
        ),
        P::ConflictAhead { paths, .. } => (
            Tone::Bad,
            format!(
                "will conflict with the integration branch in {}",
                paths.join(", ")
            ),
        ),
        P::VerifyFailed { reason, .. } => (Tone::Bad, reason),
        P::ApprovalNeeded { .. } => (Tone::Plain, "waiting for approval (a: approve)".into()),
        P::Approved {} => (Tone::Good, "approved".into()),
        P::Steered { message } => (Tone::Plain, format!("steered: “{message}”")),
        P::SandboxConnection {
            host,
            allowed: true,
        } => (Tone::Dim, format!("network: connected to {host}")),
        P::SandboxConnection { host, .. } => (
            Tone::Bad,
            format!("network: refused {host} (not in the allow-list)"),
        ),
        P::Fallback { from, to, reason } => (
            Tone::Plain,
            format!("handed over from {from} to {to}: {reason}"),
        ),
        P::SandboxNotice { notice } => (Tone::Bad, format!("sandbox: {notice}")),
        P::GatewayNotice { notice } => (Tone::Plain, format!("gateway: {notice}")),
        P::ServiceReady { name, addr, ms } => (
            Tone::Plain,
            format!(
                "service {name} ready at {addr} in {}",
                human(Duration::from_millis(ms))
            ),
        ),
        P::Picked(p) => match &p.winner {
            Some(w) => (Tone::Good, format!("picked {w}: {}", p.reason)),
            None => (Tone::Bad, format!("no winner: {}", p.reason)),
        },
        P::MessageSent(m) => (Tone::Plain, format!("→ message to {}: {}", m.to, m.text)),
        P::MessageReceived(m) => {
            let from = m.from.as_deref().unwrap_or("a person");
            (Tone::Plain, format!("← message from {from}: {}", m.text))
        }
        P::Stalled { .. } => (Tone::Bad, "no output for a while: stalled?".into()),
        P::Interrupted { .. } => (Tone::Dim, "interrupted".into()),
        P::Waiting { reason, .. } => (Tone::Dim, reason),
        P::BranchRewritten { warnings, .. } => {
            (Tone::Bad, format!("warning: {}", warnings.join(", ")))
        }
        _ => return None,
    })
}

/// What the agent's own stream said.
fn agent_said(a: AgentEvent) -> Option<(Tone, String)> {
    Some(match a {
        AgentEvent::Message { text } => (Tone::Said, text),
        AgentEvent::TurnEnd { result, .. } => (Tone::Said, result),
        AgentEvent::ToolCall { name, detail, .. } => (Tone::Tool, format!("▸ {name} {detail}")),
        AgentEvent::ToolResult {
            ok: false, detail, ..
        } => (Tone::Bad, format!("  ✗ {detail}")),
        AgentEvent::ToolResult { detail, .. } if detail.is_empty() => return None,
        AgentEvent::ToolResult { detail, .. } => (Tone::Dim, format!("  ✓ {detail}")),
        AgentEvent::Retrying { detail } => (Tone::Dim, format!("agent retries: {detail}")),
        AgentEvent::Error { message } => (Tone::Bad, format!("agent error: {message}")),
        AgentEvent::RateLimited(l) => {
            let wait = l
                .retry_after_ms
                .map(|ms| format!(", it waits {}", human(Duration::from_millis(ms))))
                .unwrap_or_default();
            let kind = serde_json::to_value(l.kind).unwrap_or_default();
            let kind = kind.as_str().unwrap_or("").replace('_', " ");
            (
                Tone::Bad,
                format!("limited by the provider ({kind}{wait}): {}", l.detail),
            )
        }
        AgentEvent::Session { .. } | AgentEvent::Usage(_) => return None,
    })
}

/// A check's end, in words.
fn check(what: &str, end: CheckEnd) -> (Tone, String) {
    let CheckEnd {
        gate,
        passed,
        duration_ms,
        reason,
    } = end;
    let verdict = if passed { "passed" } else { "failed" };
    let took = human(Duration::from_millis(duration_ms));
    let mut t = format!("{what} `{gate}` {verdict} in {took}");
    if !passed && !reason.is_empty() {
        t = format!("{t}\n{reason}");
    }
    (if passed { Tone::Good } else { Tone::Bad }, t)
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}
