//! `[workspace]` in a task's worktree: files the checkout lacks copied in,
//! a block of ports and a workspace id in the environment, setup before the
//! first attempt and teardown before the worktree goes. Setup and teardown
//! run like gates: in a process group of their own, with stop and timeout.

use crate::engine::messages::WorkerCmd;
use crate::engine::process::gates::{self, GateResult, Kind};
use crate::engine::process::supervise::Output;
use crate::engine::shared::Shared;
use crate::plan::matching_files;
use std::ffi::OsString;
use std::path::Path;
use tokio::sync::mpsc::UnboundedReceiver;

/// A short id for a task's workspace, safe for a database name or a
/// compose project: lowercase letters, digits and `_`, at most 32.
pub(crate) fn workspace_id(run: &str, task: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (run, task).hash(&mut h);
    let name: String = task
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(20)
        .collect();
    format!("b{:08x}_{name}", h.finish() as u32)
}

/// The variables that name a task's workspace and ports.
pub(crate) fn env(run: &str, task: &str, ports: &[u16]) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> =
        vec![("BATON_WORKSPACE".into(), workspace_id(run, task).into())];
    if let Some(first) = ports.first() {
        env.push(("BATON_PORT".into(), first.to_string().into()));
        for (k, p) in ports.iter().enumerate() {
            env.push((format!("BATON_PORT_{}", k + 1).into(), p.to_string().into()));
        }
    }
    env
}

/// Takes a block of `n` ports for `task` that no live task of any run in
/// this repository holds and nothing listens on.
pub(crate) async fn take_ports(sh: &Shared, task: &str, n: u16) -> Result<Vec<u16>, String> {
    let (run, task) = (sh.run_id.clone(), task.to_string());
    let pid = std::process::id();
    let taken = sh
        .store
        .call(move |s| s.take_ports(&run, &task, n, pid, pid_alive, port_free))
        .await
        .map_err(|e| format!("cannot take ports for the task: {e}"))?;
    taken.ok_or_else(|| {
        format!(
            "no block of {n} free ports is left in {:?}",
            crate::store::PORT_RANGE
        )
    })
}

pub(crate) fn pid_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Copies the `copy` files from the user's checkout into a new worktree
/// (the kernel shares the data where the filesystem can). Returns a note for
/// each glob that matched nothing.
pub(crate) async fn copy_files(sh: &Shared, worktree: &Path) -> Vec<String> {
    let globs = sh.plan.workspace.copy.clone();
    if globs.is_empty() {
        return Vec::new();
    }
    let (root, to) = (sh.repo.root.clone(), worktree.to_path_buf());
    tokio::task::spawn_blocking(move || copy_blocking(&root, &to, &globs))
        .await
        .unwrap_or_else(|e| vec![format!("copying files failed: {e}")])
}

fn copy_blocking(root: &Path, to: &Path, globs: &[String]) -> Vec<String> {
    let mut notes = Vec::new();
    for g in globs {
        let files = matching_files(root, g);
        if files.is_empty() {
            notes.push(format!(
                "workspace.copy {g:?}: nothing in the checkout matches it; skipped"
            ));
        }
        for rel in files {
            if let Err(e) = copy_into(root, to, &rel) {
                notes.push(format!(
                    "workspace.copy: cannot copy {}: {e}",
                    rel.display()
                ));
            }
        }
    }
    notes
}

/// Copies one file into the worktree, never through a link: a worktree's
/// files are what agents committed, and a link there (`.env` -> a path of
/// the agent's choosing) would have baton write the user's file wherever it
/// points.
fn copy_into(root: &Path, to: &Path, rel: &Path) -> std::io::Result<()> {
    let refuse = |what: &Path| {
        std::io::Error::other(format!(
            "{} in the worktree is a link (committed by an agent?); baton copies nothing through a link",
            what.strip_prefix(to).unwrap_or(what).display()
        ))
    };
    if !rel
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Err(std::io::Error::other("not a path inside the checkout"));
    }
    let dest = to.join(rel);
    // Every directory on the way is made here or is a real one.
    let mut at = to.to_path_buf();
    for part in rel.parent().into_iter().flat_map(Path::components) {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Err(refuse(&at)),
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(std::io::Error::other(format!("{} is a file", at.display()))),
            Err(_) => std::fs::create_dir(&at)?,
        }
    }
    if std::fs::symlink_metadata(&dest).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(refuse(&dest));
    }
    std::fs::copy(root.join(rel), &dest).map(drop)
}

/// Runs `[workspace] setup` in a task's new worktree, its output in the
/// attempt's log.
pub(crate) async fn setup(
    sh: &Shared,
    task: &str,
    attempt: u32,
    worktree: &Path,
    env: &[(OsString, OsString)],
    jail: Option<&crate::engine::process::jail::Jail>,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> GateResult {
    let run = gates::GateRun {
        kind: Kind::Setup,
        task: Some(task),
        attempt: Some(attempt),
        gates: &sh.plan.workspace.setup,
        worktree,
        output: Output::Log(sh.paths.attempt_log(&sh.run_id, task, attempt)),
        timeout: sh.plan.workspace.setup_timeout,
        env,
        jail,
        unset: &[],
    };
    gates::run_all(sh, run, cmds).await
}

/// Runs `[workspace] teardown` in a task's worktree before it goes, in
/// the sandbox of the run's checks if its agents have one. A failure is
/// said (event, log) and changes nothing else.
pub(crate) async fn teardown(sh: &Shared, task: &str, worktree: &Path) {
    if sh.plan.workspace.teardown.is_empty() || !worktree.exists() {
        return;
    }
    let mut env = env(&sh.run_id, task, &[]);
    env.push(("BATON_RUN".into(), sh.run_id.clone().into()));
    env.push(("BATON_TASK".into(), task.into()));
    let jail = match crate::engine::process::jail::for_checks(sh) {
        Some(spec) => match crate::engine::process::jail::check_jail(
            sh,
            &spec,
            &crate::engine::process::jail::desk_name(task),
            Some(task),
            Some(0),
            worktree,
            &env,
        )
        .await
        {
            Ok(j) => Some(j),
            Err(reason) => {
                tracing::warn!("task {task}: teardown not run: {reason}");
                return;
            }
        },
        None => None,
    };
    let (_tx, mut cmds) = tokio::sync::mpsc::unbounded_channel();
    let log = sh
        .paths
        .run_dir(&sh.run_id)
        .join("logs")
        .join(format!("teardown-{task}.log"));
    let run = gates::GateRun {
        kind: Kind::Teardown,
        task: Some(task),
        attempt: None,
        gates: &sh.plan.workspace.teardown,
        worktree,
        output: Output::Log(log),
        timeout: sh.plan.workspace.setup_timeout,
        env: &env,
        jail: jail.as_ref(),
        unset: &[],
    };
    if let GateResult::Failed { reason, .. } = gates::run_all(sh, run, &mut cmds).await {
        tracing::warn!("task {task}: {reason}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_id_is_short_and_safe() {
        let id = workspace_id("20261130-1", "API-Server.v2");
        assert!(id.len() <= 32, "{id}");
        assert!(
            id.starts_with('b') && id.ends_with("_api_server_v2"),
            "{id}"
        );
        assert!(id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        assert_ne!(id, workspace_id("20261130-2", "API-Server.v2"));
    }

    #[test]
    fn ports_and_id_reach_the_environment() {
        let env = env("r", "t", &[20000, 20001]);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("BATON_PORT"), Some("20000".into()));
        assert_eq!(get("BATON_PORT_2"), Some("20001".into()));
        assert!(get("BATON_WORKSPACE").is_some());
    }
}
