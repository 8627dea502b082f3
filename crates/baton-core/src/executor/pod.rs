//! The attempt inside a pod (`baton __pod-attempt`): fetch the task's
//! branch, run the agent as prepared, commit what it left, run the gates,
//! push the attempt's ref. The agent and the gates run under the same
//! supervisor and gate code as a local attempt's; their output becomes
//! this process's stdout, the agent's stream as it is and everything else
//! tagged ([`PodLine`]). SIGTERM (a stop, the Job's deletion) ends the
//! agent but never the work: it is committed and pushed before the pod goes.

use super::{PodAttempt, PodEnd, PodGate, PodLine};
use crate::engine::messages::WorkerCmd;
use crate::engine::process::gates::{self, GateRun, Kind, Watched};
use crate::engine::process::output::last_lines;
use crate::engine::process::supervise::{self, Ended, Io, Output, Spec, Unheard};
use crate::git::{commit_all, git};
use std::ffi::OsString;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio::sync::watch;

/// How long the agent has between SIGTERM and SIGKILL; the rest of the
/// pod's grace is for committing and pushing.
const AGENT_GRACE: Duration = Duration::from_secs(5);
const GATE_TAIL_LINES: usize = 40;
/// How long a pod whose baton is gone waits to push its work.
const PUSH_PATIENCE: Duration = Duration::from_secs(15 * 60);
/// Lines on their way to stdout.
const QUEUE: usize = 64;

/// Runs the attempt and prints its end; the pod's exit status.
pub async fn run(spec: PodAttempt) -> i32 {
    match sigterm() {
        Ok(term) => run_one(&spec, None, term).await.status,
        Err(e) => {
            let (out, writer) = Out::start();
            let status = out
                .finish(error_end(format!("cannot catch SIGTERM: {e}")))
                .await;
            drop(out);
            let _ = writer.await;
            status
        }
    }
}

/// SIGTERM, heard from now on: true once it came. A warm pod hears it
/// while it waits and through every attempt it runs.
pub fn sigterm() -> std::io::Result<watch::Receiver<bool>> {
    let mut term = signal(SignalKind::terminate())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        if term.recv().await.is_some() {
            let _ = tx.send(true);
        }
        // Held: a closed channel would read as no SIGTERM at all.
        tx.closed().await;
    });
    Ok(rx)
}

/// How an attempt went, for the pod that ran it.
pub struct Ran {
    pub status: i32,
    /// SIGTERM came (a stop, the Job's deletion): the pod is ending.
    pub terminated: bool,
}

/// Runs one attempt, its output first announced by `begin` (a warm pod's
/// [`PodLine::Begin`]) when there is one; `term` is [`sigterm`]'s.
pub async fn run_one(
    spec: &PodAttempt,
    begin: Option<PodLine>,
    term: watch::Receiver<bool>,
) -> Ran {
    let (out, writer) = Out::start();
    if let Some(line) = begin {
        out.emit(line).await;
    }
    let ran = attempt(spec, &out, term).await;
    drop(out);
    // Every line reaches stdout before the pod ends (a process that escaped
    // its group could hold a sender: it is not waited for long).
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    ran
}

async fn attempt(spec: &PodAttempt, out: &Out, term: watch::Receiver<bool>) -> Ran {
    let (to_cmds, mut cmds, terminated) = on_sigterm(term);
    let ran = |status| Ran {
        status,
        terminated: terminated.load(Ordering::SeqCst),
    };
    if let Err(e) = fetch(spec, out).await {
        return ran(out.finish(error_end(e)).await);
    }
    if let Err(e) = super::setup::run(spec, out, &mut cmds).await {
        return ran(out.finish(error_end(e)).await);
    }
    if let Err(e) = write_files(spec).await {
        return ran(out.finish(error_end(e)).await);
    }
    // The agent's input while it runs, from the door, when it takes it:
    // each line a message, which a gate after it drops.
    if spec.live.is_some() {
        let _ = super::input::follow(&spec.git_url, to_cmds);
    }
    let (code, ended) = run_agent(spec, out, &mut cmds).await;
    let mut end = PodEnd {
        code,
        timed_out: matches!(ended, Ended::TimedOut),
        ..Default::default()
    };
    if let Err(e) = commit_all(&spec.worktree, &spec.message).await {
        end.error = Some(format!("cannot commit the attempt's work: {e}"));
    }
    if code == Some(0) && matches!(ended, Ended::Exited(_)) {
        end.gates = run_gates(spec, out, &mut cmds).await;
    }
    end.commit = head(&spec.worktree).await;
    match push(spec, out, terminated.load(Ordering::SeqCst)).await {
        Ok(()) => end.pushed = true,
        Err(e) => end.error = Some(e),
    }
    let status = match (&end.error, &ended, code) {
        (None, Ended::Exited(_), Some(c)) => c,
        _ => 1,
    };
    // Read once: what the end says is what the pod does after it.
    end.terminated = terminated.load(Ordering::SeqCst);
    let ran = Ran {
        status,
        terminated: end.terminated,
    };
    out.finish(end).await;
    ran
}

