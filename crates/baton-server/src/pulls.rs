//! Pull requests of runs this server lands (`[land] mode = "pr"`, `follow
//! = true`): opened through the forge, then followed in the background
//! (fix attempts run as the run, resumed here), and picked up again when
//! the server starts. A signed webhook (`[land] webhook_secret_env`) makes
//! a follower look at once.

use crate::api::hooks::{Hook, Wants};
use crate::runner;
use crate::state::AppState;
use baton_core::executor::Boxed;
use baton_core::follow::{self, FixDriver, Follower, Opening};
use baton_core::Engine;
use std::sync::Arc;

/// The forge of run `run`'s pull request, with its settings.
async fn forge(state: &AppState, run: &str) -> Result<follow::Forged, String> {
    let r = run.to_string();
    let rec = state.store.call(move |s| s.run(&r)).await;
    let rec = rec.map_err(|e| e.to_string())?;
    follow::forge_for(&state.opts.repo, &rec, state.opts.forges, None).await
}

/// Whether run `run` has a pull request already (its fix runs are not
/// landed again: the follower pushes them).
pub async fn has_pull(state: &AppState, run: &str) -> bool {
    let r = run.to_string();
    matches!(state.store.call(move |s| s.pull(&r)).await, Ok(Some(_)))
}

/// Opens run `run`'s pull request and follows it in the background.
pub async fn open_and_follow(state: &Arc<AppState>, run: &str) -> Result<(), String> {
    let r = run.to_string();
    let (rec, tasks, gates) = state
        .store
        .call(move |s| {
            Ok::<_, baton_core::store::StoreError>((s.run(&r)?, s.tasks(&r)?, s.gate_results(&r)?))
        })
        .await
        .map_err(|e| e.to_string())?;
    let follow::Forged {
        settings,
        repo_name,
        forge,
    } = follow::forge_for(&state.opts.repo, &rec, state.opts.forges, None).await?;
    let base = rec
        .base_branch
        .clone()
        .ok_or_else(|| format!("run {run} does not say which branch it started from"))?;
    let opening = Opening {
        repo: &state.opts.repo,
        store: &state.store,
        forge: forge.as_ref(),
        settings: &settings,
        repo_name: &repo_name,
        run: &rec,
        tasks: &tasks,
        gates: &gates,
        base: &base,
        follow: settings.follow,
    };
    let pull = follow::open(&opening).await.map_err(|e| e.to_string())?;
    tracing::info!("run {run}: pull request #{} {}", pull.number, pull.url);
    if settings.follow {
        spawn(state.clone(), run.to_string());
    }
    Ok(())
}

/// Follows every pull request that was being followed (at start).
pub async fn resume(state: &Arc<AppState>) {
    match state.store.call(|s| s.followed_pulls()).await {
        Ok(pulls) => {
            for p in pulls {
                spawn(state.clone(), p.run_id);
            }
        }
        Err(e) => tracing::error!("cannot read the pull requests to follow: {e}"),
    }
}

/// Follows run `run`'s pull request until it ends or the server stops.
fn spawn(state: Arc<AppState>, run: String) {
    tokio::spawn(async move {
        if let Err(e) = follow_here(&state, &run).await {
            tracing::error!("run {run}: its pull request is not followed: {e}");
        }
    });
}

async fn follow_here(state: &Arc<AppState>, run: &str) -> Result<(), String> {
    let follow::Forged {
        settings,
        repo_name,
        forge,
    } = forge(state, run).await?;
    let wake = Arc::new(tokio::sync::Notify::new());
    if let Some(var) = &settings.webhook_secret_env {
        let r = run.to_string();
        let pull = state.store.call(move |s| s.pull(&r)).await;
        let number = pull.map_err(|e| e.to_string())?.map(|p| p.number);
        let number = number.ok_or_else(|| format!("run {run} has no pull request to follow"))?;
        let wants = Wants::Pull(number);
        Hook::listen(state, &repo_name, var, &wake, wants, "[land]")?;
    }
    let fixes = ServerFixes {
        state: state.clone(),
    };
    let say = |line: &str| tracing::info!("{line}");
    let follower = Follower {
        repo: &state.opts.repo,
        store: &state.store,
        forge: forge.as_ref(),
        settings: &settings,
        fixes: &fixes,
        say: &say,
    };
    let stop = state.stopping();
    let status = follower.follow(run, &wake, stop).await;
    // Its webhooks wake nobody now.
    Hook::forget(state, &wake);
    let status = status.map_err(|e| e.to_string())?;
    tracing::info!("run {run}: its pull request is {status}");
    Ok(())
}

/// Fix attempts driven by this server, as its runs are.
struct ServerFixes {
    state: Arc<AppState>,
}

impl FixDriver for ServerFixes {
    fn drive<'a>(&'a self, run: &'a str) -> Boxed<'a, Result<(), String>> {
        Box::pin(async move {
            let opts = runner::options(&self.state, false);
            let engine = Engine::resume(self.state.opts.repo.clone(), Some(run), opts)
                .await
                .map_err(|e| e.to_string())?;
            let stop = self.state.stopping();
            engine
                .drive(stop)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}
