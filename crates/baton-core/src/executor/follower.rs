//! What every driver's follower (`baton __follow`, the process the engine
//! supervises for a remote attempt) does alike: tell a stop from baton's
//! death, and pass the remote attempt's output on as a local agent's
//! would come (the agent's stream on stdout, the rest on stderr). This
//! process's output is the attempt's stream: it is the one place in
//! baton-core that writes to stdout, as `pod` is over there.

use super::{PodEnd, PodLine};
use std::io::Write;
use std::time::Duration;

/// baton, the process that started this follower.
#[derive(Debug, Clone, Copy)]
pub struct Parent(i32);

impl Parent {
    /// This process's parent now (call it first thing).
    pub fn now() -> Parent {
        // SAFETY: getppid(2) cannot fail.
        Parent(unsafe { libc::getppid() })
    }

    /// Whether it is gone (this process has another parent).
    pub fn gone(&self) -> bool {
        // SAFETY: getppid(2) cannot fail.
        unsafe { libc::getppid() != self.0 }
    }

    /// What a SIGTERM means: a stop (or timeout) when baton sent it, its
    /// death when baton's watchdog did. The watchdog hears of the death
    /// when baton's files close, a moment before the kernel gives this
    /// process another parent: so the parent is watched for a moment
    /// before a stop is believed. True: baton died.
    pub async fn died_on_term(&self) -> bool {
        // 1.5 s: on a loaded machine the kernel can take a while to give
        // this process its new parent; a stop waits that long for nothing.
        for _ in 0..30 {
            if self.gone() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// Each line of this process's stdin (a message or steer the engine sends
/// the agent while it runs), handed to `push` as it comes.
pub fn hear_input(push: impl Fn(String) + Send + 'static) {
    // A thread of its own, not the runtime's blocking pool: the runtime's
    // end would wait for a read the engine may never end (it keeps the
    // pipe open until the agent's last turn, which a stop never brings).
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) => push(l),
                Err(_) => return,
            }
        }
    });
}

/// Passes one line of the remote attempt's output on, one write per line
/// (the engine reads stdout and stderr side by side); its end is kept in
/// `end`. `whose` names the other side in baton's notes ("pod", "host x").
pub fn relay(line: &str, whose: &str, end: &mut Option<PodEnd>) {
    let (text, to_stdout) = match PodLine::parse(line) {
        Some(PodLine::End(e)) => {
            *end = Some(e);
            return;
        }
        Some(PodLine::Begin(_)) => return,
        Some(PodLine::Stderr(s)) => (format!("{s}\n"), false),
        Some(PodLine::Note(s)) => (format!("baton ({whose}): {s}\n"), false),
        None => (format!("{line}\n"), true),
    };
    let _ = if to_stdout {
        let mut o = std::io::stdout().lock();
        o.write_all(text.as_bytes()).and_then(|_| o.flush())
    } else {
        std::io::stderr().lock().write_all(text.as_bytes())
    };
}
