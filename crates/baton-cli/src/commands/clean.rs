//! `baton clean`: remove finished runs' worktrees and branches, keeping
//! every tip under refs/baton/archive/.

use super::{find_run, open_repo, open_store, usage};
use baton_core::clean::{apply, survey};
use baton_core::clock::now_ms;
use baton_core::duration::parse_duration;
use clap::Args;
use std::path::Path;

/// Remove finished runs' worktrees and branches. Every branch tip is kept
/// under refs/baton/archive/<run>/ first, and a worktree with uncommitted
/// changes is left as it is (with its branch): nothing is lost. A run that
/// is going on is never touched.
#[derive(Args)]
pub struct CleanArgs {
    /// One run (default: every finished run, or those --older-than).
    pub run: Option<String>,
    /// Only runs that finished longer ago than this: "7d", "12h", "90m"
    #[arg(long, value_name = "DURATION")]
    pub older_than: Option<String>,
    /// Say what would be done, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(cwd: &Path, args: CleanArgs) -> anyhow::Result<i32> {
    let repo = open_repo(cwd)?;
    let (store, paths) = open_store(&repo)?;
    let older = match &args.older_than {
        Some(d) => Some(parse_duration(d).map_err(|e| usage(format!("--older-than: {e}")))?),
        None => None,
    };
    let runs = match &args.run {
        Some(id) => {
            let rec = find_run(&store, Some(id))?;
            if baton_core::control::is_live(&paths, &rec.id) || rec.finished_at.is_none() {
                return Err(usage(format!(
                    "run {} has not finished; clean it once it has (or resume it)",
                    rec.id
                )));
            }
            vec![rec]
        }
        None => store
            .call(|s| s.runs(10_000))
            .await?
            .into_iter()
            .filter(|r| r.finished_at.is_some() && !baton_core::control::is_live(&paths, &r.id))
            .filter(|r| match (older, r.finished_at) {
                (Some(d), Some(f)) => now_ms() - f > d.as_millis() as i64,
                _ => true,
            })
            .collect(),
    };
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for rec in &runs {
        let c = survey(&repo, rec).await?;
        if !args.dry_run {
            apply(&repo, &c).await?;
        }
        println!(
            "run {}: {verb} {} worktree{} and {} branch{} (tips kept under refs/baton/archive/{}/)",
            rec.id,
            c.worktrees.len(),
            if c.worktrees.len() == 1 { "" } else { "s" },
            c.branches.len(),
            if c.branches.len() == 1 { "" } else { "es" },
            rec.id
        );
        for (path, files) in &c.kept {
            println!(
                "  kept {}: uncommitted changes in {}",
                path.display(),
                files.join(", ")
            );
        }
        for (path, branch) in &c.foreign {
            println!(
                "  kept {} and its branch {}: a worktree baton did not make",
                path.display(),
                branch.trim_start_matches("refs/heads/")
            );
        }
    }
    if runs.is_empty() {
        eprintln!("no finished run to clean");
    }
    Ok(0)
}
