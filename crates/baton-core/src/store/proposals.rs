//! Plans a planner wrote and a person has yet to say yes or no to: each is
//! a planning run started to wait for one (its planner's plan file ends in
//! [`planner::PROPOSAL_SUFFIX`]) whose `plan` task succeeded; a
//! `plan_decided` event on that run closes it.

use super::messages::insert_event;
use super::{Result, Store};
use crate::inbox::{Item, ItemKind};
use crate::model::{EventKind, PlanDecision};
use crate::payload::Payload;
use crate::planner;
use rusqlite::{params, OptionalExtension};

/// How long a goal is shown in an inbox item before it is cut.
const GOAL_SHOWN: usize = 200;

impl Store {
    /// What became of planning run `run`'s plan, if anything did yet
    /// (with the run it became, when approved).
    pub fn plan_decision(&self, run: &str) -> Result<Option<(PlanDecision, Option<String>)>> {
        let data: Option<String> = self
            .reader()
            .query_row(
                "SELECT data FROM events WHERE run_id = ?1 AND kind = ?2 ORDER BY seq LIMIT 1",
                params![run, EventKind::PlanDecided],
                |r| r.get(0),
            )
            .optional()?;
        let said = data.and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok());
        Ok(
            said.and_then(|v| match Payload::read(EventKind::PlanDecided, &v).ok()? {
                Payload::PlanDecided { decision, run } => Some((decision, run)),
                _ => None,
            }),
        )
    }

    /// Records what became of planning run `run`'s plan; false (and
    /// nothing written) when it was decided already.
    pub fn decide_plan(
        &self,
        run: &str,
        decision: PlanDecision,
        became: Option<&str>,
    ) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let decided: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM events WHERE run_id = ?1 AND kind = ?2)",
            params![run, EventKind::PlanDecided],
            |r| r.get(0),
        )?;
        if decided {
            return Ok(false);
        }
        let said = Payload::PlanDecided {
            decision,
            run: became.map(str::to_string),
        };
        let seq = insert_event(&tx, run, None, None, said)?;
        tx.commit()?;
        let _ = self.events_tx.send(seq);
        Ok(true)
    }

    /// Plans waiting for a yes, of planning runs that ended after
    /// `ended_after`; each item's id is its planner's `succeeded` event.
    pub(super) fn plan_items(&self, ended_after: i64) -> Result<Vec<Item>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT r.id, r.plan_source, COALESCE(t.result, ''), e.seq, e.ts
             FROM runs r JOIN tasks t ON t.run_id = r.id AND t.id = 'plan'
             JOIN events e ON e.seq = (
                 SELECT MAX(seq) FROM events WHERE run_id = r.id AND task_id = 'plan' AND kind = 'succeeded')
             WHERE t.status = 'succeeded' AND r.plan_path LIKE ?2
               AND (r.finished_at IS NULL OR r.finished_at > ?1)
               AND NOT EXISTS (SELECT 1 FROM events d WHERE d.run_id = r.id AND d.kind = 'plan_decided')",
        )?;
        let proposals = format!("%{}", planner::PROPOSAL_SUFFIX);
        let rows = st.query_map(params![ended_after, proposals], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (run, source, said, seq, ts) = row?;
            if planner::out_of(&source).is_none() {
                continue;
            }
            let goal = planner::goal_of(&source).unwrap_or_default();
            let mut text = format!("a plan for {:?} waits for a yes", cut(goal.trim()));
            if !said.trim().is_empty() {
                text.push_str(&format!(" (the planner: {})", cut(said.trim())));
            }
            out.push(Item {
                id: seq,
                kind: ItemKind::Plan,
                run,
                task: None,
                text,
                options: Vec::new(),
                since: ts,
                actions: vec!["approve", "discard"],
                expires_at: None,
                default: None,
            });
        }
        Ok(out)
    }
}

fn cut(goal: &str) -> String {
    match goal.char_indices().nth(GOAL_SHOWN) {
        Some((at, _)) => format!("{}…", &goal[..at]),
        None => goal.to_string(),
    }
}
