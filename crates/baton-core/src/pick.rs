//! A race's pick as it is recorded (the `picked` event, the report), and
//! its rules: who won among the candidates that passed their gates, and
//! why, in words. Pure: the engine gathers the candidates' figures and
//! runs their rank command or judge; see `engine/pick`.

use crate::model::TaskStatus;
use crate::plan::race::Measure;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::HashMap;

/// A race's pick: how, who won and why, and every candidate's part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Picked {
    /// `first`, `all` or `judge`.
    pub mode: String,
    /// The winning candidate's task id; None when none could win.
    #[serde(default)]
    pub winner: Option<String>,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub candidates: Vec<Entrant>,
}

/// One candidate of a race, as its pick saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entrant {
    /// Its task id (`<race>.<n>`).
    pub task: String,
    pub agent: String,
    pub status: TaskStatus,
    /// Its last commit, when it left one.
    #[serde(default)]
    pub commit: Option<String>,
    /// Gate runs that failed before it passed (or ended).
    #[serde(default)]
    pub gate_failures: u32,
    #[serde(default)]
    pub diff_lines: Option<u64>,
    #[serde(default)]
    pub cost_usd: Option<f64>,
    #[serde(default)]
    pub time_ms: Option<i64>,
    /// When it ended (ms since the epoch): who passed first.
    #[serde(default)]
    pub finished_at: Option<i64>,
    /// What its rank command printed (higher wins).
    #[serde(default)]
    pub score: Option<f64>,
    /// Its place among those that passed (1: the winner).
    #[serde(default)]
    pub place: Option<u32>,
    /// Why it has no score, or what the judge said of it.
    #[serde(default)]
    pub note: Option<String>,
}

impl Entrant {
    pub fn passed(&self) -> bool {
        self.status == TaskStatus::Succeeded && self.commit.is_some()
    }

    fn measure(&self, m: Measure) -> Option<f64> {
        match m {
            Measure::Gates => Some(self.gate_failures as f64),
            Measure::DiffLines => self.diff_lines.map(|d| d as f64),
            Measure::Cost => self.cost_usd,
            Measure::Time => self.time_ms.map(|t| t as f64),
        }
    }
}

