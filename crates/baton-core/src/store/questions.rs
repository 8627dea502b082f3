//! Questions agents ask people (`ask`): each is a row whose id is the
//! number of its `question_asked` event (which is also its inbox item's
//! id). An answer is written once, with the message that carries it to the
//! agent (the mailbox delivers it: live, or with the next attempt), in one
//! transaction: two people answering at once cannot both win.

use super::messages::{insert_event, insert_message};
use super::{Result, Store};
use crate::clock::now_ms;
use crate::payload::{Payload, Question};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

/// A question as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuestionRecord {
    pub id: i64,
    pub run_id: String,
    pub task_id: String,
    pub attempt: Option<u32>,
    #[serde(flatten)]
    pub question: Question,
    pub asked_at: i64,
    pub answer: Option<String>,
    pub answered_at: Option<i64>,
    /// `person`, `default` (its timeout gave the default) or `expired`.
    pub answered_by: Option<String>,
    /// The message that carries the answer to the agent.
    pub message_id: Option<i64>,
}

impl QuestionRecord {
    pub(super) fn from_row(r: &Row) -> rusqlite::Result<QuestionRecord> {
        let options: String = r.get("options")?;
        Ok(QuestionRecord {
            id: r.get("id")?,
            run_id: r.get("run_id")?,
            task_id: r.get("task_id")?,
            attempt: r.get("attempt")?,
            question: Question {
                text: r.get("text")?,
                options: serde_json::from_str(&options).unwrap_or_default(),
                default_answer: r.get("default_answer")?,
                expires_at: r.get("expires_at")?,
            },
            asked_at: r.get("asked_at")?,
            answer: r.get("answer")?,
            answered_at: r.get("answered_at")?,
            answered_by: r.get("answered_by")?,
            message_id: r.get("message_id")?,
        })
    }

    pub fn is_open(&self) -> bool {
        self.answered_at.is_none()
    }

    /// The answer as the agent reads it (after "Message from a person: ").
    fn said(&self, answer: &str, by: &str) -> String {
        let q = &self.question.text;
        match by {
            "default" => format!(
                "Nobody answered your question {q:?} in time; go on with its default answer: {answer}"
            ),
            _ => format!("The answer to your question {q:?} is: {answer}"),
        }
    }
}

/// How answering a question went.
#[derive(Debug, Clone, PartialEq)]
pub enum Answered {
    /// Answered now; the message `message` carries it to the agent.
    Now {
        question: QuestionRecord,
        message: i64,
    },
    /// It had been answered (or had expired) already: nothing changed.
    Closed(QuestionRecord),
    Unknown,
}

