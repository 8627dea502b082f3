//! The scorecard: how each agent profile (or model) has done on this
//! repository's tasks, over every run since a time: tasks finished, how
//! many succeeded at the first try and how many after retries, how many
//! failed, gate failures, time and cost, and races won and lost as a
//! candidate. Pure: the store gives one [`TaskOutcome`] per finished task
//! (a race's candidates each count, the race itself does not: its work is
//! theirs), [`scorecard`] adds them up, [`best_for`] reads them for a
//! route's `agent = "best"`.

use crate::model::TaskStatus;
use serde::Serialize;
use std::collections::BTreeMap;

/// One finished task, as the scorecard counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutcome {
    /// The profile that finished it (after any fallback).
    pub profile: String,
    /// The model its last work attempt used, if known.
    pub model: Option<String>,
    pub status: TaskStatus,
    /// Its failed attempts (and a person's retry), the engine's own count:
    /// a steer, a question, a provider's limit or an interruption is not one.
    pub failures: u32,
    /// Gates that failed, over all its attempts.
    pub gate_failures: u32,
    /// Its agents' time: its work attempts' durations, summed.
    pub duration_ms: Option<i64>,
    pub cost_usd: Option<f64>,
    /// The tags it was queued with (a candidate: its race's).
    pub tags: Vec<String>,
    /// A candidate whose race picked: whether it won.
    pub race: Option<RaceEnd>,
}

/// How a candidate's race ended for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaceEnd {
    Won,
    Lost,
}

/// The time `since` ("30d", "12h") before now, in ms since the epoch
/// (far enough back for any history when huge); why not, when it is not
/// a duration.
pub fn since_ms(since: &str) -> Result<i64, String> {
    let back = crate::duration::parse_duration(since)?;
    let back = i64::try_from(back.as_millis()).unwrap_or(i64::MAX);
    Ok(crate::clock::now_ms().saturating_sub(back))
}

/// What the scorecard's lines are per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    Profile,
    Model,
    /// One line per tag and profile (`docs/claude`): what a route with
    /// `agent = "best"` reads. Tasks queued without a tag are left out.
    Tag,
}

/// One profile's (or model's) record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// The profile or model (`unknown` when a task's model was never said).
    pub name: String,
    /// Tasks finished (succeeded or failed).
    pub tasks: u32,
    pub first_try: u32,
    pub after_retries: u32,
    pub failed: u32,
    /// Succeeded over finished, 0 to 1.
    pub success_rate: f64,
    pub gate_failures: u32,
    pub mean_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    /// Over the tasks whose cost is known.
    pub mean_cost_usd: Option<f64>,
    /// Races it won and lost as a candidate (head to head).
    pub wins: u32,
    pub losses: u32,
}

/// The record of each profile (or model) over `tasks`, best first (by
/// success rate, then more tasks, then name). Tasks that did not finish
/// (skipped, stopped, still running) are not counted; a first-try success
/// is one with no failed attempt.
pub fn scorecard(tasks: &[TaskOutcome], by: By) -> Vec<Line> {
    let mut groups: BTreeMap<String, Vec<&TaskOutcome>> = BTreeMap::new();
    // A candidate outrun by another (stopped) counts only as a race lost.
    for t in tasks
        .iter()
        .filter(|t| finished(t.status) || t.race.is_some())
    {
        let names = match by {
            By::Profile => vec![t.profile.clone()],
            By::Model => vec![t.model.clone().unwrap_or_else(|| "unknown".into())],
            By::Tag => {
                let mut tags = t.tags.clone();
                tags.sort_unstable();
                tags.dedup();
                tags.iter()
                    .map(|tag| format!("{tag}/{}", t.profile))
                    .collect()
            }
        };
        for name in names {
            groups.entry(name).or_default().push(t);
        }
    }
    let mut lines: Vec<Line> = groups.into_iter().map(|(n, ts)| line(n, &ts)).collect();
    lines.sort_by(|a, b| {
        b.success_rate
            .total_cmp(&a.success_rate)
            .then(b.tasks.cmp(&a.tasks))
            .then(a.name.cmp(&b.name))
    });
    lines
}

fn finished(s: TaskStatus) -> bool {
    matches!(s, TaskStatus::Succeeded | TaskStatus::Failed)
}

