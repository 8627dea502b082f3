//! Requests to a running engine, from this process (its handle) or another
//! (the store's control table), answered by the same code: the board says
//! yes or no, and what the engine must do.

use super::Engine;
use crate::engine::board::Reply;
use crate::engine::messages::{Answer, Request};
use crate::model::{ControlKind, TaskStatus};
use crate::payload::Payload;

impl Engine {
    pub(super) async fn take(&mut self, req: Request) {
        let answer = self.answer(&req.task, req.kind, req.message).await;
        let _ = req.answer.send(answer);
    }

    /// Answers a request, from this process or another.
    async fn answer(&mut self, task: &str, kind: ControlKind, message: Option<String>) -> Answer {
        if let Some(no) = self.board.refuse(kind) {
            return Answer::no(no);
        }
        if kind == ControlKind::Add {
            return self.add_queued(task).await;
        }
        let Some(i) = self.board.idx(task) else {
            return Answer::no(format!("run {} has no task {task:?}", self.sh.run_id));
        };
        let reply = match kind {
            ControlKind::Retry => self.retry(i, message).await,
            ControlKind::Message => self.deliver(i, message).await,
            ControlKind::Answer => self.answer_came(message).await,
            ControlKind::Pick => self.pick_by_hand(i, message).await,
            _ => self.board.request(i, kind, message),
        };
        self.apply(reply.actions).await;
        Answer {
            ok: reply.ok,
            message: reply.message,
        }
    }

    /// A person picks candidate `message` of race task `i` in place of its
    /// winner, before the race merges.
    async fn pick_by_hand(&mut self, i: usize, message: Option<String>) -> Reply {
        let which = message.unwrap_or_default();
        let j = match self.board.check_pick(i, which.trim()) {
            Ok(j) => j,
            Err(no) => return Reply::no(no),
        };
        let (race, candidate) = (self.board.id(i).to_string(), self.board.id(j).to_string());
        match crate::engine::pick::by_hand(&self.sh, &race, &candidate).await {
            Ok((commit, start)) => {
                self.lane.finished(&self.sh, i, Some(commit), start).await;
                Reply::yes(
                    format!("task {race:?}: candidate {candidate} is its winner now; approve it to merge (baton approve {race})"),
                    Vec::new(),
                )
            }
            Err(no) => Reply::no(no),
        }
    }

    /// A message posted in the store (`message` holds its id) for task `i`.
    async fn deliver(&mut self, i: usize, message: Option<String>) -> Reply {
        let Some(id) = message.and_then(|m| m.parse::<i64>().ok()) else {
            return Reply::no("a message request names no message".into());
        };
        let found = self.sh.db(move |s, _| s.message(id)).await;
        let Ok(Some(msg)) = found else {
            return Reply::no(format!("no message {id} in the store"));
        };
        let live = self.takes_input(i);
        self.board.message(i, id, msg.said(), live)
    }

    /// A task that ended badly runs again. A conflicted task first gets the
    /// integration branch merged into its worktree, conflicts and all, for
    /// its agent to resolve.
    async fn retry(&mut self, i: usize, message: Option<String>) -> Reply {
        if let Some(no) = self.board.check_retry(i) {
            return Reply::no(no);
        }
        let id = self.board.id(i).to_string();
        let rec = self
            .sh
            .db(move |s, run| s.task(run, &id))
            .await
            .ok()
            .flatten();
        let attempts = rec.as_ref().map(|r| r.attempts).unwrap_or(0);
        let mut feedback = message.unwrap_or_else(|| {
            rec.as_ref()
                .and_then(|r| r.feedback.clone())
                .unwrap_or_default()
        });
        let worktree = rec.as_ref().and_then(|r| r.existing_worktree());
        if let (TaskStatus::Conflicted, Some(wt)) = (self.board.status(i), worktree) {
            let conflicted = self.lane.merge_into(&self.sh, wt).await.unwrap_or(true);
            feedback = format!(
                "Your work conflicted with the integration branch, which baton has now merged into your worktree{}. Resolve every conflict (keep both sides' intent), then finish.\n{feedback}",
                if conflicted { " with conflict markers left in the files" } else { "" }
            );
        }
        self.board.retry(i, feedback, attempts)
    }

    /// Takes a task queued at run time (its plan text is in the store).
    async fn add_queued(&mut self, task: &str) -> Answer {
        if self.board.idx(task).is_some() {
            return Answer::no(format!("task {task:?} exists already"));
        }
        let added = match self.sh.db(|s, run| s.added_tasks(run)).await {
            Ok(all) => all,
            Err(e) => return Answer::no(e.to_string()),
        };
        let Some(at) = added.iter().position(|(id, _)| id == task) else {
            return Answer::no(format!("no queued task {task:?} in the store"));
        };
        // An older baton's task (no spec kept) is checked again, with the
        // tasks added before it: it may need them.
        let upto: Vec<(&str, &str)> = match added[at].1.spec.is_empty() {
            true => added[..=at]
                .iter()
                .map(|(_, a)| (a.snippet.as_str(), ""))
                .collect(),
            false => vec![(added[at].1.snippet.as_str(), added[at].1.spec.as_str())],
        };
        let spec = match self.sh.plan.queued(&upto) {
            Ok(mut specs) if specs.len() == upto.len() => specs.remove(upto.len() - 1),
            Ok(_) => return Answer::no("the queued task did not parse as one task"),
            Err(e) => return Answer::no(e.to_string()),
        };
        // A race comes with its candidates (queued before it).
        for spec in crate::plan::race::expand(std::slice::from_ref(&spec)) {
            let data = Payload::TaskQueued {
                agent: spec.agent.clone(),
            };
            self.sh.event(Some(&spec.id), None, data).await;
            if let Err(e) = self.board.add(spec) {
                return Answer::no(e);
            }
        }
        Answer::yes(format!("task {task:?} queued"))
    }

    /// Requests from other processes, answered in the store.
    pub(super) async fn poll_controls(&mut self) {
        let controls = match self.sh.db(|s, run| s.pending_controls(run)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cannot read control requests: {e}");
                return;
            }
        };
        for c in controls {
            let answer = self.answer(&c.task_id, c.kind, c.message.clone()).await;
            let res = self
                .sh
                .db(move |s, _| s.answer_control(c.id, answer.ok, &answer.message))
                .await;
            if let Err(e) = res {
                tracing::warn!("cannot answer control request {}: {e}", c.id);
            }
        }
    }
}
