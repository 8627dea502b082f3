//! Runs driven by the server: plans started from the API, the standing
//! service run that takes queued tasks, and runs left interrupted by an
//! earlier server or a crashed `baton run`, resumed at start.

use crate::api::ApiError;
use crate::state::AppState;
use axum::http::StatusCode;
use baton_core::lock::{self, LockState};
use baton_core::{Engine, Plan, RunOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn options(state: &AppState, service: bool) -> RunOptions {
    RunOptions {
        watchdog: state.opts.watchdog.clone(),
        store: Some(state.store.clone()),
        service,
        ..Default::default()
    }
}

/// Drives an engine in the background until it ends or the server stops.
fn spawn(state: &Arc<AppState>, engine: Engine) -> String {
    let run = engine.run_id().to_string();
    let mut rx = state.shutdown_rx();
    let st = state.clone();
    let id = run.clone();
    let handle = tokio::spawn(async move {
        let stop = async move {
            while !*rx.borrow() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(e) = engine.drive(stop).await {
            tracing::error!("run {id}: {e}");
        }
        if let Ok(mut g) = st.engines.lock() {
            g.remove(&id);
        }
    });
    if let Ok(mut g) = state.engines.lock() {
        g.insert(run.clone(), handle);
    }
    run
}

pub fn is_live(state: &AppState, run: &str) -> bool {
    matches!(lock::probe(&state.paths.lock(run)), LockState::Held(_))
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
}

/// Starts a run of a plan file (a path inside the repository).
pub async fn start_plan(state: &Arc<AppState>, plan: &str) -> Result<String, ApiError> {
    let rel = Path::new(plan);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(bad(
            "plan must be a path inside the repository, relative to its root",
        ));
    }
    let root = &state.opts.repo.root;
    let source = std::fs::read_to_string(root.join(rel))
        .map_err(|e| bad(format!("cannot read plan {plan}: {e}")))?;
    let plan = Plan::parse(rel, &source, Some(root)).map_err(bad)?;
    let engine = Engine::start(state.opts.repo.clone(), plan, options(state, false))
        .await
        .map_err(bad)?;
    Ok(spawn(state, engine))
}

/// The configuration plan: profiles, defaults and routes for queued tasks.
pub fn config_plan(state: &AppState) -> Result<Plan, ApiError> {
    let root = &state.opts.repo.root;
    let path = &state.opts.plan;
    let source = std::fs::read_to_string(root.join(path)).unwrap_or_default();
    Plan::parse_config(path, &source, Some(root)).map_err(bad)
}

/// The service run's id, starting or resuming it if needed.
pub async fn ensure_service(state: &Arc<AppState>) -> Result<String, ApiError> {
    let mut guard = state.service.lock().await;
    if let Some(id) = guard.as_ref() {
        if is_live(state, id) {
            return Ok(id.clone());
        }
    }
    let internal = |e: baton_core::EngineError| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    };
    let existing = state
        .store
        .service_run()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let engine = match existing {
        Some(r) if !is_live(state, &r.id) => {
            Engine::resume(state.opts.repo.clone(), Some(&r.id), options(state, true))
                .await
                .map_err(internal)?
        }
        Some(r) => {
            *guard = Some(r.id.clone());
            return Ok(r.id);
        }
        None => Engine::start(
            state.opts.repo.clone(),
            config_plan(state)?,
            options(state, true),
        )
        .await
        .map_err(internal)?,
    };
    let id = spawn(state, engine);
    *guard = Some(id.clone());
    Ok(id)
}

/// Resumes every run that is not finished and that nobody drives.
pub async fn resume_interrupted(state: &Arc<AppState>) {
    let Ok(runs) = state.store.runs(200) else {
        return;
    };
    for r in runs.into_iter().filter(|r| r.finished_at.is_none()) {
        if is_live(state, &r.id) {
            continue;
        }
        let service = r.kind == "service";
        match Engine::resume(
            state.opts.repo.clone(),
            Some(&r.id),
            options(state, service),
        )
        .await
        {
            Ok(engine) => {
                tracing::info!("resumed run {}", r.id);
                let id = spawn(state, engine);
                if service {
                    *state.service.lock().await = Some(id);
                }
            }
            Err(e) => tracing::warn!("cannot resume run {}: {e}", r.id),
        }
    }
}

/// Sends a control request to the process driving a run and waits for its answer.
pub async fn control(
    state: &Arc<AppState>,
    run: &str,
    task: &str,
    kind: &str,
    message: Option<&str>,
) -> Result<(bool, String), ApiError> {
    let store = &state.store;
    let rec = store
        .run(run)
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e.to_string()))?;
    let tasks = store
        .tasks(run)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if kind != "add" && !tasks.iter().any(|t| t.id == task) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("run {run} has no task {task:?}"),
        ));
    }
    let live = is_live(state, run);
    if !live && kind != "retry" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "run {run} is not going on (status: {}); nothing can {kind} its tasks now",
                rec.status
            ),
        ));
    }
    let id = store
        .send_control(run, task, kind, message)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if !live {
        // A retry on a finished run reopens it and resumes it here.
        if rec.finished_at.is_some() {
            store
                .reopen_run(run)
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        }
        let service = rec.kind == "service";
        let engine = Engine::resume(state.opts.repo.clone(), Some(run), options(state, service))
            .await
            .map_err(|e| ApiError::new(StatusCode::CONFLICT, e.to_string()))?;
        spawn(state, engine);
    }
    baton_core::engine::wait_answer(store, id, Duration::from_secs(20))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("run {run} did not answer within 20 s"),
            )
        })
}

fn slug(prompt: &str) -> String {
    let mut out = String::new();
    for c in prompt.chars() {
        if out.len() >= 24 {
            break;
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Queues a task in the service run; returns (run, task).
pub async fn add_task(
    state: &Arc<AppState>,
    prompt: &str,
    agent: Option<&str>,
    tags: &[String],
) -> Result<(String, String), ApiError> {
    if prompt.trim().is_empty() {
        return Err(bad("the prompt is empty"));
    }
    let config = config_plan(state)?;
    let agent = config.route(agent, tags);
    if let Some(a) = &agent {
        if !config.agents.contains_key(a) {
            let known: Vec<&str> = config.agents.keys().map(String::as_str).collect();
            return Err(bad(format!(
                "unknown agent profile {a:?} (the plan defines: {})",
                known.join(", ")
            )));
        }
    }
    let run = ensure_service(state).await?;
    let n = state.store.tasks(&run).map(|t| t.len()).unwrap_or(0) + 1;
    let s = slug(prompt);
    let id = if s.is_empty() {
        format!("t{n}")
    } else {
        format!("t{n}-{s}")
    };
    let snippet = Plan::task_snippet(&id, prompt, agent.as_deref());
    // Validate against the profiles and defaults before anything is stored.
    config
        .parse_added(std::slice::from_ref(&snippet))
        .map_err(bad)?;
    let branch = baton_core::paths::task_branch(&run, &id);
    state
        .store
        .add_task(&run, &id, &branch, &snippet, tags)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let (ok, msg) = control(state, &run, &id, "add", None).await?;
    if !ok {
        return Err(bad(msg));
    }
    Ok((run, id))
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_are_ref_safe() {
        assert_eq!(super::slug("Fix the login bug!"), "fix-the-login-bug");
        assert_eq!(super::slug("  ***  "), "");
        assert!(super::slug(&"x".repeat(100)).len() <= 24);
    }
}
