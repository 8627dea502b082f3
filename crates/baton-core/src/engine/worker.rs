//! One task from worktree to checked result: attempts, commits, gates,
//! retries with feedback, steering, usage and budget. Merging is the
//! engine's, not the worker's.

use super::gates::{self, GateResult};
use super::meter::Meter;
use super::output::last_lines;
use super::supervise::{self, Ended, Io, Signal, Spec};
use super::{prompt, Shared, WorkerCmd};
use crate::adapter::{self, AgentEvent, LaunchRequest};
use crate::clock::now_ms;
use crate::duration::human;
use crate::plan::TaskSpec;
use crate::store::{AttemptRecord, AttemptUsage, TaskUpdate};
use crate::template::{PromptContext, TaskView};
use serde_json::json;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

/// What the engine hands a worker when it starts (or restarts) a task.
pub(crate) struct Start {
    pub spec: TaskSpec,
    pub branch: String,
    pub worktree: PathBuf,
    /// Where a new worktree starts: the integration head when the task starts.
    pub start_commit: String,
    /// Whether the worktree exists already (resume, steer after approval wait).
    pub existing: bool,
    pub attempts: u32,
    pub feedback: Option<String>,
    /// The agent's session from an earlier attempt, to continue it.
    pub session: Option<String>,
    pub upstream: BTreeMap<String, TaskView>,
}

#[derive(Debug)]
pub(crate) enum Outcome {
    /// Gates passed; ready for approval or merge.
    Done { commit: String, result: String },
    Failed {
        commit: Option<String>,
        reason: String,
        result: String,
    },
    Stopped {
        commit: Option<String>,
        reason: String,
    },
    /// baton is shutting down; the task goes back to pending.
    Interrupted { commit: Option<String> },
}

pub(crate) struct Finished {
    pub task: String,
    pub outcome: Outcome,
}

enum Step {
    Retry(String),
    End(Outcome),
}

pub(crate) async fn run(
    sh: Arc<Shared>,
    st: Start,
    mut cmds: UnboundedReceiver<WorkerCmd>,
) -> Finished {
    let task = st.spec.id.clone();
    let outcome = run_inner(&sh, st, &mut cmds).await;
    let _ = sh.store.set_activity(&sh.run_id, &task, None, None);
    Finished { task, outcome }
}

async fn ensure_worktree(sh: &Shared, st: &Start) -> Result<(), String> {
    if st.existing && st.worktree.join(".git").exists() {
        return Ok(());
    }
    // A crash between creating the branch and recording it leaves the branch:
    // attach to it rather than fail on "already exists" forever.
    let branch_exists = sh
        .repo
        .ref_commit(&format!("refs/heads/{}", st.branch))
        .await
        .ok()
        .flatten()
        .is_some();
    let res = if st.existing || branch_exists {
        sh.repo.restore_worktree(&st.worktree, &st.branch).await
    } else {
        sh.repo
            .add_worktree(&st.worktree, &st.branch, &st.start_commit)
            .await
    };
    res.map_err(|e| format!("cannot create the task's worktree: {e}"))
}

fn failed(reason: String) -> Outcome {
    Outcome::Failed {
        commit: None,
        reason,
        result: String::new(),
    }
}

