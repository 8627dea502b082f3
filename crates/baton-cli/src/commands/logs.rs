//! `baton logs`: what a task's agent and gates printed, attempt by attempt.

use baton_core::model::{AttemptKind, RunStatus};
use baton_core::store::Store;
use clap::Args;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

/// Print a task's output (agent and gates), every attempt in order.
#[derive(Args)]
pub struct LogsArgs {
    pub task: String,
    /// The run (default: the latest).
    #[arg(long)]
    pub run: Option<String>,
    /// Keep printing new output until the task ends.
    #[arg(short, long)]
    pub follow: bool,
    /// Only this attempt.
    #[arg(long, value_name = "N")]
    pub attempt: Option<u32>,
}

fn task_ended(store: &Store, run: &str, task: &str) -> bool {
    store
        .task(run, task)
        .ok()
        .flatten()
        .map(|t| t.status.is_finished())
        .unwrap_or(true)
}

fn run_ended(store: &Store, run: &str) -> bool {
    store
        .run(run)
        .map(|r| r.status != RunStatus::Running)
        .unwrap_or(true)
}

pub async fn run(cwd: &Path, args: LogsArgs) -> anyhow::Result<i32> {
    let found = super::task_of_run(cwd, args.run.as_deref(), &args.task).await?;
    let (store, rec) = (found.store, found.run);
    let mut out = std::io::stdout().lock();
    let mut printed_upto = 0u32;
    loop {
        let attempts = store.attempts(&rec.id, &args.task)?;
        let from = printed_upto;
        for a in attempts.iter().filter(|a| a.n > from) {
            if args.attempt.is_some_and(|n| n != a.n) {
                printed_upto = a.n;
                continue;
            }
            let kept = a
                .commit_ref
                .as_deref()
                .map(|r| format!("; its work is kept at {r}"))
                .unwrap_or_default();
            let what = match a.kind {
                AttemptKind::Work => "attempt",
                AttemptKind::Resolve => "resolution attempt",
                AttemptKind::Judge => "judging attempt",
            };
            writeln!(
                out,
                "==> {what} {} ({}) {}{kept}",
                a.n, a.status, a.log_path
            )?;
            let mut pos = 0u64;
            loop {
                // Whether it was still going before this read: then one more read follows its end.
                let going = args.follow
                    && !run_ended(&store, &rec.id)
                    && store
                        .attempts(&rec.id, &args.task)?
                        .into_iter()
                        .any(|x| x.n == a.n && x.finished_at.is_none());
                if let Ok(mut f) = std::fs::File::open(&a.log_path) {
                    f.seek(SeekFrom::Start(pos))?;
                    // Streamed: a log of any size goes through a small buffer.
                    pos += std::io::copy(&mut f, &mut out)?;
                    out.flush()?;
                }
                if !going {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            printed_upto = a.n;
        }
        if !args.follow || task_ended(&store, &rec.id, &args.task) || run_ended(&store, &rec.id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if printed_upto == 0 && !args.follow {
        eprintln!("task {:?} has not started an attempt yet", args.task);
    }
    Ok(0)
}