impl Store {
    /// Records a question of `task` (masked like every message) and its
    /// event; returns its id.
    pub fn ask(&self, run: &str, task: &str, attempt: u32, q: &Question) -> Result<i64> {
        let mask = |t: &str| self.mask_for_run(run, t);
        let q = Question {
            text: mask(&q.text)?,
            options: q.options.iter().map(|o| mask(o)).collect::<Result<_>>()?,
            default_answer: q.default_answer.as_deref().map(mask).transpose()?,
            expires_at: q.expires_at,
        };
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let said = Payload::QuestionAsked(q.clone());
        let id = insert_event(&tx, run, Some(task), Some(attempt), said)?;
        tx.execute(
            "INSERT INTO questions (id, run_id, task_id, attempt, text, options, default_answer, expires_at, asked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                id,
                run,
                task,
                attempt,
                q.text,
                serde_json::Value::from(q.options.clone()).to_string(),
                q.default_answer,
                q.expires_at,
                now_ms()
            ],
        )?;
        tx.commit()?;
        let _ = self.events_tx.send(id);
        Ok(id)
    }

    pub fn question(&self, id: i64) -> Result<Option<QuestionRecord>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT * FROM questions WHERE id = ?1",
                [id],
                QuestionRecord::from_row,
            )
            .optional()?)
    }

    /// Questions not answered yet: of one run, or of every run.
    pub fn open_questions(&self, run: Option<&str>) -> Result<Vec<QuestionRecord>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT * FROM questions WHERE answered_at IS NULL AND (?1 IS NULL OR run_id = ?1) ORDER BY id",
        )?;
        let rows = st.query_map([run], QuestionRecord::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// How many questions `task` asked in `run`.
    pub fn questions_asked(&self, run: &str, task: &str) -> Result<u32> {
        Ok(self.reader().query_row(
            "SELECT COUNT(*) FROM questions WHERE run_id = ?1 AND task_id = ?2",
            params![run, task],
            |r| r.get(0),
        )?)
    }

    /// Answered questions of `task` whose answer has not reached its agent.
    pub fn answers_undelivered(&self, run: &str, task: &str) -> Result<Vec<QuestionRecord>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT q.* FROM questions q JOIN messages m ON m.id = q.message_id
             WHERE q.run_id = ?1 AND q.task_id = ?2 AND m.delivered_at IS NULL ORDER BY q.id",
        )?;
        let rows = st.query_map(params![run, task], QuestionRecord::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Answers question `id` once (`by`: `person` or `default`), with the
    /// message that carries the answer to its agent and both events.
    pub fn answer_question(&self, id: i64, answer: &str, by: &str) -> Result<Answered> {
        let Some(q) = self.question(id)? else {
            return Ok(Answered::Unknown);
        };
        let answer = self.mask_for_run(&q.run_id, answer)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let open: Option<i64> = tx
            .query_row(
                "SELECT id FROM questions WHERE id = ?1 AND answered_at IS NULL",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        if open.is_none() {
            drop(tx);
            return Ok(match self.question(id)? {
                Some(q) => Answered::Closed(q),
                None => Answered::Unknown,
            });
        }
        let said = q.said(&answer, by);
        let (message, mut seqs) = insert_message(&tx, &q.run_id, None, &q.task_id, &said)?;
        let now = now_ms();
        tx.execute(
            "UPDATE questions SET answer = ?2, answered_at = ?3, answered_by = ?4, message_id = ?5 WHERE id = ?1",
            params![id, answer, now, by, message],
        )?;
        let data = Payload::QuestionAnswered {
            question: id,
            answer: answer.clone(),
            by: by.to_string(),
        };
        seqs.push(insert_event(&tx, &q.run_id, Some(&q.task_id), None, data)?);
        tx.commit()?;
        for seq in seqs {
            let _ = self.events_tx.send(seq);
        }
        let question = QuestionRecord {
            answer: Some(answer),
            answered_at: Some(now),
            answered_by: Some(by.to_string()),
            message_id: Some(message),
            ..q
        };
        Ok(Answered::Now { question, message })
    }

    /// Closes the open questions of a task that ended (nobody waits for
    /// their answers any more); how many.
    pub fn close_questions(&self, run: &str, task: &str) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE questions SET answered_at = ?3, answered_by = 'closed' WHERE run_id = ?1 AND task_id = ?2 AND answered_at IS NULL",
            params![run, task, now_ms()],
        )?)
    }

    /// Closes question `id` unanswered (its time ran out with no default);
    /// false when it was closed already.
    pub fn expire_question(&self, id: i64) -> Result<bool> {
        let Some(q) = self.question(id)? else {
            return Ok(false);
        };
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            "UPDATE questions SET answered_at = ?2, answered_by = 'expired' WHERE id = ?1 AND answered_at IS NULL",
            params![id, now_ms()],
        )?;
        let mut seq = None;
        if changed == 1 {
            let data = Payload::QuestionExpired {
                question: id,
                text: q.question.text.clone(),
            };
            seq = Some(insert_event(&tx, &q.run_id, Some(&q.task_id), None, data)?);
        }
        tx.commit()?;
        if let Some(seq) = seq {
            let _ = self.events_tx.send(seq);
        }
        Ok(changed == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_task(_run: &str, _task: &str) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("baton.db")).unwrap();
        (dir, store)
    }

    fn q(text: &str) -> Question {
        Question {
            text: text.into(),
            options: vec!["red".into(), "blue".into()],
            ..Question::default()
        }
    }

    #[test]
    fn a_question_is_answered_once_with_a_message_for_its_agent() {
        let (_d, s) = store_with_task("r", "t");
        let id = s.ask("r", "t", 1, &q("Which colour?")).unwrap();
        assert_eq!(s.open_questions(None).unwrap().len(), 1);
        let Answered::Now { question, message } = s.answer_question(id, "blue", "person").unwrap()
        else {
            panic!("not answered");
        };
        assert_eq!(question.answer.as_deref(), Some("blue"));
        let m = s.message(message).unwrap().unwrap();
        assert_eq!(m.to, "t");
        assert!(
            m.said().contains("\"Which colour?\" is: blue"),
            "{}",
            m.said()
        );
        assert_eq!(s.answers_undelivered("r", "t").unwrap().len(), 1);
        // A second answer changes nothing.
        assert!(matches!(
            s.answer_question(id, "red", "person").unwrap(),
            Answered::Closed(c) if c.answer.as_deref() == Some("blue")
        ));
        assert!(s.open_questions(Some("r")).unwrap().is_empty());
        s.take_undelivered("r", "t").unwrap();
        assert!(s.answers_undelivered("r", "t").unwrap().is_empty());
        assert_eq!(
            s.answer_question(id + 100, "x", "person").unwrap(),
            Answered::Unknown
        );
    }

    #[test]
    fn an_expired_question_takes_no_answer() {
        let (_d, s) = store_with_task("r", "t");
        let id = s.ask("r", "t", 1, &q("Now?")).unwrap();
        assert!(s.expire_question(id).unwrap());
        assert!(!s.expire_question(id).unwrap());
        assert!(matches!(
            s.answer_question(id, "red", "person").unwrap(),
            Answered::Closed(c) if c.answered_by.as_deref() == Some("expired")
        ));
    }
}
