//! What a race's pick knows of each candidate: from the store (its status,
//! commit, cost, end, failed gate runs, time) and from git (its diff).

use crate::engine::shared::Shared;
use crate::pick::Entrant;
use crate::plan::race::{candidate_id, Race};
use crate::store::TaskRecord;

/// A race's candidates as its pick sees them, in plan order: what the
/// rules of `crate::pick` read and set (`entrants`), and beside each its
/// record (its worktree, start commit and final words).
pub(super) struct Field {
    pub entrants: Vec<Entrant>,
    pub records: Vec<TaskRecord>,
}

/// Every candidate of race task `race_id`, in plan order. Err: the store
/// could not be read (baton's trouble, not the race's).
pub(super) async fn candidates(sh: &Shared, race_id: &str, race: &Race) -> Result<Field, String> {
    let mut out = Field {
        entrants: Vec::new(),
        records: Vec::new(),
    };
    for (k, agent) in race.agents.iter().enumerate() {
        let id = candidate_id(race_id, k as u32 + 1);
        let task = id.clone();
        let read = sh
            .db(move |s, run| -> Result<_, crate::store::StoreError> {
                Ok((s.task(run, &task)?, s.entrant_figures(run, &task)?))
            })
            .await;
        let (record, (gate_failures, time_ms)) = match read {
            Ok((Some(r), figures)) => (r, figures),
            Ok((None, _)) => return Err(format!("the store has no candidate {id}")),
            Err(e) => return Err(format!("cannot read candidate {id}: {e}")),
        };
        let diff_lines = match (&record.start_commit, &record.commit_id) {
            (Some(from), Some(to)) => sh.repo.diff_lines(from, to).await.ok(),
            _ => None,
        };
        let entrant = Entrant {
            task: id,
            agent: agent.clone(),
            status: record.status,
            commit: record.commit_id.clone(),
            gate_failures,
            diff_lines,
            cost_usd: record.cost_usd,
            time_ms,
            finished_at: record.finished_at,
            score: None,
            place: None,
            note: None,
        };
        out.entrants.push(entrant);
        out.records.push(record);
    }
    Ok(out)
}
