//! The attempt inside a pod (`baton __pod-attempt`): fetch the task's
//! branch, run the agent as prepared, commit what it left, run the gates,
//! push the attempt's ref. SIGTERM (a stop, the Job's deletion) ends the
//! agent but never the work: it is committed and pushed before the pod goes.

use super::{PodAttempt, PodEnd, PodGate, PodLine};
use crate::git::{commit_all, git};
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};

/// How long the agent has between SIGTERM and SIGKILL; the rest of the
/// pod's grace is for committing and pushing.
const AGENT_GRACE: Duration = Duration::from_secs(5);
const GATE_TAIL_LINES: usize = 40;
/// How long a pod whose baton is gone waits to push its work.
const PUSH_PATIENCE: Duration = Duration::from_secs(15 * 60);

/// Runs the attempt and prints its end; the pod's exit status.
pub async fn run(spec: PodAttempt) -> i32 {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => return finish(error_end(format!("cannot catch SIGTERM: {e}"))),
    };
    if let Err(e) = fetch(&spec).await {
        return finish(error_end(e));
    }
    if let Err(e) = write_files(&spec).await {
        return finish(error_end(e));
    }
    let (code, mut ended) = run_agent(&spec, &mut term).await;
    let mut end = PodEnd {
        code,
        timed_out: ended == Ended::TimedOut,
        ..Default::default()
    };
    match commit_all(&spec.worktree, &spec.message).await {
        Ok(_) => {}
        Err(e) => end.error = Some(format!("cannot commit the attempt's work: {e}")),
    }
    if code == Some(0) && ended == Ended::Exited {
        (end.gates, ended) = gates(&spec, &mut term).await;
    }
    end.commit = head(&spec.worktree).await;
    match push(&spec, ended == Ended::Terminated).await {
        Ok(()) => end.pushed = true,
        Err(e) => end.error = Some(e),
    }
    let status = match (&end.error, ended, code) {
        (None, Ended::Exited, Some(c)) => c,
        _ => 1,
    };
    finish(end);
    status
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ended {
    Exited,
    TimedOut,
    Terminated,
}

fn emit(line: PodLine) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.to_line());
    let _ = out.flush();
}

fn note(s: impl Into<String>) {
    emit(PodLine::Note(s.into()));
}

fn finish(end: PodEnd) -> i32 {
    let code = end.code.unwrap_or(1);
    emit(PodLine::End(end));
    code
}

fn error_end(e: String) -> PodEnd {
    PodEnd {
        error: Some(e),
        ..Default::default()
    }
}

async fn git_in(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = git(dir, args).await.map_err(|e| e.to_string())?;
    if out.code != 0 {
        return Err(format!(
            "git {} failed: {}",
            args.first().copied().unwrap_or_default(),
            out.stderr.trim()
        ));
    }
    Ok(out.stdout.trim().to_string())
}

async fn fetch(spec: &PodAttempt) -> Result<(), String> {
    let w = &spec.worktree;
    tokio::fs::create_dir_all(w)
        .await
        .map_err(|e| format!("cannot make {}: {e}", w.display()))?;
    note(format!("fetching {}", spec.branch));
    git_in(w, &["init", "-q"]).await?;
    let refspec = format!("+refs/heads/{0}:refs/heads/{0}", spec.branch);
    git_in(w, &["fetch", "-q", &spec.git_url, &refspec]).await?;
    git_in(w, &["checkout", "-q", "-f", &spec.branch]).await?;
    let at = head(w).await.unwrap_or_default();
    if at != spec.start {
        return Err(format!(
            "the task's branch {} is at {at}, not at the attempt's start {}",
            spec.branch, spec.start
        ));
    }
    Ok(())
}

