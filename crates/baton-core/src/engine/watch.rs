//! Following an agent's stream while it runs: its events into the store,
//! what it is doing (activity), its usage and cost (reported to the engine
//! for the run budget), and the task's own budget.

use super::messages::{WorkerCmd, WorkerNote};
use super::meter::Meter;
use super::shared::Shared;
use super::supervise::AttemptSink;
use crate::adapter::AgentEvent;
use crate::clock::now_ms;
use crate::model::{Activity, EventKind};
use crate::store::AttemptUsage;
use serde_json::json;

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
}

impl Watch<'_> {
    fn set_activity(&mut self, a: Activity) {
        if self.activity != Some(a) {
            self.activity = Some(a);
            let sh = self.sh;
            let _ = sh
                .store
                .set_activity(&sh.run_id, self.task, Some(a), Some(now_ms()));
        }
    }

    fn event(&mut self, e: &AgentEvent) -> Option<WorkerCmd> {
        let data = serde_json::to_value(e).unwrap_or_default();
        let sh = self.sh;
        let _ = sh
            .store
            .event(&sh.run_id, Some(self.task), Some(self.n), e.kind(), &data);
        match e {
            AgentEvent::Session { id, model } => {
                if !id.is_empty() {
                    self.session = Some(id.clone());
                    let _ = sh
                        .store
                        .set_attempt_session(&sh.run_id, self.task, self.n, id);
                }
                if model.is_some() && self.meter.model.is_none() {
                    self.meter.model = model.clone();
                }
                self.set_activity(Activity::WaitingModel);
            }
            AgentEvent::Message { .. } | AgentEvent::TurnEnd { .. } => {
                self.set_activity(Activity::Working)
            }
            AgentEvent::ToolCall { .. } => self.set_activity(Activity::RunningTool),
            AgentEvent::ToolResult { .. } | AgentEvent::Retrying { .. } => {
                self.set_activity(Activity::WaitingModel)
            }
            AgentEvent::Error { message } => self.last_error = Some(message.clone()),
            AgentEvent::Usage(u) => {
                self.meter.apply(u);
                return self.spent();
            }
        }
        None
    }

    /// Records the attempt's usage, tells the engine what it cost, and
    /// enforces the task's budget.
    fn spent(&mut self) -> Option<WorkerCmd> {
        let sh = self.sh;
        let cost = self.meter.cost();
        let usage = AttemptUsage {
            input_tokens: Some(self.meter.input),
            output_tokens: Some(self.meter.output),
            cost_usd: cost,
            model: self.meter.model.as_deref(),
        };
        let _ = sh
            .store
            .set_attempt_usage(&sh.run_id, self.task, self.n, &usage);
        let cost = cost?;
        let _ = sh.notes.send(WorkerNote::Spent {
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
    fn started(&mut self, pgid: i32) {
        let sh = self.sh;
        let _ = sh
            .store
            .set_attempt_pgid(&sh.run_id, self.task, self.n, pgid);
        self.set_activity(Activity::Starting);
    }

    fn output(&mut self) {
        if matches!(self.activity, Some(Activity::Starting | Activity::Stalled)) {
            self.set_activity(Activity::Working);
        }
    }

    fn events(&mut self, events: &[AgentEvent]) -> Option<WorkerCmd> {
        events.iter().find_map(|e| self.event(e))
    }

    fn stalled(&mut self) -> Option<WorkerCmd> {
        self.set_activity(Activity::Stalled);
        let sh = self.sh;
        let data = json!({ "activity": "stalled" });
        let _ = sh.store.event(
            &sh.run_id,
            Some(self.task),
            Some(self.n),
            EventKind::Stalled,
            &data,
        );
        None
    }
}
