//! `baton approve`: let a task that waits for a person be merged, or say
//! yes to a plan a planner wrote (an item of `baton inbox`).

use baton_core::inbox::{Item, ItemKind};
use baton_core::model::ControlKind;
use clap::Args;
use std::path::Path;

/// Approve a task with `approve = true` whose gates passed (it is then
/// merged), or, given a plan's id in `baton inbox`, run the plan a planner
/// wrote: through the repository's `baton serve` when one is up, else here.
#[derive(Args)]
pub struct ApproveArgs {
    /// The task, or its item's id in `baton inbox` (a plan's too).
    pub task: String,
    /// The run (default: the latest).
    #[arg(long)]
    pub run: Option<String>,
}

pub async fn run(cwd: &Path, args: ApproveArgs) -> anyhow::Result<i32> {
    if let Some(plan) = super::plan_item(cwd, &args.task, args.run.as_deref()).await? {
        return run_plan(cwd, plan).await;
    }
    let (run, task) = super::task_or_item(cwd, args.run.as_deref(), &args.task).await?;
    super::send_control(cwd, run.as_deref(), &task, ControlKind::Approve, None).await
}

/// Runs the plan of inbox item `plan` (a planner's run).
async fn run_plan(cwd: &Path, plan: Item) -> anyhow::Result<i32> {
    debug_assert_eq!(plan.kind, ItemKind::Plan);
    let repo = super::open_repo(cwd)?;
    if let Some(server) = crate::client::find(&repo.state_dir()) {
        let said = server.json(
            "POST",
            &format!("/api/inbox/{}/approve", plan.id),
            Some(&serde_json::json!({})),
        )?;
        println!("{}", said["message"].as_str().unwrap_or("started"));
        return Ok(if said["ok"] == true { 0 } else { 1 });
    }
    let (store, _) = super::open_store(&repo)?;
    let (planner, root) = (plan.run.clone(), repo.root.clone());
    let waiting = store
        .call(move |s| {
            baton_core::planner::proposal::waiting_run(s, &planner).map(|out| (out, root))
        })
        .await;
    let (out, root) = waiting.map_err(|e| super::usage(e.to_string()))?;
    let user = super::user_config()?;
    baton_core::planner::read_plan(&out, Path::new("plan.toml"), &root, user.as_ref())
        .map_err(|e| super::usage(format!("run {}'s plan cannot run: {e}", plan.run)))?;
    eprintln!("running the plan of run {} ({})", plan.run, plan.text);
    let mut args = super::run::RunArgs::for_plan(out);
    args.here = true;
    args.proposal = Some(plan.run);
    super::run::run(cwd, args).await
}