async fn write_files(spec: &PodAttempt) -> Result<(), String> {
    for d in &spec.dirs {
        tokio::fs::create_dir_all(d)
            .await
            .map_err(|e| format!("cannot make {}: {e}", d.display()))?;
    }
    for (path, text) in &spec.files {
        if let Some(dir) = path.parent() {
            let _ = tokio::fs::create_dir_all(dir).await;
        }
        tokio::fs::write(path, text)
            .await
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

async fn head(dir: &Path) -> Option<String> {
    git_in(dir, &["rev-parse", "HEAD"]).await.ok()
}

/// Pushes the attempt's end. While baton is away (it died; `baton resume`
/// serves the same address again) the pod waits for it, up to
/// [`PUSH_PATIENCE`], or, once told to end, only its grace.
async fn push(spec: &PodAttempt, terminated: bool) -> Result<(), String> {
    let refspec = format!("+HEAD:{}", spec.keep_ref);
    let patience = if terminated {
        Duration::from_secs(20)
    } else {
        PUSH_PATIENCE
    };
    let since = Instant::now();
    let mut said = false;
    loop {
        match git_in(&spec.worktree, &["push", "-q", &spec.git_url, &refspec]).await {
            Ok(_) => return Ok(()),
            Err(e) if since.elapsed() >= patience => {
                return Err(format!("cannot push the attempt's work to baton: {e}"))
            }
            Err(e) => {
                if !said {
                    note(format!("cannot push yet, waiting for baton: {e}"));
                    said = true;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn spawn(
    program: &str,
    args: &[String],
    env: &[(String, String)],
    dir: &Path,
    stdin: bool,
) -> std::io::Result<Child> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .process_group(0)
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd.spawn()
}

/// Copies a child's output: stdout as it is (the agent's stream), stderr
/// as baton's lines; a gate's both go to `sink` too.
fn relay(
    from: impl AsyncRead + Unpin + Send + 'static,
    as_is: bool,
    sink: Option<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(from).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(s) = &sink {
                if let Ok(mut v) = s.lock() {
                    v.push(line.clone());
                }
            }
            if as_is {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            } else {
                emit(PodLine::Stderr(line));
            }
        }
    })
}

/// Waits for a child, ending its group on SIGTERM or at its timeout.
async fn wait(
    child: &mut Child,
    timeout: Duration,
    term: &mut tokio::signal::unix::Signal,
) -> (Option<i32>, Ended) {
    let ended = tokio::select! {
        status = child.wait() => return (status.ok().and_then(|s| s.code()), Ended::Exited),
        _ = tokio::time::sleep(timeout) => Ended::TimedOut,
        _ = term.recv() => Ended::Terminated,
    };
    if let Some(pid) = child.id() {
        crate::process::signal_group(pid as i32, libc::SIGTERM);
        if tokio::time::timeout(AGENT_GRACE, child.wait())
            .await
            .is_err()
        {
            crate::process::signal_group(pid as i32, libc::SIGKILL);
        }
    }
    let _ = child.wait().await;
    (None, ended)
}

async fn run_agent(
    spec: &PodAttempt,
    term: &mut tokio::signal::unix::Signal,
) -> (Option<i32>, Ended) {
    let stdin = !spec.stdin_lines.is_empty();
    let mut child = match spawn(&spec.program, &spec.args, &spec.env, &spec.worktree, stdin) {
        Ok(c) => c,
        Err(e) => {
            emit(PodLine::Stderr(format!(
                "cannot start {}: {e}",
                spec.program
            )));
            return (Some(127), Ended::Exited);
        }
    };
    if let Some(mut input) = child.stdin.take() {
        let text: String = spec.stdin_lines.iter().map(|l| format!("{l}\n")).collect();
        tokio::spawn(async move {
            let _ = input.write_all(text.as_bytes()).await;
        });
    }
    let out = child.stdout.take().map(|o| relay(o, true, None));
    let err = child.stderr.take().map(|e| relay(e, false, None));
    let ended = wait(&mut child, Duration::from_secs(spec.timeout_secs), term).await;
    for h in [out, err].into_iter().flatten() {
        let _ = h.await;
    }
    ended
}

async fn gates(spec: &PodAttempt, term: &mut tokio::signal::unix::Signal) -> (Vec<PodGate>, Ended) {
    let mut results = Vec::new();
    for gate in &spec.gates {
        note(format!("gate `{gate}`"));
        let started = Instant::now();
        let args = vec!["-c".to_string(), gate.clone()];
        let mut child = match spawn("sh", &args, &spec.gate_env, &spec.worktree, false) {
            Ok(c) => c,
            Err(e) => {
                results.push(PodGate {
                    gate: gate.clone(),
                    code: None,
                    timed_out: false,
                    error: Some(e.to_string()),
                    duration_ms: 0,
                    tail: String::new(),
                });
                return (results, Ended::Exited);
            }
        };
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = child
            .stdout
            .take()
            .map(|o| relay(o, false, Some(seen.clone())));
        let err = child
            .stderr
            .take()
            .map(|e| relay(e, false, Some(seen.clone())));
        let (code, ended) = wait(&mut child, Duration::from_secs(spec.timeout_secs), term).await;
        for h in [out, err].into_iter().flatten() {
            let _ = h.await;
        }
        let lines = seen.lock().map(|v| v.clone()).unwrap_or_default();
        let tail = lines[lines.len().saturating_sub(GATE_TAIL_LINES)..].join("\n");
        let passed = code == Some(0);
        results.push(PodGate {
            gate: gate.clone(),
            code,
            timed_out: ended == Ended::TimedOut,
            error: (ended == Ended::Terminated).then(|| "a stop ended it".to_string()),
            duration_ms: started.elapsed().as_millis() as u64,
            tail,
        });
        if ended == Ended::Terminated {
            return (results, ended);
        }
        if !passed {
            break;
        }
    }
    (results, Ended::Exited)
}
