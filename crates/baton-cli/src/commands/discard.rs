//! `baton discard`: say no to a plan a planner wrote (an item of `baton
//! inbox`); it leaves the inbox and can no longer be run from there.

use baton_core::model::PlanDecision;
use clap::Args;
use std::path::Path;

/// Discard a plan waiting for a yes: the planner's plan that `baton inbox`
/// lists under ID (`baton approve ID` would run it instead).
#[derive(Args)]
pub struct DiscardArgs {
    /// The plan's id in `baton inbox`.
    pub id: String,
}

pub async fn run(cwd: &Path, args: DiscardArgs) -> anyhow::Result<i32> {
    let Some(plan) = super::plan_item(cwd, &args.id, None).await? else {
        return Err(super::usage(format!(
            "no plan in `baton inbox` has id {:?} (`baton inbox` lists them)",
            args.id
        )));
    };
    let repo = super::open_repo(cwd)?;
    // A server decides under its lock: a no never lands on a yes it is giving.
    if let Some(server) = crate::client::find(&repo.state_dir()) {
        let path = format!("/api/inbox/{}/discard", plan.id);
        let said = server.json("POST", &path, Some(&serde_json::json!({})))?;
        println!("{}", said["message"].as_str().unwrap_or("discarded"));
        return Ok(0);
    }
    let (store, _) = super::open_store(&repo)?;
    let planner = plan.run.clone();
    store
        .call(move |s| {
            baton_core::planner::proposal::decide(s, &planner, PlanDecision::Discarded, None)
        })
        .await
        .map_err(|e| super::usage(e.to_string()))?;
    println!("discarded the plan of run {}", plan.run);
    Ok(0)
}