async fn run_inner(sh: &Shared, mut st: Start, cmds: &mut UnboundedReceiver<WorkerCmd>) -> Outcome {
    let task = st.spec.id.clone();
    if let Err(reason) = ensure_worktree(sh, &st).await {
        return failed(reason);
    }
    let upd = TaskUpdate {
        worktree: Some(st.worktree.display().to_string()),
        start_commit: (!st.existing).then(|| st.start_commit.clone()),
        started_at: (!st.existing).then(now_ms),
        ..Default::default()
    };
    let _ = sh.store.update_task(&sh.run_id, &task, &upd, None);

    let Some(profile) = sh.plan.agents.get(&st.spec.agent).cloned() else {
        return failed(format!("unknown agent profile {:?}", st.spec.agent));
    };
    let adapter = match adapter::for_profile(&profile) {
        Ok(a) => a,
        Err(reason) => return failed(reason),
    };

    loop {
        st.attempts += 1;
        let n = st.attempts;
        let feedback = st.feedback.clone().unwrap_or_default();
        let log = sh.paths.attempt_log(&sh.run_id, &task, n);
        let _ = sh.store.start_attempt(&AttemptRecord {
            run_id: sh.run_id.clone(),
            task_id: task.clone(),
            n,
            status: "running".into(),
            pgid: None,
            exit_code: None,
            reason: None,
            log_path: log.display().to_string(),
            started_at: now_ms(),
            finished_at: None,
            session_id: None,
            input_tokens: None,
            output_tokens: None,
            cost_usd: None,
            model: None,
        });
        let upd = TaskUpdate {
            status: Some("running".into()),
            attempts: Some(n),
            ..Default::default()
        };
        let ev = json!({ "attempt": n, "feedback": !feedback.is_empty(), "resumes_session": st.session.is_some() });
        let _ = sh
            .store
            .update_task(&sh.run_id, &task, &upd, Some(("attempt_started", &ev)));

        let ctx = PromptContext {
            tasks: st.upstream.clone(),
            feedback: feedback.clone(),
            task: task.clone(),
            run: sh.run_id.clone(),
            attempt: n,
        };
        let step = attempt(sh, &mut st, &*adapter, &profile, n, &ctx, log, cmds).await;
        match step {
            Step::End(o) => return o,
            Step::Retry(fb) => st.feedback = Some(fb),
        }
    }
}

const MAX_ENV_PROMPT: usize = 64 * 1024;

/// The environment of an attempt: baton's variables, a home of its own if
/// the profile asks, the adapter's defaults, then the profile's `env`.
fn attempt_env(
    sh: &Shared,
    st: &Start,
    profile: &crate::plan::AgentProfile,
    n: u32,
    prompt: &str,
    feedback: &str,
    adapter_env: Vec<(OsString, OsString)>,
) -> Result<Vec<(OsString, OsString)>, String> {
    let task = &st.spec.id;
    let prompt_file = sh
        .paths
        .attempt_log(&sh.run_id, task, n)
        .with_extension("prompt");
    if let Some(dir) = prompt_file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let masked = sh.redactor.redact(prompt);
    std::fs::write(&prompt_file, masked.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", prompt_file.display()))?;
    let mut env: Vec<(OsString, OsString)> = vec![
        // Some CLIs take their directory from $PWD, not getcwd(): without this
        // they would work in baton's directory, the user's working tree.
        ("PWD".into(), st.worktree.clone().into()),
        ("BATON_RUN".into(), sh.run_id.clone().into()),
        ("BATON_TASK".into(), task.into()),
        ("BATON_ATTEMPT".into(), n.to_string().into()),
        // An environment string over 128 KiB makes exec fail (E2BIG): a
        // bigger prompt is passed as a file instead.
        (
            "BATON_PROMPT".into(),
            if prompt.len() <= MAX_ENV_PROMPT {
                prompt.into()
            } else {
                OsString::new()
            },
        ),
        ("BATON_FEEDBACK".into(), feedback.into()),
        ("BATON_PROMPT_FILE".into(), prompt_file.into()),
    ];
    if profile.hermetic_home {
        let home = sh.paths.run_dir(&sh.run_id).join("homes").join(task);
        for sub in ["", ".config", ".local/share", ".cache", ".local/state"] {
            std::fs::create_dir_all(home.join(sub))
                .map_err(|e| format!("cannot create the agent's home {}: {e}", home.display()))?;
        }
        env.push(("HOME".into(), home.clone().into()));
        env.push(("XDG_CONFIG_HOME".into(), home.join(".config").into()));
        env.push(("XDG_DATA_HOME".into(), home.join(".local/share").into()));
        env.push(("XDG_CACHE_HOME".into(), home.join(".cache").into()));
        env.push(("XDG_STATE_HOME".into(), home.join(".local/state").into()));
        env.push(("CODEX_HOME".into(), home.join(".codex").into()));
    }
    env.extend(adapter_env);
    env.extend(profile.env.iter().map(|(k, v)| (k.into(), v.into())));
    Ok(env)
}

/// Tokens that earlier attempts already counted in the same agent session
/// (agents like Codex report session totals).
fn session_base(sh: &Shared, task: &str, session: Option<&str>) -> (u64, u64) {
    let Some(session) = session else {
        return (0, 0);
    };
    sh.store
        .attempts(&sh.run_id, task)
        .map(|atts| {
            atts.iter()
                .filter(|a| a.session_id.as_deref() == Some(session))
                .fold((0, 0), |acc, a| {
                    (
                        acc.0 + a.input_tokens.unwrap_or(0).max(0) as u64,
                        acc.1 + a.output_tokens.unwrap_or(0).max(0) as u64,
                    )
                })
        })
        .unwrap_or((0, 0))
}

/// Follows an attempt's stream: events into the store, what the agent is
/// doing, usage, and the task's budget.
struct Watch<'a> {
    sh: &'a Shared,
    task: &'a str,
    n: u32,
    activity: &'static str,
    meter: Meter,
    prior_cost: f64,
    budget: Option<f64>,
    session: Option<String>,
    last_error: Option<String>,
}

