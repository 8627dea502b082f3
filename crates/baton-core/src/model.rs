//! The one vocabulary every layer shares: statuses of runs, tasks and
//! attempts, kinds of runs, control requests and events, and what an agent is
//! doing. The store, the engine, the CLI, the server and the dashboard all
//! speak these enums; each is written to the store and to JSON as its
//! snake_case name, and an unknown name read back is an error, never a
//! default.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// A name read from the store or a request that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (known: {known})")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub known: String,
}

/// An enum of names: `as_str`, `FromStr`, `Display`, serde and SQLite.
macro_rules! names {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue {
                        what: $what,
                        value: s.to_string(),
                        known: [$($text),+].join(", "),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                v.as_str()?
                    .parse()
                    .map_err(|e: UnknownValue| FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

names! {
    /// Where a task stands.
    TaskStatus, "task status" {
        Pending = "pending",
        Running = "running",
        AwaitingApproval = "awaiting_approval",
        /// Finished and checked; waiting in (or going through) the merge queue.
        Merging = "merging",
        Succeeded = "succeeded",
        Failed = "failed",
        Stopped = "stopped",
        Conflicted = "conflicted",
        Skipped = "skipped",
    }
}

impl TaskStatus {
    /// The task has ended: nothing more happens to it unless a person retries it.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded
                | TaskStatus::Failed
                | TaskStatus::Stopped
                | TaskStatus::Conflicted
                | TaskStatus::Skipped
        )
    }

    /// Ended without succeeding: what waits on it cannot start, and it can be retried.
    pub fn is_bad_end(self) -> bool {
        self.is_finished() && self != TaskStatus::Succeeded
    }

    /// Whether a person may ask for `kind` on a task in this status.
    pub fn allows(self, kind: ControlKind) -> bool {
        use TaskStatus::*;
        match kind {
            ControlKind::Stop | ControlKind::Steer => {
                matches!(self, Pending | Running | AwaitingApproval)
            }
            ControlKind::Approve => self == AwaitingApproval,
            ControlKind::Retry => self.is_bad_end(),
            // Not actions on a task's state: a queued task is added, and any
            // task that has not ended takes a message.
            ControlKind::Add | ControlKind::Message | ControlKind::Answer => false,
            // Only a race waiting for approval takes it: offered on its candidates.
            ControlKind::Pick => false,
        }
    }

    /// Every action this status allows, for views that offer buttons.
    pub fn actions(self) -> Vec<ControlKind> {
        ControlKind::ALL
            .iter()
            .copied()
            .filter(|k| self.allows(*k))
            .collect()
    }

    /// The status in a sentence: "needs \"a\", which failed".
    pub fn past(self) -> &'static str {
        match self {
            TaskStatus::Failed => "failed",
            TaskStatus::Stopped => "was stopped",
            TaskStatus::Conflicted => "conflicted",
            TaskStatus::Skipped => "was skipped",
            _ => "did not succeed",
        }
    }

    /// Why a person should look at the task now, if they should.
    pub fn attention(self, activity: Option<Activity>) -> Option<&'static str> {
        match (self, activity) {
            (TaskStatus::AwaitingApproval, _) => Some("approval"),
            (TaskStatus::Failed, _) => Some("failed"),
            (TaskStatus::Conflicted, _) => Some("conflicted"),
            (TaskStatus::Running, Some(Activity::Stalled)) => Some("stalled"),
            (_, Some(Activity::WaitingAnswer)) => Some("question"),
            _ => None,
        }
    }
}

names! {
    /// How one attempt ended (or that it still runs).
    AttemptStatus, "attempt status" {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        TimedOut = "timed_out",
        Stopped = "stopped",
        Steered = "steered",
        Interrupted = "interrupted",
        /// The agent asked a person a question and ended its turn: the task
        /// waits for the answer, which the next attempt gets.
        Asked = "asked",
    }
}

impl AttemptStatus {
    /// Counts against the task's `retries` (a steer or an interruption does not).
    pub fn is_failure(self) -> bool {
        matches!(self, AttemptStatus::Failed | AttemptStatus::TimedOut)
    }
}

names! {
    /// What an attempt was for.
    AttemptKind, "attempt kind" {
        /// The task's own work (or its retry).
        Work = "work",
        /// Resolving a merge conflict with the integration branch.
        Resolve = "resolve",
        /// A race's judge, reading its candidates' work to name the winner.
        Judge = "judge",
    }
}

names! {
    /// Where a run stands.
    RunStatus, "run status" {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        /// Stopped by a signal or a server shutdown; `baton resume` continues it.
        Interrupted = "interrupted",
    }
}

names! {
    /// What started a run.
    RunKind, "run kind" {
        /// `baton run` or a plan started from the API.
        Plan = "plan",
        /// The standing run of `baton serve` that takes queued tasks.
        Service = "service",
    }
}

