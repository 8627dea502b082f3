//! Agents in containers (`sandbox = "container"`): each command of an
//! attempt (the agent, its gates, setup) runs in a container of the
//! project's image, made by Podman or Docker, that sees the desk's work
//! tree at its own path, its own git directory, the agent CLI's state and
//! what `[container] mounts` lends read-only, and nothing else of the
//! host. Every container carries labels with its run, task and attempt, so
//! none outlives the run: each is removed when its command ends, and what a
//! crash left is swept on resume ([`sweep`]).

pub mod cell;
pub mod devcontainer;
pub mod image;
pub mod notes;
pub mod runtime;

pub use cell::Cell;
pub use devcontainer::DevContainer;
pub use runtime::Engine;

use std::process::Stdio;

/// The label every container and service of baton carries: its run.
pub const RUN_LABEL: &str = "baton.run";

/// What a run's containers are made of: the engine, and the image ready in it.
#[derive(Debug)]
pub struct Ready {
    pub engine: Engine,
    pub image: String,
}

impl Ready {
    /// Finds the engine and makes the image ready (built once per content).
    pub async fn prepare(
        engine: Engine,
        settings: &crate::plan::container::ContainerSettings,
        root: &std::path::Path,
    ) -> Result<Ready, String> {
        let wanted = image::wanted(settings, settings.dev.as_ref(), root)?;
        let image = image::ensure(&engine, &wanted, root).await?;
        Ok(Ready { engine, image })
    }
}

/// Removes every container of `run` left behind (a crash, a kill -9 of
/// baton): how many were removed.
pub async fn sweep(engine: &Engine, run: &str) -> Result<usize, String> {
    sweep_labelled(engine, &[format!("{RUN_LABEL}={run}")]).await
}

/// Removes every container of `run`'s task `task`.
pub async fn sweep_task(engine: &Engine, run: &str, task: &str) -> Result<usize, String> {
    let labels = [format!("{RUN_LABEL}={run}"), format!("baton.task={task}")];
    sweep_labelled(engine, &labels).await
}

async fn sweep_labelled(engine: &Engine, labels: &[String]) -> Result<usize, String> {
    let mut cmd = tokio::process::Command::new(&engine.program);
    cmd.args(["ps", "-a", "-q"]);
    for l in labels {
        cmd.arg("--filter").arg(format!("label={l}"));
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot list containers with {}: {e}", engine.program))?;
    if !out.status.success() {
        return Err(format!(
            "{} ps: {}",
            engine.program,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if ids.is_empty() {
        return Ok(0);
    }
    remove(engine, &ids).await?;
    Ok(ids.len())
}

/// Stops and removes containers by name or id, at once.
pub async fn remove(engine: &Engine, names: &[String]) -> Result<(), String> {
    remove_with(&engine.program, names).await
}

/// [`remove`] by the engine's command (`podman`, `docker`).
pub async fn remove_with(program: &str, names: &[String]) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(["rm", "-f"]);
    if program == "podman" {
        cmd.args(["--ignore", "--time", "0"]);
    }
    let out = cmd
        .args(names)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot remove containers with {program}: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || err.contains("No such container") {
        Ok(())
    } else {
        Err(format!("{program} rm: {}", err.trim()))
    }
}
