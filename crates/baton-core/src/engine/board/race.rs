//! Races on the board: a race task waits for its candidates (any one that
//! passed, for `pick = "first"`; all of them otherwise), a candidate that
//! passes first outruns the others, and a race's end frees its candidates'
//! desks. Candidates of one race never wait for each other's files.

use super::slot::Standing;
use super::{Action, Board};
use crate::engine::messages::WorkerCmd;
use crate::model::TaskStatus;
use crate::plan::race::{candidate_id, Pick};

impl Board {
    /// Remembers which tasks are race task `i`'s candidates (they come
    /// before it on the board).
    pub(super) fn note_race(&mut self, i: usize) {
        let Some(race) = &self.tasks[i].spec.race else {
            return;
        };
        let id = &self.tasks[i].spec.id;
        let candidates = (1..=race.agents.len() as u32)
            .filter_map(|n| self.idx(&candidate_id(id, n)))
            .collect();
        self.races.insert(i, candidates);
    }

    /// Task `i`'s candidates (none unless it is a race task).
    pub(super) fn candidates(&self, i: usize) -> &[usize] {
        self.races.get(&i).map(Vec::as_slice).unwrap_or_default()
    }

    /// The race task candidate `i` runs for, if it is one.
    fn race_of(&self, i: usize) -> Option<usize> {
        let of = self.tasks[i].spec.candidate.as_ref()?;
        self.idx(&of.race)
    }

    /// Whether tasks `i` and `j` belong to one race (a race task and its
    /// candidates, or two candidates of it): they do the same work, so the
    /// same declared files do not make one wait for the other.
    pub(super) fn same_race(&self, i: usize, j: usize) -> bool {
        let race = |k: usize| self.race_of(k).or(self.races.contains_key(&k).then_some(k));
        race(i).is_some() && race(i) == race(j)
    }

    /// Whether race task `i`'s candidates let it pick now: one passed (for
    /// `pick = "first"`) or all have ended. Any other task: yes.
    pub(super) fn race_ready(&self, i: usize) -> bool {
        let Some(race) = &self.tasks[i].spec.race else {
            return true;
        };
        let ended = |&j: &usize| self.tasks[j].status().is_finished();
        let passed = |&j: &usize| self.tasks[j].status() == TaskStatus::Succeeded;
        let candidates = self.candidates(i);
        candidates.iter().all(ended) || (race.pick == Pick::First && candidates.iter().any(passed))
    }

    /// Candidate `i` passed its gates: in a race its first to pass wins, the
    /// others running are stopped (their work kept) and those not started
    /// are skipped.
    pub(super) fn outrun_others(&mut self, i: usize) -> Vec<Action> {
        let Some(r) = self.race_of(i) else {
            return Vec::new();
        };
        if self.tasks[r].spec.race.as_ref().map(|race| &race.pick) != Some(&Pick::First) {
            return Vec::new();
        }
        let (winner, race) = (self.id(i).to_string(), self.id(r).to_string());
        let reason = format!("candidate {winner} of task {race:?} passed its gates first");
        let mut out = Vec::new();
        for j in self.candidates(r).to_vec() {
            match &mut self.tasks[j].standing {
                Standing::Pending { .. } => {
                    out.push(self.skip(j, format!("not started: {reason}")));
                }
                Standing::Running { stopping, .. } if !*stopping => {
                    *stopping = true;
                    out.push(Action::Send {
                        task: j,
                        cmd: WorkerCmd::Outrun(format!("outrun: {reason}")),
                    });
                }
                _ => {}
            }
        }
        out
    }

    /// Race task `i` has picked (or could not): the desks its candidates
    /// that passed kept for the pick may go (their work is on their
    /// branches; a failed one's desk stays, as any failed task's).
    pub(super) fn race_over(&self, i: usize) -> Vec<Action> {
        self.candidates(i)
            .iter()
            .filter(|&&j| self.tasks[j].status() == TaskStatus::Succeeded)
            .map(|&j| Action::DropWorktree(j))
            .collect()
    }

    /// The candidate a person may pick by hand for race task `i` (`which`:
    /// its id, or just its number): one that passed, while the race waits
    /// for approval (after that it merges). Err: why not, in words.
    pub fn check_pick(&self, i: usize, which: &str) -> Result<usize, String> {
        let race = self.id(i);
        if self.tasks[i].spec.race.is_none() {
            return Err(format!(
                "task {race:?} is no race: it has no candidates to pick from"
            ));
        }
        let named = self.candidates(i).iter().copied().find(|&j| {
            let id = self.id(j);
            id == which
                || crate::plan::race::candidate_of_id(id)
                    .is_some_and(|(_, n)| n.to_string() == which)
        });
        let Some(j) = named else {
            let ids: Vec<&str> = self.candidates(i).iter().map(|&j| self.id(j)).collect();
            return Err(format!(
                "task {race:?} has no candidate {which:?} (its candidates: {})",
                ids.join(", ")
            ));
        };
        match self.tasks[i].status() {
            TaskStatus::AwaitingApproval => {}
            TaskStatus::Merging => return Err(format!("task {race:?} is being merged: a winner is replaced before that, while the race waits for approval (give it `approve = true`)")),
            s if s.is_finished() => return Err(format!("task {race:?} has ended ({s}): there is no winner to replace")),
            _ => return Err(format!("task {race:?} has not picked yet: pick by hand once it waits for approval (give it `approve = true`)")),
        }
        if self.tasks[j].status() != TaskStatus::Succeeded {
            let s = self.tasks[j].status();
            return Err(format!(
                "candidate {} did not pass its gates ({s}): only a candidate that passed can win",
                self.id(j)
            ));
        }
        Ok(j)
    }

    /// Whether task `i` is a candidate: its own end does not decide the run's.
    pub(super) fn is_candidate(&self, i: usize) -> bool {
        self.tasks[i].spec.candidate.is_some()
    }
}
