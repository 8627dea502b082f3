//! `baton runs`: the runs of this repository, newest first.

use super::{open_repo, open_store};
use crate::progress::usage_label;
use baton_core::clock::now_ms;
use baton_core::duration::human;
use clap::Args;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// List this repository's runs, newest first: status, age, tasks by state,
/// cost, and the disk their worktrees use.
#[derive(Args)]
pub struct RunsArgs {
    /// How many (default 20).
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: usize,
}

pub async fn run(cwd: &Path, args: RunsArgs) -> anyhow::Result<i32> {
    let repo = open_repo(cwd)?;
    let (store, paths) = open_store(&repo)?;
    let limit = args.limit;
    let (runs, counts) = store
        .call(move |s| Ok::<_, baton_core::store::StoreError>((s.runs(limit)?, s.status_counts()?)))
        .await?;
    for r in &runs {
        let mut by: BTreeMap<String, u32> = BTreeMap::new();
        for (run, status, n) in &counts {
            if *run == r.id {
                by.insert(status.to_string(), *n);
            }
        }
        let tasks: Vec<String> = by.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let id = r.id.clone();
        let cost = store.call(move |s| s.run_cost(&id)).await?;
        let live = if baton_core::control::is_live(&paths, &r.id) {
            " (going on)"
        } else {
            ""
        };
        let age = human(Duration::from_millis(
            (now_ms() - r.created_at).max(0) as u64
        ));
        let disk = disk_use(&Path::new(&r.worktrees_dir).join(&r.id));
        let mut line = format!(
            "{}  {:<11}{live}  {age} ago  {}  {}",
            r.id,
            r.status,
            r.plan_path,
            tasks.join(", ")
        );
        let usage = usage_label(None, None, cost);
        if !usage.is_empty() {
            line.push_str(&format!("  {usage}"));
        }
        if disk > 0 {
            line.push_str(&format!("  worktrees {:.1} MiB", disk as f64 / 1048576.0));
        }
        println!("{line}");
    }
    if runs.is_empty() {
        eprintln!("no runs in this repository yet; start one with `baton run`");
    }
    Ok(0)
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
