//! The run report (PLAN-FORMAT.md, "The JSON report"), read from the store.

use crate::model::{Activity, ControlKind, RunStatus, TaskStatus};
use crate::payload::{LimitWait, Payload};
use crate::store::{Event, Store, StoreError, TaskRecord};
use serde::Serialize;
use std::sync::Arc;

#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    /// Cached input read and written (part of `input_tokens`), as the
    /// model gateway counted them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<i64>,
    /// Requests that went through the model gateway: when there were any,
    /// the figures above are the wire's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_requests: Option<i64>,
    /// What the agents themselves reported it cost, beside the wire's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_reported_cost_usd: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    pub id: String,
    pub status: TaskStatus,
    pub attempts: u32,
    pub branch: String,
    pub commit: Option<String>,
    pub merged: bool,
    pub result: Option<String>,
    pub reason: Option<String>,
    pub usage: Usage,
    pub worktree: Option<String>,
    pub duration_ms: Option<i64>,
    /// What the agent is doing while the task runs (starting, working,
    /// waiting_model, running_tool, stalled).
    pub activity: Option<Activity>,
    /// The profile that runs it, and the tasks it waits for.
    pub agent: Option<String>,
    pub needs: Vec<String>,
    pub started_at_ms: Option<i64>,
    /// Why a person should look now (approval, failed, conflicted, stalled).
    pub attention: Option<&'static str>,
    /// What a person may ask of it now.
    pub actions: Vec<ControlKind>,
    /// What a person should know that did not stop it (its agent rewound
    /// its branch, switched it away, ...).
    pub warnings: Vec<String>,
    /// While it runs: where its work so far would conflict with the
    /// integration branch as it is now.
    pub conflict_ahead: Vec<String>,
    /// The profiles that worked on it, in order (more than one when it fell
    /// back to another), and why each took over.
    pub agents: Vec<String>,
    pub fallbacks: Vec<Fallback>,
    /// How often it waited out a provider's rate limit, and for how long in
    /// all (as the provider asked).
    pub rate_limit_waits: u32,
    pub rate_limit_wait_ms: i64,
    /// A race's candidate: the race task it runs for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_of: Option<String>,
    /// A race task: its candidates (as its pick saw them, once it picked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Vec<CandidateReport>>,
    /// A race task that picked: why its winner won (or why none could).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pick_reason: Option<String>,
}

/// One candidate of a race task.
#[derive(Debug, Clone, Serialize)]
pub struct CandidateReport {
    pub task: String,
    pub agent: Option<String>,
    pub status: TaskStatus,
    pub winner: bool,
    /// Its place among the candidates that passed (1: the winner).
    pub place: Option<u32>,
    /// What its rank command printed.
    pub score: Option<f64>,
    pub cost_usd: Option<f64>,
    pub diff_lines: Option<u64>,
    pub time_ms: Option<i64>,
    pub gate_failures: u32,
    /// Why it has no score.
    pub note: Option<String>,
}

impl CandidateReport {
    fn of(t: &TaskReport) -> CandidateReport {
        CandidateReport {
            task: t.id.clone(),
            agent: t.agent.clone(),
            status: t.status,
            winner: false,
            place: None,
            score: None,
            cost_usd: t.usage.cost_usd,
            diff_lines: None,
            time_ms: None,
            gate_failures: 0,
            note: None,
        }
    }

    /// What its race's pick saw of it.
    fn picked(mut self, p: &crate::pick::Picked) -> CandidateReport {
        if let Some(e) = p.candidates.iter().find(|e| e.task == self.task) {
            self.winner = p.winner.as_deref() == Some(e.task.as_str());
            self.place = e.place;
            self.score = e.score;
            self.diff_lines = e.diff_lines;
            self.time_ms = e.time_ms;
            self.gate_failures = e.gate_failures;
            self.note = e.note.clone();
        }
        self
    }
}