names! {
    /// What a person (or another program) asks of a running task.
    ControlKind, "request" {
        Stop = "stop",
        Steer = "steer",
        Approve = "approve",
        Retry = "retry",
        /// Take a task queued at run time (its plan text is in the store).
        Add = "add",
        /// Hand a task a message (its text is in the store's messages).
        Message = "message",
        /// A question of the task's agent was answered (the question's id).
        Answer = "answer",
        /// Another candidate replaces a race's winner before it merges (the
        /// candidate's id).
        Pick = "pick",
    }
}

names! {
    /// What a running agent is doing, from its own stream.
    Activity, "activity" {
        /// A pending task held back: the machine is short of memory.
        WaitingMemory = "waiting_memory",
        /// The provider limits its agent: it waits for the limit to pass.
        WaitingRateLimit = "waiting_rate_limit",
        /// Its agent asked a person a question and waits for the answer
        /// (with no process and no slot, or a script's `baton ask` waiting).
        WaitingAnswer = "waiting_answer",
        /// Its worktree is being made.
        Preparing = "preparing",
        /// `[workspace] setup` runs in its new worktree.
        Setup = "setup",
        /// The agent's process is starting.
        Starting = "starting",
        Working = "working",
        WaitingModel = "waiting_model",
        /// Its request waits at the model gateway for its account's limits
        /// (a provider's hold, `rpm`, `tpm`, `concurrency`).
        WaitingGateway = "waiting_gateway",
        RunningTool = "running_tool",
        Stalled = "stalled",
    }
}

names! {
    /// Everything that happens in a run is one of these, appended to the store.
    EventKind, "event kind" {
        RunStarted = "run_started",
        RunResumed = "run_resumed",
        RunFinished = "run_finished",
        /// baton was asked to stop (Ctrl-C, a signal, a server shutdown).
        Interrupt = "interrupt",
        BudgetExceeded = "budget_exceeded",
        TaskQueued = "task_queued",
        TaskStarted = "task_started",
        AttemptStarted = "attempt_started",
        AttemptFailed = "attempt_failed",
        Committed = "committed",
        CommitFailed = "commit_failed",
        GateStarted = "gate_started",
        GateFinished = "gate_finished",
        /// A `verify` check on a task's merge, before the integration branch moves.
        VerifyStarted = "verify_started",
        VerifyFinished = "verify_finished",
        /// A `verify` check failed: the task's work stays off the integration branch.
        VerifyFailed = "verify_failed",
        Stalled = "stalled",
        Steered = "steered",
        ApprovalNeeded = "approval_needed",
        Approved = "approved",
        MergeQueued = "merge_queued",
        Merged = "merged",
        /// Ended well without a merge (`merge = false`).
        Succeeded = "succeeded",
        Failed = "failed",
        Stopped = "stopped",
        Conflicted = "conflicted",
        Skipped = "skipped",
        Unskipped = "unskipped",
        /// The task's attempt was cut short by baton stopping; it runs again on resume.
        Interrupted = "interrupted",
        RetryRequested = "retry_requested",
        /// The agent switched its worktree away, or rewound or rewrote its branch.
        BranchRewritten = "branch_rewritten",
        /// Someone else moved the integration branch; baton put it back.
        IntegrationRestored = "integration_restored",
        /// The repository's config or hooks changed during the run.
        RepoChanged = "repo_changed",
        /// A running task's work would conflict with the integration branch as it is now.
        ConflictAhead = "conflict_ahead",
        /// A task's merge conflicted and a resolver attempt works on it.
        Resolving = "resolving",
        /// A ready task is held back (by `min_free_memory`).
        Waiting = "waiting",
        SetupStarted = "setup_started",
        SetupFinished = "setup_finished",
        TeardownStarted = "teardown_started",
        TeardownFinished = "teardown_finished",
        /// A task (or a person) sent a message; on the sender's transcript.
        MessageSent = "message_sent",
        /// A task got a message; on its transcript.
        MessageReceived = "message_received",
        /// The sandbox could not apply part of what the profile asked (limits).
        SandboxNotice = "sandbox_notice",
        /// A profile that could go through the model gateway but has no key
        /// there: its CLI's own login is used.
        GatewayNotice = "gateway_notice",
        /// A task's own service answers, at its address.
        ServiceReady = "service_ready",
        /// A race's winner was picked among its candidates (or none could be).
        Picked = "picked",
        /// A sandboxed agent's connection through baton's proxy, allowed or not.
        SandboxConnection = "sandbox_connection",
        AgentSession = "agent_session",
        AgentMessage = "agent_message",
        ToolCall = "tool_call",
        ToolResult = "tool_result",
        Usage = "usage",
        AgentRetry = "agent_retry",
        /// The provider limits the agent (rate limit, overload, quota).
        RateLimited = "rate_limited",
        /// Another profile took the task over (its agent's quota was used up).
        Fallback = "fallback",
        AgentError = "agent_error",
        AgentResult = "agent_result",
        /// The run's pull request was opened (`[land] mode = "pr"`).
        PullOpened = "pull_opened",
        /// A fix attempt started on the pull request (red checks, review
        /// comments, a conflict with its base).
        PullFix = "pull_fix",
        /// A fix attempt ended; its work pushed to the pull request, or why not.
        PullFixEnded = "pull_fix_ended",
        /// The base branch was merged into the pull request's branch.
        PullBaseMerged = "pull_base_merged",
        PullMerged = "pull_merged",
        /// Closed without a merge.
        PullClosed = "pull_closed",
        /// The pull request needs a person (fixes or budget used up).
        PullNeedsYou = "pull_needs_you",
        /// A task's agent asked a person a question (`ask`).
        QuestionAsked = "question_asked",
        /// A question was answered (by a person, or by its default at its timeout).
        QuestionAnswered = "question_answered",
        /// A question's time ran out with no answer and no default.
        QuestionExpired = "question_expired",
        /// A person said yes or no to a planner's plan (on the planner's run).
        PlanDecided = "plan_decided",
        /// A request of an agent's through the model gateway: its model,
        /// status and usage (or why it was refused or limited).
        GatewayRequest = "gateway_request",
    }
}

