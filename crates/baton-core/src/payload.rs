//! What each event says: one variant per [`EventKind`], with its data. The
//! store keeps an event as its kind and its data (a JSON object); every
//! layer writes and reads it as a [`Payload`], never by key. The JSON is
//! exactly what the API and the dashboard have always read: a key that only
//! some events of a kind carry is left out when it is not there, and an
//! unset value that is always carried is `null`. Read back, a plain value
//! an older baton did not write yet reads as its default.

use crate::adapter::AgentEvent;
use crate::model::{Activity, AttemptKind, EventKind, PlanDecision, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A check's end: a gate's, a `verify` check's, setup's or teardown's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckEnd {
    pub gate: String,
    pub passed: bool,
    pub duration_ms: u64,
    /// Why it failed, in words; empty when it passed.
    pub reason: String,
}

/// A message between tasks (or from a person: `from` is None).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Note {
    pub id: i64,
    pub from: Option<String>,
    pub to: String,
    pub text: String,
}

/// A question an agent asked a person.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Question {
    pub text: String,
    /// The answers it offers; empty: any text.
    pub options: Vec<String>,
    /// The answer given when its time runs out; None: the task fails then.
    #[serde(rename = "default", skip_serializing_if = "Option::is_none")]
    pub default_answer: Option<String>,
    /// When its time runs out (ms since the epoch); None: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// An event's data, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Payload {
    RunStarted {
        #[serde(default)]
        plan: String,
        #[serde(default)]
        base: String,
        #[serde(default)]
        tasks: usize,
    },
    RunResumed {
        #[serde(default)]
        pid: u32,
    },
    RunFinished {
        status: RunStatus,
    },
    /// baton was asked to stop; `reason` when it cannot go on.
    Interrupt {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    BudgetExceeded {
        #[serde(default)]
        spent: f64,
        #[serde(default)]
        budget: f64,
    },
    TaskQueued {
        #[serde(default)]
        agent: String,
    },
    TaskStarted {
        #[serde(default)]
        attempts_before: u32,
    },
    AttemptStarted {
        #[serde(default)]
        attempt: u32,
        kind: AttemptKind,
        /// Whether it starts with feedback.
        #[serde(default)]
        feedback: bool,
        #[serde(default)]
        resumes_session: bool,
    },
    AttemptFailed {
        #[serde(default)]
        attempt: u32,
        #[serde(default)]
        reason: String,
        #[serde(default)]
        retry: bool,
    },
    Committed {
        commit: Option<String>,
    },
    CommitFailed {
        #[serde(default)]
        error: String,
    },
    GateStarted {
        #[serde(default)]
        gate: String,
    },
    GateFinished(CheckEnd),
    VerifyStarted {
        #[serde(default)]
        gate: String,
    },
    VerifyFinished(CheckEnd),
    VerifyFailed {
        #[serde(default)]
        reason: String,
        #[serde(default)]
        retry: bool,
    },
    Stalled {
        activity: Activity,
    },
    Steered {
        #[serde(default)]
        message: String,
    },
    ApprovalNeeded {
        #[serde(default)]
        commit: String,
    },
    Approved {},
    MergeQueued {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit: Option<String>,
    },
    Merged {
        #[serde(default)]
        changes: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        integration: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        found_on_resume: bool,
    },
    /// Ended well without a merge (`merge = false`).
    Succeeded {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit: Option<String>,
        #[serde(default)]
        merged: bool,
    },
    Failed {
        #[serde(default)]
        reason: String,
    },
    Stopped {
        #[serde(default)]
        reason: String,
    },
    /// A merge conflict (`paths`), or a resolver that could not resolve one
    /// (`reason`).
    Conflicted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        paths: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Skipped {
        #[serde(default)]
        reason: String,
    },
    Unskipped {},
    /// The attempt was cut short: by a shutdown (nothing said), by baton
    /// itself (`reason`), or found dead on resume (`resumed`).
    Interrupted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resumed: bool,
    },
    RetryRequested {},
    BranchRewritten {
        #[serde(default)]
        warnings: Vec<String>,
        #[serde(default)]
        kept: Vec<String>,
    },
    IntegrationRestored {
        #[serde(default)]
        foreign: String,
        #[serde(default)]
        kept: String,
    },
    RepoChanged {
        #[serde(default)]
        changes: Vec<String>,
        #[serde(default)]
        noticed_when: String,
    },
    ConflictAhead {
        #[serde(default)]
        paths: Vec<String>,
        #[serde(default)]
        integration: String,
    },
    Resolving {
        #[serde(default)]
        paths: Vec<String>,
    },
    /// A task waits: `for` is `memory` or `rate_limit`. A running task
    /// waiting out its provider's limit also says on what, and until when.
    Waiting {
        #[serde(rename = "for")]
        for_: String,
        #[serde(default)]
        reason: String,
        #[serde(flatten)]
        limit: Option<LimitWait>,
    },
    SetupStarted {
        #[serde(default)]
        gate: String,
    },
    SetupFinished(CheckEnd),
    TeardownStarted {
        #[serde(default)]
        gate: String,
    },
    TeardownFinished(CheckEnd),
    MessageSent(Note),
    MessageReceived(Note),
    SandboxNotice {
        #[serde(default)]
        notice: String,
    },
    GatewayNotice {
        #[serde(default)]
        notice: String,
    },
    /// A task's own service (`[[workspace.service]]`) answers.
    ServiceReady {
        name: String,
        /// Where the task reaches it (`127.0.0.1:PORT`).
        addr: String,
        #[serde(default)]
        ms: u64,
    },
    /// A race's pick: who won among its candidates, and why.
    Picked(crate::pick::Picked),
    SandboxConnection {
        #[serde(default)]
        host: String,
        #[serde(default)]
        allowed: bool,
    },
    Fallback {
        #[serde(default)]
        from: String,
        #[serde(default)]
        to: String,
        #[serde(default)]
        reason: String,
    },
    PullOpened {
        number: u64,
        #[serde(default)]
        url: String,
    },
    PullFix {
        number: u64,
        /// `checks`, `review` or `conflict`.
        #[serde(default)]
        why: String,
        /// The task that does it.
        #[serde(default)]
        task: String,
        /// Which fix this is (1 for the first).
        #[serde(default)]
        fix: u32,
    },
    PullFixEnded {
        number: u64,
        #[serde(default)]
        task: String,
        /// The commit pushed to the pull request; None: nothing was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pushed: Option<String>,
        #[serde(default)]
        reason: String,
    },
    PullBaseMerged {
        number: u64,
        #[serde(default)]
        commit: String,
    },
    PullMerged {
        number: u64,
        #[serde(default)]
        commit: String,
    },
    PullClosed {
        number: u64,
    },
    PullNeedsYou {
        number: u64,
        #[serde(default)]
        reason: String,
    },
    /// The event's own number is the question's id (and its inbox item's).
    QuestionAsked(Question),
    QuestionAnswered {
        question: i64,
        #[serde(default)]
        answer: String,
        /// `person`, or `default` when its timeout gave the default answer.
        #[serde(default)]
        by: String,
    },
    QuestionExpired {
        question: i64,
        #[serde(default)]
        text: String,
    },
    /// An agent's request through the model gateway.
    GatewayRequest {
        provider: crate::model::Provider,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<crate::gateway::WireUsage>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost_usd: Option<f64>,
        #[serde(default)]
        ms: u64,
        /// How long the provider asked its account to wait (a limit).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
        /// Why the gateway refused it, or what the provider said when it
        /// limited it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// On a planner's run: what became of its plan.
    PlanDecided {
        decision: PlanDecision,
        /// The run it became, when it was approved.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<String>,
    },
    /// What the agent's stream said (session, message, tool call and
    /// result, usage, retry, rate limit, error, turn end): its kind is the
    /// agent event's.
    #[serde(skip)]
    Agent(AgentEvent),
}

