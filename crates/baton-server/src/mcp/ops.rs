//! What the MCP tools do, over the same state the HTTP API uses. Each
//! returns the JSON the tool answers with, or a message for a tool error.

use super::args::*;
use super::Scope;
use crate::runner;
use crate::state::AppState;
use baton_core::model::ControlKind;
use baton_core::store::RunRecord;
use baton_core::Plan;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type Answer = Result<Value, String>;

/// Longest a `wait` may block; a client asks again for longer.
const MAX_WAIT: Duration = Duration::from_secs(3600);
const DEFAULT_WAIT: Duration = Duration::from_secs(600);
/// How much of a log or diff a tool returns by default, and at most.
const DEFAULT_TAIL: u64 = 16 * 1024;
const MAX_TEXT: u64 = 1024 * 1024;

pub struct Ops {
    pub state: Arc<AppState>,
    pub scope: Scope,
}

fn runner_err(e: runner::RunnerError) -> String {
    e.to_string()
}

impl Ops {
    /// The run a call is about: the one named, else the scope's, else the
    /// latest. A lead task's tools reach only its own run.
    async fn run(&self, named: Option<&str>) -> Result<RunRecord, String> {
        if let (Some(own), Some(n)) = (&self.scope.run, named) {
            if own != n {
                return Err(format!("these tools act on run {own} only, not {n}"));
            }
        }
        let id = named.or(self.scope.run.as_deref()).map(str::to_string);
        self.state
            .store
            .call(move |s| s.find_run(id.as_deref()))
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn plan_check(&self, a: PlanArg) -> Answer {
        let root = &self.state.opts.repo.root;
        let text = self.state.opts.compose(&a.plan);
        let plan =
            Plan::parse(Path::new("plan.toml"), &text, Some(root)).map_err(|e| e.to_string())?;
        plan.resolve_base(&self.state.opts.repo)
            .await
            .map_err(|e| e.to_string())?;
        let phases: Vec<Vec<&str>> = plan
            .phases()
            .iter()
            .map(|p| p.iter().map(|t| t.id.as_str()).collect())
            .collect();
        Ok(json!({ "valid": true, "tasks": plan.tasks.len(), "phases": phases }))
    }

    pub async fn run_start(&self, a: RunStartArg) -> Answer {
        if self.scope.run.is_some() {
            return Err(
                "a lead task adds tasks to its own run (task_add); it cannot start runs".into(),
            );
        }
        let run = match (a.plan, a.path, a.tasks) {
            (Some(text), None, None) => {
                runner::start_source(&self.state, Path::new("mcp-plan.toml"), &text).await
            }
            (None, Some(path), None) => runner::start_plan(&self.state, &path).await,
            (None, None, Some(tasks)) => {
                let source = self.plan_of_tasks(&tasks)?;
                runner::start_source(&self.state, Path::new("mcp-tasks.toml"), &source).await
            }
            _ => return Err("give exactly one of `plan` (plan text), `path` (a plan file in the repository) or `tasks`".into()),
        }
        .map_err(runner_err)?;
        Ok(json!({ "run": run, "started": true }))
    }

    /// A plan of `tasks` with the profiles and defaults of the server's plan.
    fn plan_of_tasks(&self, tasks: &[TaskArg]) -> Result<String, String> {
        if tasks.is_empty() {
            return Err("`tasks` is empty".into());
        }
        let root = &self.state.opts.repo.root;
        let config = std::fs::read_to_string(root.join(&self.state.opts.plan)).unwrap_or_default();
        let mut doc: toml::Table = config
            .parse()
            .map_err(|e| format!("{}: {e}", self.state.opts.plan.display()))?;
        doc.remove("task");
        let mut source = toml::to_string(&doc).map_err(|e| e.to_string())?;
        for (n, t) in tasks.iter().enumerate() {
            let id = t.id.as_deref().ok_or_else(|| {
                format!("tasks[{n}] has no `id` (run_start's tasks need one each)")
            })?;
            source.push_str(&t.snippet(id)?);
        }
        Ok(source)
    }

    pub async fn task_add(&self, a: TaskAddArg) -> Answer {
        let rec = self.run(a.run.as_deref()).await?;
        let id = a.task.id.clone().unwrap_or_else(|| next_id(&a.task.prompt));
        let snippet = a.task.snippet(&id)?;
        // The cap is counted in the same write that adds the task.
        runner::add_to_run(&self.state, &rec.id, &id, &snippet, self.scope.max_tasks)
            .await
            .map_err(runner_err)?;
        Ok(json!({ "run": rec.id, "task": id, "queued": true }))
    }

    pub async fn run_status(&self, a: RunArg) -> Answer {
        let rec = self.run(a.run.as_deref()).await?;
        self.report(&rec.id).await
    }

    async fn report(&self, run: &str) -> Answer {
        runner::report(&self.state, run).await
    }

    pub async fn task_logs(&self, a: LogsArg) -> Answer {
        let rec = self.run(a.run.as_deref()).await?;
        let (run, task) = (rec.id.clone(), a.task.clone());
        let attempts = self
            .state
            .store
            .call(move |s| s.attempts(&run, &task))
            .await
            .map_err(|e| e.to_string())?;
        self.known_task(&rec, &a.task).await?;
        let Some(last) = attempts.last() else {
            return Ok(json!({ "run": rec.id, "task": a.task, "attempt": null, "log": "" }));
        };
        let cap = a.bytes.unwrap_or(DEFAULT_TAIL).clamp(1, MAX_TEXT);
        let log = baton_core::logs::masked_tail(
            &self.state.store,
            &rec.id,
            Path::new(&last.log_path),
            cap,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(
            json!({ "run": rec.id, "task": a.task, "attempt": last.n, "status": last.status, "log": log }),
        )
    }

    pub async fn task_diff(&self, a: TaskRef) -> Answer {
        let rec = self.run(a.run.as_deref()).await?;
        let t = self.known_task(&rec, &a.task).await?;
        let repo = &self.state.opts.repo;
        let diff =
            baton_core::logs::task_diff(repo, &self.state.store, &t, MAX_TEXT as usize).await?;
        let Some((diff, cut)) = diff else {
            return Ok(
                json!({ "run": rec.id, "task": a.task, "diff": "", "note": "it has not started" }),
            );
        };
        Ok(json!({ "run": rec.id, "task": a.task, "diff": diff, "cut": cut }))
    }

    pub async fn control(&self, a: TaskRef, kind: ControlKind, message: Option<String>) -> Answer {
        let rec = self.run(a.run.as_deref()).await?;
        if kind == ControlKind::Steer && message.as_deref().is_none_or(|m| m.trim().is_empty()) {
            return Err("steer needs a non-empty `message`".into());
        }
        let answer = runner::control(&self.state, &rec.id, &a.task, kind, message.as_deref())
            .await
            .map_err(runner_err)?;
        if !answer.ok {
            return Err(answer.message);
        }
        Ok(json!({ "run": rec.id, "task": a.task, "ok": true, "message": answer.message }))
    }

    /// Blocks until the task (or the run) has finished, or the timeout.
    pub async fn wait(&self, a: WaitArg) -> Answer {
        let rec = self.run(a.run.as_deref()).await?;
        if let Some(task) = &a.task {
            self.known_task(&rec, task).await?;
        }
        let limit = a
            .timeout_s
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_WAIT)
            .min(MAX_WAIT);
        let deadline = Instant::now() + limit;
        loop {
            let report = self.report(&rec.id).await?;
            let done = match &a.task {
                Some(task) => report["tasks"]
                    .as_array()
                    .and_then(|ts| ts.iter().find(|t| t["id"] == task.as_str()))
                    .and_then(|t| t["status"].as_str())
                    .and_then(|s| s.parse::<baton_core::model::TaskStatus>().ok())
                    .is_some_and(|s| s.is_finished()),
                None => report["status"] != "running",
            };
            if done || Instant::now() >= deadline {
                return Ok(
                    json!({ "run": rec.id, "task": a.task, "done": done, "report": report }),
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn message_send(&self, a: MessageSendArg) -> Answer {
        let rec = self.run(a.run.as_deref()).await?;
        let from = self.scope.task.as_deref();
        let (id, answer) = runner::send_message(&self.state, &rec.id, from, &a.to, &a.text)
            .await
            .map_err(runner_err)?;
        if !answer.ok {
            return Err(answer.message);
        }
        Ok(json!({ "run": rec.id, "to": a.to, "id": id, "delivery": answer.message }))
    }

    pub async fn message_read(&self, a: MessageReadArg) -> Answer {
        let rec = self.run(a.run.as_deref()).await?;
        let Some(task) = a.task.or_else(|| self.scope.task.clone()) else {
            return Err("name the task whose messages to read (`task`)".into());
        };
        self.known_task(&rec, &task).await?;
        let (run, t, after) = (rec.id.clone(), task.clone(), a.after.unwrap_or(0));
        let messages = self
            .state
            .store
            .call(move |s| s.messages_to(&run, &t, after))
            .await
            .map_err(|e| e.to_string())?;
        let list: Vec<Value> = messages
            .iter()
            .map(|m| json!({ "id": m.id, "from": m.from, "text": m.text, "at": baton_core::clock::rfc3339(m.ts) }))
            .collect();
        Ok(json!({ "run": rec.id, "task": task, "messages": list }))
    }

    /// The inbox (a lead's tools see their own run's items only).
    pub async fn inbox_list(&self) -> Answer {
        let now = baton_core::clock::now_ms();
        let mut items = self
            .state
            .store
            .call(move |s| s.inbox(now))
            .await
            .map_err(|e| e.to_string())?;
        if let Some(own) = &self.scope.run {
            items.retain(|i| &i.run == own);
        }
        Ok(json!({ "count": items.len(), "items": items }))
    }

    /// Answers a question in the inbox.
    pub async fn inbox_answer(&self, a: InboxAnswerArg) -> Answer {
        let st = &self.state;
        if let Some(own) = &self.scope.run {
            let id = a.id;
            let q = st
                .store
                .call(move |s| s.question(id))
                .await
                .map_err(|e| e.to_string())?;
            if q.as_ref().is_some_and(|q| &q.run_id != own) {
                return Err(format!("these tools act on run {own} only"));
            }
            // A question for a person is not its asker's to answer.
            if q.is_some_and(|q| Some(&q.task_id) == self.scope.task.as_ref()) {
                return Err("a task cannot answer its own question: a person does".into());
            }
        }
        let answer = baton_core::control::answer_question(&st.store, &st.paths, a.id, &a.text)
            .await
            .map_err(|e| e.to_string())?;
        match answer.ok {
            true => Ok(json!(answer)),
            false => Err(answer.message),
        }
    }

    async fn known_task(
        &self,
        rec: &RunRecord,
        task: &str,
    ) -> Result<baton_core::store::TaskRecord, String> {
        let (run, t) = (rec.id.clone(), task.to_string());
        let found = self
            .state
            .store
            .call(move |s| s.task(&run, &t))
            .await
            .map_err(|e| e.to_string())?;
        found.ok_or_else(|| format!("run {} has no task {task:?}", rec.id))
    }
}

/// An id for a task added without one: from its prompt, made unique by time.
fn next_id(prompt: &str) -> String {
    let words: Vec<String> = prompt
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(3)
        .map(str::to_ascii_lowercase)
        .collect();
    let stamp = baton_core::clock::now_ms() % 100_000;
    if words.is_empty() {
        format!("t{stamp}")
    } else {
        format!("{}-{stamp}", words.join("-"))
    }
}
