//! Questions to a person on the board: a task whose agent asked and ended
//! its turn waits, holding no slot; the answer starts it again (or reaches
//! its running agent); a question whose time runs out with no default
//! fails it.

use super::slot::{Standing, Wait};
use super::{Action, Board, Reply};
use crate::engine::messages::WorkerCmd;
use crate::model::{Activity, TaskStatus};
use crate::payload::Payload;
use crate::store::TaskUpdate;

impl Board {
    /// Task `i`'s agent asked `question` and its attempt ended: it waits.
    pub(super) fn wait_answer(
        &mut self,
        i: usize,
        commit: Option<String>,
        question: &str,
    ) -> Action {
        let update = TaskUpdate {
            commit_id: commit,
            activity: Some(Some(Activity::WaitingAnswer)),
            ..Default::default()
        };
        let data = Payload::Waiting {
            for_: "answer".into(),
            reason: format!("waiting: an answer to {question:?}"),
            limit: None,
        };
        let act = self.to(i, TaskStatus::Pending, update, data);
        self.tasks[i].standing = Standing::Pending {
            waits: Some(Wait::Answer),
        };
        act
    }

    /// A resumed run: pending task `i` has a question nobody answered yet.
    pub fn still_waits_answer(&mut self, i: usize) {
        if self.tasks[i].status() == TaskStatus::Pending {
            self.tasks[i].standing = Standing::Pending {
                waits: Some(Wait::Answer),
            };
        }
    }

    /// Whether task `i` waits for an answer (no process, no slot).
    pub fn waits_answer(&self, i: usize) -> bool {
        self.tasks[i].waits() == Some(Wait::Answer)
    }

    /// A question of task `i` was answered; the answer is message `id`
    /// (`said` as the agent reads it). A waiting task starts again (its next
    /// attempt takes the message, in its session); a running agent that
    /// takes input gets it now; any other gets it with its next attempt.
    pub fn answered(&mut self, i: usize, id: i64, said: String, live: bool) -> Reply {
        let task = self.tasks[i].spec.id.clone();
        if self.waits_answer(i) {
            if self.shutting_down {
                return Reply::yes(
                    format!("task {task:?} gets the answer when the run is resumed"),
                    vec![],
                );
            }
            self.put(i, TaskStatus::Running);
            let update = TaskUpdate {
                activity: Some(None),
                ..Default::default()
            };
            let noted = Action::Record {
                task: i,
                status: None,
                update: Box::new(update),
                event: None,
            };
            let start = Action::Start {
                task: i,
                feedback: None,
            };
            return Reply::yes(
                format!("task {task:?} goes on with the answer"),
                vec![noted, start],
            );
        }
        self.message(i, id, said, live)
    }

    /// Task `i`'s question got no answer in time and has no default: the
    /// task fails, its running agent stopped with its work kept.
    pub fn no_answer(&mut self, i: usize, reason: String) -> Vec<Action> {
        match self.tasks[i].status() {
            TaskStatus::Running if !self.tasks[i].is_stopping() => {
                if let Standing::Running { stopping, .. } = &mut self.tasks[i].standing {
                    *stopping = true;
                }
                vec![Action::Send {
                    task: i,
                    cmd: WorkerCmd::NoAnswer(reason),
                }]
            }
            TaskStatus::Pending if self.waits_answer(i) => {
                self.end_badly(i, TaskStatus::Failed, reason, TaskUpdate::default())
            }
            // Its agent moved on (or it ended): nothing waits for the answer.
            _ => Vec::new(),
        }
    }
}