/// On what a running task waits out a provider's limit, and until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitWait {
    pub profile: String,
    pub account: Option<String>,
    pub until_ms: i64,
    /// The limit is one the model gateway saw (and counted) already.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub at_wire: bool,
}

/// The kinds an agent's stream gives.
const AGENT_KINDS: &[EventKind] = &[
    EventKind::AgentSession,
    EventKind::AgentMessage,
    EventKind::ToolCall,
    EventKind::ToolResult,
    EventKind::Usage,
    EventKind::AgentRetry,
    EventKind::RateLimited,
    EventKind::AgentError,
    EventKind::AgentResult,
];

impl Payload {
    /// How a task that ended badly (or was skipped) says why.
    pub fn ended(status: crate::model::TaskStatus, reason: String) -> Payload {
        use crate::model::TaskStatus as S;
        match status {
            S::Failed => Payload::Failed { reason },
            S::Stopped => Payload::Stopped { reason },
            S::Skipped => Payload::Skipped { reason },
            S::Conflicted => Payload::Conflicted {
                paths: None,
                reason: Some(reason),
            },
            _ => Payload::Succeeded {
                commit: None,
                merged: false,
            },
        }
    }

    /// The kind and the data the store keeps (keys in order, as JSON
    /// objects always were).
    pub fn into_parts(self) -> (EventKind, Value) {
        let kind = self.kind();
        if let Payload::Agent(e) = self {
            return (kind, serde_json::to_value(&e).unwrap_or(Value::Null));
        }
        // Adjacently tagged: the data is the value under "data".
        let data = match serde_json::to_value(&self) {
            Ok(Value::Object(mut tagged)) => tagged.remove("data"),
            _ => None,
        };
        (kind, data.unwrap_or_else(|| serde_json::json!({})))
    }