/// SIGTERM becomes a stop for whatever runs (the agent or a gate), as a
/// stop from the engine ends a local one; the flag says it came.
type Cmds = (
    mpsc::UnboundedSender<WorkerCmd>,
    UnboundedReceiver<WorkerCmd>,
    Arc<AtomicBool>,
);

fn on_sigterm(mut term: watch::Receiver<bool>) -> Cmds {
    let (tx, rx) = mpsc::unbounded_channel();
    let flag = Arc::new(AtomicBool::new(false));
    let seen = flag.clone();
    let own = tx.clone();
    tokio::spawn(async move {
        tokio::select! {
            // One that came before this attempt began counts too.
            came = async { term.wait_for(|t| *t).await.is_ok() } => if came {
                seen.store(true, Ordering::SeqCst);
                let _ = tx.send(WorkerCmd::Stop);
                // Later ones change nothing; the sender stays so that a
                // finished process is not taken for a closed engine.
                tx.closed().await;
            },
            // The attempt is over (a warm pod goes on to another).
            _ = tx.closed() => {}
        }
    });
    (own, rx, flag)
}

/// This process's stdout, one whole line at a time.
pub(super) struct Out {
    tx: mpsc::Sender<String>,
}

impl Out {
    fn start() -> (Out, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
        let writer = tokio::spawn(async move {
            let mut stdout = tokio::io::stdout();
            while let Some(mut line) = rx.recv().await {
                line.push('\n');
                if stdout.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
                let _ = stdout.flush().await;
            }
        });
        (Out { tx }, writer)
    }

    async fn emit(&self, line: PodLine) {
        let _ = self.tx.send(line.to_line()).await;
    }

    pub(super) async fn note(&self, s: impl Into<String>) {
        self.emit(PodLine::Note(s.into())).await;
    }

    async fn finish(&self, end: PodEnd) -> i32 {
        let code = end.code.unwrap_or(1);
        self.emit(PodLine::End(end)).await;
        code
    }

