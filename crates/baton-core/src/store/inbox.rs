//! The inbox's rows: see [`crate::inbox`].

use super::{QuestionRecord, Result, Store};
use crate::inbox::{Item, ItemKind, ENDED_RUNS_SHOWN_MS};
use crate::model::TaskStatus;
use rusqlite::params;

impl Store {
    /// The inbox at `now`, oldest first.
    pub fn inbox(&self, now: i64) -> Result<Vec<Item>> {
        let mut items = self.question_items()?;
        items.extend(self.task_items(now - ENDED_RUNS_SHOWN_MS)?);
        items.extend(self.pull_items()?);
        items.extend(self.plan_items(now - ENDED_RUNS_SHOWN_MS)?);
        items.sort_by_key(|i| (i.since, i.id));
        Ok(items)
    }

    /// One item by id, if it is in the inbox now.
    pub fn inbox_item(&self, id: i64, now: i64) -> Result<Option<Item>> {
        Ok(self.inbox(now)?.into_iter().find(|i| i.id == id))
    }

    fn question_items(&self) -> Result<Vec<Item>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT q.* FROM questions q JOIN tasks t ON t.run_id = q.run_id AND t.id = q.task_id
             WHERE q.answered_at IS NULL AND t.status NOT IN ('succeeded', 'failed', 'stopped', 'conflicted', 'skipped')",
        )?;
        let open = st
            .query_map([], QuestionRecord::from_row)?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut out = Vec::new();
        for q in open {
            out.push(Item {
                id: q.id,
                kind: ItemKind::Question,
                run: q.run_id,
                task: Some(q.task_id),
                text: q.question.text,
                options: q.question.options,
                since: q.asked_at,
                actions: vec!["answer", "stop"],
                expires_at: q.question.expires_at,
                default: q.question.default_answer,
            });
        }
        Ok(out)
    }

    fn task_items(&self, ended_after: i64) -> Result<Vec<Item>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT t.run_id, t.id, t.status, COALESCE(t.reason, ''), e.seq, e.ts, e.data
             FROM tasks t JOIN runs r ON r.id = t.run_id
             JOIN events e ON e.seq = (
                 SELECT MAX(seq) FROM events
                 WHERE run_id = t.run_id AND task_id = t.id AND kind = CASE
                     WHEN t.status = 'awaiting_approval' THEN 'approval_needed'
                     WHEN t.status = 'pending' THEN 'waiting'
                     ELSE t.status END)
             WHERE (t.status IN ('awaiting_approval', 'failed', 'conflicted')
                    OR (t.status = 'pending' AND t.activity = 'waiting_rate_limit'))
               AND (r.finished_at IS NULL OR r.finished_at > ?1)",
        )?;
        let rows = st.query_map(params![ended_after], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, TaskStatus>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (run, task, status, reason, seq, ts, data): (
                String,
                String,
                TaskStatus,
                String,
                i64,
                i64,
                String,
            ) = row?;
            let (kind, text, actions) = match status {
                TaskStatus::AwaitingApproval => (
                    ItemKind::Approval,
                    format!("task {task:?} passed its gates and waits for approval"),
                    vec!["approve", "stop"],
                ),
                TaskStatus::Failed => (ItemKind::Failed, reason, vec!["retry"]),
                TaskStatus::Conflicted => (ItemKind::Conflicted, reason, vec!["retry"]),
                _ => {
                    let said: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
                    let why = said["reason"].as_str().unwrap_or("waiting: rate limit");
                    (ItemKind::Limit, why.to_string(), vec!["stop"])
                }
            };
            out.push(Item {
                id: seq,
                kind,
                run,
                task: Some(task),
                text,
                options: Vec::new(),
                since: ts,
                actions,
                expires_at: None,
                default: None,
            });
        }
        Ok(out)
    }

    fn pull_items(&self) -> Result<Vec<Item>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT p.run_id, p.number, p.url, COALESCE(p.note, ''), e.seq, e.ts
             FROM pulls p JOIN events e ON e.seq = (
                 SELECT MAX(seq) FROM events WHERE run_id = p.run_id AND kind = 'pull_needs_you')
             WHERE p.status = 'needs_you'",
        )?;
        let rows = st.query_map([], |r| {
            let (number, url, note): (i64, String, String) = (r.get(1)?, r.get(2)?, r.get(3)?);
            Ok(Item {
                id: r.get(4)?,
                kind: ItemKind::Pull,
                run: r.get(0)?,
                task: None,
                text: format!("pull request #{number} needs a person: {note} ({url})"),
                options: Vec::new(),
                since: r.get(5)?,
                actions: Vec::new(),
                expires_at: None,
                default: None,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}
