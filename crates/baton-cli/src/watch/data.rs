//! Where `baton watch` reads and acts: the store, as every view reads it,
//! git for diffs, and the control path the CLI and the server use.

use super::app::{App, Command, Line, Pane};
use baton_core::control::{self, ControlError};
use baton_core::model::{ControlKind, PlanDecision};
use baton_core::paths::StatePaths;
use baton_core::store::{RunRecord, Store, StoreError, TaskRecord};
use baton_core::Repo;
use std::path::Path;
use std::sync::Arc;

/// How much of a transcript is read: its end, so a long one costs no more.
const TRANSCRIPT_EVENTS: usize = 400;
/// How much of a diff is shown.
const DIFF_BYTES: usize = 512 * 1024;
/// How much of the end of a log is shown.
const LOG_BYTES: u64 = 64 * 1024;

pub struct Source {
    pub repo: Repo,
    pub store: Arc<Store>,
    pub paths: StatePaths,
}

impl Source {
    /// Reads what the view shows now: the runs, the run's tasks and the
    /// selected task's transcript (and its diff when `diff` says so).
    pub async fn refresh(&self, app: &mut App, diff: bool) -> Result<(), StoreError> {
        let runs = self.store.call(|s| s.runs(50)).await?;
        let now = baton_core::clock::now_ms();
        let inbox = self.store.call(move |s| s.inbox(now)).await?;
        app.set_inbox(inbox);
        if app.run.is_none() {
            if let Some(newest) = runs.first() {
                app.show_run(newest.id.clone());
            }
        }
        app.runs = runs;
        let Some(run) = app.run.clone() else {
            return Ok(());
        };
        app.live = control::is_live(&self.paths, &run);
        let id = run.clone();
        let tasks = self.store.call(move |s| s.tasks(&id)).await?;
        app.set_tasks(tasks);
        let Some(selected) = app.selected_task().cloned() else {
            return Ok(());
        };
        let task = selected.id.clone();
        let started = app.run_record().map(|r| r.created_at).unwrap_or(0);
        let (id, t) = (run.clone(), task.clone());
        let events = self
            .store
            .call(move |s| s.task_events_tail(&id, &t, TRANSCRIPT_EVENTS))
            .await?;
        let lines: Vec<Line> = super::transcript::lines(&events, started);
        app.transcript = lines;
        match app.pane {
            Pane::Diff if diff => app.text = self.diff(&selected).await,
            Pane::Log => app.text = self.log(&run, &task).await?,
            _ => {}
        }
        Ok(())
    }

    /// The end of the task's last attempt log, with the run's secrets masked.
    async fn log(&self, run: &str, task: &str) -> Result<Vec<String>, StoreError> {
        let (id, t) = (run.to_string(), task.to_string());
        let attempts = self.store.call(move |s| s.attempts(&id, &t)).await?;
        let Some(last) = attempts.last() else {
            return Ok(vec!["(no attempt yet)".into()]);
        };
        let path = Path::new(&last.log_path);
        let masked = baton_core::logs::masked_tail(&self.store, run, path, LOG_BYTES).await?;
        let mut lines = vec![format!(
            "==> attempt {} ({}) {}",
            last.n, last.status, last.log_path
        )];
        lines.extend(masked.lines().map(str::to_string));
        Ok(lines)
    }

    /// What the task changed, from where it started to its branch's tip,
    /// with the run's secrets masked.
    async fn diff(&self, t: &TaskRecord) -> Vec<String> {
        let text = match baton_core::logs::task_diff(&self.repo, &self.store, t, DIFF_BYTES).await {
            Ok(None) => "(it has not started: nothing changed yet)".into(),
            Ok(Some((text, _))) if text.is_empty() => "(no changes)".into(),
            Ok(Some((mut text, cut))) => {
                if cut {
                    text.push_str("\n[cut: `baton diff` shows all of it]");
                }
                text
            }
            Err(e) => format!("cannot read the diff: {e}"),
        };
        text.lines().map(str::to_string).collect()
    }

