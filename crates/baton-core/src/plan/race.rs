//! A race: one task given to several candidates (`candidates = 3`, or
//! `agents = [...]`), each its own task on the board with its own desk,
//! retries and gates; a pick (`first`, `all` ranked by measures or a
//! command, or a `judge` agent) chooses the winner, whose work goes on
//! through `verify` and the merge queue as the task's own.
//!
//! Here: the plan's words for it, checked, and how a race task becomes its
//! candidates on the board ([`expand`]).

use super::error::Checker;
use super::raw::RawTask;
use super::{AgentProfile, OnFailure, TaskSpec};
use std::collections::BTreeMap;
use std::ops::Range;

/// At most this many candidates race on one task.
pub const MAX_CANDIDATES: usize = 10;

/// What a race task holds: its candidates' profiles (one per candidate, in
/// order) and how the winner is picked.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Race {
    pub agents: Vec<String>,
    pub pick: Pick,
}

/// How a race's winner is chosen.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Pick {
    /// The first candidate to pass its gates wins; the others are stopped
    /// (their work kept) and those not started are skipped.
    First,
    /// Every candidate ends; those that passed are ranked: by `rank` (a
    /// command run in each one's worktree, printing a number, higher wins)
    /// if given, then by the measures of `rank_by`, then by plan order.
    All {
        rank_by: Vec<Measure>,
        rank: Option<String>,
    },
    /// Every candidate ends; an agent of profile `judge` reads the task and
    /// what each passing candidate did, and names the winner with a reason.
    Judge { judge: String },
}

/// What candidates that passed are compared by (smaller is better for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Gate runs that failed before it passed (first-try success is best).
    Gates,
    /// Lines added and removed.
    DiffLines,
    /// What its attempts cost.
    Cost,
    /// How long its attempts took.
    Time,
}

impl Measure {
    pub const ALL: [(&'static str, Measure); 4] = [
        ("gates", Measure::Gates),
        ("diff_lines", Measure::DiffLines),
        ("cost", Measure::Cost),
        ("time", Measure::Time),
    ];

    pub fn name(self) -> &'static str {
        Measure::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

/// The measures `pick = "all"` ranks by when the plan names none.
pub const DEFAULT_RANK_BY: [Measure; 4] = [
    Measure::Gates,
    Measure::DiffLines,
    Measure::Cost,
    Measure::Time,
];

/// What a candidate task is: candidate `n` (from 1) of race task `race`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CandidateOf {
    pub race: String,
    pub n: u32,
}

/// The id of candidate `n` of task `race`. A `.` is in no id a plan may
/// give, so a candidate's id is never a task's.
pub fn candidate_id(race: &str, n: u32) -> String {
    format!("{race}.{n}")
}

/// A race asked for by a program (the API's and MCP's `task_add`): the
/// plan's words, as its `[[task]]` snippet carries them to the checks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RaceFields {
    pub candidates: Option<u32>,
    pub agents: Vec<String>,
    pub pick: Option<String>,
    pub judge: Option<String>,
    pub rank_by: Vec<String>,
    pub rank: Option<String>,
}

impl RaceFields {
    /// Writes the fields it has into a `[[task]]` table.
    pub fn write(&self, t: &mut toml::Table) {
        let list = |v: &[String]| toml::Value::Array(v.iter().map(|s| s.as_str().into()).collect());
        if let Some(n) = self.candidates {
            t.insert("candidates".into(), i64::from(n).into());
        }
        for (key, v) in [("agents", &self.agents), ("rank_by", &self.rank_by)] {
            if !v.is_empty() {
                t.insert(key.into(), list(v));
            }
        }
        for (key, v) in [
            ("pick", &self.pick),
            ("judge", &self.judge),
            ("rank", &self.rank),
        ] {
            if let Some(v) = v {
                t.insert(key.into(), v.as_str().into());
            }
        }
    }
}

/// The race task and number of candidate `id`, if it is one (no other
/// task's id has a `.`).
pub fn candidate_of_id(id: &str) -> Option<(&str, u32)> {
    let (race, n) = id.rsplit_once('.')?;
    Some((race, n.parse().ok()?))
}

