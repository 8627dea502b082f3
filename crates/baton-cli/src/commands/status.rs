//! `baton status`: where a run stands, read from the store.

use super::{find_run, open_repo, open_store};
use crate::progress::{elapsed, standing_in_race, state_label, symbol, usage_label};
use baton_core::lock::{self, LockState};
use baton_core::model::RunKind;
use baton_core::plan::race;
use baton_core::Report;
use clap::Args;
use std::path::Path;

/// Show a run's tasks and their states (default: the latest run).
#[derive(Args)]
pub struct StatusArgs {
    /// The run id.
    pub run: Option<String>,
    /// Print the report as JSON (the same shape as `run --json`).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cwd: &Path, args: StatusArgs) -> anyhow::Result<i32> {
    let repo = open_repo(cwd)?;
    let (store, paths) = open_store(&repo)?;
    let rec = find_run(&store, args.run.as_deref())?;
    let report = Report::load(&store, &rec.id).await?;
    let pull = store.pull(&rec.id)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(0);
    }
    let live = match lock::probe(&paths.lock(&rec.id)) {
        LockState::Held(pid) => format!(
            "going on (pid {})",
            pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
        ),
        LockState::Free if rec.finished_at.is_none() && rec.kind == RunKind::Service => {
            "not going on: `baton serve` resumes it when it starts".into()
        }
        LockState::Free if rec.finished_at.is_none() => {
            "not going on: interrupted; continue it with `baton resume`".into()
        }
        LockState::Free => "finished".into(),
    };
    println!("run {}: {} ({live})", rec.id, rec.status);
    println!("plan: {}   started: {}", rec.plan_path, report.started_at);
    println!("integration branch: {}", rec.integration_branch);
    if let Some(p) = &pull {
        println!("{}", pull_line(p, &rec));
    }
    let tasks = store.tasks(&rec.id)?;
    let width = tasks.iter().map(|t| t.id.len()).max().unwrap_or(4);
    for (t, candidate) in race::reading_order(&tasks, |t| &t.id) {
        let indent = if candidate { "    " } else { "" };
        let reported = report.tasks.iter().find(|r| r.id == t.id);
        let mut label = state_label(t);
        if let Some(r) = reported {
            if r.candidate_of.is_some() && t.status.is_finished() {
                label = standing_in_race(&report, r);
            }
        }
        let mut line = format!(
            "  {indent}{} {:<width$}  {:<26} attempts {:<2} {:>7}",
            symbol(t.status),
            t.id,
            label,
            t.attempts,
            elapsed(t)
        );
        let usage = usage_label(t.input_tokens, t.output_tokens, t.cost_usd);
        if !usage.is_empty() {
            line.push_str(&format!("  {usage}"));
        }
        if t.merged {
            line.push_str("  merged");
        }
        let picked = reported.and_then(|r| r.pick_reason.as_ref());
        if let Some(r) = t.reason.as_ref().or(picked) {
            line.push_str(&format!("  {r}"));
        }
        if !t.conflict_ahead.is_empty() {
            line.push_str(&format!(
                "  conflict ahead in {}",
                t.conflict_ahead.join(", ")
            ));
        }
        println!("{line}");
    }
    Ok(0)
}

/// The run's pull request in one line: its state, checks, reviews, fixes.
fn pull_line(p: &baton_core::store::PullRecord, rec: &baton_core::store::RunRecord) -> String {
    let max = baton_core::Plan::parse_config(Path::new(&rec.plan_path), &rec.plan_source, None)
        .map(|plan| plan.pull.max_fixes.to_string())
        .unwrap_or_else(|_| "?".into());
    let mut line = format!("pull request #{} ({}): {}", p.number, p.url, p.status);
    if !p.checks.is_empty() {
        line.push_str(&format!("; checks: {}", p.checks));
    }
    if !p.reviews.is_empty() {
        line.push_str(&format!("; reviews: {}", p.reviews));
    }
    line.push_str(&format!("; fixes used {} of {max}", p.fixes_used));
    if p.spent_usd > 0.0 {
        line.push_str(&format!(" (${:.2})", p.spent_usd));
    }
    if let Some(n) = &p.note {
        line.push_str(&format!("; {n}"));
    }
    line
}
