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

    /// How race task `r` picks (None: it is no race).
    fn pick_of(&self, r: usize) -> Option<&Pick> {
        self.tasks[r].spec.race.as_ref().map(|race| &race.pick)
    }

    /// Stops candidate `j` if it runs and is not stopping yet (its work is
    /// kept; `why` becomes its reason).
    fn outrun(&mut self, j: usize, why: String) -> Option<Action> {
        let Standing::Running { stopping, .. } = &mut self.tasks[j].standing else {
            return None;
        };
        if *stopping {
            return None;
        }
        *stopping = true;
        Some(Action::Send {
            task: j,
            cmd: WorkerCmd::Outrun(why),
        })
    }

    /// Race task `i`'s candidates' ids, for a message.
    fn candidate_ids(&self, i: usize) -> String {
        let ids: Vec<&str> = self.candidates(i).iter().map(|&j| self.id(j)).collect();
        ids.join(", ")
    }

    /// Task `i`'s candidates (none unless it is a race task).
    pub(super) fn candidates(&self, i: usize) -> &[usize] {
        self.races.get(&i).map(Vec::as_slice).unwrap_or_default()
    }

    /// The race task candidate `i` runs for, if it is one.
    pub(super) fn race_of(&self, i: usize) -> Option<usize> {
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
        if self.pick_of(r) != Some(&Pick::First) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for j in self.candidates(r).to_vec() {
            if self.tasks[j].status() == TaskStatus::Pending {
                // Said as the board says it of any candidate its race is done with.
                if let Some(why) = self.race_done_with(j) {
                    out.push(self.skip(j, why));
                }
                continue;
            }
            let why = format!(
                "outrun: candidate {} of task {:?} passed its gates first",
                self.id(i),
                self.id(r)
            );
            out.extend(self.outrun(j, why));
        }
        out
    }

    /// Race task `i` has picked (or could not): the desks its candidates
    /// that passed kept for the pick may go (their work is on their
    /// branches; a failed one's desk stays, as any failed task's).
    pub(super) fn race_over(&mut self, i: usize) -> Vec<Action> {
        let mine = self.candidates(i).to_vec();
        mine.into_iter()
            .filter(|j| self.kept_desks.remove(j))
            .map(Action::DropWorktree)
            .collect()
    }

    /// Whether candidate `i`'s desk should wait for its race's pick: the
    /// race has not picked yet, and its pick reads desks (a rank command
    /// runs in them; a judge's diffs come from git, but its rank fallback
    /// does not need them either, so only `rank`).
    pub(super) fn pick_reads_desks(&self, i: usize) -> bool {
        let Some(r) = self.race_of(i) else {
            return false;
        };
        let waiting = self.tasks[r].status() == TaskStatus::Pending;
        let ranked = matches!(self.pick_of(r), Some(Pick::All { rank: Some(_), .. }));
        waiting && ranked
    }

    /// Why pending candidate `i` should not start any more, if it should
    /// not: its race has picked or ended, or another candidate of a race
    /// picked by who passes first has passed (after a crash or a retry, as
    /// well as at once).
    pub(super) fn race_done_with(&self, i: usize) -> Option<String> {
        let r = self.race_of(i)?;
        let race = self.id(r);
        let status = self.tasks[r].status();
        if status != TaskStatus::Pending {
            return Some(format!(
                "not started: its race {race:?} is {status} already"
            ));
        }
        if self.pick_of(r) != Some(&Pick::First) {
            return None;
        }
        let passed = self
            .candidates(r)
            .iter()
            .copied()
            .find(|&j| self.tasks[j].status() == TaskStatus::Succeeded)?;
        Some(format!(
            "not started: candidate {} of task {race:?} passed its gates first",
            self.id(passed)
        ))
    }

    /// Why a person's request `what` does not go to race task `i` itself,
    /// if it does not: a race's pick takes no message (its candidates do),
    /// and is retried through its candidates.
    pub(super) fn race_refuses(&self, i: usize, what: &str) -> Option<String> {
        self.tasks[i].spec.race.as_ref()?;
        let (race, ids) = (self.id(i), self.candidate_ids(i));
        Some(match what {
            "retry" => format!("task {race:?} is a race: retry one of its candidates ({ids}); the race picks again once they have ended"),
            _ => format!("task {race:?} is a race: its pick takes no {what}; send it to one of its candidates ({ids})"),
        })
    }

    /// Candidate `i` runs again (a person's retry): its race, if it ended
    /// without a winner, waits for it again. Err: its race has picked.
    pub(super) fn reopen_race(&mut self, i: usize) -> Result<Vec<Action>, String> {
        let Some(r) = self.race_of(i) else {
            return Ok(Vec::new());
        };
        let race = self.id(r).to_string();
        match self.tasks[r].status() {
            TaskStatus::Pending => Ok(Vec::new()),
            TaskStatus::Failed | TaskStatus::Stopped | TaskStatus::Skipped => {
                self.tasks[r].forced = true;
                let update = crate::store::TaskUpdate {
                    reason: Some(None),
                    ..Default::default()
                };
                let again = crate::payload::Payload::RetryRequested {};
                Ok(vec![self.to(r, TaskStatus::Pending, update, again)])
            }
            s => Err(format!(
                "task {:?} is a candidate of {race:?}, which is {s}: its race has picked already",
                self.id(i)
            )),
        }
    }

    /// Race task `i` is stopped: its candidates running are stopped too
    /// (those not started are skipped as the race is no longer pending).
    pub(super) fn stop_candidates(&mut self, i: usize) -> Vec<Action> {
        let why = "stopped: its race was stopped (baton stop)";
        let candidates = self.candidates(i).to_vec();
        candidates
            .into_iter()
            .filter_map(|j| self.outrun(j, why.to_string()))
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
        let mut named = self.candidates(i).iter().copied();
        let named = named.find(|&j| crate::plan::race::names(self.id(j), which));
        let Some(j) = named else {
            return Err(format!(
                "task {race:?} has no candidate {which:?} (its candidates: {})",
                self.candidate_ids(i)
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
