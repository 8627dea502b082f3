//! Questions agents ask people, as the engine follows them: the clock of
//! each question with a timeout, answers that reach their task (a control
//! request names the question), a default given or a task failed when the
//! time runs out, and, after a restart, the tasks that still wait.

use super::Engine;
use crate::clock::now_ms;
use crate::engine::board::Reply;
use crate::store::{Answered, QuestionRecord};
use std::collections::BTreeMap;

/// When each open question's time runs out (question id → ms), and the
/// tasks that asked any.
#[derive(Default)]
pub(crate) struct Asking(BTreeMap<i64, i64>, std::collections::HashSet<String>);

impl Asking {
    pub fn asked_by(&mut self, task: String) {
        self.1.insert(task);
    }

    pub fn has_asked(&self, task: &str) -> bool {
        self.1.contains(task)
    }

    pub fn set(&mut self, question: i64, expires_at: Option<i64>) {
        if let Some(at) = expires_at {
            self.0.insert(question, at);
        }
    }

    /// Takes the questions whose time has run out at `now`.
    fn due(&mut self, now: i64) -> Vec<i64> {
        let due: Vec<i64> = self
            .0
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(q, _)| *q)
            .collect();
        for q in &due {
            self.0.remove(q);
        }
        due
    }
}

impl Engine {
    /// A control request: question `message` (its id) was answered.
    pub(super) async fn answer_came(&mut self, message: Option<String>) -> Reply {
        let Some(id) = message.and_then(|m| m.parse::<i64>().ok()) else {
            return Reply::no("an answer request names no question".into());
        };
        let found = self.sh.db(move |s, _| s.question(id)).await;
        let q = match found {
            Ok(Some(q)) if q.run_id == self.sh.run_id => q,
            Ok(_) => return Reply::no(format!("run {} has no question {id}", self.sh.run_id)),
            Err(e) => return Reply::no(format!("cannot read question {id}: {e}")),
        };
        self.asking.0.remove(&id);
        self.hand_answer(&q).await
    }

    /// Hands question `q`'s answer to its task, as the board says.
    async fn hand_answer(&mut self, q: &QuestionRecord) -> Reply {
        let Some(i) = self.board.idx(&q.task_id) else {
            return Reply::no(format!(
                "run {} has no task {:?}",
                self.sh.run_id, q.task_id
            ));
        };
        let Some(message) = q.message_id else {
            return Reply::no(format!("question {} has no answer", q.id));
        };
        let found = self.sh.db(move |s, _| s.message(message)).await;
        let Ok(Some(msg)) = found else {
            return Reply::no(format!("no message {message} in the store"));
        };
        // A waiting task starts again, whoever else had the answer.
        if !self.board.waits_answer(i) {
            // A script's `baton ask` took it already (its task may be done).
            if msg.delivered_at.is_some() {
                return Reply::yes(format!("task {:?} took the answer", q.task_id), vec![]);
            }
            // A script waits on the door for it now: the door hands it over.
            let live = self.sh.live_askers.lock().is_ok_and(|l| l.contains(&q.id));
            if live && self.board.status(i) == crate::model::TaskStatus::Running {
                return Reply::yes(format!("task {:?} gets the answer now", q.task_id), vec![]);
            }
        }
        let live = self.takes_input(i);
        self.board.answered(i, message, msg.said(), live)
    }

    /// The question clocks: a question whose time ran out gets its default
    /// answer, or fails its task.
    pub(super) async fn questions_due(&mut self) {
        for id in self.asking.due(now_ms()) {
            let found = self.sh.db(move |s, _| s.question(id)).await;
            let Ok(Some(q)) = found else { continue };
            if !q.is_open() {
                continue;
            }
            match q.question.default_answer.clone() {
                Some(default) => {
                    let res = self
                        .sh
                        .db(move |s, _| s.answer_question(id, &default, "default"))
                        .await;
                    match res {
                        Ok(Answered::Now { question, .. }) => {
                            let reply = self.hand_answer(&question).await;
                            self.apply(reply.actions).await;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!("cannot give question {id} its default: {e}"),
                    }
                }
                None => {
                    match self.sh.db(move |s, _| s.expire_question(id)).await {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => {
                            tracing::warn!("cannot close question {id}: {e}");
                            continue;
                        }
                    }
                    let Some(i) = self.board.idx(&q.task_id) else {
                        continue;
                    };
                    let acts = self
                        .board
                        .no_answer(i, format!("no answer to: {}", q.question.text));
                    self.apply(acts).await;
                }
            }
        }
    }

    /// Task `i`'s attempt ended waiting for an answer: one that came in
    /// the meantime starts it again at once.
    pub(super) async fn answered_meanwhile(&mut self, i: usize) {
        let task = self.board.id(i).to_string();
        let answered = self
            .sh
            .db(move |s, run| s.answers_undelivered(run, &task))
            .await
            .is_ok_and(|a| !a.is_empty());
        if !answered || !self.board.waits_answer(i) {
            return;
        }
        let reply = self.board.answered(i, 0, String::new(), false);
        self.apply(reply.actions).await;
    }

    /// A resumed run: its open questions' clocks, and the pending tasks
    /// that still wait for an answer.
    pub(super) async fn restore_questions(&mut self) {
        let run = self.sh.run_id.clone();
        let open = match self.sh.db(move |s, _| s.open_questions(Some(&run))).await {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!("cannot read run {}'s open questions: {e}", self.sh.run_id);
                return;
            }
        };
        for q in open {
            self.asking.set(q.id, q.question.expires_at);
            self.asking.asked_by(q.task_id.clone());
            if let Some(i) = self.board.idx(&q.task_id) {
                self.board.still_waits_answer(i);
            }
        }
    }

    /// Whether task `i`'s agent takes a message while it runs.
    pub(super) fn takes_input(&self, i: usize) -> bool {
        self.sh
            .plan
            .agents
            .get(&self.board.spec(i).agent)
            .and_then(|p| crate::adapter::for_profile(&p.cli()).ok())
            .is_some_and(|a| a.steer_line("").is_some())
    }
}