    /// Where a process's output goes: the agent's stdout as it is, every
    /// other line tagged as baton's.
    fn output(&self, agent: bool) -> Output {
        Output::Lines {
            to: self.tx.clone(),
            stdout_as_is: agent,
            tag: |line| PodLine::Stderr(line.to_string()).to_line(),
        }
    }
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

async fn fetch(spec: &PodAttempt, out: &Out) -> Result<(), String> {
    let w = &spec.worktree;
    tokio::fs::create_dir_all(w)
        .await
        .map_err(|e| format!("cannot make {}: {e}", w.display()))?;
    out.note(format!("fetching {}", spec.branch)).await;
    git_in(w, &["init", "-q"]).await?;
    hide_token(spec).await?;
    let url = remote_url(spec);
    let refspec = format!("+refs/heads/{0}:refs/heads/{0}", spec.branch);
    git_in(w, &["fetch", "-q", &url, &refspec]).await?;
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

/// baton's own door at `git_url` (`http://host:port/git/<token>`, the
/// token 64 hex digits as baton makes them): its address and token. A
/// remote of the plan's laid out alike (`http://git.corp/git/project.git`)
/// is not one.
fn door_parts(git_url: &str) -> Option<(String, String)> {
    let (authority, path) = super::input::split(git_url)?;
    let token = path.strip_prefix("/git/")?;
    let baton_s = token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit());
    baton_s.then(|| (authority, token.to_string()))
}

/// The URL git fetches from and pushes to: for baton's door, one without
/// its token, which goes in a header the clone's config sets ([`hide_token`]):
/// a command line shows in `ps` to every user of the machine.
fn remote_url(spec: &PodAttempt) -> String {
    match door_parts(&spec.git_url) {
        Some((authority, _)) => format!("http://{authority}/git/{}", super::BEARER_PATH),
        None => spec.git_url.clone(),
    }
}

/// Puts the door's token in the clone's config (its own file, this user's).
async fn hide_token(spec: &PodAttempt) -> Result<(), String> {
    let Some((authority, token)) = door_parts(&spec.git_url) else {
        return Ok(());
    };
    let section =
        format!("[http \"http://{authority}/\"]\n\textraHeader = Authorization: Bearer {token}\n");
    let config = spec.worktree.join(".git").join("config");
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&config)
        .await
        .map_err(|e| format!("cannot open {}: {e}", config.display()))?;
    file.write_all(section.as_bytes())
        .await
        .map_err(|e| format!("cannot write {}: {e}", config.display()))
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
async fn push(spec: &PodAttempt, out: &Out, terminated: bool) -> Result<(), String> {
    let refspec = format!("+HEAD:{}", spec.keep_ref);
    let patience = if terminated {
        Duration::from_secs(20)
    } else {
        PUSH_PATIENCE
    };
    let since = Instant::now();
    let mut said = false;
    let url = remote_url(spec);
    loop {
        match git_in(&spec.worktree, &["push", "-q", &url, &refspec]).await {
            Ok(_) => return Ok(()),
            Err(e) if since.elapsed() >= patience => {
                return Err(format!("cannot push the attempt's work to baton: {e}"))
            }
            Err(e) => {
                if !said {
                    out.note(format!("cannot push yet, waiting for baton: {e}"))
                        .await;
                    said = true;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn os_pairs(env: &[(String, String)]) -> Vec<(OsString, OsString)> {
    env.iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}

/// The agent under the supervisor: its exit status (None: it was ended)
/// and how it ended.
async fn run_agent(
    spec: &PodAttempt,
    out: &Out,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> (Option<i32>, Ended) {
    let run = Spec {
        program: spec.program.clone().into(),
        args: spec.args.iter().map(OsString::from).collect(),
        env: os_pairs(&spec.env),
        cwd: &spec.worktree,
        output: out.output(true),
        timeout: Duration::from_secs(spec.timeout_secs),
        cgroup: Vec::new(),
        unset: Vec::new(),
        grace: AGENT_GRACE,
    };
    // Its input is written, then closed, unless it takes messages live:
    // then it stays open for the lines from the door (already in the
    // agent's words), and the adapter's parser tells when its turns are
    // done (which closes it).
    let as_is = |line: &str| Some(line.to_string());
    let live = spec.live.as_deref().and_then(crate::adapter::find);
    let io = Io {
        stdin_lines: match live {
            Some(_) => Some(spec.stdin_lines.clone()),
            None => Some(spec.stdin_lines.clone()).filter(|l| !l.is_empty()),
        },
        parser: live.map(|a| (a.make)().parser()),
        steer: live.map(|_| &as_is as supervise::SteerLine),
        ..Default::default()
    };
    let ran = supervise::run(run, io, None, cmds, &mut Unheard).await;
    match ran.ended {
        Ended::Exited(c) => (Some(c), Ended::Exited(c)),
        Ended::SpawnFailed(e) => {
            out.emit(PodLine::Stderr(e)).await;
            (Some(127), Ended::Exited(127))
        }
        other => (None, other),
    }
}

/// The task's gates in order, up to the first that fails or is ended.
async fn run_gates(
    spec: &PodAttempt,
    out: &Out,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Vec<PodGate> {
    run_checks(spec, out, cmds, Kind::Gate, &spec.gates, spec.timeout_secs).await
}

/// `commands` in order (gates, or setup), up to the first that fails or
/// is ended.
pub(super) async fn run_checks(
    spec: &PodAttempt,
    out: &Out,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
    kind: Kind,
    commands: &[String],
    timeout_secs: u64,
) -> Vec<PodGate> {
    let env = os_pairs(&spec.gate_env);
    let g = GateRun {
        kind,
        task: None,
        attempt: None,
        gates: commands,
        worktree: &spec.worktree,
        output: out.output(false),
        timeout: Duration::from_secs(timeout_secs),
        env: &env,
        jail: None,
        unset: &[],
    };
    let mut results = Vec::new();
    for gate in commands {
        out.note(format!("{} `{gate}`", kind.word())).await;
        let (ran, ms) = gates::run_one(&g, gate, Watched::default(), cmds).await;
        let result = PodGate {
            gate: gate.clone(),
            code: match ran.ended {
                Ended::Exited(c) => Some(c),
                _ => None,
            },
            timed_out: matches!(ran.ended, Ended::TimedOut),
            error: match &ran.ended {
                Ended::SpawnFailed(e) => Some(e.clone()),
                Ended::Cmd(_) => Some("a stop ended it".into()),
                _ => None,
            },
            duration_ms: ms,
            tail: last_lines(&ran.combined_tail, GATE_TAIL_LINES),
        };
        let go_on = result.code == Some(0);
        results.push(result);
        if !go_on {
            break;
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::{door_parts, remote_url};
    use crate::executor::PodAttempt;

    fn at(git_url: &str) -> PodAttempt {
        let mut spec: PodAttempt = serde_json::from_value(serde_json::json!({
            "run": "r", "task": "t", "attempt": 1, "git_url": "", "branch": "b",
            "start": "s", "keep_ref": "refs/baton/r/t/1", "worktree": "/w",
            "program": "p", "args": [], "env": [], "stdin_lines": [], "files": [],
            "dirs": [], "gates": [], "gate_env": [], "timeout_secs": 1, "message": "m"
        }))
        .unwrap();
        spec.git_url = git_url.into();
        spec
    }

    #[test]
    fn git_names_baton_s_door_without_its_token() {
        let token = crate::access::new_token();
        let door = at(&format!("http://127.0.0.1:4100/git/{token}"));
        assert_eq!(
            door_parts(&door.git_url),
            Some(("127.0.0.1:4100".into(), token))
        );
        assert_eq!(remote_url(&door), "http://127.0.0.1:4100/git/~");
        // A remote both sides reach is named as it is, one laid out like
        // the door too.
        for other in [
            "https://git.example.com/team/repo.git",
            "/srv/git/repo.git",
            "http://git.corp/git/project.git",
        ] {
            assert_eq!(door_parts(other), None);
            assert_eq!(remote_url(&at(other)), other);
        }
    }
}
