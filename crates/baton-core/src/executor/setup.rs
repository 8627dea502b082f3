//! `[workspace] setup` where a remote attempt works (a pod, an SSH host):
//! what it makes (`node_modules`, a build) has to be there, not on baton's
//! machine. Each remote attempt starts from a fresh fetch, so setup runs in
//! every attempt, unless the machine keeps a cache ([`CACHE_ENV`], an SSH
//! host's `<dir>/setup`): there, what setup left in the worktree (its
//! untracked and ignored files) is kept under the setup key (its commands,
//! `setup_inputs` at the start commit) and copied into the next worktree
//! with the same key instead of running setup again, as the local pool
//! keeps prepared worktrees.

use super::pod::{run_checks, Out};
use super::PodAttempt;
use crate::engine::messages::WorkerCmd;
use crate::engine::process::gates::Kind;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc::UnboundedReceiver;

/// The variable that names the machine's setup cache, if it keeps one.
pub const CACHE_ENV: &str = "BATON_SETUP_CACHE";

/// What marks a cache entry as whole.
const DONE: &str = "done";

/// Runs setup in the attempt's worktree (or takes its result from the
/// cache); Err says which command failed and how.
pub(super) async fn run(
    spec: &PodAttempt,
    out: &Out,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Result<(), String> {
    if spec.setup.is_empty() {
        return Ok(());
    }
    let entry = std::env::var_os(CACHE_ENV)
        .map(PathBuf::from)
        .zip(spec.setup_key.as_deref())
        .map(|(dir, key)| dir.join(key));
    if let Some(e) = entry.as_ref().filter(|e| e.join(DONE).exists()) {
        match copy_tree(&e.join("files"), &spec.worktree).await {
            Ok(()) => {
                out.note(format!(
                    "setup: reused what it made before ({})",
                    e.display()
                ))
                .await;
                return Ok(());
            }
            Err(why) => {
                out.note(format!("setup: cannot reuse {}: {why}", e.display()))
                    .await
            }
        }
    }
    let timeout = spec.setup_timeout_secs.max(1);
    let ran = run_checks(spec, out, cmds, Kind::Setup, &spec.setup, timeout).await;
    if let Some(bad) = ran.iter().find(|r| r.code != Some(0)) {
        let how = match (bad.code, bad.timed_out, &bad.error) {
            (Some(c), _, _) => format!("exited with status {c}"),
            (None, true, _) => format!("timed out after {timeout}s"),
            (None, false, e) => e.clone().unwrap_or_else(|| "was ended".into()),
        };
        let tail = bad.tail.trim();
        return Err(format!("setup `{}` {how}: {tail}", bad.gate));
    }
    if let Some(e) = entry {
        if let Err(why) = keep(&spec.worktree, &e).await {
            out.note(format!("setup: cannot keep what it made: {why}"))
                .await;
        }
    }
    Ok(())
}

/// Runs `script` with `sh -c` in `dir`.
async fn sh(dir: &Path, script: &str) -> Result<(), String> {
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .await
        .map_err(|e| format!("cannot run sh: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    }
}

fn quoted(p: &Path) -> String {
    format!("'{}'", p.to_string_lossy().replace('\'', r"'\''"))
}

/// Everything in `from` copied into `to`, links and modes kept (through
/// an archive of its own, so each step's failure is seen).
async fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let archive = to.join(format!(".baton-setup-{}.tar", std::process::id()));
    let script = format!(
        "set -e; tar -C {from} -cf {a} .; tar -xf {a}; rm -f {a}",
        from = quoted(from),
        a = quoted(&archive),
    );
    let done = sh(to, &script).await;
    let _ = tokio::fs::remove_file(&archive).await;
    done
}

/// What setup left in `worktree` that git does not track, kept at `entry`
/// (made aside, then moved into place: an entry is whole or absent, and of
/// two attempts that made it at once the first stays).
async fn keep(worktree: &Path, entry: &Path) -> Result<(), String> {
    let parent = entry.parent().ok_or("the cache has no directory")?;
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(|e| format!("cannot make {}: {e}", parent.display()))?;
    let aside = parent.join(format!(".new-{}", std::process::id()));
    let files = aside.join("files");
    tokio::fs::create_dir_all(&files)
        .await
        .map_err(|e| format!("cannot make {}: {e}", files.display()))?;
    // Each step's failure seen (no pipe hides one): an entry is marked
    // whole only when it is.
    let (list, archive) = (aside.join("list"), aside.join("files.tar"));
    let script = format!(
        "set -e; git ls-files -z --others > {list}; tar --null -T {list} -cf {archive}; \
         tar -C {files} -xf {archive}; rm -f {list} {archive}; : > {done}",
        list = quoted(&list),
        archive = quoted(&archive),
        files = quoted(&files),
        done = quoted(&aside.join(DONE)),
    );
    let kept = match sh(worktree, &script).await {
        Ok(()) => tokio::fs::rename(&aside, entry)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    if kept.is_err() || entry.join(DONE).exists() {
        let _ = tokio::fs::remove_dir_all(&aside).await;
    }
    // Another attempt kept the same entry first: that one stays.
    match kept {
        Err(_) if entry.join(DONE).exists() => Ok(()),
        other => other,
    }
}
