//! Requests from other processes (`baton stop`, `steer`, `approve`), read
//! from the store's control table and answered there.

use super::{worker, Engine, Status, WorkerCmd};
use crate::store::TaskUpdate;
use serde_json::json;
use tokio::sync::mpsc::UnboundedSender;

impl Engine {
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
        let Some(i) = self.idx(task) else {
            return (
                false,
                format!("run {} has no task {task:?}", self.sh.run_id),
            );
        };
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
                    self.set_status(
                        i,
                        Status::Stopped,
                        TaskUpdate {
                            reason: Some(Some(reason.clone())),
                            ..Default::default()
                        },
                        "stopped",
                        json!({ "reason": reason }),
                    );
                    self.after_failure(i, Status::Stopped);
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
