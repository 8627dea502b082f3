//! What the scorecard ([`crate::stats`]) reads: every task of the
//! repository that finished since a time.

use super::{Result, Store};
use crate::model::TaskStatus;
use crate::stats::TaskOutcome;
use rusqlite::params;

/// Every finished task with what the scorecard counts. Failed attempts are
/// the engine's own count (a steer, a question, a limit or an interruption
/// starts a new attempt, not a failure); a person's retry counts as one
/// more. Time is the agents' own, over the task's work attempts (not setup,
/// waits or the merge queue). Each events count names the `events_outcomes`
/// index's condition too, word for word, so that SQLite uses it.
const TASK_OUTCOMES: &str = "SELECT t.agent, t.status, t.cost_usd,
                (SELECT COUNT(*) FROM events e
                  WHERE e.run_id = t.run_id AND e.task_id = t.id
                    AND e.kind IN ('attempt_failed', 'gate_finished') AND e.kind = 'attempt_failed')
                  + (t.retry_from > 0),
                (SELECT a.model FROM attempts a
                  WHERE a.run_id = t.run_id AND a.task_id = t.id AND a.kind = 'work'
                    AND a.model IS NOT NULL
                  ORDER BY a.n DESC LIMIT 1),
                (SELECT COUNT(*) FROM events e
                  WHERE e.run_id = t.run_id AND e.task_id = t.id
                    AND e.kind IN ('attempt_failed', 'gate_finished')
                    AND e.kind = 'gate_finished' AND json_extract(e.data, '$.passed') = 0),
                (SELECT SUM(a.finished_at - a.started_at) FROM attempts a
                  WHERE a.run_id = t.run_id AND a.task_id = t.id AND a.kind = 'work'
                    AND a.finished_at IS NOT NULL)
             FROM tasks t JOIN runs r ON r.id = t.run_id
             WHERE COALESCE(t.finished_at, r.created_at) >= ?1 AND t.status IN (?2, ?3)
             ORDER BY t.finished_at";

/// A race candidate's figures: its failed gate runs and its work attempts'
/// time (each read through the events' and attempts' indexes).
const ENTRANT_FIGURES: &str = "SELECT
                (SELECT COUNT(*) FROM events e
                  WHERE e.run_id = ?1 AND e.task_id = ?2
                    AND e.kind IN ('attempt_failed', 'gate_finished')
                    AND e.kind = 'gate_finished' AND json_extract(e.data, '$.passed') = 0),
                (SELECT SUM(a.finished_at - a.started_at) FROM attempts a
                  WHERE a.run_id = ?1 AND a.task_id = ?2 AND a.kind = 'work'
                    AND a.finished_at IS NOT NULL)";

impl Store {
    /// Task `task`'s failed gate runs, and how long its work attempts took
    /// (ms; None before any ended): what a race's pick compares.
    pub fn entrant_figures(&self, run: &str, task: &str) -> Result<(u32, Option<i64>)> {
        let conn = self.reader();
        let mut q = conn.prepare_cached(ENTRANT_FIGURES)?;
        Ok(q.query_row(params![run, task], |r| {
            Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.map(|t| t.max(0))))
        })?)
    }

    /// Every task that finished (succeeded or failed) at or after
    /// `since_ms`, in any run (planners' included: their task is a plan).
    pub fn task_outcomes(&self, since_ms: i64) -> Result<Vec<TaskOutcome>> {
        let conn = self.reader();
        let mut q = conn.prepare(TASK_OUTCOMES)?;
        let rows = q.query_map(
            params![since_ms, TaskStatus::Succeeded, TaskStatus::Failed],
            |r| {
                Ok(TaskOutcome {
                    profile: r
                        .get::<_, Option<String>>(0)?
                        .unwrap_or_else(|| "(unknown)".into()),
                    status: r.get(1)?,
                    cost_usd: r.get(2)?,
                    failures: r.get(3)?,
                    model: r.get(4)?,
                    gate_failures: r.get(5)?,
                    duration_ms: r.get::<_, Option<i64>>(6)?.map(|d| d.max(0)),
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failed attempts and gates are counted through their partial index,
    /// not through every event of each task.
    #[test]
    fn outcomes_are_counted_through_their_index() {
        let plan = crate::store::tests::query_plan(TASK_OUTCOMES);
        let through = plan
            .iter()
            .filter(|s| s.contains("USING INDEX events_outcomes"));
        assert_eq!(through.count(), 2, "{plan:?}");
        let plan = crate::store::tests::query_plan(ENTRANT_FIGURES);
        assert!(
            plan.iter()
                .any(|s| s.contains("USING INDEX events_outcomes")),
            "{plan:?}"
        );
    }
}
