//! How a task's go ends on the board: its worker finished (done, failed,
//! stopped, interrupted), its merge went one way or another, a conflict
//! went to a resolver; and what a bad end means for the rest of the run
//! (`on_failure`).

use super::slot::Standing;
use super::{Action, Board};
use crate::engine::messages::{MergeResult, Outcome};
use crate::model::TaskStatus;
use crate::payload::Payload;
use crate::plan::OnFailure;
use crate::store::TaskUpdate;

impl Board {
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
                event: Some(Payload::Resolving {
                    paths: paths.to_vec(),
                }),
            },
            Action::Start {
                task: i,
                feedback: None,
            },
        ]
    }

    /// A worker is done with task `i`. A race task's pick that ended frees
    /// its candidates' desks.
    pub fn finished(&mut self, i: usize, outcome: Outcome) -> Vec<Action> {
        let picked = matches!(
            outcome,
            Outcome::Done { .. } | Outcome::Failed { .. } | Outcome::Stopped { .. }
        );
        let mut out = self.go_ended(i, outcome);
        if picked {
            out.extend(self.race_over(i));
        }
        out
    }

    fn go_ended(&mut self, i: usize, outcome: Outcome) -> Vec<Action> {
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
            Outcome::Done { commit, result } => self.done(i, commit, result),
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
                let none = Payload::Interrupted {
                    reason: None,
                    resumed: false,
                };
                vec![self.to(i, TaskStatus::Pending, update, none)]
            }
            Outcome::Waiting { commit, question } => vec![self.wait_answer(i, commit, &question)],
            Outcome::Broken { reason } => {
                let data = Payload::Interrupted {
                    reason: Some(reason.clone()),
                    resumed: false,
                };
                let mut out = vec![self.to(i, TaskStatus::Pending, TaskUpdate::default(), data)];
                out.extend(self.halt(reason));
                out
            }
        }
    }

    /// Task `i` passed its gates at `commit`: approval, the merge queue, or
    /// done without a merge (`merge = false`).
    fn done(&mut self, i: usize, commit: String, result: String) -> Vec<Action> {
        let update = TaskUpdate {
            commit_id: Some(commit.clone()),
            result: Some(result),
            reason: Some(None),
            ..Default::default()
        };
        let spec = &self.tasks[i].spec;
        if spec.approve && !self.rules.auto_approve {
            let data = Payload::ApprovalNeeded { commit };
            vec![self.to(i, TaskStatus::AwaitingApproval, update, data)]
        } else if self.is_candidate(i) {
            let data = Payload::Succeeded {
                commit: Some(commit),
                merged: false,
            };
            let mut out = vec![self.to(i, TaskStatus::Succeeded, update, data)];
            // Its desk stays while its race's pick may read it.
            if self.pick_reads_desks(i) {
                self.kept_desks.insert(i);
            } else {
                out.push(Action::DropWorktree(i));
            }
            out.extend(self.outrun_others(i));
            out
        } else if spec.merge {
            let data = Payload::MergeQueued {
                commit: Some(commit),
            };
            vec![
                self.to(i, TaskStatus::Merging, update, data),
                Action::Merge(i),
            ]
        } else {
            let data = Payload::Succeeded {
                commit: Some(commit),
                merged: false,
            };
            vec![
                self.to(i, TaskStatus::Succeeded, update, data),
                Action::DropWorktree(i),
            ]
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
                    Some(head) => Payload::Merged {
                        changes: true,
                        integration: Some(head),
                        found_on_resume: false,
                    },
                    None => Payload::Merged {
                        changes: false,
                        integration: None,
                        found_on_resume: false,
                    },
                };
                vec![
                    self.to(i, TaskStatus::Succeeded, update, data),
                    Action::DropWorktree(i),
                ]
            }
            MergeResult::Conflict { paths, reason } => {
                let update = TaskUpdate {
                    reason: Some(Some(reason)),
                    ..Default::default()
                };
                let data = Payload::Conflicted {
                    paths: Some(paths),
                    reason: None,
                };
                let out = vec![self.to(i, TaskStatus::Conflicted, update, data)];
                self.after_failure(i);
                out
            }
            MergeResult::Failed(reason) => {
                self.end_badly(i, TaskStatus::Failed, reason, TaskUpdate::default())
            }
            // A race's work is its winner's: the pick would merge it again.
            MergeResult::VerifyFailed {
                reason, feedback, ..
            } if self.tasks[i].spec.race.is_some() => {
                let update = TaskUpdate {
                    feedback: Some(Some(feedback)),
                    ..Default::default()
                };
                self.end_badly(i, TaskStatus::Failed, reason, update)
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
                let data = Payload::VerifyFailed {
                    reason: reason.clone(),
                    retry: true,
                };
                // It goes on as the same task's next attempt, whatever held new work back.
                self.tasks[i].forced = true;
                vec![self.to(i, TaskStatus::Pending, update, data)]
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
    pub(super) fn end_badly(
        &mut self,
        i: usize,
        status: TaskStatus,
        reason: String,
        mut update: TaskUpdate,
    ) -> Vec<Action> {
        update.reason = Some(Some(reason.clone()));
        let out = vec![self.to(i, status, update, Payload::ended(status, reason))];
        self.after_failure(i);
        out
    }

    pub(super) fn after_failure(&mut self, i: usize) {
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

    pub(super) fn recheck_failures(&mut self) {
        for i in 0..self.tasks.len() {
            if matches!(
                self.tasks[i].status(),
                TaskStatus::Failed | TaskStatus::Stopped | TaskStatus::Conflicted
            ) {
                self.after_failure(i);
            }
        }
    }
}
