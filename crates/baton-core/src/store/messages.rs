//! Messages between a run's tasks (and from people): each is a row, and an
//! event on the sender's transcript and the receiver's. Rows are the
//! mailbox: an agent that cannot take a message while it runs gets the ones
//! not yet delivered with its next attempt.

use super::{Result, Store};
use crate::clock::now_ms;
use crate::payload::{Note, Payload};
use rusqlite::{params, Row};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub id: i64,
    pub run_id: String,
    /// The sending task; None: a person (CLI, dashboard, API).
    pub from: Option<String>,
    pub to: String,
    pub text: String,
    pub ts: i64,
    pub delivered_at: Option<i64>,
}

impl Message {
    fn from_row(r: &Row) -> rusqlite::Result<Message> {
        Ok(Message {
            id: r.get("id")?,
            run_id: r.get("run_id")?,
            from: r.get("from_task")?,
            to: r.get("to_task")?,
            text: r.get("text")?,
            ts: r.get("ts")?,
            delivered_at: r.get("delivered_at")?,
        })
    }

    /// The message as an agent reads it.
    pub fn said(&self) -> String {
        match &self.from {
            Some(task) => format!("Message from task {task:?}: {}", self.text),
            None => format!("Message from a person: {}", self.text),
        }
    }
}

impl Store {
    /// Records a message and its two events, atomically; returns its id.
    pub fn post_message(&self, run: &str, from: Option<&str>, to: &str, text: &str) -> Result<i64> {
        // Masked at the one write point, with the run's own secrets too
        // (`baton msg` runs in a process that does not know them).
        let text = self.mask_for_run(run, text)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (id, seqs) = insert_message(&tx, run, from, to, &text)?;
        tx.commit()?;
        for seq in seqs {
            let _ = self.events_tx.send(seq);
        }
        Ok(id)
    }

    pub fn message(&self, id: i64) -> Result<Option<Message>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .reader()
            .query_row(
                "SELECT * FROM messages WHERE id = ?1",
                [id],
                Message::from_row,
            )
            .optional()?)
    }

    /// Messages to `task` after id `after`, oldest first.
    pub fn messages_to(&self, run: &str, task: &str, after: i64) -> Result<Vec<Message>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT * FROM messages WHERE run_id = ?1 AND to_task = ?2 AND id > ?3 ORDER BY id LIMIT 1000",
        )?;
        let rows = st.query_map(params![run, task, after], Message::from_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Takes the messages to `task` not delivered yet: they are marked
    /// delivered now (its next attempt's prompt carries them).
    pub fn take_undelivered(&self, run: &str, task: &str) -> Result<Vec<Message>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let taken: Vec<Message> = {
            let mut st = tx.prepare(
                "SELECT * FROM messages WHERE run_id = ?1 AND to_task = ?2 AND delivered_at IS NULL ORDER BY id",
            )?;
            let rows = st.query_map(params![run, task], Message::from_row)?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        tx.execute(
            "UPDATE messages SET delivered_at = ?3 WHERE run_id = ?1 AND to_task = ?2 AND delivered_at IS NULL",
            params![run, task, now_ms()],
        )?;
        tx.commit()?;
        Ok(taken)
    }

    pub fn mark_delivered(&self, id: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE messages SET delivered_at = ?2 WHERE id = ?1 AND delivered_at IS NULL",
            params![id, now_ms()],
        )?;
        Ok(())
    }

    /// How many messages `from` (None: people) sent in `run` since `since`
    /// (ms), and in all.
    pub fn sent_counts(&self, run: &str, from: Option<&str>, since: i64) -> Result<(u32, u32)> {
        Ok(self.reader().query_row(
            "SELECT COALESCE(SUM(ts >= ?3), 0), COUNT(*) FROM messages WHERE run_id = ?1 AND from_task IS ?2",
            params![run, from, since],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }
}

/// Writes a message (already masked) and its events in `tx`: its id, and
/// the events' numbers to announce once `tx` is committed.
pub(super) fn insert_message(
    tx: &rusqlite::Transaction,
    run: &str,
    from: Option<&str>,
    to: &str,
    text: &str,
) -> Result<(i64, Vec<i64>)> {
    let ts = now_ms();
    tx.execute(
        "INSERT INTO messages (run_id, from_task, to_task, text, ts) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![run, from, to, text, ts],
    )?;
    let id = tx.last_insert_rowid();
    let mut seqs = Vec::new();
    let note = Note {
        id,
        from: from.map(str::to_string),
        to: to.to_string(),
        text: text.to_string(),
    };
    let mut event = |task: Option<&str>, said: Payload| -> Result<()> {
        seqs.push(insert_event(tx, run, task, None, said)?);
        Ok(())
    };
    if from.is_some() {
        event(from, Payload::MessageSent(note.clone()))?;
    }
    event(Some(to), Payload::MessageReceived(note))?;
    Ok((id, seqs))
}

/// Appends an event in `tx`; returns its number (announce it once committed).
pub(super) fn insert_event(
    tx: &rusqlite::Transaction,
    run: &str,
    task: Option<&str>,
    attempt: Option<u32>,
    said: Payload,
) -> Result<i64> {
    let (kind, data) = said.into_parts();
    tx.execute(
        "INSERT INTO events (run_id, ts, task_id, attempt, kind, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![run, now_ms(), task, attempt, kind, data.to_string()],
    )?;
    Ok(tx.last_insert_rowid())
}
