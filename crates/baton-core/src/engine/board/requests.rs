//! What a person (or another program) asks of a task, answered by the
//! board: stop, steer, approve, retry (and un-skip what waited on it), and
//! messages.

use super::slot::Standing;
use super::{Action, Board, Reply};
use crate::engine::messages::WorkerCmd;
use crate::model::{ControlKind, TaskStatus};
use crate::payload::Payload;
use crate::store::TaskUpdate;

impl Board {
    /// Whether a request can be taken at all now.
    pub fn refuse(&self, kind: ControlKind) -> Option<String> {
        let needs_new_work = matches!(
            kind,
            ControlKind::Add
                | ControlKind::Steer
                | ControlKind::Retry
                | ControlKind::Approve
                | ControlKind::Pick
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
        if kind == ControlKind::Steer {
            if let Some(no) = self.race_refuses(i, "steer") {
                return Reply::no(no);
            }
        }
        match kind {
            ControlKind::Stop => self.stop(i),
            ControlKind::Steer => self.steer(i, message.unwrap_or_default()),
            ControlKind::Approve => self.approve(i),
            ControlKind::Retry
            | ControlKind::Add
            | ControlKind::Message
            | ControlKind::Answer
            | ControlKind::Pick => {
                Reply::no(format!("{kind} is not a request for a task that runs"))
            }
        }
    }

    pub(super) fn stop(&mut self, i: usize) -> Reply {
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
                let mut actions =
                    self.end_badly(i, TaskStatus::Stopped, reason, TaskUpdate::default());
                actions.extend(self.stop_candidates(i));
                actions.extend(self.race_over(i));
                Reply::yes(format!("task {task:?} stopped"), actions)
            }
        }
    }

    pub(super) fn steer(&mut self, i: usize, message: String) -> Reply {
        let task = self.tasks[i].spec.id.clone();
        let restarts = format!("task {task:?} restarts with your message as feedback");
        let noted = Action::Record {
            task: i,
            status: None,
            update: Box::default(),
            event: Some(Payload::Steered {
                message: message.clone(),
            }),
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

    pub(super) fn approve(&mut self, i: usize) -> Reply {
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
            event: Some(Payload::Approved {}),
        }];
        if self.tasks[i].spec.merge {
            let none = TaskUpdate::default();
            let queued = Payload::MergeQueued { commit: None };
            actions.push(self.to(i, TaskStatus::Merging, none, queued));
            actions.push(Action::Merge(i));
        } else {
            let data = Payload::Succeeded {
                commit: None,
                merged: false,
            };
            let none = TaskUpdate::default();
            actions.push(self.to(i, TaskStatus::Succeeded, none, data));
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
        if let Some(no) = self.race_refuses(i, "retry") {
            return Some(no);
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
        let reopened = match self.reopen_race(i) {
            Ok(acts) => acts,
            Err(no) => return Reply::no(no),
        };
        let asked = Payload::RetryRequested {};
        let mut out = vec![self.to(i, TaskStatus::Pending, update, asked)];
        out.extend(reopened);
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

    pub(super) fn unskip(&mut self, j: usize) -> Action {
        let update = TaskUpdate {
            reason: Some(None),
            ..Default::default()
        };
        self.to(j, TaskStatus::Pending, update, Payload::Unskipped {})
    }

    /// A message for task `i` (`said` as the agent reads it): a running agent
    /// that takes input while it runs (`live`) gets it now; any other task
    /// that has not ended, with its next attempt.
    pub fn message(&self, i: usize, id: i64, said: String, live: bool) -> Reply {
        if let Some(no) = self.race_refuses(i, "message") {
            return Reply::no(no);
        }
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
}
