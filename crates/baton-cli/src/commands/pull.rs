//! `baton land --pr --follow`: the run's pull request opened through the
//! forge's API (GitHub's REST API, `[land]` settings of the run's plan) and
//! followed here until it merges, closes or needs a person. Fix attempts
//! run in this process, as the run resumed with their task; Ctrl-C leaves
//! the pull request where it is, and the same command (or `baton serve`)
//! picks it up again.

use baton_core::executor::Boxed;
use baton_core::follow::{self, FixDriver, Follower, Opening};
use baton_core::model::PullStatus;
use baton_core::store::{Event, RunRecord, Store, TaskRecord};
use baton_core::{Engine, Repo};
use std::sync::Arc;

/// A run to open (or update) and follow.
pub struct ToFollow<'a> {
    pub repo: &'a Repo,
    pub store: &'a Arc<Store>,
    pub run: &'a RunRecord,
    pub tasks: &'a [TaskRecord],
    pub gates: &'a [Event],
    pub base: String,
    /// The remote to push to, if not the plan's.
    pub remote: Option<String>,
}

/// Opens and follows; the exit status (0: merged).
pub async fn open_and_follow(t: ToFollow<'_>, url_on_stdout: bool) -> anyhow::Result<i32> {
    let follow::Forged {
        settings,
        repo_name,
        forge,
    } = follow::forge_for(t.repo, t.run, crate::executors::FORGES, t.remote)
        .await
        .map_err(super::usage)?;
    let opening = Opening {
        repo: t.repo,
        store: t.store,
        forge: forge.as_ref(),
        settings: &settings,
        repo_name: &repo_name,
        run: t.run,
        tasks: t.tasks,
        gates: t.gates,
        base: &t.base,
        follow: true,
    };
    let rec = follow::open(&opening).await?;
    if url_on_stdout {
        println!("{}", rec.url);
    }
    eprintln!("pull request #{}: {} ({})", rec.number, rec.url, rec.status);
    let fixes = LocalFixes {
        repo: t.repo.clone(),
    };
    let say = |line: &str| eprintln!("{line}");
    let follower = Follower {
        repo: t.repo,
        store: t.store,
        forge: forge.as_ref(),
        settings: &settings,
        fixes: &fixes,
        say: &say,
    };
    let wake = tokio::sync::Notify::new();
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let status = follower.follow(&t.run.id, &wake, stop).await?;
    Ok(match status {
        PullStatus::Merged => 0,
        PullStatus::Following => {
            eprintln!(
                "stopped following; `baton land --pr --follow {}` goes on where it was",
                t.run.id
            );
            130
        }
        _ => 1,
    })
}

/// Fix attempts driven in this process.
struct LocalFixes {
    repo: Repo,
}

impl FixDriver for LocalFixes {
    fn drive<'a>(&'a self, run: &'a str) -> Boxed<'a, Result<(), String>> {
        Box::pin(async move {
            let opts = super::engine_options().map_err(|e| e.to_string())?;
            let engine = Engine::resume(self.repo.clone(), Some(run), opts)
                .await
                .map_err(|e| e.to_string())?;
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            engine
                .drive(stop)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}
