//! The board: every task of a run, where each stands, and every rule that
//! moves them (readiness, `max_parallel`, `needs`, `on_failure`, transitive
//! skips, retry and un-skip, approve, stop, steer, the run budget,
//! shutdown). It does no I/O: it takes facts (an attempt ended, a merge
//! happened, a person asked for something) and returns the [`Action`]s the
//! engine's loop carries out, in order. Its own state changes at once, so the
//! next question it is asked sees them.
//!
//! Here: starting tasks and the run's end. How a go ends is in [`ends`],
//! what a person asks in [`requests`], provider limits in [`limits`], a
//! task's standing in [`slot`].

mod asking;
mod ends;
mod limits;
mod race;
mod requests;
mod slot;

use slot::{Slot, Standing, Wait};

use crate::engine::messages::WorkerCmd;
use crate::model::{Activity, RunStatus, TaskStatus};
use crate::payload::Payload;
use crate::plan::TaskSpec;
use crate::store::TaskUpdate;
use std::collections::{BTreeMap, HashMap};

/// What the engine must do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Write the task's row (its new status, if any, and columns) and the event
    /// that explains it, in one transaction. A finished status also means its
    /// worker is gone.
    Record {
        task: usize,
        status: Option<TaskStatus>,
        update: Box<TaskUpdate>,
        event: Option<Payload>,
    },
    /// An event of the run itself.
    RunEvent(Payload),
    /// Start the task's worker (the board has marked it running); `feedback`
    /// is a person's message for its first attempt.
    Start {
        task: usize,
        feedback: Option<String>,
    },
    /// Tell a running worker something.
    Send { task: usize, cmd: WorkerCmd },
    /// Put the task in the merge queue.
    Merge(usize),
    /// The task ended well: its worktree may go (its branch stays).
    DropWorktree(usize),
}

/// The board's answer to a person's request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub ok: bool,
    pub message: String,
    pub actions: Vec<Action>,
}

impl Reply {
    pub fn yes(message: String, actions: Vec<Action>) -> Reply {
        Reply {
            ok: true,
            message,
            actions,
        }
    }

    pub fn no(message: String) -> Reply {
        Reply {
            ok: false,
            message,
            actions: Vec::new(),
        }
    }
}

/// The run's settings the rules depend on.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub run: String,
    pub max_parallel: usize,
    /// The standing run of `baton serve`: its tasks are independent, and it
    /// goes on until shut down.
    pub service: bool,
    pub auto_approve: bool,
    /// Tasks whose declared `files` overlap may run at the same time.
    pub overlap_allowed: bool,
    /// At most this many tasks of a profile run at once.
    pub profile_limits: HashMap<String, usize>,
    /// The account of a profile that names one: its limits are the account's.
    pub accounts: HashMap<String, String>,
    /// Each profile's fallbacks, in the order they are tried.
    pub fallbacks: HashMap<String, Vec<String>>,
}

#[derive(Debug)]
pub(crate) struct Board {
    rules: Rules,
    tasks: Vec<Slot>,
    index: HashMap<String, usize>,
    running: usize,
    /// Why nothing new starts, once a task with on_failure = "stop" failed
    /// (or the run's budget is spent).
    stop_new: Option<String>,
    over_budget: bool,
    shutting_down: bool,
    /// Why no new agent may start now (the machine is short of memory).
    held: Option<String>,
    /// Profiles (or accounts) the provider limits now: see [`limits`].
    limited: BTreeMap<String, limits::Limit>,
    /// Each race task's candidates: see [`race`].
    races: HashMap<usize, Vec<usize>>,
    /// Candidates whose desks wait for their race's pick (a rank command
    /// or a judge reads them).
    kept_desks: std::collections::BTreeSet<usize>,
}

impl Board {
    pub fn new(rules: Rules, specs: impl IntoIterator<Item = TaskSpec>) -> Board {
        let mut b = Board {
            rules,
            tasks: Vec::new(),
            index: HashMap::new(),
            running: 0,
            stop_new: None,
            over_budget: false,
            shutting_down: false,
            held: None,
            limited: BTreeMap::new(),
            races: HashMap::new(),
            kept_desks: Default::default(),
        };
        for spec in specs {
            b.push(spec, TaskStatus::Pending);
        }
        b
    }