/// Tasks in the order a person reads them: each race's candidates right
/// under their race (the flag says which are candidates), others as they
/// come. The board's order puts candidates before their race.
pub fn reading_order<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<(&T, bool)> {
    let race_of = |t: &T| candidate_of_id(id(t)).map(|(race, _)| race.to_string());
    let mut out: Vec<(&T, bool)> = Vec::with_capacity(items.len());
    for t in items.iter().filter(|t| race_of(t).is_none()) {
        out.push((t, false));
        let mine = items
            .iter()
            .filter(|c| race_of(c).as_deref() == Some(id(t)));
        out.extend(mine.map(|c| (c, true)));
    }
    // A candidate whose race is not among `items` still shows.
    let orphans = items
        .iter()
        .filter(|c| race_of(c).is_some_and(|r| !items.iter().any(|t| id(t) == r)));
    out.extend(orphans.map(|c| (c, true)));
    out
}

/// Whether `word` names candidate `id`: its whole id, or its number
/// (`t.2` or `2`), as a person or a judge may name it.
pub fn names(id: &str, word: &str) -> bool {
    id == word || candidate_of_id(id).is_some_and(|(_, n)| n.to_string() == word)
}

/// The fields of a race, which only a `[[task]]` may have.
pub(super) fn race_fields(t: &RawTask) -> Option<Range<usize>> {
    let spans = [
        t.candidates.as_ref().map(|s| s.span()),
        t.agents.as_ref().map(|s| s.span()),
        t.pick.as_ref().map(|s| s.span()),
        t.rank_by.as_ref().map(|s| s.span()),
        t.rank.as_ref().map(|s| s.span()),
        t.judge.as_ref().map(|s| s.span()),
    ];
    spans.into_iter().flatten().next()
}

/// The task's race, checked; None when it races nothing (or is wrong:
/// then `ck` says why, each problem at its field).
pub(super) fn check_race(
    ck: &mut Checker,
    subject: &Option<String>,
    t: &RawTask,
    agent: &str,
    profiles: &BTreeMap<String, AgentProfile>,
) -> Option<Race> {
    let mut at = |span: Range<usize>, msg: String| ck.at(Some(span), subject.clone(), msg);
    let agents = match (&t.candidates, &t.agents) {
        (None, None) => {
            if let Some(span) = race_fields(t) {
                let msg = "pick, rank_by, rank and judge choose among candidates: give the task `candidates = N` or `agents = [...]`";
                at(span, msg.into());
            }
            return None;
        }
        (Some(_), Some(a)) => {
            let msg = "give `candidates = N` (the task's agent N times) or `agents = [...]` (one candidate each), not both";
            at(a.span(), msg.into());
            return None;
        }
        (Some(n), None) => {
            let count = *n.get_ref();
            if !(2..=MAX_CANDIDATES as i64).contains(&count) {
                let msg = format!("candidates must be 2 to {MAX_CANDIDATES} (one candidate is the task itself), not {count}");
                at(n.span(), msg);
                return None;
            }
            vec![agent.to_string(); count as usize]
        }
        (None, Some(a)) => {
            let list = a.get_ref();
            if !(2..=MAX_CANDIDATES).contains(&list.len()) {
                let msg = format!(
                    "agents must name 2 to {MAX_CANDIDATES} profiles (one per candidate; a profile may repeat), not {}",
                    list.len()
                );
                at(a.span(), msg);
                return None;
            }
            if let Some(bad) = list.iter().find(|p| !profiles.contains_key(*p)) {
                let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
                let msg = format!(
                    "agents names unknown profile {bad:?} (the plan defines: {})",
                    known.join(", ")
                );
                at(a.span(), msg);
                return None;
            }
            list.clone()
        }
    };
    if let Some(l) = t.lead.as_ref().filter(|l| *l.get_ref()) {
        let msg = "a lead task cannot race: its agent adds tasks to the run, which candidates would each do";
        at(l.span(), msg.into());
    }
    let pick = pick(&mut at, t, profiles)?;
    Some(Race { agents, pick })
}