names! {
    /// What an item of the inbox (everything that needs a person) is about.
    ItemKind, "inbox item kind" {
        /// An agent asked a person (`answer`).
        Question = "question",
        /// A task passed its gates and waits for approval.
        Approval = "approval",
        Failed = "failed",
        Conflicted = "conflicted",
        /// A task waits out its provider's rate limit or quota.
        Limit = "limit",
        /// baton stopped fixing a pull request: a person is needed.
        Pull = "pull",
        /// A planner wrote a plan for a goal; it waits for a yes (`approve`
        /// runs it, `discard` drops it).
        Plan = "plan",
    }
}

names! {
    /// A provider API the agent CLIs speak (the model gateway's).
    Provider, "model provider" {
        /// Anthropic Messages (Claude Code).
        Anthropic = "anthropic",
        /// OpenAI Responses and Chat Completions (Codex).
        Openai = "openai",
        /// Gemini generateContent and streamGenerateContent (Gemini CLI).
        Gemini = "gemini",
    }
}

names! {
    /// What became of a planner's plan.
    PlanDecision, "plan decision" {
        /// A person said yes: it runs (as the decision's run).
        Approved = "approved",
        Discarded = "discarded",
    }
}

names! {
    /// Where a followed pull request stands.
    PullStatus, "pull request status" {
        /// baton watches it and fixes what goes wrong.
        Following = "following",
        /// Open, and nobody follows it (`follow = false`, or stopped).
        Open = "open",
        /// baton stopped fixing it: a person is needed.
        NeedsYou = "needs_you",
        Merged = "merged",
        Closed = "closed",
    }
}

impl EventKind {
    /// Events that mean a person should look now (the webhook, notifications).
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            EventKind::ApprovalNeeded
                | EventKind::Failed
                | EventKind::Conflicted
                | EventKind::Stalled
                | EventKind::PullNeedsYou
                | EventKind::QuestionAsked
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn names_round_trip_through_text_json_and_sqlite() {
        let conn = Connection::open_in_memory().unwrap();
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>().unwrap(), *s);
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<TaskStatus>(&json).unwrap(), *s);
            let back: TaskStatus = conn.query_row("SELECT ?1", [s], |r| r.get(0)).unwrap();
            assert_eq!(back, *s);
        }
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), *k);
        }
    }

    #[test]
    fn an_unknown_name_is_an_error_not_a_default() {
        let e = "runing".parse::<TaskStatus>().unwrap_err();
        assert!(
            e.to_string().contains("unknown task status \"runing\""),
            "{e}"
        );
        assert!(serde_json::from_str::<ControlKind>("\"halt\"").is_err());
        let conn = Connection::open_in_memory().unwrap();
        let read: rusqlite::Result<TaskStatus> = conn.query_row("SELECT 'bogus'", [], |r| r.get(0));
        assert!(read.is_err());
    }

    #[test]
    fn finished_and_bad_end_sets() {
        use TaskStatus::*;
        let finished: Vec<_> = TaskStatus::ALL.iter().filter(|s| s.is_finished()).collect();
        assert_eq!(
            finished,
            [&Succeeded, &Failed, &Stopped, &Conflicted, &Skipped]
        );
        assert!(!Succeeded.is_bad_end() && Skipped.is_bad_end() && !Merging.is_bad_end());
    }

    #[test]
    fn actions_follow_the_status() {
        use ControlKind::*;
        assert_eq!(TaskStatus::Running.actions(), [Stop, Steer]);
        assert_eq!(
            TaskStatus::AwaitingApproval.actions(),
            [Stop, Steer, Approve]
        );
        assert_eq!(TaskStatus::Merging.actions(), []);
        assert_eq!(TaskStatus::Conflicted.actions(), [Retry]);
        assert_eq!(TaskStatus::Succeeded.actions(), []);
    }

    #[test]
    fn agent_event_kinds_are_event_kinds() {
        for k in [
            "agent_session",
            "agent_message",
            "tool_call",
            "tool_result",
            "usage",
            "agent_retry",
            "agent_error",
            "agent_result",
        ] {
            assert!(k.parse::<EventKind>().is_ok(), "{k}");
        }
    }
}
