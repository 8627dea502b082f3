//! What the scorecard ([`crate::stats`]) reads: every finished task of the
//! repository's runs since a time.

use super::{Result, Store};
use crate::model::TaskStatus;
use crate::stats::TaskOutcome;
use rusqlite::params;

impl Store {
    /// Every finished task of the runs started at or after `since_ms`
    /// (planners' runs included: their task is a plan), oldest first.
    pub fn task_outcomes(&self, since_ms: i64) -> Result<Vec<TaskOutcome>> {
        let conn = self.reader();
        let mut q = conn.prepare(
            "SELECT t.agent, t.status, t.started_at, t.finished_at, t.cost_usd,
                (SELECT COUNT(*) FROM attempts a
                  WHERE a.run_id = t.run_id AND a.task_id = t.id AND a.kind = 'work'),
                (SELECT a.model FROM attempts a
                  WHERE a.run_id = t.run_id AND a.task_id = t.id AND a.kind = 'work'
                  ORDER BY a.n DESC LIMIT 1),
                (SELECT COUNT(*) FROM events e
                  WHERE e.run_id = t.run_id AND e.task_id = t.id AND e.kind = 'gate_finished'
                    AND json_extract(e.data, '$.passed') = 0)
             FROM tasks t JOIN runs r ON r.id = t.run_id
             WHERE r.created_at >= ?1 AND t.status IN (?2, ?3)
             ORDER BY r.created_at, t.position",
        )?;
        let rows = q.query_map(
            params![since_ms, TaskStatus::Succeeded, TaskStatus::Failed],
            |r| {
                let started: Option<i64> = r.get(2)?;
                let finished: Option<i64> = r.get(3)?;
                Ok(TaskOutcome {
                    profile: r
                        .get::<_, Option<String>>(0)?
                        .unwrap_or_else(|| "default".into()),
                    status: r.get(1)?,
                    duration_ms: started.zip(finished).map(|(s, f)| (f - s).max(0)),
                    cost_usd: r.get(4)?,
                    tries: r.get(5)?,
                    model: r.get(6)?,
                    gate_failures: r.get(7)?,
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}