    fn push(&mut self, spec: TaskSpec, status: TaskStatus) -> usize {
        let i = self.tasks.len();
        self.index.insert(spec.id.clone(), i);
        self.tasks.push(Slot {
            spec,
            standing: Standing::of(status),
            forced: false,
        });
        if status == TaskStatus::Running {
            self.running += 1;
        }
        self.note_race(i);
        i
    }

    /// A task queued while the run goes on (a race's candidates before it:
    /// see `plan::race::expand`).
    pub fn add(&mut self, spec: TaskSpec) -> Result<usize, String> {
        if self.index.contains_key(&spec.id) {
            return Err(format!("task {:?} exists already", spec.id));
        }
        Ok(self.push(spec, TaskStatus::Pending))
    }

    /// Picks a run up where the store left it: each task's status, and the
    /// tasks a person asked to retry. A failure before the crash still stops
    /// new work.
    pub fn restore(&mut self, statuses: &HashMap<String, TaskStatus>, forced: &[String]) {
        for i in 0..self.tasks.len() {
            if let Some(s) = statuses.get(&self.tasks[i].spec.id) {
                self.put(i, *s);
            }
        }
        for id in forced {
            if let Some(i) = self.idx(id) {
                self.tasks[i].forced = true;
            }
        }
        self.recheck_failures();
    }

