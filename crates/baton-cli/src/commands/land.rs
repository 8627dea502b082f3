//! `baton land`: bring a finished run's work into a branch.

use super::{find_run, open_repo, open_store, usage};
use baton_core::land::{land, LandError, LandOptions, Landed};
use clap::Args;
use std::path::Path;

/// Land a finished run: its integration branch goes into the branch the run
/// started from (or --into), by fast-forward when it can, else by a merge
/// commit. A checkout of that branch with changes of its own is never
/// touched. --push pushes the branch afterwards; --pr pushes the run's
/// integration branch and opens a pull request with `gh` instead.
/// --pr --follow opens it through GitHub's API (the plan's `[land]`
/// settings, a token in $GITHUB_TOKEN or `gh` logged in) and stays with it:
/// red checks, review comments and conflicts with the base get fix
/// attempts, pushed to it, until it merges (`merge_when`) or needs a person
/// (`max_fixes`, `budget_usd`). Exit status 0 once it is merged.
#[derive(Args)]
pub struct LandArgs {
    /// The run (default: the latest).
    pub run: Option<String>,
    /// The branch to land into (default: the one the run started from).
    #[arg(long, value_name = "BRANCH")]
    pub into: Option<String>,
    /// One commit with all of the run's changes, instead of a merge.
    #[arg(long)]
    pub squash: bool,
    /// Push the landed branch to this remote (with --pr: where to push the
    /// integration branch; default origin).
    #[arg(long, value_name = "REMOTE")]
    pub push: Option<String>,
    /// Open a pull request (GitHub CLI `gh`) instead of landing locally.
    #[arg(long, conflicts_with = "squash")]
    pub pr: bool,
    /// With --pr: follow the pull request to its merge (see above).
    #[arg(long, requires = "pr")]
    pub follow: bool,
}

pub async fn run(cwd: &Path, args: LandArgs) -> anyhow::Result<i32> {
    perform(cwd, args, true).await
}

/// Lands as `baton land` does; a pull request's URL goes to stdout only when
/// `url_on_stdout` (after `run --json` stdout holds the report alone).
pub async fn perform(cwd: &Path, args: LandArgs, url_on_stdout: bool) -> anyhow::Result<i32> {
    let repo = open_repo(cwd)?;
    let (store, paths) = open_store(&repo)?;
    let rec = find_run(&store, args.run.as_deref())?;
    let id = rec.id.clone();
    let (tasks, gates) = store
        .call(move |s| {
            Ok::<_, baton_core::store::StoreError>((s.tasks(&id)?, s.gate_results(&id)?))
        })
        .await?;
    let live = baton_core::control::is_live(&paths, &rec.id);
    if args.follow {
        if live || rec.finished_at.is_none() {
            return Err(usage(LandError::Live(rec.id.clone()).to_string()));
        }
        let base = match args.into.clone().or_else(|| rec.base_branch.clone()) {
            Some(b) => b,
            None => return Err(usage(LandError::NoBranch(rec.id.clone()).to_string())),
        };
        let t = super::pull::ToFollow {
            repo: &repo,
            store: &store,
            run: &rec,
            tasks: &tasks,
            gates: &gates,
            base,
            remote: args.push.clone(),
        };
        return super::pull::open_and_follow(t, url_on_stdout).await;
    }
    let opts = LandOptions {
        into: args.into,
        squash: args.squash,
        push: args.push,
        pr: args.pr,
    };
    let landed = land(&repo, &rec, &tasks, &gates, live, &opts)
        .await
        .map_err(|e| match e {
            LandError::Live(_)
            | LandError::NoBranch(_)
            | LandError::NoSuchBranch(_)
            | LandError::Dirty { .. } => usage(e.to_string()),
            other => anyhow::Error::new(other),
        })?;
    let short = |c: &str| c[..c.len().min(12)].to_string();
    match landed {
        Landed::Already { branch } => eprintln!("{branch} already holds all of run {}", rec.id),
        Landed::FastForward { branch, commit } => {
            eprintln!(
                "landed run {} on {branch}: fast-forward to {}",
                rec.id,
                short(&commit)
            )
        }
        Landed::Merged { branch, commit } => {
            eprintln!("landed run {} on {branch}: {}", rec.id, short(&commit))
        }
        Landed::PullRequest { said } if url_on_stdout => println!("{said}"),
        Landed::PullRequest { said } => eprintln!("pull request: {said}"),
    }
    Ok(0)
}
