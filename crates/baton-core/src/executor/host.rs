//! An attempt on an SSH host, over there: `baton __host-attempt DIR`, which
//! the follower on baton's machine runs through `ssh`. The first time, it
//! reads the attempt ([`super::PodAttempt`]) from stdin and starts
//! `baton __pod-attempt --spec DIR/spec.json` in a session of its own, its
//! output to `DIR/out`: so the attempt goes on (and keeps pushing its work)
//! when the connection, or baton, is gone. Then, and every later time (a
//! resumed baton adopting it), it prints `DIR/out` from its start as it
//! grows, until the attempt has ended. `--stop` sends the attempt SIGTERM:
//! a stop, which the pod side turns into commit and push.

use super::{PodEnd, PodLine};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

const POLL: Duration = Duration::from_millis(25);

/// Set for an attempt on a host and all it starts: a crashed baton's
/// leftovers are found by their BATON_RUN, and an SSH host may be this
/// very machine, where `baton resume` must adopt the attempt, not end it.
pub const ON_HOST: &str = "BATON_ON_HOST";

struct Files {
    spec: PathBuf,
    out: PathBuf,
    err: PathBuf,
    pid: PathBuf,
}

impl Files {
    fn of(dir: &Path) -> Files {
        Files {
            spec: dir.join("spec.json"),
            out: dir.join("out"),
            err: dir.join("err"),
            pid: dir.join("pid"),
        }
    }
}

/// The attempt's process, as its pid file names it.
fn recorded(f: &Files) -> Option<i32> {
    std::fs::read_to_string(&f.pid).ok()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// `baton __host-attempt DIR`: starts the attempt unless it was started
/// already, and prints its output to its end. The exit status is 0 once
/// the output is whole, whatever the attempt's own end (that is in its
/// last line).
pub fn serve(dir: &Path, baton: &Path, from: u64, cache: Option<&Path>) -> Result<i32, String> {
    // The attempt's files hold its tokens (and a key the gateway does not
    // stand in for): the host's other users read none of them.
    // SAFETY: umask(2) cannot fail.
    unsafe { libc::umask(0o077) };
    let f = Files::of(dir);
    let mut child = None;
    if recorded(&f).is_none() {
        child = Some(start(dir, &f, baton, cache)?);
    }
    follow(&f, child, from)
}

/// `baton __host-attempt --stop DIR`: SIGTERM to the attempt; false when
/// none runs there.
pub fn stop(dir: &Path) -> bool {
    match recorded(&Files::of(dir)) {
        // SAFETY: kill(2) with a pid the attempt recorded.
        Some(pid) if alive(pid) => unsafe { libc::kill(pid, libc::SIGTERM) == 0 },
        _ => false,
    }
}

fn start(
    dir: &Path,
    f: &Files,
    baton: &Path,
    cache: Option<&Path>,
) -> Result<std::process::Child, String> {
    use std::os::unix::process::CommandExt;
    let mut spec = String::new();
    std::io::stdin()
        .read_to_string(&mut spec)
        .map_err(|e| format!("cannot read the attempt from stdin: {e}"))?;
    serde_json::from_str::<super::PodAttempt>(&spec)
        .map_err(|e| format!("stdin holds no attempt: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let write = |p: &Path, text: &str| {
        std::fs::write(p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    write(&f.spec, &spec)?;
    let open = |p: &Path| {
        std::fs::File::create(p).map_err(|e| format!("cannot make {}: {e}", p.display()))
    };
    let mut cmd = std::process::Command::new(baton);
    cmd.arg("__pod-attempt")
        .arg("--spec")
        .arg(&f.spec)
        .current_dir(dir)
        .env(ON_HOST, "1")
        .envs(cache.map(|c| (super::setup::CACHE_ENV, c)))
        .stdin(std::process::Stdio::null())
        .stdout(open(&f.out)?)
        .stderr(open(&f.err)?);
    // SAFETY: setsid(2) is async-signal-safe; the attempt leaves this
    // session, so the connection's end does not reach it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", baton.display()))?;
    let tmp = f.pid.with_extension("tmp");
    write(&tmp, &child.id().to_string())?;
    std::fs::rename(&tmp, &f.pid).map_err(|e| format!("cannot write {}: {e}", f.pid.display()))?;
    Ok(child)
}

/// Whether the attempt's process has ended (reaped when it is this
/// process's child).
fn ended(f: &Files, child: &mut Option<std::process::Child>) -> bool {
    match child {
        Some(c) => !matches!(c.try_wait(), Ok(None)),
        None => !recorded(f).is_some_and(alive),
    }
}

/// Prints `out` from its start as it grows, until the attempt ended and
/// all of it is out; an attempt that ended without its last line gets one
/// that says so.
fn follow(f: &Files, mut child: Option<std::process::Child>, from: u64) -> Result<i32, String> {
    let mut file =
        std::fs::File::open(&f.out).map_err(|e| format!("cannot read {}: {e}", f.out.display()))?;
    let mut stdout = std::io::stdout().lock();
    let (mut pending, mut seen_end, mut lines) = (Vec::new(), false, 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Read first, then ask: what the attempt wrote before it ended is
        // read on the next turn.
        let done = ended(f, &mut child);
        loop {
            let n = file.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                seen_end |= line.starts_with(super::TAG.as_bytes())
                    && PodLine::parse(String::from_utf8_lossy(&line).trim_end())
                        .is_some_and(|l| matches!(l, PodLine::End(_)));
                lines += 1;
                // A follower that connected again has these already.
                if lines <= from {
                    continue;
                }
                // The connection gone: the attempt goes on without us.
                if stdout
                    .write_all(&line)
                    .and_then(|_| stdout.flush())
                    .is_err()
                {
                    return Ok(0);
                }
            }
        }
        // Its end is its last line: whatever still runs is on its way out.
        if done || seen_end {
            break;
        }
        std::thread::sleep(POLL);
    }
    if seen_end {
        // Ended: its pid may be another process's soon, so it goes before
        // the process is reaped (the run's sweep ends the groups named).
        let _ = std::fs::remove_file(&f.pid);
        if let Some(c) = child.as_mut() {
            let _ = c.wait();
        }
    }
    if !pending.is_empty() {
        pending.push(b'\n');
        let _ = stdout.write_all(&pending);
    }
    if !seen_end {
        let err = std::fs::read_to_string(&f.err).unwrap_or_default();
        let tail = crate::engine::process::output::last_lines(&err, 5);
        let end = PodEnd {
            error: Some(format!(
                "the attempt ended without saying how: {}",
                tail.trim()
            )),
            ..Default::default()
        };
        let _ = writeln!(stdout, "{}", PodLine::End(end).to_line());
    }
    Ok(0)
}