fn line(name: String, all: &[&TaskOutcome]) -> Line {
    let races = |end: RaceEnd| all.iter().filter(|t| t.race == Some(end)).count() as u32;
    let (wins, losses) = (races(RaceEnd::Won), races(RaceEnd::Lost));
    let ts: Vec<&TaskOutcome> = all.iter().copied().filter(|t| finished(t.status)).collect();
    let ts = ts.as_slice();
    let ok = |t: &&&TaskOutcome| t.status == TaskStatus::Succeeded;
    let first_try = ts.iter().filter(ok).filter(|t| t.failures == 0).count() as u32;
    let succeeded = ts.iter().filter(ok).count() as u32;
    let tasks = ts.len() as u32;
    let mut times: Vec<i64> = ts.iter().filter_map(|t| t.duration_ms).collect();
    times.sort_unstable();
    let costs: Vec<f64> = ts.iter().filter_map(|t| t.cost_usd).collect();
    Line {
        name,
        tasks,
        first_try,
        after_retries: succeeded - first_try,
        failed: tasks - succeeded,
        success_rate: f64::from(succeeded) / f64::from(tasks.max(1)),
        gate_failures: ts.iter().map(|t| t.gate_failures).sum(),
        mean_ms: (!times.is_empty()).then(|| times.iter().sum::<i64>() / times.len() as i64),
        p90_ms: p90(&times),
        mean_cost_usd: (!costs.is_empty()).then(|| costs.iter().sum::<f64>() / costs.len() as f64),
        wins,
        losses,
    }
}

/// Where `agent = "best"` sends a task tagged `tag`, and why: while a
/// profile of `among` has finished fewer than `min_tasks` such tasks, the
/// one with the fewest (the first of `among` on a tie), so that each gets
/// a record; then the one with the best record (success rate, then more
/// tasks, then more races won, then `among`'s order).
pub fn best_for(
    tasks: &[TaskOutcome],
    tag: &str,
    among: &[String],
    min_tasks: u32,
) -> (String, String) {
    let mine: Vec<TaskOutcome> = tasks
        .iter()
        .filter(|t| t.tags.iter().any(|x| x == tag) && among.contains(&t.profile))
        .cloned()
        .collect();
    let lines = scorecard(&mine, By::Profile);
    let of = |p: &String| lines.iter().find(|l| l.name == *p);
    let count = |p: &String| of(p).map_or(0, |l| l.tasks);
    let order = |p: &String| among.iter().position(|a| a == p).unwrap_or(usize::MAX);
    if let Some(new) = among
        .iter()
        .filter(|p| count(p) < min_tasks)
        .min_by_key(|p| (count(p), order(p)))
    {
        let why = format!(
            "{new} has {} of the {min_tasks} {tag:?} tasks it needs for a record",
            count(new)
        );
        return (new.clone(), why);
    }
    let best = among.iter().filter_map(of).min_by(|a, b| {
        b.success_rate
            .total_cmp(&a.success_rate)
            .then(b.tasks.cmp(&a.tasks))
            .then(b.wins.cmp(&a.wins))
            .then(order(&a.name).cmp(&order(&b.name)))
    });
    match best {
        Some(l) => {
            let why = format!(
                "{} has the best record on {tag:?} tasks ({:.0}% of {})",
                l.name,
                l.success_rate * 100.0,
                l.tasks
            );
            (l.name.clone(), why)
        }
        // Not reached with a non-empty `among`: each has a record by now.
        None => (among.first().cloned().unwrap_or_default(), String::new()),
    }
}

