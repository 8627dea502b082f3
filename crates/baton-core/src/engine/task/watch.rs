//! Following an agent's stream while it runs: its events into the store,
//! what it is doing (activity), its usage and cost (reported to the engine
//! for the run budget), and the task's own budget.

use super::meter::Meter;
use crate::adapter::limits::{self, Limit, LimitKind};
use crate::adapter::AgentEvent;
use crate::clock::now_ms;
use crate::engine::messages::{WorkerCmd, WorkerNote};
use crate::engine::process::supervise::AttemptSink;
use crate::engine::shared::Shared;
use crate::gateway::{Gateway, Wire};
use crate::model::Activity;
use crate::payload::Payload;
use crate::store::{AttemptUsage, Reported, WireCount};
use std::sync::Arc;

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
    /// The attempt's pass through the model gateway (the gateway and its
    /// token): its usage is then the wire's, and what the agent says it
    /// used is kept beside it (`reported`).
    pub gate: Option<(Arc<dyn Gateway>, String)>,
    /// The profile's model: a request for a model with no price is priced
    /// as it (so that a budget still holds).
    pub priced_as: Option<String>,
    pub reported: Meter,
    pub wire: WireCount,
    /// The attempt's profile, whose account a limit seen at the wire holds.
    pub profile: &'a str,
    /// The provider's last limit on the attempt's requests, unless a
    /// request went through after it: how the attempt ended, when its
    /// agent gave up on it.
    pub wire_limit: Option<Limit>,
    /// The provider limited one of the attempt's requests (its own event
    /// counts the limit).
    pub wire_limited: bool,
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
            AgentEvent::Usage(u) if self.gate.is_some() => {
                self.reported.apply(u);
                self.record_reported().await;
            }
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
        // Before anything is written: the agent's next request may be on
        // its way already.
        let crossed = self.crossed();
        self.record_spent(crossed).await
    }

    /// Records the usage; the engine is told the cost, and a crossed
    /// budget (`crossed`, as [`Watch::crossed`] found it) ends the agent.
    async fn record_spent(&mut self, crossed: Option<String>) -> Option<WorkerCmd> {
        let cost = self.meter.cost();
        let (input, output) = (self.meter.input, self.meter.output);
        let model = self.meter.model.clone();
        let (task, n) = (self.task.to_string(), self.n);
        let wire = self.gate.is_some().then_some(self.wire);
        self.sh
            .write("usage", move |s, run| {
                let usage = AttemptUsage {
                    input_tokens: Some(input),
                    output_tokens: Some(output),
                    cost_usd: cost,
                    model: model.as_deref(),
                    wire,
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
        crossed.map(WorkerCmd::OverBudget)
    }

    /// Why the task's budget is crossed, if it is; its gateway token then
    /// refuses the agent's next request at once, before the agent is
    /// stopped.
    fn crossed(&self) -> Option<String> {
        let (cost, budget) = (self.meter.cost()?, self.budget?);
        let spent = self.prior_cost + cost;
        if spent <= budget {
            return None;
        }
        let why =
            format!("budget exceeded: the task spent ${spent:.4} of its budget_usd ${budget:.4}");
        if let Some((gw, token)) = &self.gate {
            gw.refuse(token, &why);
        }
        Some(why)
    }

    /// A request's and its answer's bodies (`[gateway] log_bodies`),
    /// masked, as a line of the attempt's `.gateway.jsonl` beside its log.
    async fn keep_bodies(&self, request: &str, answer: &str) {
        use tokio::io::AsyncWriteExt;
        let path = self
            .sh
            .paths
            .attempt_log(&self.sh.run_id, self.task, self.n)
            .with_extension("gateway.jsonl");
        let r = &self.sh.redactor;
        let line = serde_json::json!({ "request": r.redact(request), "answer": r.redact(answer) });
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await;
        let written = match file {
            Ok(mut f) => f.write_all(format!("{line}\n").as_bytes()).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::warn!(
                "cannot keep the gateway's bodies in {}: {e}",
                path.display()
            );
        }
    }

    /// What the agent itself said it used (behind the gateway: kept for
    /// comparison, not counted).
    async fn record_reported(&mut self) {
        let r = Reported {
            input_tokens: self.reported.input,
            output_tokens: self.reported.output,
            cost_usd: self.reported.cost(),
        };
        let (task, n) = (self.task.to_string(), self.n);
        self.sh
            .write("the agent's own usage", move |s, run| {
                s.set_attempt_reported(run, &task, n, &r)
            })
            .await;
    }

    /// What the gateway said of one of the attempt's requests: its usage
    /// counted (and priced), a limit or a refusal recorded.
    pub async fn wire(&mut self, w: Wire) -> Option<WorkerCmd> {
        let said = match w {
            Wire::Answered {
                provider,
                model,
                status,
                usage,
                ms,
            } => {
                self.wire.requests += 1;
                // Answered, not limited: whatever the agent ends on now
                // is not the limit before it.
                self.wire_limit = None;
                let model = model.or_else(|| self.meter.model.clone());
                let prices = &self.sh.prices;
                let cost = usage.and_then(|u| {
                    let at = |m: &Option<String>| u.cost(prices, m.as_deref()?);
                    at(&model).or_else(|| at(&self.priced_as))
                });
                if let Some(u) = usage {
                    self.wire.cache_read += u.cache_read;
                    self.wire.cache_write += u.cache_write;
                    self.meter.apply(&crate::adapter::UsageReport {
                        input_tokens: u.input + u.cache_read + u.cache_write,
                        output_tokens: u.output,
                        cost_usd: cost,
                        model: model.clone(),
                        mode: crate::adapter::UsageMode::Add,
                    });
                }
                // Refused before the event is written, not after.
                let crossed = self.crossed();
                let said = Payload::GatewayRequest {
                    provider,
                    model,
                    status,
                    usage,
                    cost_usd: cost,
                    ms,
                    retry_after: None,
                    note: None,
                };
                self.sh.event(Some(self.task), Some(self.n), said).await;
                return self.record_spent(crossed).await;
            }
            Wire::Limited {
                provider,
                status,
                message,
                retry_after,
            } => {
                self.wire.requests += 1;
                self.set_activity(Activity::WaitingModel).await;
                self.limited_at_wire(status, retry_after, &message);
                Payload::GatewayRequest {
                    provider,
                    model: None,
                    status,
                    usage: None,
                    cost_usd: None,
                    ms: 0,
                    retry_after,
                    note: Some(crate::adapter::clip(
                        &self.sh.redactor.redact(&message),
                        300,
                    )),
                }
            }
            Wire::Queued { why, ms } => {
                tracing::debug!(
                    "{} attempt {} waits {ms} ms at the gateway: {why}",
                    self.task,
                    self.n
                );
                self.set_activity(Activity::WaitingGateway).await;
                return None;
            }
            Wire::Going => {
                self.set_activity(Activity::WaitingModel).await;
                return None;
            }
            Wire::Bodies { request, answer } => {
                self.keep_bodies(&request, &answer).await;
                return None;
            }
            Wire::Refused { provider, why } => Payload::GatewayRequest {
                provider,
                model: None,
                status: 403,
                usage: None,
                cost_usd: None,
                ms: 0,
                retry_after: None,
                note: Some(why),
            },
        };
        self.sh.event(Some(self.task), Some(self.n), said).await;
        None
    }
}

impl Watch<'_> {
    /// The provider limited a request: the attempt remembers it, and the
    /// board starts no task on the account until it passes (the gateway
    /// holds the account's requests meanwhile).
    fn limited_at_wire(&mut self, status: u16, retry_after: Option<u64>, message: &str) {
        let detail = crate::adapter::clip(&self.sh.redactor.redact(message), 300);
        let mut limit = limits::from_status(u64::from(status), &detail).unwrap_or(Limit {
            kind: LimitKind::RateLimit,
            retry_after_ms: None,
            resets_at: None,
            detail: detail.clone(),
        });
        let asked = retry_after.map(|s| s.min(MAX_WIRE_HOLD_SECS).saturating_mul(1000));
        limit.retry_after_ms = asked.or(limit.retry_after_ms);
        let wait_ms = limit.retry_after_ms.unwrap_or(WIRE_HOLD_MS);
        self.wire_limited = true;
        let reason = format!(
            "the provider limited a request of {} ({status}): the account waits",
            self.task
        );
        let _ = self.sh.notes.send(WorkerNote::Limited {
            profile: self.profile.to_string(),
            until_ms: now_ms().saturating_add(i64::try_from(wait_ms).unwrap_or(i64::MAX)),
            reason,
        });
        self.wire_limit = Some(limit);
    }
}

/// How long the board holds an account after a limit that named no time
/// (as long as the gateway holds its requests).
const WIRE_HOLD_MS: u64 = 5_000;
/// The longest a provider's `retry-after` is taken at its word (a day).
const MAX_WIRE_HOLD_SECS: u64 = 24 * 60 * 60;

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

    async fn wire(&mut self, w: Wire) -> Option<WorkerCmd> {
        Watch::wire(self, w).await
    }

    async fn stalled(&mut self) -> Option<WorkerCmd> {
        // Waiting for a person, or at the gateway for its account's
        // limits, is not going silent.
        if self.waits_answer() || self.activity == Some(Activity::WaitingGateway) {
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
