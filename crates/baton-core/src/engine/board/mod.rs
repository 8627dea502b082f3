//! The board: every task of a run, where each stands, and every rule that
//! moves them (readiness, `max_parallel`, `needs`, `on_failure`, transitive
//! skips, retry and un-skip, approve, stop, steer, the run budget,
//! shutdown). It does no I/O: it takes facts (an attempt ended, a merge
//! happened, a person asked for something) and returns the [`Action`]s the
//! engine shell carries out, in order. Its own state changes at once, so the
//! next question it is asked sees them.

mod limits;

use crate::engine::messages::{MergeResult, Outcome, WorkerCmd};
use crate::model::{Activity, ControlKind, EventKind, RunStatus, TaskStatus};
use crate::plan::{OnFailure, TaskSpec};
use crate::store::TaskUpdate;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// What the shell must do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Write the task's row (its new status, if any, and columns) and the event
    /// that explains it, in one transaction. A finished status also means its
    /// worker is gone.
    Record {
        task: usize,
        status: Option<TaskStatus>,
        update: Box<TaskUpdate>,
        event: Option<(EventKind, Value)>,
    },
    /// An event of the run itself.
    RunEvent(EventKind, Value),
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
    fn yes(message: String, actions: Vec<Action>) -> Reply {
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

/// One task on the board: its spec and where it stands.
#[derive(Debug)]
struct Slot {
    spec: TaskSpec,
    standing: Standing,
    /// Retried by request (or waiting on a task that was): on_failure =
    /// "stop" does not hold it back.
    forced: bool,
}

/// Where a task stands, with what only that standing has: a pending task
/// cannot be stopping, nor a running one waiting for memory.
#[derive(Debug, Clone, PartialEq)]
enum Standing {
    /// Not started. `waits`: what it was told it waits for (told once).
    Pending { waits: Option<Wait> },
    /// Its worker runs. `stopping`: asked to stop, its worker is on it.
    /// `resolving`: the attempt resolves a merge conflict.
    Running { stopping: bool, resolving: bool },
    /// Any other status: waiting for approval or the merge queue, or ended.
    Other(TaskStatus),
}

/// What a ready task waits for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Wait {
    Memory,
    Limit,
}

impl Standing {
    fn of(status: TaskStatus) -> Standing {
        match status {
            TaskStatus::Pending => Standing::Pending { waits: None },
            TaskStatus::Running => Standing::Running {
                stopping: false,
                resolving: false,
            },
            other => Standing::Other(other),
        }
    }

    fn status(&self) -> TaskStatus {
        match self {
            Standing::Pending { .. } => TaskStatus::Pending,
            Standing::Running { .. } => TaskStatus::Running,
            Standing::Other(s) => *s,
        }
    }
}

impl Slot {
    fn status(&self) -> TaskStatus {
        self.standing.status()
    }

    fn waits(&self) -> Option<Wait> {
        match self.standing {
            Standing::Pending { waits } => waits,
            _ => None,
        }
    }

