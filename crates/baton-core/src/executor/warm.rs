//! A warm pod, waiting (`baton __pod-wait`): a pod of the executor's image
//! kept running before any attempt needs it. It asks the run's warm door
//! (its URL, with a token of its own, in [`URL_ENV`]) for an assignment, a
//! long poll at a time; the attempt it is handed runs here as in a pod of
//! its own ([`super::pod::run_one`]). With [`REUSE_ENV`] set, a pod that
//! is its container's first process asks again once an attempt is over
//! and tidied away ([`tidy`]); otherwise (or after a stop) it ends. A pod
//! whose warm door stops answering (its baton is gone) ends by itself, so
//! none outlives its run for long; the run's end deletes the others.

use super::{PodAttempt, PodLine};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

/// The variable that holds the warm door's URL for this pod.
pub const URL_ENV: &str = "BATON_WARM_URL";
/// Set (to 1): the pod takes the run's attempts one after another.
pub const REUSE_ENV: &str = "BATON_WARM_REUSE";
/// How long a pod goes on when its door does not answer.
const AWAY_LIMIT: Duration = Duration::from_secs(3 * 60);

/// Waits for attempts and runs them: the pod's exit status.
pub async fn wait() -> i32 {
    let url = std::env::var(URL_ENV).unwrap_or_default();
    let Some((authority, path)) = super::input::split(&url) else {
        eprintln!("baton: {URL_ENV} holds no warm door ({url:?})");
        return 125;
    };
    // Only the container's first process can end every other one, so only
    // it can hand the next attempt a pod with nothing of the last running.
    let reuse = std::env::var(REUSE_ENV).is_ok_and(|v| v == "1") && std::process::id() == 1;
    // The pool hears whether this pod comes back for more.
    let ask = if reuse { path } else { format!("{path}?once") };
    // A deleted pod's SIGTERM while it waits (the first process ignores
    // what it does not catch).
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        eprintln!("baton: cannot catch SIGTERM");
        return 125;
    };
    let mut answered = Instant::now();
    loop {
        let asked = tokio::select! {
            a = super::input::get(&authority, &ask) => a,
            _ = term.recv() => return 0,
        };
        match asked {
            Ok((200, body)) => match serde_json::from_str::<PodAttempt>(&body) {
                Ok(spec) => {
                    let begin = PodLine::Begin(spec.keep_ref.clone());
                    let ran = super::pod::run_one(&spec, Some(begin)).await;
                    if !reuse || ran.terminated {
                        return ran.status;
                    }
                    tidy(&spec).await;
                    answered = Instant::now();
                }
                Err(e) => eprintln!("baton: the warm door's assignment holds no attempt: {e}"),
            },
            // Nothing yet: ask again.
            Ok((204, _)) => answered = Instant::now(),
            Ok((code, _)) => {
                // The door does not know this pod (its run ended): done.
                eprintln!("baton: the warm door answered {code}; this pod ends");
                return 0;
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
        if answered.elapsed() > AWAY_LIMIT {
            return 0;
        }
    }
}

/// Leaves the pod as the next attempt should find it: every process the
/// last one left (in this container, whose first process this is) is
/// killed and reaped, and its worktree and files are gone.
async fn tidy(spec: &PodAttempt) {
    let me = std::process::id();
    let others: Vec<i32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter_map(|pid| i32::try_from(pid).ok())
        .collect();
    for &pid in &others {
        // SAFETY: kill(2) with a pid read from /proc; at worst it is gone.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    // They are this process's children now (it is the first): reaped here.
    let until = Instant::now() + Duration::from_secs(5);
    let mut left = others;
    while !left.is_empty() && Instant::now() < until {
        left.retain(|&pid| {
            let mut status = 0;
            // SAFETY: waitpid(2) without blocking, on one pid.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            r == 0
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The attempt's own homes and files are under its run's directory; a
    // home the plan names elsewhere (`HOME = "/root"`) is the image's.
    let runs = |p: &&Path| p.components().any(|c| c.as_os_str() == spec.run.as_str());
    let paths = (spec.dirs.iter().map(|d| d.as_path()))
        .chain(spec.files.iter().map(|(f, _)| f.as_path()))
        .filter(runs);
    for p in std::iter::once(spec.worktree.as_path()).chain(paths) {
        remove(p).await;
    }
}

async fn remove(p: &Path) {
    let _ = match tokio::fs::symlink_metadata(p).await {
        Ok(m) if m.is_dir() => tokio::fs::remove_dir_all(p).await,
        Ok(_) => tokio::fs::remove_file(p).await,
        Err(_) => Ok(()),
    };
}
