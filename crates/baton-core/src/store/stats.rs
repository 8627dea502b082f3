//! What the scorecard ([`crate::stats`]) reads: every task of the
//! repository that finished since a time.

use super::{Result, Store};
use crate::model::TaskStatus;
use crate::stats::{RaceEnd, TaskOutcome};
use rusqlite::params;
use std::collections::HashMap;

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
                    AND a.finished_at IS NOT NULL),
                t.run_id, t.id
             FROM tasks t JOIN runs r ON r.id = t.run_id
             WHERE COALESCE(t.finished_at, r.created_at) >= ?1 AND t.status IN (?2, ?3, ?4)
               AND NOT EXISTS (SELECT 1 FROM tasks c WHERE c.run_id = t.run_id
                                 AND c.id > t.id || '.' AND c.id < t.id || '/')
             ORDER BY t.finished_at";

/// Races' picks since a time, through their own small index.
/// (In the index's order, by time: a race's last pick comes last.)
const PICKS: &str = "SELECT run_id, task_id, data FROM events WHERE kind = 'picked' AND ts >= ?1";

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
    /// `since_ms`, in any run (planners' included: their task is a plan),
    /// with its tags and, for a race's candidate, whether it won. A race
    /// task itself is not one: its work is its candidates'.
    pub fn task_outcomes(&self, since_ms: i64) -> Result<Vec<TaskOutcome>> {
        let mut out = self.finished_tasks(since_ms)?;
        // Read after the reader above is given back (it is one connection).
        let tags = self.queued_tags()?;
        let ends = self.race_ends(since_ms)?;
        for ((run, id), o) in &mut out {
            // A candidate was queued as its race.
            let race = crate::plan::race::candidate_of_id(id).map_or(id.as_str(), |(r, _)| r);
            if let Some(t) = tags.get(&(run.clone(), race.to_string())) {
                o.tags = t.clone();
            }
            o.race = ends.get(&(run.clone(), id.clone())).copied();
        }
        Ok(out.into_iter().map(|(_, o)| o).collect())
    }

    /// What [`TASK_OUTCOMES`] reads, by (run, task).
    #[allow(clippy::type_complexity)]
    fn finished_tasks(&self, since_ms: i64) -> Result<Vec<((String, String), TaskOutcome)>> {
        let conn = self.reader();
        let mut q = conn.prepare(TASK_OUTCOMES)?;
        let rows = q.query_map(
            // Stopped: a candidate outrun by another counts as a race lost.
            params![
                since_ms,
                TaskStatus::Succeeded,
                TaskStatus::Failed,
                TaskStatus::Stopped
            ],
            |r| {
                let at: (String, String) = (r.get(7)?, r.get(8)?);
                Ok((
                    at,
                    TaskOutcome {
                        profile: r
                            .get::<_, Option<String>>(0)?
                            .unwrap_or_else(|| "(unknown)".into()),
                        status: r.get(1)?,
                        cost_usd: r.get(2)?,
                        failures: r.get(3)?,
                        model: r.get(4)?,
                        gate_failures: r.get(5)?,
                        duration_ms: r.get::<_, Option<i64>>(6)?.map(|d| d.max(0)),
                        tags: Vec::new(),
                        race: None,
                    },
                ))
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The tags of every task queued with some, by (run, task).
    fn queued_tags(&self) -> Result<HashMap<(String, String), Vec<String>>> {
        let conn = self.reader();
        let mut q =
            conn.prepare("SELECT run_id, task_id, tags FROM added_tasks WHERE tags != '[]'")?;
        let rows = q.query_map([], |r| {
            let tags: String = r.get(2)?;
            Ok((
                (r.get(0)?, r.get(1)?),
                serde_json::from_str(&tags).unwrap_or_default(),
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How each candidate's race ended for it, by (run, candidate), from
    /// the picks since `since_ms` (a race's last pick counts).
    fn race_ends(&self, since_ms: i64) -> Result<HashMap<(String, String), RaceEnd>> {
        let conn = self.reader();
        let mut q = conn.prepare(PICKS)?;
        let rows = q.query_map([since_ms], |r| {
            let data: String = r.get(2)?;
            Ok((r.get::<_, String>(0)?, data))
        })?;
        let mut out = HashMap::new();
        for row in rows {
            let (run, data) = row?;
            let Ok(p) = serde_json::from_str::<crate::pick::Picked>(&data) else {
                continue;
            };
            let Some(winner) = &p.winner else {
                continue;
            };
            for c in &p.candidates {
                let end = if c.task == *winner {
                    RaceEnd::Won
                } else {
                    RaceEnd::Lost
                };
                out.insert((run.clone(), c.task.clone()), end);
            }
        }
        Ok(out)
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
        let plan = crate::store::tests::query_plan(PICKS);
        assert!(
            plan.iter().any(|s| s.contains("USING INDEX events_picks")),
            "{plan:?}"
        );
        let plan = crate::store::tests::query_plan(ENTRANT_FIGURES);
        assert!(
            plan.iter()
                .any(|s| s.contains("USING INDEX events_outcomes")),
            "{plan:?}"
        );
    }
}
