//! The live view of a run on stderr while it goes on: one line per task,
//! redrawn in place on a terminal; plain event lines otherwise (CI, pipes).
//! It reads the store like every other view.

use crate::ci::CiOutput;
use baton_core::adapter::AgentEvent;
use baton_core::clock::now_ms;
use baton_core::duration::human;
use baton_core::model::{Activity, RunStatus, TaskStatus};
use baton_core::payload::Payload;
use baton_core::plan::race;
use baton_core::store::{Event, Store, TaskRecord};
use baton_core::{Engine, Report};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const MAX_LINES: usize = 40;

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
        _ = async { match hup.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
    }
}

pub fn symbol(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Succeeded => "✓",
        TaskStatus::Failed | TaskStatus::Conflicted => "✗",
        TaskStatus::Stopped => "■",
        TaskStatus::Skipped => "-",
        TaskStatus::Running => "●",
        TaskStatus::AwaitingApproval => "?",
        TaskStatus::Merging => "↣",
        TaskStatus::Pending => "◌",
    }
}

pub fn elapsed(t: &TaskRecord) -> String {
    match (t.started_at, t.finished_at) {
        (Some(s), Some(f)) => human(Duration::from_millis((f - s).max(0) as u64)),
        (Some(s), None) => human(Duration::from_millis((now_ms() - s).max(0) as u64)),
        _ => String::new(),
    }
}

/// A task's state in words, with what its agent is doing while it runs.
pub fn state_label(t: &TaskRecord) -> String {
    match (t.status, t.activity) {
        (TaskStatus::Pending, Some(Activity::WaitingMemory)) => "pending (waiting: memory)".into(),
        (TaskStatus::Pending, Some(Activity::WaitingRateLimit)) => {
            "pending (waiting: rate limit)".into()
        }
        (_, Some(Activity::WaitingAnswer)) => "waiting: answer".into(),
        (TaskStatus::Running, Some(a)) => format!(
            "running: {}",
            match a {
                Activity::WaitingModel => "waiting on model",
                Activity::WaitingGateway => "waiting: gateway",
                Activity::Preparing => "preparing worktree",
                Activity::Starting => "starting agent",
                other => other.as_str(),
            }
            .replace('_', " ")
        ),
        (s, _) => s.to_string(),
    }
}

pub fn usage_label(input: Option<i64>, output: Option<i64>, cost: Option<f64>) -> String {
    let mut parts = Vec::new();
    if let (Some(i), Some(o)) = (input, output) {
        parts.push(format!("{i} in / {o} out tokens"));
    }
    if let Some(c) = cost {
        parts.push(format!("${c:.4}"));
    }
    parts.join(", ")
}

fn task_line(t: &TaskRecord, width: usize) -> String {
    let attempt = if t.attempts > 0 {
        format!("#{}", t.attempts)
    } else {
        String::new()
    };
    let mut line = format!(
        "  {} {:<width$}  {:<26} {:<4} {:>7}",
        symbol(t.status),
        t.id,
        state_label(t),
        attempt,
        elapsed(t)
    );
    if let Some(c) = t.cost_usd {
        line.push_str(&format!("  ${c:.4}"));
    }
    if t.status == TaskStatus::AwaitingApproval {
        line.push_str(&format!("  run: baton approve {}", t.id));
    }
    line
}

fn frame(run: &str, started: i64, tasks: &[TaskRecord]) -> Vec<String> {
    let width = tasks.iter().map(|t| t.id.len()).max().unwrap_or(4).min(32);
    let count = |s: TaskStatus| tasks.iter().filter(|t| t.status == s).count();
    let done = tasks.iter().filter(|t| t.status.is_finished()).count();
    let mut lines = vec![format!(
        "baton run {run} · {} running · {done}/{} done · {}",
        count(TaskStatus::Running),
        tasks.len(),
        human(Duration::from_millis((now_ms() - started).max(0) as u64))
    )];
    let shown: Vec<&TaskRecord> = if tasks.len() <= MAX_LINES {
        tasks.iter().collect()
    } else {
        tasks
            .iter()
            .filter(|t| !matches!(t.status, TaskStatus::Succeeded | TaskStatus::Pending))
            .take(MAX_LINES)
            .collect()
    };
    for (t, candidate) in race::reading_order(&shown, |t| &t.id) {
        let indent = if candidate { "  " } else { "" };
        lines.push(format!("{indent}{}", task_line(t, width)));
    }
    if shown.len() < tasks.len() {
        lines.push(format!(
            "  … and {} more ({} succeeded, {} pending)",
            tasks.len() - shown.len(),
            count(TaskStatus::Succeeded),
            count(TaskStatus::Pending)
        ));
    }
    lines
}

