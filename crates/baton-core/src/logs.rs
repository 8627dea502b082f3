//! Reading what tasks produced for people and agents to see: attempt logs
//! (which can be huge: an agent may print gigabytes) and a task's diff,
//! bounded, with the run's secrets masked.

use crate::git::Repo;
use crate::store::{Store, StoreError, TaskRecord};
use std::path::Path;
use std::sync::Arc;

/// The last `cap` bytes of a file, without reading the rest: memory stays
/// bounded whatever the agent printed. A file that cannot be read: empty.
pub async fn read_tail(path: &Path, cap: u64) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut body = Vec::new();
    if let Ok(mut f) = tokio::fs::File::open(path).await {
        let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
        if len > cap {
            let _ = f.seek(std::io::SeekFrom::Start(len - cap)).await;
        }
        let _ = f.take(cap).read_to_end(&mut body).await;
    }
    body
}

/// The end of a log (at most `cap` bytes) with `run`'s secrets masked.
pub async fn masked_tail(
    store: &Arc<Store>,
    run: &str,
    path: &Path,
    cap: u64,
) -> Result<String, StoreError> {
    let text = String::from_utf8_lossy(&read_tail(path, cap).await).into_owned();
    let run = run.to_string();
    store.call(move |s| s.mask_for_run(&run, &text)).await
}

/// What task `t` changed, from the commit it started from to its branch's
/// tip (its last commit once the branch is gone): at most `cap` bytes,
/// whether it was cut, the run's secrets masked. None: it has not started.
pub async fn task_diff(
    repo: &Repo,
    store: &Arc<Store>,
    t: &TaskRecord,
    cap: usize,
) -> Result<Option<(String, bool)>, String> {
    let Some(start) = t.start_commit.clone() else {
        return Ok(None);
    };
    let branch = format!("refs/heads/{}", t.branch);
    let args = ["rev-parse", "--verify", "--quiet", branch.as_str()];
    let tip = match crate::git::git_ok(&repo.root, args).await {
        Ok(c) => c,
        Err(_) => t.commit_id.clone().unwrap_or_else(|| start.clone()),
    };
    let (bytes, cut) = repo
        .diff_capped(&start, &tip, cap)
        .await
        .map_err(|e| e.to_string())?;
    let diff = String::from_utf8_lossy(&bytes).into_owned();
    let run = t.run_id.clone();
    let masked = store
        .call(move |s| s.mask_for_run(&run, &diff))
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some((masked, cut)))
}
