//! `baton runs`: the runs of this repository, newest first.

use super::{open_repo, open_store};
use crate::progress::usage_label;
use baton_core::clock::{now_ms, rfc3339};
use baton_core::duration::human;
use baton_core::store::StoreError;
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// List this repository's runs, newest first: status, age, plan, tasks by
/// state, cost, and the disk their worktrees use.
#[derive(Args)]
pub struct RunsArgs {
    /// How many (default 20).
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: usize,
    /// Print them as a JSON array (the fields of the text, unabbreviated).
    #[arg(long)]
    pub json: bool,
}

/// One run as `runs` lists it.
#[derive(Serialize)]
struct RunRow {
    run: String,
    status: String,
    /// A process drives it now.
    live: bool,
    plan: String,
    started_at: String,
    #[serde(skip)]
    age_ms: i64,
    finished_at: Option<String>,
    /// Tasks by status.
    tasks: BTreeMap<String, u32>,
    cost_usd: Option<f64>,
    worktrees_bytes: u64,
}

pub async fn run(cwd: &Path, args: RunsArgs) -> anyhow::Result<i32> {
    let repo = open_repo(cwd)?;
    let (store, paths) = open_store(&repo)?;
    let limit = args.limit;
    let rows = store
        .call(move |s| {
            let counts = s.status_counts()?;
            let mut rows = Vec::new();
            for r in s.runs(limit)? {
                let tasks = counts
                    .iter()
                    .filter(|(run, _, _)| *run == r.id)
                    .map(|(_, status, n)| (status.to_string(), *n))
                    .collect();
                rows.push(RunRow {
                    live: baton_core::control::is_live(&paths, &r.id),
                    status: r.status.to_string(),
                    plan: r.plan_path.clone(),
                    started_at: rfc3339(r.created_at),
                    age_ms: (now_ms() - r.created_at).max(0),
                    finished_at: r.finished_at.map(rfc3339),
                    tasks,
                    cost_usd: s.run_cost(&r.id)?,
                    worktrees_bytes: disk_use(&Path::new(&r.worktrees_dir).join(&r.id)),
                    run: r.id,
                });
            }
            Ok::<_, StoreError>(rows)
        })
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    for r in &rows {
        println!("{}", line(r));
    }
    if rows.is_empty() {
        eprintln!("no runs in this repository yet; start one with `baton run`");
    }
    let schedules = store.call(|s| s.schedules()).await?;
    if !schedules.is_empty() {
        println!("schedules of `baton serve` (UTC):");
        for s in &schedules {
            println!("{}", schedule_line(s));
        }
    }
    Ok(0)
}

fn schedule_line(s: &baton_core::store::ScheduleRow) -> String {
    use baton_core::cron::utc;
    let next = s
        .next_at
        .map_or("names no time".into(), |t| format!("next {}", utc(t)));
    let mut line = format!("  {:<12} {:<16} {next}", s.name, s.cron);
    if let (Some(at), Some(run)) = (s.last_fired_at, &s.last_run_id) {
        let what = s
            .last_task_id
            .as_ref()
            .map_or(run.clone(), |t| format!("{run} {t}"));
        line.push_str(&format!("; last {} ({what})", utc(at)));
    }
    if let Some(at) = s.last_skipped_at {
        line.push_str(&format!("; skipped {} (still going on)", utc(at)));
    }
    line
}

fn line(r: &RunRow) -> String {
    let live = if r.live { " (going on)" } else { "" };
    let age = human(Duration::from_millis(r.age_ms as u64));
    let tasks: Vec<String> = r.tasks.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let mut line = format!(
        "{}  {:<11}{live}  {age} ago  {}  {}",
        r.run,
        r.status,
        r.plan,
        tasks.join(", ")
    );
    let usage = usage_label(None, None, r.cost_usd);
    if !usage.is_empty() {
        line.push_str(&format!("  {usage}"));
    }
    if r.worktrees_bytes > 0 {
        line.push_str(&format!(
            "  worktrees {:.1} MiB",
            r.worktrees_bytes as f64 / 1048576.0
        ));
    }
    line
}

/// Bytes of the files under `dir` (0 when it is gone).
fn disk_use(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => disk_use(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