fn event_line(e: &Event, started: i64) -> Option<String> {
    let task = e.task_id.as_deref().unwrap_or("run");
    let text = event_text(e.payload()?, task)?;
    let at = human(Duration::from_millis((e.ts - started).max(0) as u64));
    Some(format!("[{at:>7}] {task}: {text}"))
}

/// What a progress line says of an event; None: nothing worth a line.
fn event_text(p: Payload, task: &str) -> Option<String> {
    use Payload as P;
    Some(match p {
        P::AttemptStarted { attempt, .. } => format!("attempt {attempt} started"),
        P::AttemptFailed {
            attempt, reason, ..
        } => format!("attempt {attempt} failed: {reason}"),
        P::GateFinished(end) if !end.passed => end.reason,
        P::GateFinished(end) => format!("gate `{}` passed", end.gate),
        P::ApprovalNeeded { .. } => format!("waiting for approval: baton approve {task}"),
        P::Merged { .. } => "merged".to_string(),
        P::Succeeded { .. } => match race::candidate_of_id(task) {
            Some((race, _)) => format!("passed its gates (a candidate of {race})"),
            None => "succeeded (not merged: merge = false)".to_string(),
        },
        P::Picked(p) => match &p.winner {
            Some(w) => format!("picked {w}: {}", p.reason),
            None => format!("no winner: {}", p.reason),
        },
        P::Conflicted {
            paths: Some(paths), ..
        } => format!("conflicted in {}", json_list(&paths)),
        P::Conflicted { reason, .. } => format!("conflicted: {}", reason.unwrap_or_default()),
        P::Failed { reason } => format!("failed: {reason}"),
        P::Stopped { reason } => format!("stopped: {reason}"),
        P::Skipped { reason } => format!("skipped: {reason}"),
        P::Steered { message } => format!("steered: {message}"),
        P::SandboxConnection {
            host,
            allowed: false,
        } => format!("network: refused {host} (not in the allow-list)"),
        P::SandboxNotice { notice } => format!("sandbox: {notice}"),
        P::GatewayNotice { notice } => format!("gateway: {notice}"),
        P::ServiceReady { name, addr, .. } => format!("service {name} ready at {addr}"),
        P::Fallback { from, to, reason } => {
            format!("handed over from {from} to {to}: {reason}")
        }
        P::Agent(AgentEvent::RateLimited(l)) => {
            let kind = serde_json::to_value(l.kind).unwrap_or_default();
            let kind = kind.as_str().unwrap_or("").replace('_', " ");
            format!("limited by the provider ({kind}): {}", l.detail)
        }
        P::MessageReceived(m) => format!(
            "message from {}: {}",
            m.from.as_deref().unwrap_or("a person"),
            m.text
        ),
        P::Stalled { .. } => "stalled: no output for a while (it keeps running)".to_string(),
        P::Agent(AgentEvent::Error { message }) => format!("agent error: {message}"),
        P::BudgetExceeded { .. } => "run budget exceeded: stopping every agent".to_string(),
        P::Agent(AgentEvent::ToolCall { name, detail, .. }) => format!("{name} {detail}"),
        P::Interrupt {
            reason: Some(reason),
        } if !reason.is_empty() => {
            format!("baton cannot go on: {reason}; stopping agents and committing their work")
        }
        P::Interrupt { .. } => "interrupted: stopping agents and committing their work".to_string(),
        P::VerifyFailed { reason, .. } => format!("{reason}; it runs again"),
        P::Resolving { paths } => format!(
            "merge conflict in {}: a resolver attempt starts",
            json_list(&paths)
        ),
        P::Waiting { reason, .. } => reason,
        // A setup stopped (the run ended during the pool's refill) says nothing.
        P::SetupFinished(end) if end.reason.is_empty() && !end.passed => return None,
        P::SetupFinished(end) if !end.passed => end.reason,
        P::SetupFinished(end) => format!("setup `{}` done", end.gate),
        P::TeardownFinished(end) if !end.passed => format!("warning: {}", end.reason),
        P::ConflictAhead { paths, .. } => format!(
            "its work so far conflicts with the integration branch in {}",
            json_list(&paths)
        ),
        P::IntegrationRestored { kept, .. } => format!(
            "warning: someone else moved the integration branch; baton put it back (what was there is kept at {kept})"
        ),
        P::BranchRewritten { warnings, .. } => format!("warning: {}", warnings.join("; ")),
        _ => return None,
    })
}

/// Paths as they always showed here: a JSON list.
fn json_list(paths: &[String]) -> String {
    serde_json::Value::from(paths.to_vec()).to_string()
}

