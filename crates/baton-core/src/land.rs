//! Landing a finished run: its integration branch brought into the branch
//! it started from (or another), by fast-forward when it can, else by a
//! merge commit (or one squashed commit); optionally pushed, or offered as a
//! pull request instead. The landing commit is made without touching any
//! work tree; a branch checked out somewhere moves only through git in that
//! worktree, and never when that checkout has changes of its own.

use crate::git::{GitError, MergeOutcome, Repo};
use crate::model::TaskStatus;
use crate::payload::Payload;
use crate::store::{Event, RunRecord, TaskRecord};
use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct LandOptions {
    /// The branch to land into (default: the branch the run started from).
    pub into: Option<String>,
    /// One commit with all of the run's changes instead of a merge.
    pub squash: bool,
    /// Push the branch to this remote afterwards.
    pub push: Option<String>,
    /// Push the integration branch to `push` (default `origin`) and open a
    /// pull request with `gh` instead of landing locally.
    pub pr: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landed {
    /// The branch already held all of the run's work.
    Already {
        branch: String,
    },
    FastForward {
        branch: String,
        commit: String,
    },
    Merged {
        branch: String,
        commit: String,
    },
    /// A pull request was opened; what `gh` said (its URL).
    PullRequest {
        said: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum LandError {
    #[error("run {0} is still going on; land it once it has finished")]
    Live(String),
    #[error("run {0} does not say which branch it started from (it started on a detached HEAD, or before baton recorded it); name one with --into")]
    NoBranch(String),
    #[error("branch {0} does not exist")]
    NoSuchBranch(String),
    #[error("{branch} is checked out in {} with changes of its own ({}); commit or stash them first: nothing was changed", path.display(), files.join(", "))]
    Dirty {
        branch: String,
        path: PathBuf,
        files: Vec<String>,
    },
    #[error("the run's work conflicts with {branch} in {}; nothing was changed (merge baton/… by hand, or land into another branch)", paths.join(", "))]
    Conflict { branch: String, paths: Vec<String> },
    #[error("{0}")]
    Git(#[from] GitError),
    #[error("gh pr create failed: {0}")]
    Gh(String),
}

/// Lands `run` (finished: `live` says whether a process drives it).
pub async fn land(
    repo: &Repo,
    run: &RunRecord,
    tasks: &[TaskRecord],
    gates: &[Event],
    live: bool,
    opts: &LandOptions,
) -> Result<Landed, LandError> {
    if live || run.finished_at.is_none() {
        return Err(LandError::Live(run.id.clone()));
    }
    let branch = match opts.into.clone().or_else(|| run.base_branch.clone()) {
        Some(b) => b,
        None => return Err(LandError::NoBranch(run.id.clone())),
    };
    if opts.pr {
        return open_pr(repo, run, tasks, gates, &branch, opts).await;
    }
    let target = format!("refs/heads/{branch}");
    let Some(old) = repo.ref_commit(&target).await? else {
        return Err(LandError::NoSuchBranch(branch));
    };
    let integration = format!("refs/heads/{}", run.integration_branch);
    let Some(work) = repo.ref_commit(&integration).await? else {
        return Err(LandError::NoSuchBranch(run.integration_branch.clone()));
    };
    let checkout = checked_out_at(repo, &target).await?;
    if let Some(path) = &checkout {
        // Untracked files aside: git refuses to overwrite those by itself.
        let files = repo.changes(path, false).await?;
        if !files.is_empty() {
            return Err(LandError::Dirty {
                branch,
                path: path.clone(),
                files,
            });
        }
    }
    let landed = if repo.is_ancestor(&work, &old).await?
        || squashed_already(repo, opts, &old, &work).await?
    {
        return Ok(Landed::Already { branch });
    } else if !opts.squash && repo.is_ancestor(&old, &work).await? {
        Landed::FastForward {
            branch: branch.clone(),
            commit: work.clone(),
        }
    } else {
        let message = message(run, tasks);
        let made = if opts.squash {
            repo.squash_commits(&old, &work, &message).await?
        } else {
            repo.merge_commits(&old, &work, &message).await?
        };
        match made {
            MergeOutcome::Merged(commit) => Landed::Merged {
                branch: branch.clone(),
                commit,
            },
            MergeOutcome::Conflict(paths) => return Err(LandError::Conflict { branch, paths }),
        }
    };
    let commit = match &landed {
        Landed::FastForward { commit, .. } | Landed::Merged { commit, .. } => commit.clone(),
        _ => old.clone(),
    };
    match &checkout {
        // Through git in that worktree: its files follow the branch.
        Some(path) => {
            let ff = ["merge", "-q", "--ff-only", commit.as_str()];
            repo.in_desk_ok(path, ff).await?;
        }
        None => repo.move_ref(&target, &commit, &old).await?,
    }
    if let Some(remote) = &opts.push {
        crate::git::git_ok(&repo.root, ["push", "-q", remote.as_str(), branch.as_str()]).await?;
    }
    Ok(landed)
}

/// Whether a squash would change nothing: the run's work is in `old`
/// already (a repeated `land --squash`), and an empty commit is no landing.
async fn squashed_already(
    repo: &Repo,
    opts: &LandOptions,
    old: &str,
    work: &str,
) -> Result<bool, GitError> {
    if !opts.squash {
        return Ok(false);
    }
    Ok(match repo.merge_tree(old, work).await? {
        crate::git::TreeMerge::Clean(tree) => tree == repo.tree_of(old).await?,
        crate::git::TreeMerge::Conflict(_) => false,
    })
}

/// The worktree where `target` is checked out, if any.
async fn checked_out_at(repo: &Repo, target: &str) -> Result<Option<PathBuf>, GitError> {
    let all = repo.worktrees().await?;
    Ok(all
        .into_iter()
        .find(|(_, b)| b.as_deref() == Some(target))
        .map(|(p, _)| p))
}

/// The landing commit's message: the run and what each task did.
fn message(run: &RunRecord, tasks: &[TaskRecord]) -> String {
    let merged = tasks.iter().filter(|t| t.merged).count();
    let mut m = format!(
        "baton: land run {} ({merged} of {} tasks merged)\n\n",
        run.id,
        tasks.len()
    );
    for t in tasks {
        m.push_str(&format!("- {} ({})", t.id, t.status));
        if let Some(r) = t.result.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
            m.push_str(&format!(
                ": {}",
                crate::adapter::clip(r.lines().next().unwrap_or(r), 100)
            ));
        }
        m.push('\n');
    }
    m
}

/// The pull request's description: each task's status, result, gates (as
/// they last ran) and usage.
pub(crate) fn pr_body(run: &RunRecord, tasks: &[TaskRecord], gates: &[Event]) -> String {
    let mut b = format!(
        "Work of baton run `{}` (plan `{}`), from `{}`.\n\n| task | status | result | gates | tokens in / out | cost |\n|---|---|---|---|---|---|\n",
        run.id, run.plan_path, run.integration_branch
    );
    for t in tasks {
        let mut last: Vec<(String, bool)> = Vec::new();
        for e in gates
            .iter()
            .filter(|e| e.task_id.as_deref() == Some(t.id.as_str()))
        {
            let Some(Payload::GateFinished(end)) = e.payload() else {
                continue;
            };
            match last.iter_mut().find(|(g, _)| *g == end.gate) {
                Some(seen) => seen.1 = end.passed,
                None => last.push((end.gate, end.passed)),
            }
        }
        let gates = last
            .iter()
            .map(|(g, ok)| {
                format!(
                    "`{}` {}",
                    g.replace('|', "\\|"),
                    if *ok { "passed" } else { "failed" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let tokens = match (t.input_tokens, t.output_tokens) {
            (None, None) => String::new(),
            (i, o) => format!("{} / {}", i.unwrap_or(0), o.unwrap_or(0)),
        };
        let result = t
            .result
            .as_deref()
            .map(|r| crate::adapter::clip(r.lines().next().unwrap_or(r), 80))
            .unwrap_or_default()
            .replace('|', "\\|");
        let cost = t.cost_usd.map(|c| format!("${c:.4}")).unwrap_or_default();
        b.push_str(&format!(
            "| {} | {} | {result} | {gates} | {tokens} | {cost} |\n",
            t.id, t.status
        ));
    }
    b
}

/// The pull request's title: the run and how many of its tasks succeeded.
pub(crate) fn pr_title(run: &RunRecord, tasks: &[TaskRecord]) -> String {
    let good = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Succeeded)
        .count();
    format!("baton: run {} ({good} of {} tasks)", run.id, tasks.len())
}

async fn open_pr(
    repo: &Repo,
    run: &RunRecord,
    tasks: &[TaskRecord],
    gates: &[Event],
    branch: &str,
    opts: &LandOptions,
) -> Result<Landed, LandError> {
    let remote = opts.push.clone().unwrap_or_else(|| "origin".into());
    let head = run.integration_branch.as_str();
    crate::git::git_ok(&repo.root, ["push", "-q", remote.as_str(), head]).await?;
    let title = pr_title(run, tasks);
    let body = pr_body(run, tasks, gates);
    let out = tokio::process::Command::new("gh")
        .args(["pr", "create", "--base", branch, "--head", head])
        .args(["--title", title.as_str(), "--body", body.as_str()])
        .current_dir(&repo.root)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| LandError::Gh(format!("cannot run gh: {e} (is the GitHub CLI installed?)")))?;
    if !out.status.success() {
        return Err(LandError::Gh(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(Landed::PullRequest {
        said: String::from_utf8_lossy(&out.stdout).trim().to_string(),
    })
}