/// The race's `pick`, with what its mode takes (`rank_by`, `rank`, `judge`).
fn pick(
    at: &mut impl FnMut(Range<usize>, String),
    t: &RawTask,
    profiles: &BTreeMap<String, AgentProfile>,
) -> Option<Pick> {
    let said = t.pick.as_ref().map(|p| (p.get_ref().as_str(), p.span()));
    let mode = match said {
        Some((m, _)) => m,
        None if t.judge.is_some() => "judge",
        None => "all",
    };
    let ranks = t.rank_by.as_ref().map(|r| r.span());
    let ranks = ranks.or(t.rank.as_ref().map(|r| r.span()));
    let pick_span = said.map(|(_, s)| s).unwrap_or(0..0);
    match mode {
        "first" | "judge" if ranks.is_some() => {
            let msg = format!("rank_by and rank order the candidates of pick = \"all\"; pick = \"{mode}\" does not rank");
            at(ranks.unwrap_or_default(), msg);
            None
        }
        "first" | "all" if t.judge.is_some() => {
            let span = t.judge.as_ref().map(|j| j.span()).unwrap_or_default();
            at(
                span,
                format!("a judge picks for pick = \"judge\", not pick = \"{mode}\""),
            );
            None
        }
        "first" => Some(Pick::First),
        "all" => Some(Pick::All {
            rank_by: rank_by(at, t)?,
            rank: rank(at, t)?,
        }),
        "judge" => {
            let Some(j) = &t.judge else {
                let msg = "pick = \"judge\" needs `judge = \"<profile>\"`: the agent that reads the candidates' work and names the winner";
                at(pick_span, msg.into());
                return None;
            };
            if !profiles.contains_key(j.get_ref()) {
                at(
                    j.span(),
                    format!("judge names unknown profile {:?}", j.get_ref()),
                );
                return None;
            }
            Some(Pick::Judge {
                judge: j.get_ref().clone(),
            })
        }
        other => {
            let msg = format!("pick must be \"first\", \"all\" or \"judge\", not {other:?}");
            at(pick_span, msg);
            None
        }
    }
}

fn rank_by(at: &mut impl FnMut(Range<usize>, String), t: &RawTask) -> Option<Vec<Measure>> {
    let Some(r) = &t.rank_by else {
        return Some(DEFAULT_RANK_BY.to_vec());
    };
    let mut out = Vec::new();
    for name in r.get_ref() {
        let Some((_, m)) = Measure::ALL.iter().find(|(n, _)| n == name) else {
            let msg = format!(
                "rank_by knows \"gates\", \"diff_lines\", \"cost\" and \"time\", not {name:?}"
            );
            at(r.span(), msg);
            return None;
        };
        if out.contains(m) {
            at(r.span(), format!("rank_by names {name:?} twice"));
            return None;
        }
        out.push(*m);
    }
    if out.is_empty() && t.rank.is_none() {
        let msg =
            "rank_by is empty: name what ranks the candidates (or leave it out for the default)";
        at(r.span(), msg.into());
        return None;
    }
    Some(out)
}

fn rank(at: &mut impl FnMut(Range<usize>, String), t: &RawTask) -> Option<Option<String>> {
    match &t.rank {
        None => Some(None),
        Some(r) if r.get_ref().trim().is_empty() || r.get_ref().contains('\0') => {
            let msg = "rank is a command run in each candidate's worktree that prints a number (higher wins): it cannot be empty";
            at(r.span(), msg.into());
            None
        }
        Some(r) => Some(Some(r.get_ref().clone())),
    }
}

