//! A warm pod, waiting (`baton __pod-wait`): a pod of the executor's image
//! kept running before any attempt needs it. It asks the run's warm door
//! (its URL, with a token of its own, in [`URL_ENV`]) for an assignment, a
//! long poll at a time; the attempt it is handed runs here as in a pod of
//! its own ([`super::pod::run_one`]). With [`REUSE_ENV`] set, a pod that
//! is its container's first process says so when it asks (`?reuse`), and
//! asks again once an attempt is over and tidied away ([`tidy`]); after a
//! SIGTERM it ends, and when it cannot go on (a tidy that failed, its
//! time up) it says goodbye (`?bye`) and ends. A pod whose warm door stops
//! answering (its baton is gone) ends by itself, so none outlives its run
//! for long; the run's end deletes the others.

use super::{PodAttempt, PodLine};
use std::path::Path;
use std::time::{Duration, Instant};

/// The variable that holds the warm door's URL for this pod.
pub const URL_ENV: &str = "BATON_WARM_URL";
/// Set (to 1): the pod takes the run's attempts one after another.
pub const REUSE_ENV: &str = "BATON_WARM_REUSE";
/// How long a pod goes on when its door does not answer.
const AWAY_LIMIT: Duration = Duration::from_secs(3 * 60);
/// How long a pod takes new attempts (its Job's deadline is 12 hours: an
/// attempt begun in this time has the rest).
const REUSE_FOR: Duration = Duration::from_secs(6 * 3600);

/// What the warm door hands a pod: its attempt, and the token it asks
/// with next (a new one each time; empty: it is not to ask again).
#[derive(serde::Deserialize)]
struct Assignment {
    attempt: PodAttempt,
    next: String,
}

/// Waits for attempts and runs them: the pod's exit status.
pub async fn wait() -> i32 {
    let url = std::env::var(URL_ENV).unwrap_or_default();
    let Some((authority, mut path)) = super::input::split(&url) else {
        eprintln!("baton: {URL_ENV} holds no warm door ({url:?})");
        return 125;
    };
    // Nothing this pod runs gets the door's address, nor (without
    // CAP_SYS_PTRACE) reads it from this process; the token in it is good
    // only until the first assignment anyway.
    crate::process::withhold(&[URL_ENV.to_string(), REUSE_ENV.to_string()]);
    // SAFETY: prctl(2) with PR_SET_DUMPABLE changes only this process's flag.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // A deleted pod's SIGTERM, heard while it waits and in its attempts
    // (the first process ignores what it does not catch).
    let term = match super::pod::sigterm() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("baton: cannot catch SIGTERM: {e}");
            return 125;
        }
    };
    // Only the container's first process can end every other one, so only
    // it can hand the next attempt a pod with nothing of the last running.
    let mut reuse = std::env::var(REUSE_ENV).is_ok_and(|v| v == "1") && std::process::id() == 1;
    let bye = |path: &str| {
        let (authority, path) = (authority.clone(), format!("{path}?bye"));
        async move {
            // The pool hears this pod will not ask again.
            let said = super::input::get(&authority, &path);
            let _ = tokio::time::timeout(Duration::from_secs(2), said).await;
        }
    };
    let (born, mut answered) = (Instant::now(), Instant::now());
    loop {
        if reuse && born.elapsed() > REUSE_FOR {
            bye(&path).await;
            return 0;
        }
        let ask = match reuse {
            true => format!("{path}?reuse"),
            false => path.clone(),
        };
        let mut heard = term.clone();
        let asked = tokio::select! {
            biased;
            _ = heard.wait_for(|t| *t) => {
                if reuse {
                    bye(&path).await;
                }
                return 0;
            }
            a = super::input::get(&authority, &ask) => a,
        };
        match asked {
            Ok((200, body)) => match serde_json::from_str::<Assignment>(&body) {
                Ok(Assignment {
                    attempt: spec,
                    next,
                }) => {
                    let begin = PodLine::Begin(spec.begin_mark());
                    let ran = super::pod::run_one(&spec, Some(begin), term.clone()).await;
                    reuse &= !next.is_empty();
                    if !reuse || ran.terminated {
                        return ran.status;
                    }
                    path = format!("{}/{next}", path.rsplit_once('/').map_or("", |(p, _)| p));
                    if !tidy(&spec).await {
                        bye(&path).await;
                        return ran.status;
                    }
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

/// Leaves the pod as the next attempt should find it: every other process
/// in this container (whose first process this is) killed and reaped, and
/// the attempt's worktree and files gone. False: it could not (the pod is
/// not fit for another attempt).
async fn tidy(spec: &PodAttempt) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        // From the first process, kill(-1) reaches every other one in its
        // namespace, those forked a moment ago too; they are all its
        // children by now, or soon, and reaped here.
        // SAFETY: kill(2) and waitpid(2) without blocking; no memory is shared.
        unsafe { libc::kill(-1, libc::SIGKILL) };
        let mut status = 0;
        let reaped = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if reaped < 0 && only_me() {
            break;
        }
        if Instant::now() > until {
            eprintln!("baton: processes of the last attempt are still here");
            return false;
        }
        if reaped <= 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // The attempt's own homes and files are under its run's directory; a
    // home the plan names elsewhere (`HOME = "/root"`) is the image's.
    let runs = |p: &&Path| p.components().any(|c| c.as_os_str() == spec.run.as_str());
    let paths = (spec.dirs.iter().map(|d| d.as_path()))
        .chain(spec.files.iter().map(|(f, _)| f.as_path()))
        .filter(runs);
    let mut clean = true;
    for p in std::iter::once(spec.worktree.as_path()).chain(paths) {
        if let Err(e) = remove(p).await {
            eprintln!(
                "baton: cannot remove {} of the last attempt: {e}",
                p.display()
            );
            clean = false;
        }
    }
    clean
}

/// Whether this is the only process left here.
fn only_me() -> bool {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc").is_ok_and(|d| {
        d.flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .all(|n| n == me)
    })
}

async fn remove(p: &Path) -> std::io::Result<()> {
    match tokio::fs::symlink_metadata(p).await {
        Ok(m) if m.is_dir() => tokio::fs::remove_dir_all(p).await,
        Ok(_) => tokio::fs::remove_file(p).await,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