/// Each race task's candidates, from its candidates' reports and its pick
/// (the last one: a person's may follow the race's own).
fn add_candidates(tasks: &mut [TaskReport], moves: &[Event]) {
    let mut by_race: std::collections::HashMap<String, Vec<CandidateReport>> = Default::default();
    for t in tasks.iter() {
        if let Some(race) = &t.candidate_of {
            by_race
                .entry(race.clone())
                .or_default()
                .push(CandidateReport::of(t));
        }
    }
    if by_race.is_empty() {
        return;
    }
    let picks = crate::pick::last_picks(moves);
    for t in tasks.iter_mut() {
        let Some(mine) = by_race.remove(&t.id) else {
            continue;
        };
        let pick = picks.get(&t.id);
        t.candidates = Some(match pick {
            Some(p) => mine.into_iter().map(|c| c.picked(p)).collect(),
            None => mine,
        });
        t.pick_reason = pick.map(|p| p.reason.clone());
    }
}

/// A task handed from one profile to another.
#[derive(Debug, Clone, Serialize)]
pub struct Fallback {
    pub from: String,
    pub to: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run: String,
    pub status: RunStatus,
    pub integration_branch: String,
    pub base_commit: String,
    pub integration_commit: Option<String>,
    pub plan: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub tasks: Vec<TaskReport>,
    pub usage: Usage,
    /// The run's pull request, once opened (`[land] mode = "pr"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullReport>,
}

/// Where a run's pull request stands.
#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    pub number: u64,
    pub url: String,
    pub status: crate::model::PullStatus,
    /// Its checks and reviews in a few words, as last seen.
    pub checks: String,
    pub reviews: String,
    pub fixes_used: u32,
    pub spent_usd: f64,
    /// What it waits for, why it needs a person, or how it ended.
    pub note: Option<String>,
}

impl PullReport {
    fn of(p: crate::store::PullRecord) -> PullReport {
        PullReport {
            number: p.number,
            url: p.url,
            status: p.status,
            checks: p.checks,
            reviews: p.reviews,
            fixes_used: p.fixes_used,
            spent_usd: p.spent_usd,
            note: p.note,
        }
    }
}

fn sum<T: Copy + std::iter::Sum<T>>(vals: impl Iterator<Item = Option<T>>) -> Option<T> {
    let v: Vec<T> = vals.flatten().collect();
    (!v.is_empty()).then(|| v.into_iter().sum())
}

impl TaskReport {
    fn from_record(r: &TaskRecord) -> TaskReport {
        TaskReport {
            id: r.id.clone(),
            status: r.status,
            attempts: r.attempts,
            branch: r.branch.clone(),
            commit: r.commit_id.clone(),
            merged: r.merged,
            result: r.result.clone(),
            reason: r.reason.clone(),
            usage: Usage {
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                cost_usd: r.cost_usd,
                cache_read_tokens: r.wire.cache_read_tokens,
                cache_write_tokens: r.wire.cache_write_tokens,
                gateway_requests: r.wire.gateway_requests,
                agent_reported_cost_usd: r.wire.reported_cost_usd,
            },
            worktree: r.existing_worktree().map(|w| w.display().to_string()),
            duration_ms: match (r.started_at, r.finished_at) {
                (Some(s), Some(f)) => Some(f - s),
                _ => None,
            },
            activity: r.activity,
            agent: r.agent.clone(),
            needs: r.needs.clone(),
            started_at_ms: r.started_at,
            attention: r.status.attention(r.activity),
            actions: r.status.actions(),
            warnings: r.warnings.clone(),
            conflict_ahead: r.conflict_ahead.clone(),
            agents: r.agent.iter().cloned().collect(),
            fallbacks: Vec::new(),
            rate_limit_waits: 0,
            rate_limit_wait_ms: 0,
            candidate_of: crate::plan::race::candidate_of_id(&r.id).map(|(race, _)| race.into()),
            candidates: None,
            pick_reason: None,
        }
    }