impl Watch<'_> {
    fn set_activity(&mut self, a: &'static str) {
        if self.activity != a {
            self.activity = a;
            let _ = self
                .sh
                .store
                .set_activity(&self.sh.run_id, self.task, Some(a), Some(now_ms()));
        }
    }

    fn on(&mut self, sig: Signal) -> Option<WorkerCmd> {
        match sig {
            Signal::Started(_) => self.set_activity("starting"),
            Signal::Output => {
                if matches!(self.activity, "starting" | "stalled") {
                    self.set_activity("working");
                }
            }
            Signal::Stalled => {
                self.set_activity("stalled");
                let _ = self.sh.store.event(
                    &self.sh.run_id,
                    Some(self.task),
                    Some(self.n),
                    "stalled",
                    &json!({ "activity": "stalled" }),
                );
            }
            Signal::Events(evs) => {
                for e in evs {
                    if let Some(c) = self.event(e) {
                        return Some(c);
                    }
                }
            }
        }
        None
    }

    fn event(&mut self, e: &AgentEvent) -> Option<WorkerCmd> {
        let data = serde_json::to_value(e).unwrap_or_default();
        let _ = self.sh.store.event(
            &self.sh.run_id,
            Some(self.task),
            Some(self.n),
            e.kind(),
            &data,
        );
        match e {
            AgentEvent::Session { id, model } => {
                if !id.is_empty() {
                    self.session = Some(id.clone());
                    let _ =
                        self.sh
                            .store
                            .set_attempt_session(&self.sh.run_id, self.task, self.n, id);
                }
                if model.is_some() && self.meter.model.is_none() {
                    self.meter.model = model.clone();
                }
                self.set_activity("waiting_model");
            }
            AgentEvent::Message { .. } | AgentEvent::TurnEnd { .. } => self.set_activity("working"),
            AgentEvent::ToolCall { .. } => self.set_activity("running_tool"),
            AgentEvent::ToolResult { .. } | AgentEvent::Retrying { .. } => {
                self.set_activity("waiting_model")
            }
            AgentEvent::Error { message } => self.last_error = Some(message.clone()),
            AgentEvent::Usage(u) => {
                self.meter.apply(u);
                let cost = self.meter.cost();
                let usage = AttemptUsage {
                    input_tokens: Some(self.meter.input),
                    output_tokens: Some(self.meter.output),
                    cost_usd: cost,
                    model: self.meter.model.as_deref(),
                };
                let _ = self
                    .sh
                    .store
                    .set_attempt_usage(&self.sh.run_id, self.task, self.n, &usage);
                if let (Some(budget), Some(cost)) = (self.budget, cost) {
                    let spent = self.prior_cost + cost;
                    if spent > budget {
                        return Some(WorkerCmd::OverBudget(format!(
                            "budget exceeded: the task spent ${spent:.4} of its budget_usd ${budget:.4}"
                        )));
                    }
                }
            }
        }
        None
    }
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    sh: &Shared,
    st: &mut Start,
    adapter: &dyn adapter::Adapter,
    profile: &crate::plan::AgentProfile,
    n: u32,
    ctx: &PromptContext,
    log: PathBuf,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Step {
    let task = st.spec.id.clone();
    let task = task.as_str();
    let finish = |status: &str, code: Option<i32>, reason: Option<&str>| {
        let _ = sh
            .store
            .finish_attempt(&sh.run_id, task, n, status, code, reason);
    };
    let full_prompt = match prompt::build(&st.spec, profile, ctx, &st.worktree, &sh.repo.root) {
        Ok(p) => p,
        Err(reason) => {
            finish("failed", None, Some(&reason));
            return Step::End(failed(reason));
        }
    };
    // A resumed session has the task already: it gets only what is new.
    let agent_prompt = match (&st.session, ctx.feedback.is_empty()) {
        (Some(_), false) => format!("Feedback on your previous attempt:\n{}", ctx.feedback),
        _ => full_prompt.clone(),
    };
    let launch = match adapter.launch(&LaunchRequest {
        profile,
        prompt: &agent_prompt,
        worktree: &st.worktree,
        attempt: n,
        session: st.session.as_deref(),
        files: &st.spec.context,
    }) {
        Ok(l) => l,
        Err(reason) => {
            finish("failed", None, Some(&reason));
            return Step::End(failed(reason));
        }
    };
    let env = match attempt_env(sh, st, profile, n, &full_prompt, &ctx.feedback, launch.env) {
        Ok(e) => e,
        Err(reason) => {
            finish("failed", None, Some(&reason));
            return Step::End(failed(reason));
        }
    };
    let spec = Spec {
        program: launch.program,
        args: launch.args,
        env: env.clone(),
        cwd: &st.worktree,
        log,
        timeout: st.spec.timeout,
    };
    let prior_cost = sh
        .store
        .attempts(&sh.run_id, task)
        .map(|a| {
            a.iter()
                .filter(|a| a.n != n)
                .filter_map(|a| a.cost_usd)
                .sum()
        })
        .unwrap_or(0.0);
    let mut watch = Watch {
        sh,
        task,
        n,
        activity: "",
        meter: Meter::new(
            sh.prices.clone(),
            profile.model.clone(),
            session_base(sh, task, st.session.as_deref()),
        ),
        prior_cost,
        budget: st.spec.budget_usd,
        session: None,
        last_error: None,
    };
    let store = sh.store.clone();
    let run_id = sh.run_id.clone();
    let steer = |m: &str| adapter.steer_line(m);
    let io = Io {
        parser: Some(adapter.parser()),
        stdin_lines: launch.stdin_lines,
        steer: Some(&steer),
        stall_after: Some(st.spec.stall_after),
        redactor: Some(sh.redactor.clone()),
    };
    let mut on = |sig: Signal| {
        if let Signal::Started(pgid) = sig {
            let _ = store.set_attempt_pgid(&run_id, task, n, pgid);
        }
        watch.on(sig)
    };
    let out = supervise::run(spec, io, sh.watchdog.as_ref(), cmds, &mut on).await;
    if let Some(s) = watch.session.clone() {
        st.session = Some(s);
    }
    let finished = out
        .parser
        .map(|mut p| p.finish(&out.stdout_tail))
        .unwrap_or_default();

    // Whatever happened, the work is kept.
    let label = match &out.ended {
        Ended::Exited(0) => "done".to_string(),
        Ended::Exited(c) => format!("exit {c}"),
        Ended::TimedOut => "timed out".into(),
        Ended::Cmd(WorkerCmd::Stop) => "stopped".into(),
        Ended::Cmd(WorkerCmd::Steer(_)) => "steered".into(),
        Ended::Cmd(WorkerCmd::Shutdown) => "interrupted".into(),
        Ended::Cmd(WorkerCmd::OverBudget(_)) => "over budget".into(),
        Ended::SpawnFailed(_) => "could not start".into(),
    };
    let commit = match commit_work(sh, task, n, &st.worktree, &label).await {
        Ok(c) => c,
        Err(reason) => {
            finish("failed", None, Some(&reason));
            let interrupted = matches!(out.ended, Ended::Cmd(WorkerCmd::Shutdown));
            return Step::End(if interrupted {
                Outcome::Interrupted { commit: None }
            } else {
                Outcome::Failed {
                    commit: None,
                    reason,
                    result: finished.final_message,
                }
            });
        }
    };
    let last_error = watch.last_error.clone();
    let with_last_error = |r: String| match &last_error {
        Some(e) => format!("{r}; the agent's last error: {}", adapter::clip(e, 300)),
        None => r,
    };

    let (fail_reason, feedback) = match out.ended {
        Ended::Cmd(WorkerCmd::Shutdown) => {
            finish("interrupted", None, Some("baton was stopped"));
            return Step::End(Outcome::Interrupted { commit });
        }
        Ended::Cmd(WorkerCmd::Stop) => {
            finish("stopped", None, Some("stopped by request"));
            return Step::End(Outcome::Stopped {
                commit,
                reason: "stopped by request (baton stop)".into(),
            });
        }
        Ended::Cmd(WorkerCmd::OverBudget(reason)) => {
            finish("failed", None, Some(&reason));
            return Step::End(Outcome::Failed {
                commit,
                reason,
                result: finished.final_message,
            });
        }
        Ended::Cmd(WorkerCmd::Steer(msg)) => {
            finish("steered", None, Some("restarted with a message"));
            return Step::Retry(msg);
        }
        Ended::SpawnFailed(reason) => {
            finish("failed", None, Some(&reason));
            return Step::End(Outcome::Failed {
                commit,
                reason,
                result: String::new(),
            });
        }
        Ended::TimedOut => {
            let r = with_last_error(format!(
                "attempt {n} timed out after {}",
                human(st.spec.timeout)
            ));
            (
                r.clone(),
                format!("{r}; the agent was stopped. Work in smaller steps."),
            )
        }
        Ended::Exited(code) if code != 0 => {
            let mut r = format!("agent exited with status {code}");
            if let Some(e) = finished.error.as_ref().or(last_error.as_ref()) {
                r = format!("{r}: {}", adapter::clip(e, 300));
            }
            let tail = out.stderr_tail.trim();
            let fb = if tail.is_empty() {
                r.clone()
            } else {
                format!(
                    "{r}. The end of its error output:\n{}",
                    last_lines(tail, 20)
                )
            };
            (r, fb)
        }
        Ended::Exited(_) => match (&finished.error, finished.complete) {
            (Some(e), _) => (
                format!("agent reported an error: {e}"),
                format!("The agent reported an error: {e}"),
            ),
            (None, false) => {
                let r = with_last_error("the agent's output ended without its final result (interrupted, or not the output format baton expects)".to_string());
                (r.clone(), r)
            }
            (None, true) => (String::new(), String::new()),
        },
    };
    let result = finished.final_message.clone();
    if fail_reason.is_empty() {
        if let Some(re) = &st.spec.fail_if {
            if let Some(m) = re.find(&result) {
                let reason = format!(
                    "fail_if /{}/ matched the final message: {:?}",
                    re.as_str(),
                    m.as_str()
                );
                finish("failed", Some(0), Some(&reason));
                let _ = sh.store.update_task(
                    &sh.run_id,
                    task,
                    &TaskUpdate {
                        result: Some(result.clone()),
                        ..Default::default()
                    },
                    None,
                );
                return Step::End(Outcome::Failed {
                    commit,
                    reason,
                    result,
                });
            }
        }
        let _ = sh.store.update_task(
            &sh.run_id,
            task,
            &TaskUpdate {
                result: Some(result.clone()),
                ..Default::default()
            },
            None,
        );
        let gate_env: Vec<_> = env
            .into_iter()
            .filter(|(k, _)| k != "BATON_PROMPT")
            .collect();
        let run = gates::GateRun {
            task,
            attempt: n,
            gates: &st.spec.gates,
            worktree: &st.worktree,
            timeout: st.spec.timeout,
            env: &gate_env,
        };
        match gates::run_all(sh, run, cmds).await {
            GateResult::Passed => {
                finish("succeeded", Some(0), None);
                let head = commit.unwrap_or_else(|| st.start_commit.clone());
                return Step::End(Outcome::Done {
                    commit: head,
                    result,
                });
            }
            GateResult::Interrupted(cmd) => {
                return match cmd {
                    WorkerCmd::Shutdown => {
                        finish(
                            "interrupted",
                            Some(0),
                            Some("baton was stopped during gates"),
                        );
                        Step::End(Outcome::Interrupted { commit })
                    }
                    WorkerCmd::Stop => {
                        finish("stopped", Some(0), Some("stopped during gates"));
                        Step::End(Outcome::Stopped {
                            commit,
                            reason: "stopped by request (baton stop)".into(),
                        })
                    }
                    WorkerCmd::OverBudget(reason) => {
                        finish("failed", Some(0), Some(&reason));
                        Step::End(Outcome::Failed {
                            commit,
                            reason,
                            result,
                        })
                    }
                    WorkerCmd::Steer(msg) => {
                        finish("steered", Some(0), Some("restarted with a message"));
                        Step::Retry(msg)
                    }
                };
            }
            GateResult::Failed { reason, feedback } => {
                finish("failed", Some(0), Some(&reason));
                return retry_or_fail(sh, st, n, commit, reason, feedback, result);
            }
        }
    }
    let code = match out.ended {
        Ended::Exited(c) => Some(c),
        _ => None,
    };
    finish(
        if code.is_some() {
            "failed"
        } else {
            "timed_out"
        },
        code,
        Some(&fail_reason),
    );
    retry_or_fail(sh, st, n, commit, fail_reason, feedback, result)
}