    pub fn idx(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    pub fn id(&self, i: usize) -> &str {
        &self.tasks[i].spec.id
    }

    pub fn spec(&self, i: usize) -> &TaskSpec {
        &self.tasks[i].spec
    }

    pub fn status(&self, i: usize) -> TaskStatus {
        self.tasks[i].status()
    }

    #[cfg(test)]
    pub fn running(&self) -> usize {
        self.running
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Task `i` stands at `status` now, with none of what it had before.
    /// Returns what it was told it waited for, if it was.
    fn put(&mut self, i: usize, status: TaskStatus) -> Option<Wait> {
        let waited = self.tasks[i].waits();
        if self.tasks[i].status() == TaskStatus::Running {
            self.running -= 1;
        }
        if status == TaskStatus::Running {
            self.running += 1;
        }
        self.tasks[i].standing = Standing::of(status);
        waited
    }

    /// Moves task `i` to `status`, recording why.
    fn to(
        &mut self,
        i: usize,
        status: TaskStatus,
        mut update: TaskUpdate,
        payload: Payload,
    ) -> Action {
        // A task told it waits, and moved on: it waits no more.
        if self.put(i, status).is_some() && update.activity.is_none() {
            update.activity = Some(None);
        }
        Action::Record {
            task: i,
            status: Some(status),
            update: Box::new(update),
            event: Some(payload),
        }
    }

    /// Whether the run has nothing left to do now: nothing runs, nothing
    /// waits to merge, and nobody is waited for (a shutdown does not wait
    /// for approvals). A service run waits for queued tasks until shut down.
    pub fn is_done(&self, merges_pending: bool) -> bool {
        let awaiting = self
            .tasks
            .iter()
            .any(|t| t.status() == TaskStatus::AwaitingApproval);
        // Tasks held back for memory start once there is room again, and
        // those of a limited profile once the limit has passed.
        let held = (self.held.is_some()
            && self.tasks.iter().any(|t| t.waits() == Some(Wait::Memory)))
            || !self.limited.is_empty()
                && self.tasks.iter().any(|t| {
                    t.status() == TaskStatus::Pending && self.limited_why(&t.spec.agent).is_some()
                });
        // A task waiting for an answer keeps the run going, across restarts.
        let asking = self.tasks.iter().any(|t| t.waits() == Some(Wait::Answer));
        let idle = self.running == 0
            && !merges_pending
            && ((!awaiting && !held && !asking) || self.shutting_down);
        idle && (!self.rules.service || self.shutting_down)
    }

    /// Skips what can no longer start, then starts ready tasks up to
    /// `max_parallel`. Nothing moves during a shutdown: what did not run is
    /// left for `resume`.
    pub fn next(&mut self) -> Vec<Action> {
        if self.shutting_down {
            return Vec::new();
        }
        let mut out = self.settle_skips();
        for i in 0..self.tasks.len() {
            if self.running >= self.rules.max_parallel {
                break;
            }
            if self.tasks[i].status() != TaskStatus::Pending
                || self.tasks[i].waits() == Some(Wait::Answer)
            {
                continue;
            }
            let ready = self.tasks[i].spec.needs.iter().all(|n| {
                self.idx(n)
                    .is_some_and(|j| self.tasks[j].status() == TaskStatus::Succeeded)
            });
            if !ready || !self.race_ready(i) || self.overlaps_running(i) {
                continue;
            }
            // A race's pick runs no agent of its profile (a judge is brief).
            let picks = self.tasks[i].spec.race.is_some();
            if !picks && (self.profile_full(i) || self.waits_for_limit(i, &mut out)) {
                continue;
            }
            if let Some(why) = &self.held {
                if self.tasks[i].waits() != Some(Wait::Memory) {
                    out.push(waits(i, Activity::WaitingMemory, "memory", why));
                    self.tasks[i].standing = Standing::Pending {
                        waits: Some(Wait::Memory),
                    };
                }
                continue;
            }
            self.put(i, TaskStatus::Running);
            out.push(Action::Start {
                task: i,
                feedback: None,
            });
        }
        out
    }

    /// No new agent starts while `why` is Some (the machine is short of
    /// memory); ready tasks say they wait.
    pub fn hold(&mut self, why: Option<String>) -> Vec<Action> {
        let released = self.held.is_some() && why.is_none();
        self.held = why;
        if !released {
            return Vec::new();
        }
        self.stop_waiting(Wait::Memory, |_, _| true)
    }

    /// Whether task `i`'s profile already runs as many tasks as it may.
    fn profile_full(&self, i: usize) -> bool {
        let agent = &self.tasks[i].spec.agent;
        let Some(&limit) = self.rules.profile_limits.get(agent) else {
            return false;
        };
        self.running_tasks()
            .filter(|j| self.tasks[*j].spec.agent == *agent)
            .count()
            >= limit
    }

    /// Whether task `i` declares files that a task whose work is not merged
    /// yet (running, waiting for approval or in the merge queue) declares
    /// too: started now, it would edit the same paths without that work
    /// (plan order decides who waits).
    fn overlaps_running(&self, i: usize) -> bool {
        let files = &self.tasks[i].spec.files;
        if self.rules.overlap_allowed || files.is_empty() {
            return false;
        }
        self.tasks.iter().enumerate().any(|(j, t)| {
            matches!(
                t.status(),
                TaskStatus::Running | TaskStatus::Merging | TaskStatus::AwaitingApproval
            ) && files.overlaps(&t.spec.files)
                && !self.same_race(i, j)
        })
    }

    /// Skips propagate down chains whatever the file order, so repeat until settled.
    fn settle_skips(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        loop {
            let mut changed = false;
            for i in 0..self.tasks.len() {
                if self.tasks[i].status() != TaskStatus::Pending {
                    continue;
                }
                let blocked = self.tasks[i].spec.needs.iter().find_map(|n| {
                    let s = self.tasks[self.idx(n)?].status();
                    s.is_bad_end()
                        .then(|| format!("needs {n:?}, which {}", s.past()))
                });
                // A task a person asked to retry runs even after a failure stopped new work.
                let held = (!self.tasks[i].forced)
                    .then(|| self.stop_new.clone())
                    .flatten();
                let unneeded = self.race_done_with(i);
                if let Some(reason) = blocked.or(held).or(unneeded) {
                    out.push(self.skip(i, reason));
                    changed = true;
                }
            }
            if !changed {
                return out;
            }
        }
    }

    fn skip(&mut self, i: usize, reason: String) -> Action {
        let update = TaskUpdate {
            reason: Some(Some(reason.clone())),
            ..Default::default()
        };
        self.to(i, TaskStatus::Skipped, update, Payload::Skipped { reason })
    }

    /// The run has spent `spent` of its `budget`: once over, every running
    /// agent is stopped (its work committed) and nothing new starts.
    pub fn spent(&mut self, spent: f64, budget: f64) -> Vec<Action> {
        if self.over_budget || spent <= budget {
            return Vec::new();
        }
        self.over_budget = true;
        let reason = format!(
            "run budget exceeded: the run spent ${spent:.4} of its budget_usd ${budget:.4}"
        );
        self.stop_new.get_or_insert_with(|| {
            format!("not started: the run's budget_usd (${budget:.4}) was spent")
        });
        let mut out = vec![Action::RunEvent(Payload::BudgetExceeded { spent, budget })];
        out.extend(self.running_tasks().map(|i| Action::Send {
            task: i,
            cmd: WorkerCmd::OverBudget(reason.clone()),
        }));
        out
    }

    pub fn running_tasks(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.tasks.len()).filter(|i| self.tasks[*i].status() == TaskStatus::Running)
    }

    /// baton is asked to stop: running agents are stopped with their work
    /// committed, and the run is left for `resume`.
    pub fn shutdown(&mut self) -> Vec<Action> {
        self.stop_run(None)
    }

    /// baton cannot go on with the run (not a task's fault): it stops as for
    /// a shutdown, saying why, and `resume` continues it once that is fixed.
    pub fn halt(&mut self, reason: String) -> Vec<Action> {
        self.stop_run(Some(reason))
    }

    fn stop_run(&mut self, reason: Option<String>) -> Vec<Action> {
        if self.shutting_down {
            return Vec::new();
        }
        self.shutting_down = true;
        let mut out = vec![Action::RunEvent(Payload::Interrupt { reason })];
        out.extend(self.running_tasks().map(|i| Action::Send {
            task: i,
            cmd: WorkerCmd::Shutdown,
        }));
        out
    }

    /// The run is over: tasks that can never start now (a blocked chain)
    /// are skipped, not left hanging. Returns them and the run's status.
    pub fn wind_up(&mut self) -> (Vec<Action>, RunStatus) {
        let mut out = Vec::new();
        if self.shutting_down {
            return (out, RunStatus::Interrupted);
        }
        for i in 0..self.tasks.len() {
            if self.tasks[i].status() == TaskStatus::Pending {
                let reason = self.stop_new.clone().unwrap_or_else(|| {
                    "not started: its upstream tasks did not all succeed".into()
                });
                out.push(self.skip(i, reason));
            }
        }
        // A candidate that lost (or failed) does not fail the run: its race does.
        let all_good = (0..self.tasks.len())
            .all(|i| self.is_candidate(i) || self.tasks[i].status() == TaskStatus::Succeeded);
        // Desks kept for a pick that never came (the race was stopped or skipped).
        out.extend(
            std::mem::take(&mut self.kept_desks)
                .into_iter()
                .map(Action::DropWorktree),
        );
        let status = if all_good {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        (out, status)
    }
}

impl Board {
    /// Ready tasks told they wait for `what` (and picked by `which`) wait no
    /// more: their activity is cleared.
    fn stop_waiting(&mut self, what: Wait, which: impl Fn(&Board, &Slot) -> bool) -> Vec<Action> {
        let freed: Vec<usize> = (0..self.tasks.len())
            .filter(|&i| self.tasks[i].waits() == Some(what) && which(self, &self.tasks[i]))
            .collect();
        for &i in &freed {
            self.tasks[i].standing = Standing::Pending { waits: None };
        }
        freed.into_iter().map(waits_no_more).collect()
    }
}

/// Task `i` is told it waits (`for_`: what for, `why`: in words).
fn waits(i: usize, activity: Activity, for_: &str, why: &str) -> Action {
    Action::Record {
        task: i,
        status: None,
        update: Box::new(TaskUpdate {
            activity: Some(Some(activity)),
            ..Default::default()
        }),
        event: Some(Payload::Waiting {
            for_: for_.to_string(),
            reason: why.to_string(),
            limit: None,
        }),
    }
}

/// Task `i` waits no more: its activity is cleared.
fn waits_no_more(i: usize) -> Action {
    Action::Record {
        task: i,
        status: None,
        update: Box::new(TaskUpdate {
            activity: Some(None),
            ..Default::default()
        }),
        event: None,
    }
}

#[cfg(test)]
mod tests;