/// The nearest-rank 90th percentile of sorted `xs`.
fn p90(xs: &[i64]) -> Option<i64> {
    let rank = (xs.len() * 9).div_ceil(10);
    xs.get(rank.checked_sub(1)?).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(profile: &str, model: &str, status: TaskStatus, tries: u32, ms: i64) -> TaskOutcome {
        TaskOutcome {
            profile: profile.into(),
            model: Some(model.into()).filter(|m: &String| !m.is_empty()),
            status,
            failures: tries.saturating_sub(1),
            gate_failures: tries.saturating_sub(1),
            duration_ms: Some(ms),
            cost_usd: Some(ms as f64 / 1000.0),
            tags: Vec::new(),
            race: None,
        }
    }

    #[test]
    fn races_count_as_wins_and_losses_and_tags_pick_the_best() {
        use TaskStatus::*;
        let tagged = |mut o: TaskOutcome, tag: &str, race: Option<RaceEnd>| {
            o.tags = vec![tag.to_string()];
            o.race = race;
            o
        };
        let tasks = vec![
            tagged(
                t("claude", "", Succeeded, 1, 10),
                "docs",
                Some(RaceEnd::Won),
            ),
            tagged(
                t("codex", "", Succeeded, 1, 10),
                "docs",
                Some(RaceEnd::Lost),
            ),
            tagged(t("codex", "", Failed, 1, 10), "docs", Some(RaceEnd::Lost)),
            tagged(t("codex", "", Succeeded, 1, 10), "bugs", None),
            tagged(t("claude", "", Succeeded, 1, 10), "docs", None),
            tagged(t("gemini", "", Stopped, 1, 10), "docs", Some(RaceEnd::Lost)),
            t("gemini", "", Stopped, 1, 10),
        ];
        let card = scorecard(&tasks, By::Profile);
        let claude = card.iter().find(|l| l.name == "claude").unwrap();
        let codex = card.iter().find(|l| l.name == "codex").unwrap();
        assert_eq!((claude.wins, claude.losses), (2 - 1, 0));
        assert_eq!((codex.wins, codex.losses), (0, 2));
        let gemini = card.iter().find(|l| l.name == "gemini").unwrap();
        assert_eq!(
            (gemini.tasks, gemini.losses),
            (0, 1),
            "an outrun candidate is a race lost, not a task; a stopped task is neither"
        );
        let by_tag: Vec<(String, u32)> = scorecard(&tasks, By::Tag)
            .into_iter()
            .map(|l| (l.name, l.tasks))
            .collect();
        assert_eq!(
            by_tag,
            [
                ("docs/claude".into(), 2),
                ("bugs/codex".into(), 1),
                ("docs/codex".into(), 2),
                ("docs/gemini".into(), 0)
            ]
        );
        let both = ["claude".to_string(), "codex".to_string()];
        let best = |tag: &str, among: &[String], min: u32| best_for(&tasks, tag, among, min).0;
        let (who, why) = best_for(&tasks, "docs", &both, 2);
        assert_eq!(
            (who.as_str(), why.as_str()),
            (
                "claude",
                "claude has the best record on \"docs\" tasks (100% of 2)"
            )
        );
        // Each profile gets a record first: the one with the fewest goes next.
        assert_eq!(
            best("bugs", &both, 1),
            "claude",
            "claude has no bugs task yet"
        );
        let (who, why) = best_for(&tasks, "docs", &both, 3);
        assert_eq!(
            (who.as_str(), why.as_str()),
            (
                "claude",
                "claude has 2 of the 3 \"docs\" tasks it needs for a record"
            )
        );
        assert_eq!(best("docs", &both[1..], 1), "codex");
    }

    #[test]
    fn each_profile_is_counted_from_its_finished_tasks_best_first() {
        use TaskStatus::*;
        let tasks = vec![
            t("claude", "sonnet", Succeeded, 1, 1000),
            t("claude", "sonnet", Succeeded, 3, 3000),
            t("claude", "opus", Failed, 2, 2000),
            t("codex", "gpt-5", Succeeded, 1, 500),
            t("codex", "gpt-5", Skipped, 0, 0),
            t("gemini", "", Failed, 1, 100),
        ];
        let card = scorecard(&tasks, By::Profile);
        let names: Vec<&str> = card.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["codex", "claude", "gemini"]);
        let claude = &card[1];
        assert_eq!(
            (
                claude.tasks,
                claude.first_try,
                claude.after_retries,
                claude.failed
            ),
            (3, 1, 1, 1)
        );
        assert!((claude.success_rate - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(claude.gate_failures, 3);
        assert_eq!((claude.mean_ms, claude.p90_ms), (Some(2000), Some(3000)));
        assert_eq!(claude.mean_cost_usd, Some(2.0));
        assert_eq!(card[0].tasks, 1, "a skipped task is not counted");
        let by_model = scorecard(&tasks, By::Model);
        let names: Vec<&str> = by_model.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            ["sonnet", "gpt-5", "opus", "unknown"],
            "more tasks first at one rate"
        );
        assert!(scorecard(&[], By::Profile).is_empty());
    }

    #[test]
    fn the_ninetieth_percentile_is_the_nearest_rank() {
        assert_eq!(p90(&[]), None);
        assert_eq!(p90(&[7]), Some(7));
        let ten: Vec<i64> = (1..=10).collect();
        assert_eq!(p90(&ten), Some(9));
        let eleven: Vec<i64> = (1..=11).collect();
        assert_eq!(p90(&eleven), Some(10));
    }
}
