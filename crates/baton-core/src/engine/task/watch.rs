//! Following an agent's stream while it runs: its events into the store,
//! what it is doing (activity), its usage and cost (reported to the engine
//! for the run budget), and the task's own budget.

use super::meter::Meter;
use crate::adapter::AgentEvent;
use crate::clock::now_ms;
use crate::engine::messages::{WorkerCmd, WorkerNote};
use crate::engine::process::supervise::AttemptSink;
use crate::engine::shared::Shared;
use crate::model::Activity;
use crate::payload::Payload;
use crate::store::AttemptUsage;

pub(crate) struct Watch<'a> {
    pub sh: &'a Shared,
    pub task: &'a str,
    pub n: u32,
    pub activity: Option<Activity>,
    pub meter: Meter,
    /// What earlier attempts of the task spent, for the task's budget.
    pub prior_cost: f64,
    pub budget: Option<f64>,
    /// The agent's session, once it says it.
    pub session: Option<String>,
    pub last_error: Option<String>,
    /// How many of the agent's `baton ask`s wait for an answer now: its
    /// output then is not work, nor its silence a stall.
    pub asking: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
}

impl Watch<'_> {
    fn waits_answer(&self) -> bool {
        self.asking
            .as_ref()
            .is_some_and(|a| a.load(std::sync::atomic::Ordering::SeqCst) > 0)
    }

    async fn set_activity(&mut self, a: Activity) {
        if self.activity == Some(a) {
            return;
        }
        self.activity = Some(a);
        let task = self.task.to_string();
        self.sh
            .write("activity", move |s, run| {
                s.set_activity(run, &task, Some(a), Some(now_ms()))
            })
            .await;
    }

    async fn event(&mut self, e: &AgentEvent) -> Option<WorkerCmd> {
        let said = Payload::Agent(e.clone());
        self.sh.event(Some(self.task), Some(self.n), said).await;
        match e {
            AgentEvent::Session { id, model } => {
                if !id.is_empty() {
                    self.session = Some(id.clone());
                    let (task, n, id) = (self.task.to_string(), self.n, id.clone());
                    self.sh
                        .write("set attempt session", move |s, run| {
                            s.set_attempt_session(run, &task, n, &id)
                        })
                        .await;
                }
                if model.is_some() && self.meter.model.is_none() {
                    self.meter.model = model.clone();
                }
                self.set_activity(Activity::WaitingModel).await;
            }
            AgentEvent::Message { .. } | AgentEvent::TurnEnd { .. } => {
                self.set_activity(Activity::Working).await
            }
            AgentEvent::ToolCall { .. } => self.set_activity(Activity::RunningTool).await,
            AgentEvent::ToolResult { .. }
            | AgentEvent::Retrying { .. }
            | AgentEvent::RateLimited(_) => self.set_activity(Activity::WaitingModel).await,
            AgentEvent::Error { message } => self.last_error = Some(message.clone()),
            AgentEvent::Usage(u) => {
                self.meter.apply(u);
                return self.spent().await;
            }
        }
        None
    }

    /// Records the attempt's usage, tells the engine what it cost, and
    /// enforces the task's budget.
    async fn spent(&mut self) -> Option<WorkerCmd> {
        let cost = self.meter.cost();
        let (input, output) = (self.meter.input, self.meter.output);
        let model = self.meter.model.clone();
        let (task, n) = (self.task.to_string(), self.n);
        self.sh
            .write("usage", move |s, run| {
                let usage = AttemptUsage {
                    input_tokens: Some(input),
                    output_tokens: Some(output),
                    cost_usd: cost,
                    model: model.as_deref(),
                };
                s.set_attempt_usage(run, &task, n, &usage)
            })
            .await;
        let cost = cost?;
        let _ = self.sh.notes.send(WorkerNote::Spent {
            task: self.task.to_string(),
            attempt: self.n,
            usd: cost,
        });
        let budget = self.budget?;
        let spent = self.prior_cost + cost;
        (spent > budget).then(|| {
            WorkerCmd::OverBudget(format!(
                "budget exceeded: the task spent ${spent:.4} of its budget_usd ${budget:.4}"
            ))
        })
    }
}

impl AttemptSink for Watch<'_> {
    async fn delivered(&mut self, id: i64) {
        self.sh
            .write("mark delivered", move |s, _| s.mark_delivered(id))
            .await;
    }

    async fn started(&mut self, pgid: i32) {
        let (task, n) = (self.task.to_string(), self.n);
        self.sh
            .write("set attempt pgid", move |s, run| {
                s.set_attempt_pgid(run, &task, n, pgid)
            })
            .await;
        self.set_activity(Activity::Starting).await;
    }

    async fn output(&mut self) {
        if self.waits_answer() {
            return;
        }
        if matches!(self.activity, Some(Activity::Starting | Activity::Stalled)) {
            self.set_activity(Activity::Working).await;
        }
    }

    async fn events(&mut self, events: &[AgentEvent]) -> Option<WorkerCmd> {
        for e in events {
            if let Some(cmd) = self.event(e).await {
                return Some(cmd);
            }
        }
        None
    }

    async fn stalled(&mut self) -> Option<WorkerCmd> {
        if self.waits_answer() {
            return None;
        }
        self.set_activity(Activity::Stalled).await;
        let data = Payload::Stalled {
            activity: Activity::Stalled,
        };
        self.sh.event(Some(self.task), Some(self.n), data).await;
        None
    }
}
