//! `baton stats`: the scorecard of this repository's agent profiles (or
//! models), over its runs since a time.

use super::{open_repo, open_store};
use baton_core::duration::human;
use baton_core::stats::{scorecard, since_ms, By, Line};
use clap::{Args, ValueEnum};
use std::path::Path;
use std::time::Duration;

/// How each agent profile (or model) has done on this repository's tasks:
/// tasks finished, first-try successes (no failed attempt), successes after
/// retries, failures, gate failures, mean and 90th-percentile time (the
/// agents' own, summed over a task's attempts), mean cost, and races won
/// and lost as a candidate. Best first.
///
/// `--by tag` gives one line per tag of queued tasks and profile
/// (`docs/claude`): what a `[[route]]` with `agent = "best"` reads.
#[derive(Args)]
pub struct StatsArgs {
    /// Over the tasks that finished this long ago or later ("30d", "12h"; default 30d).
    #[arg(long, default_value = "30d")]
    pub since: String,
    /// One line per profile (default), per model, or per tag and profile.
    #[arg(long, value_enum, default_value_t = ByArg::Profile)]
    pub by: ByArg,
    /// Print the lines as a JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ByArg {
    Profile,
    Model,
    Tag,
}

pub async fn run(cwd: &Path, args: StatsArgs) -> anyhow::Result<i32> {
    let from =
        since_ms(&args.since).map_err(|e| anyhow::anyhow!("--since {:?}: {e}", args.since))?;
    let by = match args.by {
        ByArg::Profile => By::Profile,
        ByArg::Model => By::Model,
        ByArg::Tag => By::Tag,
    };
    let repo = open_repo(cwd)?;
    let (store, _) = open_store(&repo)?;
    let tasks = store.call(move |s| s.task_outcomes(from)).await?;
    let lines = scorecard(&tasks, by);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(0);
    }
    if lines.is_empty() {
        eprintln!("no finished tasks in the last {}", args.since);
        return Ok(0);
    }
    let what = match by {
        By::Profile => "profile",
        By::Model => "model",
        By::Tag => "tag/profile",
    };
    println!(
        "{what:<20} {:>5} {:>9} {:>13} {:>6} {:>8} {:>6} {:>8} {:>8} {:>9} {:>4} {:>4}",
        "tasks",
        "first try",
        "after retries",
        "failed",
        "success",
        "gates",
        "mean",
        "p90",
        "mean cost",
        "won",
        "lost"
    );
    for l in &lines {
        println!("{}", row(l));
    }
    Ok(0)
}

fn row(l: &Line) -> String {
    let time = |ms: Option<i64>| ms.map_or("-".into(), |m| human(Duration::from_millis(m as u64)));
    let cost = l.mean_cost_usd.map_or("-".into(), |c| format!("${c:.2}"));
    format!(
        "{:<20} {:>5} {:>9} {:>13} {:>6} {:>7.0}% {:>6} {:>8} {:>8} {:>9} {:>4} {:>4}",
        l.name,
        l.tasks,
        l.first_try,
        l.after_retries,
        l.failed,
        l.success_rate * 100.0,
        l.gate_failures,
        time(l.mean_ms),
        time(l.p90_ms),
        cost,
        l.wins,
        l.losses
    )
}