struct View {
    store: Arc<Store>,
    run: String,
    started: i64,
    tty: bool,
    drawn: usize,
    last_seq: i64,
}

impl View {
    /// A view of `run`, after a first line that says where it goes on.
    fn new(store: Arc<Store>, run: &str, where_: &str) -> View {
        let started = store
            .run(run)
            .map(|r| r.created_at)
            .unwrap_or_else(|_| now_ms());
        eprintln!(
            "baton: run {run}{where_} (integration branch {})",
            baton_core::paths::integration_branch(run)
        );
        View {
            store,
            run: run.to_string(),
            started,
            tty: std::io::stderr().is_terminal(),
            drawn: 0,
            last_seq: 0,
        }
    }

    /// How often to draw: a terminal is redrawn, plain lines come as they happen.
    fn period(&self) -> Duration {
        Duration::from_millis(if self.tty { 200 } else { 100 })
    }

    async fn draw(&mut self) {
        let run = self.run.clone();
        if self.tty {
            let Ok(tasks) = self.store.call(move |s| s.tasks(&run)).await else {
                return;
            };
            let mut err = std::io::stderr().lock();
            let lines = frame(&self.run, self.started, &tasks);
            let mut out = String::new();
            if self.drawn > 0 {
                out.push_str(&format!("\x1b[{}A", self.drawn));
            }
            for l in &lines {
                out.push_str("\x1b[2K");
                out.push_str(l);
                out.push('\n');
            }
            for _ in lines.len()..self.drawn {
                out.push_str("\x1b[2K\n");
            }
            let extra = self.drawn.saturating_sub(lines.len());
            if extra > 0 {
                out.push_str(&format!("\x1b[{extra}A"));
            }
            self.drawn = lines.len();
            let _ = err.write_all(out.as_bytes());
            let _ = err.flush();
            return;
        }
        loop {
            let (run, after) = (run.clone(), self.last_seq);
            let Ok(events) = self
                .store
                .call(move |s| s.events_after(&run, after, 500))
                .await
            else {
                break;
            };
            if events.is_empty() {
                break;
            }
            let mut err = std::io::stderr().lock();
            for e in &events {
                self.last_seq = e.seq;
                if let Some(l) = event_line(e, self.started) {
                    let _ = writeln!(err, "{l}");
                }
            }
            let _ = err.flush();
        }
    }
}

/// Follows a run that another process (`baton serve`) drives, with the same
/// view, until it ends; Ctrl-C only stops following.
pub async fn follow(
    store: Arc<Store>,
    run: String,
    json: bool,
    ci: &CiOutput,
) -> anyhow::Result<i32> {
    let mut view = View::new(store.clone(), &run, " goes on in `baton serve`");
    let mut tick = tokio::time::interval(view.period());
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                view.draw().await;
                let id = run.clone();
                let ended = store
                    .call(move |s| s.run(&id))
                    .await
                    .map(|r| r.finished_at.is_some() || r.status != RunStatus::Running)
                    .unwrap_or(true);
                if ended {
                    view.draw().await;
                    break;
                }
            }
            _ = &mut stop => {
                eprintln!("\nstopped following; run {run} goes on in `baton serve` (`baton status {run}`)");
                return Ok(130);
            }
        }
    }
    let report = Report::load(&store, &run).await?;
    finish(&store, &report, json, ci).await
}

/// The end of a run, said: the summary on stderr, then what CI wants, then
/// the JSON report on stdout with `json`; returns the exit status.
async fn finish(
    store: &Arc<Store>,
    report: &Report,
    json: bool,
    ci: &CiOutput,
) -> anyhow::Result<i32> {
    print_summary(report);
    if ci.github {
        let tails = tails(store, report).await;
        let id = report.run.clone();
        let root = store
            .call(move |s| s.run(&id))
            .await
            .map(|r| std::path::PathBuf::from(r.repo))
            .unwrap_or_default();
        let notes = crate::ci::annotations(report, &root, &tails);
        // Workflow commands are read from stdout, which --json keeps for JSON.
        if json {
            eprint!("{notes}");
        } else {
            print!("{notes}");
        }
        if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
            use std::io::Write;
            let text = crate::ci::summary(report);
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(text.as_bytes()));
            if let Err(e) = written {
                eprintln!("warning: cannot write the job summary to {path:?}: {e}");
            }
        }
    }
    if let Some(path) = &ci.junit {
        std::fs::write(path, crate::ci::junit(report)).map_err(|e| {
            anyhow::anyhow!("cannot write the JUnit report {}: {e}", path.display())
        })?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    }
    Ok(report.exit_code())
}