/// Smaller first; an unknown figure after every known one.
fn smaller_first(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Why nobody can win: no candidate passed its gates.
fn nobody_passed(entrants: &[Entrant]) -> String {
    let each: Vec<String> = entrants
        .iter()
        .map(|e| format!("{} {}", e.task, e.status))
        .collect();
    format!("no candidate passed its gates ({})", each.join(", "))
}

/// Places `winner` first, then the other candidates that passed, in the
/// order of their places so far (plan order where they have none): what a
/// judge's or a person's pick makes of a ranking.
pub fn place_first(entrants: &mut [Entrant], winner: usize) {
    let mut order: Vec<usize> = (0..entrants.len())
        .filter(|&i| i == winner || entrants[i].passed())
        .collect();
    order.sort_by_key(|&i| (i != winner, entrants[i].place.unwrap_or(u32::MAX), i));
    for (place, i) in order.into_iter().enumerate() {
        entrants[i].place = Some(place as u32 + 1);
    }
}

/// Each race's last recorded pick among a run's moves, by race task.
pub fn last_picks(moves: &[crate::store::Event]) -> HashMap<String, Picked> {
    let picks = moves.iter().filter_map(|e| match e.payload() {
        Some(crate::payload::Payload::Picked(p)) => Some((e.task_id.clone()?, p)),
        _ => None,
    });
    // In the moves' order: a later pick of a race replaces an earlier one.
    picks.collect()
}

/// `pick = "first"`: the candidate that passed first wins. Returns the
/// winner's index and why.
pub fn first(entrants: &mut [Entrant]) -> (Option<usize>, String) {
    let mut passed: Vec<usize> = (0..entrants.len())
        .filter(|&i| entrants[i].passed())
        .collect();
    passed.sort_by_key(|&i| (entrants[i].finished_at.unwrap_or(i64::MAX), i));
    for (place, &i) in passed.iter().enumerate() {
        entrants[i].place = Some(place as u32 + 1);
    }
    match passed.first() {
        Some(&w) => (
            Some(w),
            format!("{} passed its gates first", entrants[w].task),
        ),
        None => (None, nobody_passed(entrants)),
    }
}

/// `pick = "all"`: the candidates that passed, ranked by score (higher
/// first, when `scored`; none after any), then by each measure of `by`
/// (smaller first), then in plan order. Sets each one's place; returns the
/// winner's index and why, naming what decided it.
pub fn rank(entrants: &mut [Entrant], by: &[Measure], scored: bool) -> (Option<usize>, String) {
    let mut passed: Vec<usize> = (0..entrants.len())
        .filter(|&i| entrants[i].passed())
        .collect();
    let order = |a: &Entrant, b: &Entrant| -> Vec<(String, Ordering)> {
        let mut keys = Vec::new();
        if scored {
            let higher_first = smaller_first(a.score.map(|s| -s), b.score.map(|s| -s));
            keys.push(("score".to_string(), higher_first));
        }
        for &m in by {
            keys.push((
                m.name().to_string(),
                smaller_first(a.measure(m), b.measure(m)),
            ));
        }
        keys
    };
    let cmp = |a: &Entrant, b: &Entrant| {
        order(a, b)
            .into_iter()
            .map(|(_, o)| o)
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    };
    // A stable sort keeps plan order among equals.
    passed.sort_by(|&a, &b| cmp(&entrants[a], &entrants[b]));
    for (place, &i) in passed.iter().enumerate() {
        entrants[i].place = Some(place as u32 + 1);
    }
    let Some(&w) = passed.first() else {
        return (None, nobody_passed(entrants));
    };
    let winner = &entrants[w];
    let Some(&second) = passed.get(1) else {
        return (
            Some(w),
            format!("{} was the only candidate to pass its gates", winner.task),
        );
    };
    let runner_up = &entrants[second];
    let decided = order(winner, runner_up)
        .into_iter()
        .find(|(_, o)| *o != Ordering::Equal);
    let why = match decided {
        Some((key, _)) => format!(
            "{} ranked first of {} that passed, by {key} ({} against {} for {})",
            winner.task,
            passed.len(),
            figure(winner, &key),
            figure(runner_up, &key),
            runner_up.task
        ),
        None => {
            let keys: Vec<String> = order(winner, runner_up)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            let on = if keys.is_empty() {
                "everything".to_string()
            } else {
                keys.join(", ")
            };
            format!(
                "{} and {} tied on {on}: the one listed first wins",
                winner.task, runner_up.task
            )
        }
    };
    (Some(w), why)
}

/// A candidate's figure for `key`, in words.
fn figure(e: &Entrant, key: &str) -> String {
    let shown = |v: Option<String>| v.unwrap_or_else(|| "none".into());
    match key {
        "score" => shown(e.score.map(|s| s.to_string())),
        "gates" => format!("{} failed gate run(s)", e.gate_failures),
        "diff_lines" => shown(e.diff_lines.map(|d| match d {
            1 => "1 line".to_string(),
            d => format!("{d} lines"),
        })),
        "cost" => shown(e.cost_usd.map(|c| format!("${c:.4}"))),
        "time" => shown(e.time_ms.map(|t| format!("{:.1} s", t as f64 / 1000.0))),
        _ => "?".into(),
    }
}

/// The candidate a judge named among `passed` (ids `<race>.<n>`), and its
/// reason, from the end of what it said: its last `WINNER:` line (the id,
/// or just its number) and `REASON:` line. Err: why it named nobody.
pub fn verdict_of(said: &str, passed: &[&str]) -> Result<(String, String), String> {
    let field = |name: &str| {
        said.lines().rev().find_map(|l| {
            let l = l.trim().trim_start_matches(['*', '#', '-', ' ', '`', '_']);
            let (key, rest) = l.split_once(':')?;
            let key = key.trim_end_matches(['*', '`', '_', ' ']);
            key.eq_ignore_ascii_case(name)
                .then(|| rest.trim().trim_matches(['*', '`', '_', ' ']).to_string())
        })
    };
    let Some(named) = field("winner") else {
        return Err("the judge named no candidate (no `WINNER:` line)".into());
    };
    let mut words = named.split_whitespace().map(|w| {
        w.trim_matches(|c: char| !c.is_alphanumeric() && c != '_' && c != '-' && c != '.')
            .trim_end_matches('.')
    });
    let found = words.find_map(|w| passed.iter().find(|id| crate::plan::race::names(id, w)));
    let Some(winner) = found else {
        return Err(format!(
            "the judge named {named:?}, which is no candidate that passed ({})",
            passed.join(", ")
        ));
    };
    let reason = field("reason").filter(|r| !r.is_empty());
    let reason = reason.unwrap_or_else(|| "it gave no reason".into());
    Ok((winner.to_string(), reason))
}

/// The number a rank command printed: its output's last line that reads as
/// one (a finite number; other lines may be the command's talk).
pub fn score_of(output: &str) -> Option<f64> {
    output
        .lines()
        .rev()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .find(|s| s.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entrant(task: &str, status: TaskStatus) -> Entrant {
        Entrant {
            task: task.into(),
            agent: "a".into(),
            status,
            commit: (status == TaskStatus::Succeeded).then(|| format!("c-{task}")),
            gate_failures: 0,
            diff_lines: Some(10),
            cost_usd: Some(0.5),
            time_ms: Some(1000),
            finished_at: Some(100),
            score: None,
            place: None,
            note: None,
        }
    }

    fn three() -> Vec<Entrant> {
        let mut e = vec![
            entrant("t.1", TaskStatus::Failed),
            entrant("t.2", TaskStatus::Succeeded),
            entrant("t.3", TaskStatus::Succeeded),
        ];
        e[1].finished_at = Some(300);
        e[2].finished_at = Some(200);
        e
    }

    #[test]
    fn first_to_pass_wins_and_failures_never_do() {
        let mut e = three();
        e[0].finished_at = Some(1);
        let (w, why) = first(&mut e);
        assert_eq!((w, why.as_str()), (Some(2), "t.3 passed its gates first"));
        assert_eq!(
            e.iter().map(|e| e.place).collect::<Vec<_>>(),
            [None, Some(2), Some(1)]
        );
    }

    #[test]
    fn measures_rank_in_order_and_say_what_decided() {
        let mut e = three();
        e[2].gate_failures = 1;
        let (w, why) = rank(&mut e, &[Measure::Gates, Measure::Time], false);
        assert_eq!(w, Some(1));
        assert_eq!(why, "t.2 ranked first of 2 that passed, by gates (0 failed gate run(s) against 1 failed gate run(s) for t.3)");
        let mut e = three();
        e[1].diff_lines = None;
        let (w, why) = rank(&mut e, &[Measure::DiffLines], false);
        assert_eq!(w, Some(2), "an unknown figure ranks last: {why}");
        let mut e = three();
        e[1].cost_usd = Some(0.2);
        e[2].time_ms = Some(10);
        let (w, _) = rank(&mut e, &[Measure::Cost, Measure::Time], false);
        assert_eq!(w, Some(1), "the first measure decides before the second");
    }

    #[test]
    fn a_score_ranks_before_measures_and_none_ranks_last() {
        let mut e = three();
        e[1].score = Some(2.0);
        e[2].score = Some(7.5);
        let (w, why) = rank(&mut e, &[Measure::Time], true);
        assert_eq!(w, Some(2));
        assert!(why.contains("by score (7.5 against 2 for t.2)"), "{why}");
        e[2].score = None;
        assert_eq!(rank(&mut e, &[], true).0, Some(1));
    }

    #[test]
    fn a_tie_goes_to_the_one_listed_first_and_says_so() {
        let mut e = three();
        let (w, why) = rank(&mut e, &[Measure::Cost, Measure::Time], false);
        assert_eq!(w, Some(1));
        assert_eq!(
            why,
            "t.2 and t.3 tied on cost, time: the one listed first wins"
        );
    }

    #[test]
    fn a_winner_placed_first_keeps_the_others_order() {
        let mut e = three();
        place_first(&mut e, 2);
        assert_eq!(
            e.iter().map(|e| e.place).collect::<Vec<_>>(),
            [None, Some(2), Some(1)]
        );
        rank(&mut e, &[Measure::DiffLines], false);
        place_first(&mut e, 2);
        assert_eq!(
            e.iter().map(|e| e.place).collect::<Vec<_>>(),
            [None, Some(2), Some(1)]
        );
        place_first(&mut e, 1);
        assert_eq!(
            e.iter().map(|e| e.place).collect::<Vec<_>>(),
            [None, Some(1), Some(2)]
        );
    }

    #[test]
    fn one_or_no_candidate_passing_is_said() {
        let mut e = three();
        e[2].status = TaskStatus::Stopped;
        assert_eq!(
            rank(&mut e, &[Measure::Time], false).1,
            "t.2 was the only candidate to pass its gates"
        );
        e[1].status = TaskStatus::Failed;
        let (w, why) = rank(&mut e, &[Measure::Time], false);
        assert_eq!(w, None);
        assert_eq!(
            why,
            "no candidate passed its gates (t.1 failed, t.2 failed, t.3 stopped)"
        );
        assert_eq!(first(&mut e).0, None);
    }

    #[test]
    fn a_judge_names_its_winner_on_its_last_lines() {
        let passed = ["t.1", "t.3"];
        let v = |s: &str| verdict_of(s, &passed);
        let ok = |id: &str, why: &str| Ok((id.to_string(), why.to_string()));
        assert_eq!(
            v("Both work.\nWINNER: t.3\nREASON: smaller."),
            ok("t.3", "smaller.")
        );
        assert_eq!(
            v("**Winner:** `t.1`\n**Reason:** clearer"),
            ok("t.1", "clearer")
        );
        assert_eq!(v("WINNER: candidate 3."), ok("t.3", "it gave no reason"));
        assert_eq!(
            v("WINNER: t.1\nno, wait\nWINNER: t.3\nREASON: r"),
            ok("t.3", "r")
        );
        let e = v("I like the first one best.").unwrap_err();
        assert!(e.contains("named no candidate"), "{e}");
        let e = v("WINNER: t.2\nREASON: r").unwrap_err();
        assert!(
            e.contains("named \"t.2\", which is no candidate that passed (t.1, t.3)"),
            "{e}"
        );
        assert!(v("WINNER: none\n").is_err());
    }

    #[test]
    fn a_score_is_the_last_number_printed() {
        assert_eq!(score_of("building...\n42\n"), Some(42.0));
        assert_eq!(score_of("3.5\nscore: good\n"), Some(3.5));
        assert_eq!(score_of("-1e3"), Some(-1000.0));
        assert_eq!(score_of("NaN\ninf\nnothing"), None);
    }
}