    /// Yes or no to a plan waiting in the inbox, in one line: through the
    /// repository's `baton serve` when one is up (it starts the run, as the
    /// watch cannot host one, and decides under its lock); without one, a
    /// no is recorded here and a yes is left to `baton approve ID`.
    async fn decide_plan(&self, id: i64, run: String, approve: bool) -> String {
        let server = crate::client::find(&self.repo.state_dir());
        if let Some(server) = server {
            let action = if approve { "approve" } else { "discard" };
            let path = format!("/api/inbox/{id}/{action}");
            let said = tokio::task::spawn_blocking(move || {
                server.json("POST", &path, Some(&serde_json::json!({})))
            })
            .await;
            return match said {
                Ok(Ok(v)) => v["message"].as_str().unwrap_or("done").to_string(),
                Ok(Err(e)) => format!("error: {e}"),
                Err(e) => format!("error: {e}"),
            };
        }
        if approve {
            return format!("no baton serve is up to run it: `baton approve {id}` runs it here");
        }
        let decided = self.store.call(move |s| {
            baton_core::planner::proposal::decide(s, &run, PlanDecision::Discarded, None)
                .map(|()| run)
        });
        match decided.await {
            Ok(run) => format!("discarded the plan of run {run}"),
            Err(e) => format!("error: {e}"),
        }
    }

    /// Carries out a control and says how it went, in one line.
    pub async fn act(&self, rec: Option<RunRecord>, cmd: Command) -> String {
        let (rec, task, kind, message) = match cmd {
            Command::Control {
                task,
                kind,
                message,
            } => (rec, task, kind, message),
            Command::Answer { id, text } => {
                let answered = control::answer_question(&self.store, &self.paths, id, &text);
                return said(answered.await);
            }
            Command::Plan { id, run, approve } => return self.decide_plan(id, run, approve).await,
            Command::Item { run, task, kind } => {
                let found = self.store.call(move |s| s.run(&run)).await;
                (found.ok(), task, kind, None)
            }
            Command::Comment {
                task,
                path,
                line,
                text,
            } => {
                let Some(rec) = rec else {
                    return "no run shown".into();
                };
                let kept = baton_core::review::add_comment(
                    &self.repo,
                    &self.store,
                    &rec.id,
                    &task,
                    (&path, line),
                    &text,
                );
                return match kept.await {
                    Ok(c) => format!("comment {} on {path}:{line} kept; S sends the review", c.id),
                    Err(e) => format!("error: {e}"),
                };
            }
            Command::SubmitReview { task } => {
                let Some(rec) = rec else {
                    return "no run shown".into();
                };
                let sent = baton_core::review::submit(&self.store, &self.paths, &rec, &task, None);
                return said(sent.await);
            }
            Command::Quit | Command::ShowRun(_) => return String::new(),
        };
        let Some(rec) = rec else {
            return "no run shown".into();
        };
        let request = control::request(
            &self.store,
            &self.paths,
            &rec,
            &task,
            kind,
            message.as_deref(),
        );
        match request.await {
            Ok(a) if a.ok => a.message,
            Ok(a) => format!("error: {}", a.message),
            Err(ControlError::NotLive { .. }) if kind == ControlKind::Retry => {
                self.retry_in_background(&rec, &task)
            }
            Err(e) => format!("error: {e}"),
        }
    }

    /// A finished run's task is retried by `baton retry` in a process of its
    /// own, which this view then watches like any other.
    fn retry_in_background(&self, rec: &RunRecord, task: &str) -> String {
        let log = self
            .paths
            .run_dir(&rec.id)
            .join(format!("retry-{task}.log"));
        let spawned = (|| {
            let out = std::fs::File::create(&log)?;
            let exe = std::env::current_exe()?;
            let mut cmd = std::process::Command::new(exe);
            cmd.current_dir(&self.repo.root)
                .args(["retry", task, "--run", &rec.id])
                .stdin(std::process::Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out);
            // Its own process group: quitting the view does not stop it.
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            cmd.spawn()
        })();
        match spawned {
            Ok(child) => format!(
                "retrying {task}: `baton retry` drives the run (pid {}, output in {})",
                child.id(),
                log.display()
            ),
            Err(e) => format!("error: cannot start `baton retry {task}`: {e}"),
        }
    }
}

/// A control's answer in one line.
fn said(answer: Result<baton_core::engine::Answer, ControlError>) -> String {
    match answer {
        Ok(a) if a.ok => a.message,
        Ok(a) => format!("error: {}", a.message),
        Err(e) => format!("error: {e}"),
    }
}
