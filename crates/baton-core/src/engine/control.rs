//! Requests from other processes (`baton stop`, `steer`, `approve`), read
//! from the store's control table and answered there.

use super::{worker, Engine, Status, WorkerCmd};
use crate::store::TaskUpdate;
use serde_json::json;
use tokio::sync::mpsc::UnboundedSender;

/// Waits for the process driving a run to answer control request `id`:
/// `(ok, message)`, or None if it did not answer within `timeout`.
pub async fn wait_answer(
    store: &crate::store::Store,
    id: i64,
    timeout: std::time::Duration,
) -> Result<Option<(bool, String)>, crate::store::StoreError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(c) = store.control(id)? {
            if c.handled_at.is_some() {
                return Ok(Some((c.ok == Some(true), c.response.unwrap_or_default())));
            }
        }
        if std::time::Instant::now() > deadline {
            return Ok(None);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

impl Engine {
    /// Takes a task queued at run time (its plan text is in the store).
    fn add_queued(&mut self, task: &str) -> (bool, String) {
        if self.idx(task).is_some() {
            return (false, format!("task {task:?} exists already"));
        }
        let snippet = match self.sh.store.added_tasks(&self.sh.run_id) {
            Ok(all) => all.into_iter().find(|(id, _)| id == task).map(|(_, s)| s),
            Err(e) => return (false, e.to_string()),
        };
        let Some(snippet) = snippet else {
            return (false, format!("no queued task {task:?} in the store"));
        };
        match self.sh.plan.parse_added(&[snippet]) {
            Ok(mut specs) if specs.len() == 1 => {
                let spec = specs.remove(0);
                let _ = self.sh.store.event(
                    &self.sh.run_id,
                    Some(task),
                    None,
                    "task_queued",
                    &json!({ "agent": spec.agent }),
                );
                self.tasks.push(super::Rt {
                    spec,
                    status: Status::Pending,
                    tx: None,
                });
                (true, format!("task {task:?} queued"))
            }
            Ok(_) => (false, "the queued task did not parse as one task".into()),
            Err(e) => (false, e.to_string()),
        }
    }

    /// Runs a task that ended badly again, with fresh retries; tasks skipped
    /// because of it wait for it again. A conflicted task first gets the
    /// integration branch merged into its worktree, conflicts and all, for
    /// its agent to resolve.
    async fn retry(&mut self, i: usize, message: Option<String>) -> (bool, String) {
        if self.over_budget {
            return (
                false,
                "the run's budget_usd is spent: nothing more runs in this run; start a new one"
                    .into(),
            );
        }
        let status = self.tasks[i].status;
        let id = self.tasks[i].spec.id.clone();
        if !matches!(
            status,
            Status::Failed | Status::Stopped | Status::Conflicted | Status::Skipped
        ) {
            return (false, format!("task {id:?} is {}; only a failed, stopped, conflicted or skipped task can be retried", status.as_str()));
        }
        let rec = self.sh.store.task(&self.sh.run_id, &id).ok().flatten();
        let attempts = rec.as_ref().map(|r| r.attempts).unwrap_or(0);
        let mut feedback = message.unwrap_or_else(|| {
            rec.as_ref()
                .and_then(|r| r.feedback.clone())
                .unwrap_or_default()
        });
        if status == Status::Conflicted {
            if let Some(wt) = rec
                .as_ref()
                .and_then(|r| r.worktree.clone())
                .filter(|w| std::path::Path::new(w).exists())
            {
                let out = crate::git::git(
                    std::path::Path::new(&wt),
                    ["merge", "--no-edit", "--no-ff", self.head.as_str()],
                )
                .await;
                let conflicted = out.map(|o| o.code != 0).unwrap_or(true);
                feedback = format!(
                    "Your work conflicted with the integration branch, which baton has now merged into your worktree{}. Resolve every conflict (keep both sides' intent), then finish.\n{feedback}",
                    if conflicted { " with conflict markers left in the files" } else { "" }
                );
            }
        }
        let _ = self.sh.store.set_retry_from(&self.sh.run_id, &id, attempts);
        let upd = TaskUpdate {
            reason: Some(None),
            feedback: Some(Some(feedback).filter(|f| !f.is_empty())),
            merged: Some(false),
            ..Default::default()
        };
        self.set_status(i, Status::Pending, upd, "retry_requested", json!({}));
        self.forced.insert(id.clone());

        // Dependents skipped because of it (and their dependents) wait again.
        loop {
            let mut changed = false;
            for j in 0..self.tasks.len() {
                if self.tasks[j].status != Status::Skipped {
                    continue;
                }
                let waits = self.tasks[j].spec.needs.iter().any(|n| {
                    self.idx(n)
                        .map(|k| self.tasks[k].status == Status::Pending)
                        .unwrap_or(false)
                });
                if waits {
                    self.forced.insert(self.tasks[j].spec.id.clone());
                    self.set_status(
                        j,
                        Status::Pending,
                        TaskUpdate {
                            reason: Some(None),
                            ..Default::default()
                        },
                        "unskipped",
                        json!({}),
                    );

                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        // Nothing new was starting because of a failure; look again.
        self.stop_new = None;
        for j in 0..self.tasks.len() {
            let s = self.tasks[j].status;
            if matches!(s, Status::Failed | Status::Stopped | Status::Conflicted) {
                self.after_failure(j, s);
            }
        }
        for j in 0..self.tasks.len() {
            if self.tasks[j].status == Status::Skipped && self.stop_new.is_none() {
                self.set_status(
                    j,
                    Status::Pending,
                    TaskUpdate {
                        reason: Some(None),
                        ..Default::default()
                    },
                    "unskipped",
                    json!({}),
                );
            }
        }
        (true, format!("task {id:?} will run again"))
    }

    /// The run's `budget_usd`, enforced while agents run: once crossed, every
    /// running agent is stopped (its work committed) and nothing new starts.
    pub(super) fn check_run_budget(&mut self) {
        let Some(budget) = self.sh.plan.run.budget_usd else {
            return;
        };
        if self.over_budget {
            return;
        }
        let Ok(Some(spent)) = self.sh.store.run_cost(&self.sh.run_id) else {
            return;
        };
        if spent <= budget {
            return;
        }
        self.over_budget = true;
        let reason = format!(
            "run budget exceeded: the run spent ${spent:.4} of its budget_usd ${budget:.4}"
        );
        let _ = self.sh.store.event(
            &self.sh.run_id,
            None,
            None,
            "budget_exceeded",
            &json!({ "spent": spent, "budget": budget }),
        );
        self.stop_new.get_or_insert_with(|| {
            format!("not started: the run's budget_usd (${budget:.4}) was spent")
        });
        for t in &self.tasks {
            if let (Status::Running, Some(tx)) = (t.status, &t.tx) {
                let _ = tx.send(WorkerCmd::OverBudget(reason.clone()));
            }
        }
    }

    pub(super) async fn poll_controls(&mut self, fin_tx: &UnboundedSender<worker::Finished>) {
        let controls = match self.sh.store.pending_controls(&self.sh.run_id) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cannot read control requests: {e}");
                return;
            }
        };
        for c in controls {
            let (ok, response) = self
                .handle(&c.task_id, &c.kind, c.message.clone(), fin_tx)
                .await;
            let _ = self.sh.store.answer_control(c.id, ok, &response);
        }
    }

    async fn handle(
        &mut self,
        task: &str,
        kind: &str,
        message: Option<String>,
        fin_tx: &UnboundedSender<worker::Finished>,
    ) -> (bool, String) {
        if self.shutting_down && matches!(kind, "add" | "steer" | "retry" | "approve") {
            return (
                false,
                "baton is shutting down; try again once the run is resumed".into(),
            );
        }
        if kind == "add" {
            return self.add_queued(task);
        }
        let Some(i) = self.idx(task) else {
            return (
                false,
                format!("run {} has no task {task:?}", self.sh.run_id),
            );
        };
        if kind == "retry" {
            return self.retry(i, message).await;
        }
        let status = self.tasks[i].status;
        let ended = matches!(
            status,
            Status::Succeeded
                | Status::Failed
                | Status::Stopped
                | Status::Conflicted
                | Status::Skipped
        );
        if ended {
            return (
                false,
                format!(
                    "task {task:?} has already ended ({}); there is nothing to {kind}",
                    status.as_str()
                ),
            );
        }
        match kind {
            "stop" => match status {
                Status::Running => {
                    if let Some(tx) = &self.tasks[i].tx {
                        let _ = tx.send(WorkerCmd::Stop);
                    }
                    (
                        true,
                        format!(
                            "stopping task {task:?}; its work will be committed on {}",
                            crate::paths::task_branch(&self.sh.run_id, task)
                        ),
                    )
                }
                Status::Queued => (
                    false,
                    format!("task {task:?} is being merged; it cannot be stopped now"),
                ),
                _ => {
                    let reason = "stopped by request (baton stop)".to_string();
                    self.end_badly(i, Status::Stopped, reason, TaskUpdate::default());
                    (true, format!("task {task:?} stopped"))
                }
            },
            "steer" => {
                let msg = message.unwrap_or_default();
                let _ = self.sh.store.event(
                    &self.sh.run_id,
                    Some(task),
                    None,
                    "steered",
                    &json!({ "message": msg }),
                );
                match status {
                    Status::Running => {
                        if let Some(tx) = &self.tasks[i].tx {
                            let _ = tx.send(WorkerCmd::Steer(msg));
                        }
                        (
                            true,
                            format!("task {task:?} restarts with your message as feedback"),
                        )
                    }
                    Status::AwaitingApproval => {
                        self.start_task(i, Some(msg), fin_tx).await;
                        (
                            true,
                            format!("task {task:?} restarts with your message as feedback"),
                        )
                    }
                    Status::Pending => {
                        let _ = self.sh.store.update_task(
                            &self.sh.run_id,
                            task,
                            &TaskUpdate {
                                feedback: Some(Some(msg)),
                                ..Default::default()
                            },
                            None,
                        );
                        (true, format!("task {task:?} has not started; it will get your message with its prompt"))
                    }
                    _ => (
                        false,
                        format!("task {task:?} is being merged; it cannot be steered now"),
                    ),
                }
            }
            "approve" => match status {
                Status::AwaitingApproval => {
                    let _ = self.sh.store.event(
                        &self.sh.run_id,
                        Some(task),
                        None,
                        "approved",
                        &json!({}),
                    );
                    if self.tasks[i].spec.merge {
                        self.set_status(
                            i,
                            Status::Queued,
                            TaskUpdate::default(),
                            "merge_queued",
                            json!({}),
                        );
                        self.merge_queue.push_back(task.to_string());
                    } else {
                        self.set_status(
                            i,
                            Status::Succeeded,
                            TaskUpdate::default(),
                            "succeeded",
                            json!({ "merged": false }),
                        );
                    }
                    (true, format!("task {task:?} approved"))
                }
                _ => (
                    false,
                    format!(
                        "task {task:?} is {}, not waiting for approval",
                        status.as_str()
                    ),
                ),
            },
            other => (false, format!("unknown request {other:?}")),
        }
    }
}