/// The tasks the board runs for `tasks`: each race task preceded by its
/// candidates, which do its work under their own ids, each with its own
/// profile. A candidate never merges or waits for approval (its race's
/// winner does), and its failure does not stop the run (its race's does).
pub fn expand(tasks: &[TaskSpec]) -> Vec<TaskSpec> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Some(race) = &t.race {
            out.extend(race.agents.iter().enumerate().map(|(k, agent)| {
                let n = k as u32 + 1;
                TaskSpec {
                    id: candidate_id(&t.id, n),
                    agent: agent.clone(),
                    approve: false,
                    merge: false,
                    on_failure: OnFailure::Continue,
                    resolve_conflicts: false,
                    race: None,
                    candidate: Some(CandidateOf {
                        race: t.id.clone(),
                        n,
                    }),
                    ..t.clone()
                }
            }));
        }
        out.push(t.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::plan::parse_with_a_profile;

    fn err(text: &str) -> String {
        parse_with_a_profile(text).err().unwrap_or_default()
    }

    #[test]
    fn a_race_is_checked_field_by_field() {
        let base = "[[task]]\nid = \"t\"\nprompt = \"p\"\nagent = \"a\"\n";
        let cases = [
            ("candidates = 1", "candidates must be 2 to 10"),
            ("candidates = 11", "candidates must be 2 to 10"),
            ("agents = [\"a\"]", "agents must name 2 to 10 profiles"),
            ("agents = [\"a\", \"zz\"]", "unknown profile \"zz\""),
            ("candidates = 2\nagents = [\"a\", \"a\"]", "not both"),
            ("pick = \"first\"", "give the task `candidates = N`"),
            (
                "candidates = 2\npick = \"best\"",
                "pick must be \"first\", \"all\" or \"judge\"",
            ),
            (
                "candidates = 2\npick = \"first\"\nrank_by = [\"cost\"]",
                "does not rank",
            ),
            ("candidates = 2\nrank_by = [\"speed\"]", "not \"speed\""),
            (
                "candidates = 2\nrank_by = [\"cost\", \"cost\"]",
                "names \"cost\" twice",
            ),
            ("candidates = 2\nrank = \" \"", "cannot be empty"),
            (
                "candidates = 2\npick = \"judge\"",
                "needs `judge = \"<profile>\"`",
            ),
            (
                "candidates = 2\njudge = \"zz\"",
                "judge names unknown profile",
            ),
            (
                "candidates = 2\npick = \"all\"\njudge = \"a\"",
                "not pick = \"all\"",
            ),
            ("candidates = 2\nlead = true", "a lead task cannot race"),
        ];
        for (fields, want) in cases {
            let e = err(&format!("{base}{fields}\n"));
            assert!(e.contains(want), "{fields:?}: {e}");
        }
        let e = err(&format!("[defaults]\ncandidates = 3\n\n{base}"));
        assert!(e.contains("belong to a [[task]]"), "{e}");
    }

    #[test]
    fn candidates_read_under_their_race() {
        let ids = ["up", "t.1", "t.2", "t", "x.1", "after"];
        let order: Vec<(&str, bool)> = super::reading_order(&ids, |s| s)
            .into_iter()
            .map(|(s, c)| (*s, c))
            .collect();
        let want = [
            ("up", false),
            ("t", false),
            ("t.1", true),
            ("t.2", true),
            ("after", false),
            ("x.1", true),
        ];
        assert_eq!(order, want);
        assert_eq!(super::candidate_of_id("a-b.12"), Some(("a-b", 12)));
        assert_eq!(super::candidate_of_id("plain"), None);
    }

    #[test]
    fn candidates_do_the_tasks_work_under_their_own_ids() {
        let text = "[agent.b]\nadapter = \"exec\"\ncommand = [\"true\"]\n\n[[task]]\nid = \"up\"\nprompt = \"p\"\nagent = \"a\"\n\n[[task]]\nid = \"t\"\nprompt = \"p\"\nagent = \"a\"\nneeds = [\"up\"]\nagents = [\"b\", \"a\", \"b\"]\napprove = true\n";
        let plan = parse_with_a_profile(text).unwrap();
        let t = plan.task("t").unwrap();
        let race = t.race.as_ref().unwrap();
        assert_eq!(race.agents, ["b", "a", "b"]);
        assert!(
            matches!(&race.pick, super::Pick::All { rank_by, rank: None } if rank_by.len() == 4)
        );
        let board = super::expand(&plan.tasks);
        let ids: Vec<&str> = board.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["up", "t.1", "t.2", "t.3", "t"]);
        let c = &board[2];
        assert_eq!(
            (c.agent.as_str(), c.needs.as_slice()),
            ("a", ["up".to_string()].as_slice())
        );
        assert!(!c.merge && !c.approve && c.race.is_none());
        assert_eq!(
            c.candidate.as_ref().map(|c| (c.race.as_str(), c.n)),
            Some(("t", 2))
        );
        assert!(board[4].approve && board[4].race.is_some());
    }
}