    /// Why, for the kinds that say why (a failure, a stop, a skip, a wait).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Payload::Interrupt { reason }
            | Payload::Conflicted { reason, .. }
            | Payload::Interrupted { reason, .. } => reason.as_deref(),
            Payload::AttemptFailed { reason, .. }
            | Payload::VerifyFailed { reason, .. }
            | Payload::Failed { reason }
            | Payload::Stopped { reason }
            | Payload::Skipped { reason }
            | Payload::Waiting { reason, .. }
            | Payload::Fallback { reason, .. }
            | Payload::PullNeedsYou { reason, .. } => Some(reason),
            Payload::GateFinished(end)
            | Payload::VerifyFinished(end)
            | Payload::SetupFinished(end)
            | Payload::TeardownFinished(end) => Some(&end.reason),
            _ => None,
        }
    }

    /// Its kind (without serializing it).
    pub fn kind(&self) -> EventKind {
        match self {
            Payload::RunStarted { .. } => EventKind::RunStarted,
            Payload::RunResumed { .. } => EventKind::RunResumed,
            Payload::RunFinished { .. } => EventKind::RunFinished,
            Payload::Interrupt { .. } => EventKind::Interrupt,
            Payload::BudgetExceeded { .. } => EventKind::BudgetExceeded,
            Payload::TaskQueued { .. } => EventKind::TaskQueued,
            Payload::TaskStarted { .. } => EventKind::TaskStarted,
            Payload::AttemptStarted { .. } => EventKind::AttemptStarted,
            Payload::AttemptFailed { .. } => EventKind::AttemptFailed,
            Payload::Committed { .. } => EventKind::Committed,
            Payload::CommitFailed { .. } => EventKind::CommitFailed,
            Payload::GateStarted { .. } => EventKind::GateStarted,
            Payload::GateFinished(..) => EventKind::GateFinished,
            Payload::VerifyStarted { .. } => EventKind::VerifyStarted,
            Payload::VerifyFinished(..) => EventKind::VerifyFinished,
            Payload::VerifyFailed { .. } => EventKind::VerifyFailed,
            Payload::Stalled { .. } => EventKind::Stalled,
            Payload::Steered { .. } => EventKind::Steered,
            Payload::ApprovalNeeded { .. } => EventKind::ApprovalNeeded,
            Payload::Approved { .. } => EventKind::Approved,
            Payload::MergeQueued { .. } => EventKind::MergeQueued,
            Payload::Merged { .. } => EventKind::Merged,
            Payload::Succeeded { .. } => EventKind::Succeeded,
            Payload::Failed { .. } => EventKind::Failed,
            Payload::Stopped { .. } => EventKind::Stopped,
            Payload::Conflicted { .. } => EventKind::Conflicted,
            Payload::Skipped { .. } => EventKind::Skipped,
            Payload::Unskipped { .. } => EventKind::Unskipped,
            Payload::Interrupted { .. } => EventKind::Interrupted,
            Payload::RetryRequested { .. } => EventKind::RetryRequested,
            Payload::BranchRewritten { .. } => EventKind::BranchRewritten,
            Payload::IntegrationRestored { .. } => EventKind::IntegrationRestored,
            Payload::RepoChanged { .. } => EventKind::RepoChanged,
            Payload::ConflictAhead { .. } => EventKind::ConflictAhead,
            Payload::Resolving { .. } => EventKind::Resolving,
            Payload::Waiting { .. } => EventKind::Waiting,
            Payload::SetupStarted { .. } => EventKind::SetupStarted,
            Payload::SetupFinished(..) => EventKind::SetupFinished,
            Payload::TeardownStarted { .. } => EventKind::TeardownStarted,
            Payload::TeardownFinished(..) => EventKind::TeardownFinished,
            Payload::MessageSent(..) => EventKind::MessageSent,
            Payload::MessageReceived(..) => EventKind::MessageReceived,
            Payload::SandboxNotice { .. } => EventKind::SandboxNotice,
            Payload::GatewayNotice { .. } => EventKind::GatewayNotice,
            Payload::ServiceReady { .. } => EventKind::ServiceReady,
            Payload::Picked(..) => EventKind::Picked,
            Payload::SandboxConnection { .. } => EventKind::SandboxConnection,
            Payload::Fallback { .. } => EventKind::Fallback,
            Payload::PullOpened { .. } => EventKind::PullOpened,
            Payload::PullFix { .. } => EventKind::PullFix,
            Payload::PullFixEnded { .. } => EventKind::PullFixEnded,
            Payload::PullBaseMerged { .. } => EventKind::PullBaseMerged,
            Payload::PullMerged { .. } => EventKind::PullMerged,
            Payload::PullClosed { .. } => EventKind::PullClosed,
            Payload::PullNeedsYou { .. } => EventKind::PullNeedsYou,
            Payload::QuestionAsked(..) => EventKind::QuestionAsked,
            Payload::QuestionAnswered { .. } => EventKind::QuestionAnswered,
            Payload::QuestionExpired { .. } => EventKind::QuestionExpired,
            Payload::PlanDecided { .. } => EventKind::PlanDecided,
            Payload::GatewayRequest { .. } => EventKind::GatewayRequest,
            Payload::Agent(e) => e.kind(),
        }
    }

    /// An event read back from its kind and data; an error names what does
    /// not fit (data an older baton wrote may lack what this one needs).
    pub fn read(kind: EventKind, data: &Value) -> Result<Payload, serde_json::Error> {
        if AGENT_KINDS.contains(&kind) {
            return serde_json::from_value(data.clone()).map(Payload::Agent);
        }
        let tagged = serde_json::json!({ "kind": kind, "data": data });
        serde_json::from_value(tagged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::{AgentEvent, UsageMode, UsageReport};

    /// One payload of each kind; the match makes a new kind add its sample.
    fn sample(kind: EventKind) -> Payload {
        let s = |t: &str| t.to_string();
        let end = CheckEnd {
            gate: s("make"),
            passed: false,
            duration_ms: 12,
            reason: s("exit 2"),
        };
        let note = Note {
            id: 3,
            from: None,
            to: s("a"),
            text: s("hi"),
        };
        use EventKind as K;
        match kind {
            K::RunStarted => Payload::RunStarted {
                plan: s("p.toml"),
                base: s("abc"),
                tasks: 2,
            },
            K::RunResumed => Payload::RunResumed { pid: 7 },
            K::RunFinished => Payload::RunFinished {
                status: RunStatus::Succeeded,
            },
            K::Interrupt => Payload::Interrupt {
                reason: Some(s("gone")),
            },
            K::BudgetExceeded => Payload::BudgetExceeded {
                spent: 2.0,
                budget: 1.5,
            },
            K::TaskQueued => Payload::TaskQueued { agent: s("sh") },
            K::TaskStarted => Payload::TaskStarted { attempts_before: 1 },
            K::AttemptStarted => Payload::AttemptStarted {
                attempt: 2,
                kind: AttemptKind::Work,
                feedback: true,
                resumes_session: false,
            },
            K::AttemptFailed => Payload::AttemptFailed {
                attempt: 1,
                reason: s("x"),
                retry: true,
            },
            K::Committed => Payload::Committed { commit: None },
            K::CommitFailed => Payload::CommitFailed { error: s("e") },
            K::GateStarted => Payload::GateStarted { gate: s("make") },
            K::GateFinished => Payload::GateFinished(end),
            K::VerifyStarted => Payload::VerifyStarted { gate: s("make") },
            K::VerifyFinished => Payload::VerifyFinished(end),
            K::VerifyFailed => Payload::VerifyFailed {
                reason: s("x"),
                retry: true,
            },
            K::Stalled => Payload::Stalled {
                activity: Activity::Stalled,
            },
            K::Steered => Payload::Steered { message: s("go") },
            K::ApprovalNeeded => Payload::ApprovalNeeded { commit: s("c") },
            K::Approved => Payload::Approved {},
            K::MergeQueued => Payload::MergeQueued {
                commit: Some(s("c")),
            },
            K::Merged => Payload::Merged {
                changes: true,
                integration: Some(s("h")),
                found_on_resume: true,
            },
            K::Succeeded => Payload::Succeeded {
                commit: Some(s("c")),
                merged: false,
            },
            K::Failed => Payload::Failed { reason: s("x") },
            K::Stopped => Payload::Stopped { reason: s("x") },
            K::Conflicted => Payload::Conflicted {
                paths: Some(vec![s("f")]),
                reason: None,
            },
            K::Skipped => Payload::Skipped { reason: s("x") },
            K::Unskipped => Payload::Unskipped {},
            K::Interrupted => Payload::Interrupted {
                reason: None,
                resumed: true,
            },
            K::RetryRequested => Payload::RetryRequested {},
            K::BranchRewritten => Payload::BranchRewritten {
                warnings: vec![s("w")],
                kept: vec![],
            },
            K::IntegrationRestored => Payload::IntegrationRestored {
                foreign: s("f"),
                kept: s("k"),
            },
            K::RepoChanged => Payload::RepoChanged {
                changes: vec![s("c")],
                noticed_when: s("a"),
            },
            K::ConflictAhead => Payload::ConflictAhead {
                paths: vec![s("f")],
                integration: s("h"),
            },
            K::Resolving => Payload::Resolving {
                paths: vec![s("f")],
            },
            K::Waiting => Payload::Waiting {
                for_: s("rate_limit"),
                reason: s("waiting"),
                limit: Some(LimitWait {
                    profile: s("p"),
                    account: None,
                    until_ms: 5,
                    at_wire: false,
                }),
            },
            K::SetupStarted => Payload::SetupStarted { gate: s("make") },
            K::SetupFinished => Payload::SetupFinished(end),
            K::TeardownStarted => Payload::TeardownStarted { gate: s("make") },
            K::TeardownFinished => Payload::TeardownFinished(end),
            K::MessageSent => Payload::MessageSent(note),
            K::MessageReceived => Payload::MessageReceived(note),
            K::SandboxNotice => Payload::SandboxNotice { notice: s("n") },
            K::GatewayNotice => Payload::GatewayNotice { notice: s("n") },
            K::ServiceReady => Payload::ServiceReady {
                name: s("db"),
                addr: s("127.0.0.1:20001"),
                ms: 900,
            },
            K::Picked => Payload::Picked(crate::pick::Picked {
                mode: s("first"),
                winner: Some(s("t.2")),
                reason: s("t.2 passed its gates first"),
                candidates: Vec::new(),
            }),
            K::SandboxConnection => Payload::SandboxConnection {
                host: s("h"),
                allowed: false,
            },
            K::Fallback => Payload::Fallback {
                from: s("a"),
                to: s("b"),
                reason: s("r"),
            },
            K::PullOpened => Payload::PullOpened {
                number: 4,
                url: s("https://x/pull/4"),
            },
            K::PullFix => Payload::PullFix {
                number: 4,
                why: s("checks"),
                task: s("fix-1-checks"),
                fix: 1,
            },
            K::PullFixEnded => Payload::PullFixEnded {
                number: 4,
                task: s("fix-1-checks"),
                pushed: Some(s("abc")),
                reason: s(""),
            },
            K::PullBaseMerged => Payload::PullBaseMerged {
                number: 4,
                commit: s("abc"),
            },
            K::PullMerged => Payload::PullMerged {
                number: 4,
                commit: s("abc"),
            },
            K::PullClosed => Payload::PullClosed { number: 4 },
            K::PullNeedsYou => Payload::PullNeedsYou {
                number: 4,
                reason: s("3 fixes used"),
            },
            K::QuestionAsked => Payload::QuestionAsked(Question {
                text: s("Which?"),
                options: vec![s("a"), s("b")],
                default_answer: Some(s("a")),
                expires_at: Some(9),
            }),
            K::QuestionAnswered => Payload::QuestionAnswered {
                question: 5,
                answer: s("b"),
                by: s("person"),
            },
            K::QuestionExpired => Payload::QuestionExpired {
                question: 5,
                text: s("Which?"),
            },
            K::GatewayRequest => Payload::GatewayRequest {
                provider: crate::model::Provider::Anthropic,
                model: Some(s("claude-x")),
                status: 200,
                usage: Some(crate::gateway::WireUsage {
                    input: 10,
                    output: 2,
                    cache_read: 5,
                    cache_write: 0,
                }),
                cost_usd: Some(0.01),
                ms: 40,
                retry_after: None,
                note: None,
            },
            K::PlanDecided => Payload::PlanDecided {
                decision: crate::model::PlanDecision::Approved,
                run: Some(s("r2")),
            },
            K::AgentSession => Payload::Agent(AgentEvent::Session {
                id: s("i"),
                model: None,
            }),
            K::AgentMessage => Payload::Agent(AgentEvent::Message { text: s("t") }),
            K::ToolCall => Payload::Agent(AgentEvent::ToolCall {
                id: s("i"),
                name: s("Bash"),
                kind: crate::adapter::ToolKind::Command,
                detail: s("ls"),
            }),
            K::ToolResult => Payload::Agent(AgentEvent::ToolResult {
                id: s("i"),
                ok: true,
                detail: s(""),
            }),
            K::Usage => Payload::Agent(AgentEvent::Usage(UsageReport {
                input_tokens: 1,
                output_tokens: 2,
                cost_usd: None,
                model: None,
                mode: UsageMode::Add,
            })),
            K::AgentRetry => Payload::Agent(AgentEvent::Retrying { detail: s("d") }),
            K::RateLimited => {
                Payload::Agent(AgentEvent::RateLimited(crate::adapter::limits::Limit {
                    kind: crate::adapter::limits::LimitKind::RateLimit,
                    retry_after_ms: None,
                    resets_at: None,
                    detail: s("d"),
                }))
            }
            K::AgentError => Payload::Agent(AgentEvent::Error { message: s("m") }),
            K::AgentResult => Payload::Agent(AgentEvent::TurnEnd {
                result: s("r"),
                is_error: false,
            }),
        }
    }

    #[test]
    fn every_kind_goes_to_the_store_and_back_as_itself() {
        for &kind in EventKind::ALL {
            let p = sample(kind);
            let (k, data) = p.clone().into_parts();
            assert_eq!(k, kind);
            assert_eq!(p.kind(), kind);
            assert!(data.is_object(), "{kind}: {data}");
            assert_eq!(Payload::read(kind, &data).unwrap(), p, "{kind}");
        }
    }

    /// The bytes the API and the dashboard have always read.
    #[test]
    fn data_keeps_the_shapes_each_kind_always_had() {
        let data = |p: Payload| p.into_parts().1.to_string();
        let merged = Payload::Merged {
            changes: false,
            integration: None,
            found_on_resume: false,
        };
        assert_eq!(data(merged), r#"{"changes":false}"#);
        let board_wait = Payload::Waiting {
            for_: "memory".into(),
            reason: "short".into(),
            limit: None,
        };
        assert_eq!(data(board_wait), r#"{"for":"memory","reason":"short"}"#);
        assert_eq!(
            data(sample(EventKind::Waiting)),
            r#"{"account":null,"for":"rate_limit","profile":"p","reason":"waiting","until_ms":5}"#
        );
        assert_eq!(data(Payload::Interrupt { reason: None }), "{}");
        assert_eq!(data(Payload::Approved {}), "{}");
        assert_eq!(data(sample(EventKind::Committed)), r#"{"commit":null}"#);
        assert_eq!(
            data(sample(EventKind::MessageSent)),
            r#"{"from":null,"id":3,"text":"hi","to":"a"}"#
        );
        assert_eq!(
            data(sample(EventKind::AgentMessage)),
            r#"{"text":"t","type":"message"}"#
        );
        assert_eq!(
            data(sample(EventKind::GateFinished)),
            r#"{"duration_ms":12,"gate":"make","passed":false,"reason":"exit 2"}"#
        );
    }

    #[test]
    fn data_that_does_not_fit_its_kind_is_an_error_not_a_guess() {
        let bad = serde_json::json!({ "attempt": "one" });
        assert!(Payload::read(EventKind::AttemptFailed, &bad).is_err());
        assert!(Payload::read(EventKind::AgentMessage, &serde_json::json!({})).is_err());
    }
}