    fn is_stopping(&self) -> bool {
        matches!(self.standing, Standing::Running { stopping: true, .. })
    }
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
        i
    }

    /// A task queued while the run goes on.
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
        event: EventKind,
        data: Value,
    ) -> Action {
        // A task told it waits, and moved on: it waits no more.
        if self.put(i, status).is_some() && update.activity.is_none() {
            update.activity = Some(None);
        }
        Action::Record {
            task: i,
            status: Some(status),
            update: Box::new(update),
            event: Some((event, data)),
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
        let idle =
            self.running == 0 && !merges_pending && ((!awaiting && !held) || self.shutting_down);
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
            if self.tasks[i].status() != TaskStatus::Pending {
                continue;
            }
            let ready = self.tasks[i].spec.needs.iter().all(|n| {
                self.idx(n)
                    .is_some_and(|j| self.tasks[j].status() == TaskStatus::Succeeded)
            });
            if !ready || self.overlaps_running(i) || self.profile_full(i) {
                continue;
            }
            if self.waits_for_limit(i, &mut out) {
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
        self.stop_waiting(Wait::Memory, |_| true)
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
        self.tasks.iter().any(|t| {
            matches!(
                t.status(),
                TaskStatus::Running | TaskStatus::Merging | TaskStatus::AwaitingApproval
            ) && files.overlaps(&t.spec.files)
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
                if let Some(reason) = blocked.or(held) {
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
        let data = json!({ "reason": reason });
        self.to(i, TaskStatus::Skipped, update, EventKind::Skipped, data)
    }

    /// Whether a conflict of task `i` goes to a resolver (it asks for one,
    /// and baton is not shutting down).
    pub fn wants_resolver(&self, i: usize) -> bool {
        self.tasks[i].spec.resolve_conflicts && !self.shutting_down
    }

    /// Task `i` conflicted and a resolver attempt starts on it (the shell
    /// has merged the integration head into its worktree).
    pub fn resolve(&mut self, i: usize, paths: &[String]) -> Vec<Action> {
        self.put(i, TaskStatus::Running);
        self.tasks[i].standing = Standing::Running {
            stopping: false,
            resolving: true,
        };
        vec![
            Action::Record {
                task: i,
                status: None,
                update: Box::default(),
                event: Some((EventKind::Resolving, json!({ "paths": paths }))),
            },
            Action::Start {
                task: i,
                feedback: None,
            },
        ]
    }

    /// A worker is done with task `i`.
    pub fn finished(&mut self, i: usize, outcome: Outcome) -> Vec<Action> {
        // A resolver that could not resolve leaves the task conflicted, as
        // without one; its work is on its branch.
        let resolving = matches!(
            self.tasks[i].standing,
            Standing::Running {
                resolving: true,
                ..
            }
        );
        if resolving {
            if let Outcome::Failed { commit, reason, .. } = outcome {
                let update = TaskUpdate {
                    commit_id: commit,
                    ..Default::default()
                };
                let why = format!("the resolver could not resolve the merge conflict: {reason}");
                return self.end_badly(i, TaskStatus::Conflicted, why, update);
            }
        }
        match outcome {
            Outcome::Done { commit, result } => {
                let update = TaskUpdate {
                    commit_id: Some(commit.clone()),
                    result: Some(result),
                    reason: Some(None),
                    ..Default::default()
                };
                let data = json!({ "commit": commit });
                let spec = &self.tasks[i].spec;
                if spec.approve && !self.rules.auto_approve {
                    let kind = EventKind::ApprovalNeeded;
                    vec![self.to(i, TaskStatus::AwaitingApproval, update, kind, data)]
                } else if spec.merge {
                    let kind = EventKind::MergeQueued;
                    vec![
                        self.to(i, TaskStatus::Merging, update, kind, data),
                        Action::Merge(i),
                    ]
                } else {
                    let data = json!({ "commit": commit, "merged": false });
                    vec![
                        self.to(i, TaskStatus::Succeeded, update, EventKind::Succeeded, data),
                        Action::DropWorktree(i),
                    ]
                }
            }
            Outcome::Failed {
                commit,
                reason,
                result,
            } => {
                let update = TaskUpdate {
                    commit_id: commit,
                    result: Some(result),
                    ..Default::default()
                };
                self.end_badly(i, TaskStatus::Failed, reason, update)
            }
            Outcome::Stopped { commit, reason } => {
                let update = TaskUpdate {
                    commit_id: commit,
                    ..Default::default()
                };
                self.end_badly(i, TaskStatus::Stopped, reason, update)
            }
            Outcome::Interrupted { commit } => {
                let update = TaskUpdate {
                    commit_id: commit,
                    ..Default::default()
                };
                let kind = EventKind::Interrupted;
                vec![self.to(i, TaskStatus::Pending, update, kind, json!({}))]
            }
            Outcome::Broken { reason } => {
                let kind = EventKind::Interrupted;
                let data = json!({ "reason": reason });
                let mut out =
                    vec![self.to(i, TaskStatus::Pending, TaskUpdate::default(), kind, data)];
                out.extend(self.halt(reason));
                out
            }
        }
    }

    /// The merge queue is done with task `i`.
    pub fn merged(&mut self, i: usize, result: MergeResult) -> Vec<Action> {
        match result {
            MergeResult::Merged { integration } => {
                let update = TaskUpdate {
                    merged: Some(true),
                    ..Default::default()
                };
                let data = match integration {
                    Some(head) => json!({ "changes": true, "integration": head }),
                    None => json!({ "changes": false }),
                };
                vec![
                    self.to(i, TaskStatus::Succeeded, update, EventKind::Merged, data),
                    Action::DropWorktree(i),
                ]
            }
            MergeResult::Conflict { paths, reason } => {
                let update = TaskUpdate {
                    reason: Some(Some(reason)),
                    ..Default::default()
                };
                let data = json!({ "paths": paths });
                let kind = EventKind::Conflicted;
                let out = vec![self.to(i, TaskStatus::Conflicted, update, kind, data)];
                self.after_failure(i);
                out
            }
            MergeResult::Failed(reason) => {
                self.end_badly(i, TaskStatus::Failed, reason, TaskUpdate::default())
            }
            MergeResult::VerifyFailed {
                reason,
                feedback,
                retry: true,
            } => {
                let update = TaskUpdate {
                    feedback: Some(Some(feedback)),
                    reason: Some(None),
                    ..Default::default()
                };
                let data = json!({ "reason": reason, "retry": true });
                // It goes on as the same task's next attempt, whatever held new work back.
                self.tasks[i].forced = true;
                let kind = EventKind::VerifyFailed;
                vec![self.to(i, TaskStatus::Pending, update, kind, data)]
            }
            MergeResult::VerifyFailed {
                reason, feedback, ..
            } => {
                let update = TaskUpdate {
                    feedback: Some(Some(feedback)),
                    ..Default::default()
                };
                self.end_badly(i, TaskStatus::Failed, reason, update)
            }
        }
    }

    /// Ends a task as failed, stopped or conflicted, with why, and applies
    /// its `on_failure`.
    fn end_badly(
        &mut self,
        i: usize,
        status: TaskStatus,
        reason: String,
        mut update: TaskUpdate,
    ) -> Vec<Action> {
        update.reason = Some(Some(reason.clone()));
        let data = json!({ "reason": reason });
        let out = vec![self.to(i, status, update, EventKind::ended(status), data)];
        self.after_failure(i);
        out
    }

    fn after_failure(&mut self, i: usize) {
        let spec = &self.tasks[i].spec;
        // Queued tasks of a service run are independent of each other.
        if spec.on_failure == OnFailure::Stop && self.stop_new.is_none() && !self.rules.service {
            self.stop_new = Some(format!(
                "not started: task {:?} {} and its on_failure is \"stop\"",
                spec.id,
                self.tasks[i].status().past()
            ));
        }
    }

    fn recheck_failures(&mut self) {
        for i in 0..self.tasks.len() {
            if matches!(
                self.tasks[i].status(),
                TaskStatus::Failed | TaskStatus::Stopped | TaskStatus::Conflicted
            ) {
                self.after_failure(i);
            }
        }
    }

    /// Whether a request can be taken at all now.
    pub fn refuse(&self, kind: ControlKind) -> Option<String> {
        let needs_new_work = matches!(
            kind,
            ControlKind::Add | ControlKind::Steer | ControlKind::Retry | ControlKind::Approve
        );
        (self.shutting_down && needs_new_work)
            .then(|| "baton is shutting down; try again once the run is resumed".to_string())
    }

    /// A person asks to stop, steer or approve task `i`.
    pub fn request(&mut self, i: usize, kind: ControlKind, message: Option<String>) -> Reply {
        let status = self.tasks[i].status();
        let task = self.tasks[i].spec.id.clone();
        if status.is_finished() {
            return Reply::no(format!(
                "task {task:?} has already ended ({status}); there is nothing to {kind}"
            ));
        }
        match kind {
            ControlKind::Stop => self.stop(i),
            ControlKind::Steer => self.steer(i, message.unwrap_or_default()),
            ControlKind::Approve => self.approve(i),
            ControlKind::Retry | ControlKind::Add | ControlKind::Message => {
                Reply::no(format!("{kind} is not a request for a task that runs"))
            }
        }
    }

    fn stop(&mut self, i: usize) -> Reply {
        let task = self.tasks[i].spec.id.clone();
        match self.tasks[i].status() {
            TaskStatus::Running if self.tasks[i].is_stopping() => {
                Reply::no(format!("task {task:?} is being stopped already"))
            }
            TaskStatus::Running => {
                if let Standing::Running { stopping, .. } = &mut self.tasks[i].standing {
                    *stopping = true;
                }
                Reply::yes(
                    format!(
                        "stopping task {task:?}; its work will be committed on {}",
                        crate::paths::task_branch(&self.rules.run, &task)
                    ),
                    vec![Action::Send {
                        task: i,
                        cmd: WorkerCmd::Stop,
                    }],
                )
            }
            TaskStatus::Merging => Reply::no(format!(
                "task {task:?} is being merged; it cannot be stopped now"
            )),
            _ => {
                let reason = "stopped by request (baton stop)".to_string();
                let actions = self.end_badly(i, TaskStatus::Stopped, reason, TaskUpdate::default());
                Reply::yes(format!("task {task:?} stopped"), actions)
            }
        }
    }

    fn steer(&mut self, i: usize, message: String) -> Reply {
        let task = self.tasks[i].spec.id.clone();
        let restarts = format!("task {task:?} restarts with your message as feedback");
        let noted = Action::Record {
            task: i,
            status: None,
            update: Box::default(),
            event: Some((EventKind::Steered, json!({ "message": message }))),
        };
        let (ok, text, then) = match self.tasks[i].status() {
            TaskStatus::Running if self.tasks[i].is_stopping() => (
                false,
                format!("task {task:?} is being stopped; a message would not reach it"),
                None,
            ),
            TaskStatus::Running => (
                true,
                restarts,
                Some(Action::Send {
                    task: i,
                    cmd: WorkerCmd::Steer(message),
                }),
            ),
            TaskStatus::AwaitingApproval => {
                self.put(i, TaskStatus::Running);
                let start = Action::Start {
                    task: i,
                    feedback: Some(message),
                };
                (true, restarts, Some(start))
            }
            TaskStatus::Pending => (
                true,
                format!("task {task:?} has not started; it will get your message with its prompt"),
                Some(Action::Record {
                    task: i,
                    status: None,
                    update: Box::new(TaskUpdate {
                        feedback: Some(Some(message)),
                        ..Default::default()
                    }),
                    event: None,
                }),
            ),
            _ => (
                false,
                format!("task {task:?} is being merged; it cannot be steered now"),
                None,
            ),
        };
        // The message is on record even when it comes too late.
        Reply {
            ok,
            message: text,
            actions: std::iter::once(noted).chain(then).collect(),
        }
    }

    fn approve(&mut self, i: usize) -> Reply {
        let task = self.tasks[i].spec.id.clone();
        let status = self.tasks[i].status();
        if status != TaskStatus::AwaitingApproval {
            return Reply::no(format!(
                "task {task:?} is {status}, not waiting for approval"
            ));
        }
        let mut actions = vec![Action::Record {
            task: i,
            status: None,
            update: Box::default(),
            event: Some((EventKind::Approved, json!({}))),
        }];
        if self.tasks[i].spec.merge {
            let kind = EventKind::MergeQueued;
            let none = TaskUpdate::default();
            actions.push(self.to(i, TaskStatus::Merging, none, kind, json!({})));
            actions.push(Action::Merge(i));
        } else {
            let data = json!({ "merged": false });
            let none = TaskUpdate::default();
            actions.push(self.to(i, TaskStatus::Succeeded, none, EventKind::Succeeded, data));
            actions.push(Action::DropWorktree(i));
        }
        Reply::yes(format!("task {task:?} approved"), actions)
    }

    /// Why task `i` cannot be retried now, if it cannot.
    pub fn check_retry(&self, i: usize) -> Option<String> {
        if self.over_budget {
            return Some(
                "the run's budget_usd is spent: nothing more runs in this run; start a new one"
                    .into(),
            );
        }
        let status = self.tasks[i].status();
        (!status.allows(ControlKind::Retry)).then(|| {
            format!(
                "task {:?} is {status}; only a failed, stopped, conflicted or skipped task can be retried",
                self.tasks[i].spec.id
            )
        })
    }

    /// Runs task `i`, which ended badly, again with fresh retries (failures
    /// count from attempt `retry_from` on); tasks skipped because of it wait
    /// for it again.
    pub fn retry(&mut self, i: usize, feedback: String, retry_from: u32) -> Reply {
        if let Some(no) = self.check_retry(i) {
            return Reply::no(no);
        }
        let update = TaskUpdate {
            reason: Some(None),
            feedback: Some(Some(feedback).filter(|f| !f.is_empty())),
            merged: Some(false),
            retry_from: Some(retry_from),
            ..Default::default()
        };
        let kind = EventKind::RetryRequested;
        let mut out = vec![self.to(i, TaskStatus::Pending, update, kind, json!({}))];
        self.tasks[i].forced = true;

        // Dependents skipped because of it (and their dependents) wait again.
        loop {
            let mut changed = false;
            for j in 0..self.tasks.len() {
                if self.tasks[j].status() != TaskStatus::Skipped {
                    continue;
                }
                let waits = self.tasks[j].spec.needs.iter().any(|n| {
                    self.idx(n)
                        .is_some_and(|k| self.tasks[k].status() == TaskStatus::Pending)
                });
                if waits {
                    self.tasks[j].forced = true;
                    out.push(self.unskip(j));
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        // Nothing new was starting because of a failure; look again.
        self.stop_new = None;
        self.recheck_failures();
        if self.stop_new.is_none() {
            for j in 0..self.tasks.len() {
                if self.tasks[j].status() == TaskStatus::Skipped {
                    out.push(self.unskip(j));
                }
            }
        }
        let task = &self.tasks[i].spec.id;
        Reply::yes(format!("task {task:?} will run again"), out)
    }

    fn unskip(&mut self, j: usize) -> Action {
        let update = TaskUpdate {
            reason: Some(None),
            ..Default::default()
        };
        self.to(
            j,
            TaskStatus::Pending,
            update,
            EventKind::Unskipped,
            json!({}),
        )
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
        let data = json!({ "spent": spent, "budget": budget });
        let mut out = vec![Action::RunEvent(EventKind::BudgetExceeded, data)];
        out.extend(self.running_tasks().map(|i| Action::Send {
            task: i,
            cmd: WorkerCmd::OverBudget(reason.clone()),
        }));
        out
    }

    pub fn running_tasks(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.tasks.len()).filter(|i| self.tasks[*i].status() == TaskStatus::Running)
    }

    /// A message for task `i` (`said` as the agent reads it): a running agent
    /// that takes input while it runs (`live`) gets it now; any other task
    /// that has not ended, with its next attempt.
    pub fn message(&self, i: usize, id: i64, said: String, live: bool) -> Reply {
        let task = self.tasks[i].spec.id.clone();
        match self.tasks[i].status() {
            s if s.is_finished() => Reply::no(format!(
                "task {task:?} has already ended ({s}); nobody would read a message"
            )),
            TaskStatus::Running if live && !self.tasks[i].is_stopping() => Reply::yes(
                format!("delivered to task {task:?} now, as a new turn"),
                vec![Action::Send {
                    task: i,
                    cmd: WorkerCmd::Message { id, said },
                }],
            ),
            _ => Reply::yes(
                format!("task {task:?} gets the message with its next attempt"),
                vec![],
            ),
        }
    }

    /// baton is asked to stop: running agents are stopped with their work
    /// committed, and the run is left for `resume`.
    pub fn shutdown(&mut self) -> Vec<Action> {
        self.stop_run(json!({}))
    }

    /// baton cannot go on with the run (not a task's fault): it stops as for
    /// a shutdown, saying why, and `resume` continues it once that is fixed.
    pub fn halt(&mut self, reason: String) -> Vec<Action> {
        self.stop_run(json!({ "reason": reason }))
    }

    fn stop_run(&mut self, why: Value) -> Vec<Action> {
        if self.shutting_down {
            return Vec::new();
        }
        self.shutting_down = true;
        let mut out = vec![Action::RunEvent(EventKind::Interrupt, why)];
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
        let all_good = self
            .tasks
            .iter()
            .all(|t| t.status() == TaskStatus::Succeeded);
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
    fn stop_waiting(&mut self, what: Wait, which: impl Fn(&Slot) -> bool) -> Vec<Action> {
        let mut out = Vec::new();
        for (i, t) in self.tasks.iter_mut().enumerate() {
            if t.waits() == Some(what) && which(t) {
                t.standing = Standing::Pending { waits: None };
                out.push(waits_no_more(i));
            }
        }
        out
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
        event: Some((EventKind::Waiting, json!({ "for": for_, "reason": why }))),
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
