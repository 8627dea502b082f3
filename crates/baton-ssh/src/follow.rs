//! Following an attempt on a host: its output, which `baton
//! __host-attempt` prints from the host, passed on as the agent's stream;
//! `ssh`'s own words kept for the reason when the host goes away. A stop
//! asks the attempt there to end (it commits and pushes) and goes on
//! following it; baton's death leaves it running for `baton resume`.

use baton_core::executor::follower::{relay, Parent};
use baton_core::executor::PodEnd;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::signal::unix::Signal;

pub struct Followed {
    pub end: Option<PodEnd>,
    /// A stop or timeout asked it to end.
    pub terminated: bool,
    /// baton, whose child this is, died: the attempt there goes on.
    pub parent_died: bool,
    /// How `ssh` ended (255: the connection failed or broke).
    pub status: Option<i32>,
    /// The last lines `ssh` wrote to stderr.
    pub said: String,
    /// How many lines of the attempt's output came.
    pub lines: u64,
}

const KEPT: usize = 5;

pub async fn follow<S, F>(
    mut child: Child,
    whose: &str,
    parent: Parent,
    term: &mut Signal,
    stop: S,
) -> anyhow::Result<Followed>
where
    S: Fn() -> F,
    F: Future<Output = ()>,
{
    let said = Arc::new(Mutex::new(Vec::<String>::new()));
    if let Some(err) = child.stderr.take() {
        let said = said.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{line}");
                if let Ok(mut s) = said.lock() {
                    s.push(line);
                    let drop = s.len().saturating_sub(KEPT);
                    s.drain(..drop);
                }
            }
        });
    }
    let out = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("ssh has no stdout"))?;
    let mut lines = BufReader::new(out).lines();
    let mut f = Followed {
        end: None,
        terminated: false,
        parent_died: false,
        status: None,
        said: String::new(),
        lines: 0,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            // baton gone without a word (SIGKILL): the attempt is left for resume.
            _ = tick.tick() => if parent.gone() {
                f.parent_died = true;
                return Ok(f);
            },
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    f.lines += 1;
                    relay(&line, whose, &mut f.end);
                    // Its end is its last line: the attempt there is done.
                    if f.end.is_some() {
                        break;
                    }
                }
                Ok(None) | Err(_) if parent.gone() => {
                    f.parent_died = true;
                    return Ok(f);
                }
                Ok(None) | Err(_) => break,
            },
            _ = term.recv(), if !f.terminated => {
                if parent.died_on_term().await {
                    f.parent_died = true;
                    return Ok(f);
                }
                f.terminated = true;
                stop().await;
            }
        }
    }
    if f.end.is_some() {
        // Its ssh closes once the attempt's process there is gone (in a
        // moment): not waited for, and not killed, so the host's side
        // tidies its own files. It has a group of its own.
        std::mem::forget(child);
        return Ok(f);
    }
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    f.status = status.ok().and_then(|s| s.ok()).and_then(|s| s.code());
    // Its stderr's last words, which the reader above may still hold.
    tokio::time::sleep(Duration::from_millis(50)).await;
    f.said = said.lock().map(|s| s.join("\n")).unwrap_or_default();
    Ok(f)
}