fn retry_or_fail(
    sh: &Shared,
    st: &Start,
    n: u32,
    commit: Option<String>,
    reason: String,
    feedback: String,
    result: String,
) -> Step {
    let failures = count_failures(sh, &st.spec.id).max(1);
    let _ = sh.store.update_task(
        &sh.run_id,
        &st.spec.id,
        &TaskUpdate {
            failures: Some(failures),
            feedback: Some(Some(feedback.clone())),
            ..Default::default()
        },
        Some((
            "attempt_failed",
            &json!({ "attempt": n, "reason": reason, "retry": failures <= st.spec.retries }),
        )),
    );
    if failures <= st.spec.retries {
        Step::Retry(feedback)
    } else {
        let reason = if st.spec.retries > 0 {
            format!("{reason} (after {failures} attempts)")
        } else {
            reason
        };
        Step::End(Outcome::Failed {
            commit,
            reason,
            result,
        })
    }
}

/// Failed attempts of the task so far (across resumes), read back from the
/// store so that steered and interrupted attempts do not count.
fn count_failures(sh: &Shared, task: &str) -> u32 {
    // A retry asked for by a person starts the count again.
    let from = sh.store.retry_from(&sh.run_id, task).unwrap_or(0);
    sh.store
        .attempts(&sh.run_id, task)
        .map(|a| {
            a.iter()
                .filter(|a| a.n > from && (a.status == "failed" || a.status == "timed_out"))
                .count() as u32
        })
        .unwrap_or(0)
}

/// Commits what the attempt left; returns the branch head afterwards (the
/// agent may have committed on its own too). Err: the work could not be
/// committed; it stays in the worktree, which is kept.
async fn commit_work(
    sh: &Shared,
    task: &str,
    n: u32,
    worktree: &std::path::Path,
    label: &str,
) -> Result<Option<String>, String> {
    let msg = format!("baton: {task} attempt {n} ({label})");
    match sh.repo.commit_all(worktree, &msg).await {
        Ok(committed) => {
            let head = sh.repo.head(worktree).await.ok();
            if committed {
                let _ = sh.store.event(
                    &sh.run_id,
                    Some(task),
                    Some(n),
                    "committed",
                    &json!({ "commit": head }),
                );
            }
            Ok(head)
        }
        Err(e) => {
            let _ = sh.store.event(
                &sh.run_id,
                Some(task),
                Some(n),
                "commit_failed",
                &json!({ "error": e.to_string() }),
            );
            Err(format!(
                "cannot commit the attempt's work (it is left uncommitted in {}): {e}",
                worktree.display()
            ))
        }
    }
}