/// The end of each bad task's last attempt log, for annotations.
async fn tails(store: &Arc<Store>, report: &Report) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in report.tasks.iter().filter(|t| t.status.is_bad_end()) {
        let (run, id) = (report.run.clone(), t.id.clone());
        let Ok(atts) = store.call(move |s| s.attempts(&run, &id)).await else {
            continue;
        };
        let Some(last) = atts.last() else { continue };
        let tail = baton_core::logs::read_tail(Path::new(&last.log_path), 16 * 1024).await;
        out.push((t.id.clone(), String::from_utf8_lossy(&tail).into_owned()));
    }
    out
}

/// Runs the engine to the end with the live view, prints the summary (and
/// the JSON report with `json`) and returns the exit status.
pub async fn drive(engine: Engine, json: bool, ci: &CiOutput) -> anyhow::Result<i32> {
    let store = engine.store().clone();
    let run = engine.run_id().to_string();
    let grouped = ci.github && !json;
    if grouped {
        println!("::group::baton run {run}");
    }
    let mut view = View::new(store.clone(), &run, "");
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let painter = tokio::spawn(async move {
        let mut tick = tokio::time::interval(view.period());
        loop {
            tokio::select! {
                _ = tick.tick() => view.draw().await,
                _ = &mut stop_rx => { view.draw().await; break; }
            }
        }
    });
    let result = engine.drive(shutdown_signal()).await;
    let _ = stop_tx.send(());
    let _ = painter.await;
    if grouped {
        println!("::endgroup::");
    }
    let report = result?;
    finish(&store, &report, json, ci).await
}

/// A task's status, and for a candidate whose race picked, whether it won.
pub fn standing_in_race(r: &Report, t: &baton_core::report::TaskReport) -> String {
    let race = t.candidate_of.as_deref();
    let race = race.and_then(|id| r.tasks.iter().find(|x| x.id == id));
    let me = race
        .and_then(|race| race.candidates.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.task == t.id));
    match me {
        Some(c) if c.winner => "won".into(),
        Some(c) if race.is_some_and(|r| r.pick_reason.is_some()) && c.place.is_some() => {
            format!("lost (place {})", c.place.unwrap_or(0))
        }
        _ => t.status.to_string(),
    }
}

pub fn print_summary(r: &Report) {
    let mut err = std::io::stderr().lock();
    // A race counts as one task: its candidates are its parts.
    let count = |s: TaskStatus| {
        let mine = r.tasks.iter().filter(|t| t.candidate_of.is_none());
        mine.filter(|t| t.status == s).count()
    };
    let mut parts = Vec::new();
    for s in [
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Conflicted,
        TaskStatus::Stopped,
        TaskStatus::Skipped,
        TaskStatus::Pending,
        TaskStatus::AwaitingApproval,
    ] {
        let n = count(s);
        if n > 0 {
            parts.push(format!("{n} {s}"));
        }
    }
    let took = r
        .duration_ms
        .map(|ms| format!(" in {}", human(Duration::from_millis(ms.max(0) as u64))))
        .unwrap_or_default();
    let _ = writeln!(
        err,
        "\nrun {} {}{took}: {}",
        r.run,
        r.status,
        parts.join(", ")
    );
    let width = r
        .tasks
        .iter()
        .map(|t| t.id.len())
        .max()
        .unwrap_or(0)
        .min(32);
    for (t, candidate) in race::reading_order(&r.tasks, |t| &t.id) {
        let indent = if candidate { "    " } else { "" };
        let mut line = format!(
            "  {indent}{} {:<width$}  {}",
            symbol(t.status),
            t.id,
            standing_in_race(r, t)
        );
        if t.attempts > 1 {
            line.push_str(&format!(" after {} attempts", t.attempts));
        }
        if t.merged {
            line.push_str(", merged");
        }
        if let Some(reason) = t.reason.as_ref().or(t.pick_reason.as_ref()) {
            line.push_str(&format!(": {reason}"));
        }
        let _ = writeln!(err, "{line}");
        for w in &t.warnings {
            let _ = writeln!(err, "      warning: {w}");
        }
    }
    let usage = usage_label(
        r.usage.input_tokens,
        r.usage.output_tokens,
        r.usage.cost_usd,
    );
    if !usage.is_empty() {
        let _ = writeln!(err, "usage: {usage}");
    }
    let head = r
        .integration_commit
        .as_deref()
        .map(|c| &c[..c.len().min(12)])
        .unwrap_or("?");
    let _ = writeln!(
        err,
        "integration branch: {} at {head}",
        r.integration_branch
    );
    if r.status == RunStatus::Interrupted {
        let _ = writeln!(err, "continue with: baton resume {}", r.run);
    }
}