    /// Adds what the run's fallback and waiting events say of this task.
    fn with_moves(mut self, moves: &[Event]) -> TaskReport {
        let mine = moves
            .iter()
            .filter(|e| e.task_id.as_deref() == Some(self.id.as_str()));
        for e in mine {
            match e.payload() {
                Some(Payload::Fallback { from, to, reason }) => {
                    self.fallbacks.push(Fallback { from, to, reason })
                }
                // A limit the provider imposed at the gateway: every agent
                // of the account waited it out there.
                Some(Payload::GatewayRequest {
                    status: 429 | 529,
                    retry_after,
                    ..
                }) => {
                    self.rate_limit_waits += 1;
                    self.rate_limit_wait_ms += retry_after.map_or(0, |s| s as i64 * 1000);
                }
                // A wait on a limit the gateway saw: counted with it.
                Some(Payload::Waiting {
                    limit: Some(LimitWait { at_wire: true, .. }),
                    ..
                }) => {}
                Some(Payload::Waiting { for_, limit, .. }) if for_ == "rate_limit" => {
                    self.rate_limit_waits += 1;
                    let until = limit.map(|l| l.until_ms);
                    self.rate_limit_wait_ms += until.map_or(0, |u| (u - e.ts).max(0));
                }
                _ => {}
            }
        }
        if let Some(first) = self.fallbacks.first() {
            self.agents = std::iter::once(first.from.clone())
                .chain(self.fallbacks.iter().map(|f| f.to.clone()))
                .collect();
        }
        self
    }
}

impl Report {
    pub async fn load(store: &Arc<Store>, run: &str) -> Result<Report, StoreError> {
        let id = run.to_string();
        let (rec, records, moves, pull) = store
            .call(move |s| {
                Ok::<_, StoreError>((s.run(&id)?, s.tasks(&id)?, s.moves(&id)?, s.pull(&id)?))
            })
            .await?;
        let mut tasks: Vec<TaskReport> = records
            .iter()
            .map(|r| TaskReport::from_record(r).with_moves(&moves))
            .collect();
        add_candidates(&mut tasks, &moves);
        let branch = format!("refs/heads/{}", rec.integration_branch);
        let args = ["rev-parse", "--verify", "--quiet", branch.as_str()];
        let integration_commit = crate::git::git(std::path::Path::new(&rec.repo), args)
            .await
            .ok()
            .filter(|o| o.code == 0)
            .map(|o| o.stdout.trim().to_string());
        Ok(Report {
            usage: Usage {
                input_tokens: sum(tasks.iter().map(|t| t.usage.input_tokens)),
                output_tokens: sum(tasks.iter().map(|t| t.usage.output_tokens)),
                cost_usd: sum(tasks.iter().map(|t| t.usage.cost_usd)),
                cache_read_tokens: sum(tasks.iter().map(|t| t.usage.cache_read_tokens)),
                cache_write_tokens: sum(tasks.iter().map(|t| t.usage.cache_write_tokens)),
                gateway_requests: sum(tasks.iter().map(|t| t.usage.gateway_requests)),
                agent_reported_cost_usd: sum(tasks.iter().map(|t| t.usage.agent_reported_cost_usd)),
            },
            run: rec.id,
            status: rec.status,
            integration_branch: rec.integration_branch,
            base_commit: rec.base_commit,
            integration_commit,
            plan: rec.plan_path,
            started_at: crate::clock::rfc3339(rec.created_at),
            finished_at: rec.finished_at.map(crate::clock::rfc3339),
            duration_ms: rec.finished_at.map(|f| f - rec.created_at),
            tasks,
            pull: pull.map(PullReport::of),
        })
    }

    /// The exit status PLAN-FORMAT.md gives a finished run: 0 when every task
    /// succeeded (a race's candidates aside: their race counts), 1
    /// otherwise; 130 for a run interrupted and left to resume.
    pub fn exit_code(&self) -> i32 {
        let counts = |t: &&TaskReport| t.candidate_of.is_none();
        if self.status == RunStatus::Interrupted {
            130
        } else if self
            .tasks
            .iter()
            .filter(counts)
            .all(|t| t.status == TaskStatus::Succeeded)
        {
            0
        } else {
            1
        }
    }
}
