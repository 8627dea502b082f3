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
/// ...and its repository ([`repo_key`]): two repositories' runs may share
/// an id, never their containers.
pub const REPO_LABEL: &str = "baton.repo";

/// What changes the engine's client itself (where a rootless engine keeps
/// its images, which engine it talks to, how it runs): the client keeps
/// baton's, the container gets the attempt's (TMPDIR: its own /tmp).
pub const ENGINE_VARS: &[&str] = &[
    "HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR",
    "TMPDIR",
    "PATH",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "CONTAINER_HOST",
    "CONTAINERS_CONF",
    "CONTAINERS_STORAGE_CONF",
    "REGISTRY_AUTH_FILE",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
];

/// A container's name the engines take: what `raw` says, every character
/// but letters, digits, `-`, `_` and `.` made `_`.
pub fn name_of(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A repository's key among the engine's containers: a hash of its git
/// directory's path.
pub fn repo_key(common_dir: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(common_dir.as_os_str().as_encoded_bytes());
    format!("{hash:x}")[..16].to_string()
}

/// The labels of every container of a run of a repository.
pub fn run_labels(repo: &str, run: &str) -> Vec<String> {
    vec![format!("{REPO_LABEL}={repo}"), format!("{RUN_LABEL}={run}")]
}

/// The labels of a container of `run`, and of its task and attempt if any.
pub fn labels(repo: &str, run: &str, task: Option<&str>, attempt: Option<u32>) -> Vec<String> {
    let mut l = run_labels(repo, run);
    l.extend(task.map(|t| format!("baton.task={t}")));
    l.extend(attempt.map(|n| format!("baton.attempt={n}")));
    l
}

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
pub async fn sweep(engine: &Engine, repo: &str, run: &str) -> Result<usize, String> {
    sweep_labelled(engine, &run_labels(repo, run)).await
}

/// Removes every container of `run`'s task `task`.
pub async fn sweep_task(
    engine: &Engine,
    repo: &str,
    run: &str,
    task: &str,
) -> Result<usize, String> {
    let mut labels = run_labels(repo, run);
    labels.push(format!("baton.task={task}"));
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

/// `rm` at once, whether the container still runs or is already gone.
fn rm_args(program: &str) -> &'static [&'static str] {
    if program == "podman" {
        &["rm", "-f", "--ignore", "--time", "0"]
    } else {
        &["rm", "-f"]
    }
}

/// Removes containers in the background, off the async threads (from a
/// `Drop`, where nothing waits): what is left is said in the log.
pub fn remove_later(program: String, names: Vec<String>) {
    if names.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("baton-rm".into())
        .spawn(move || {
            let mut cmd = std::process::Command::new(&program);
            cmd.args(rm_args(&program));
            let done = cmd
                .args(&names)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output();
            match done {
                Ok(o) if o.status.success() => {}
                Ok(o) => tracing::warn!(
                    "cannot remove the containers {names:?}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => tracing::warn!("cannot remove the containers {names:?}: {e}"),
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot remove containers (no thread: {e}); the run's end sweeps them");
    }
}

/// [`remove`] by the engine's command (`podman`, `docker`).
pub async fn remove_with(program: &str, names: &[String]) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rm_args(program));
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
