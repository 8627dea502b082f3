//! One task from worktree to checked result: attempts, commits, gates,
//! retries with feedback, steering. Merging is the engine's, not the worker's.

use super::gates::{self, GateResult};
use super::supervise::{self, Ended, Spec};
use super::{prompt, Shared, WorkerCmd};
use crate::adapter::{self, LaunchRequest};
use crate::clock::now_ms;
use crate::duration::human;
use crate::plan::TaskSpec;
use crate::store::{AttemptRecord, TaskUpdate};
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
    pub failures: u32,
    pub feedback: Option<String>,
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
    Finished { task, outcome }
}

async fn ensure_worktree(sh: &Shared, st: &Start) -> Result<(), String> {
    if st.existing && st.worktree.join(".git").exists() {
        return Ok(());
    }
    let res = if st.existing {
        sh.repo.restore_worktree(&st.worktree, &st.branch).await
    } else {
        sh.repo
            .add_worktree(&st.worktree, &st.branch, &st.start_commit)
            .await
    };
    res.map_err(|e| format!("cannot create the task's worktree: {e}"))
}

async fn run_inner(sh: &Shared, mut st: Start, cmds: &mut UnboundedReceiver<WorkerCmd>) -> Outcome {
    let task = st.spec.id.clone();
    if let Err(reason) = ensure_worktree(sh, &st).await {
        return Outcome::Failed {
            commit: None,
            reason,
            result: String::new(),
        };
    }
    let upd = TaskUpdate {
        worktree: Some(st.worktree.display().to_string()),
        start_commit: (!st.existing).then(|| st.start_commit.clone()),
        started_at: (!st.existing).then(now_ms),
        ..Default::default()
    };
    let _ = sh.store.update_task(&sh.run_id, &task, &upd, None);

    let Some(profile) = sh.plan.agents.get(&st.spec.agent).cloned() else {
        return Outcome::Failed {
            commit: None,
            reason: format!("unknown agent profile {:?}", st.spec.agent),
            result: String::new(),
        };
    };
    let adapter = match adapter::for_profile(&profile) {
        Ok(a) => a,
        Err(reason) => {
            return Outcome::Failed {
                commit: None,
                reason,
                result: String::new(),
            }
        }
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
        });
        let upd = TaskUpdate {
            status: Some("running".into()),
            attempts: Some(n),
            ..Default::default()
        };
        let ev = json!({ "attempt": n, "feedback": !feedback.is_empty() });
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
        let step = attempt(sh, &st, &*adapter, &profile, n, &ctx, log, cmds).await;
        match step {
            Step::End(o) => return o,
            Step::Retry(fb) => st.feedback = Some(fb),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    sh: &Shared,
    st: &Start,
    adapter: &dyn adapter::Adapter,
    profile: &crate::plan::AgentProfile,
    n: u32,
    ctx: &PromptContext,
    log: PathBuf,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Step {
    let task = &st.spec.id;
    let finish = |status: &str, code: Option<i32>, reason: Option<&str>| {
        let _ = sh
            .store
            .finish_attempt(&sh.run_id, task, n, status, code, reason);
    };
    let full_prompt = match prompt::build(&st.spec, profile, ctx, &st.worktree, &sh.repo.root) {
        Ok(p) => p,
        Err(reason) => {
            finish("failed", None, Some(&reason));
            return Step::End(Outcome::Failed {
                commit: None,
                reason,
                result: String::new(),
            });
        }
    };
    let launch = match adapter.launch(&LaunchRequest {
        profile,
        prompt: &full_prompt,
        worktree: &st.worktree,
        attempt: n,
        session: None,
    }) {
        Ok(l) => l,
        Err(reason) => {
            finish("failed", None, Some(&reason));
            return Step::End(Outcome::Failed {
                commit: None,
                reason,
                result: String::new(),
            });
        }
    };
    let mut env: Vec<(OsString, OsString)> = vec![
        ("BATON_RUN".into(), sh.run_id.clone().into()),
        ("BATON_TASK".into(), task.into()),
        ("BATON_ATTEMPT".into(), n.to_string().into()),
        ("BATON_PROMPT".into(), full_prompt.clone().into()),
        ("BATON_FEEDBACK".into(), ctx.feedback.clone().into()),
    ];
    env.extend(launch.env);
    let spec = Spec {
        program: launch.program,
        args: launch.args,
        env: env.clone(),
        cwd: &st.worktree,
        log,
        timeout: st.spec.timeout,
    };
    let run_id = sh.run_id.clone();
    let store = sh.store.clone();
    let task_id = task.clone();
    let out = supervise::run(
        spec,
        Some(adapter.parser()),
        sh.watchdog.as_ref(),
        cmds,
        move |pgid| {
            let _ = store.set_attempt_pgid(&run_id, &task_id, n, pgid);
        },
    )
    .await;
    for e in &out.events {
        let _ = sh.store.event(
            &sh.run_id,
            Some(task),
            Some(n),
            "agent",
            &json!({ "event": format!("{e:?}") }),
        );
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
        Ended::SpawnFailed(_) => "could not start".into(),
    };
    let commit = commit_work(sh, task, n, &st.worktree, &label).await;

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
            let r = format!("attempt {n} timed out after {}", human(st.spec.timeout));
            (
                r.clone(),
                format!("{r}; the agent was stopped. Work in smaller steps."),
            )
        }
        Ended::Exited(code) if code != 0 => {
            let r = format!("agent exited with status {code}");
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
        Ended::Exited(_) => match finished.error.clone() {
            Some(e) => (
                format!("agent reported an error: {e}"),
                format!("The agent reported an error: {e}"),
            ),
            None => (String::new(), String::new()),
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
                    WorkerCmd::Steer(msg) => {
                        finish("steered", Some(0), Some("restarted with a message"));
                        Step::Retry(msg)
                    }
                };
            }
            GateResult::Failed {
                reason, feedback, ..
            } => {
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
    let failures = count_failures(sh, &st.spec.id).max(st.failures + 1);
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
            format!("{reason} (after {} attempts)", failures)
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
    sh.store
        .attempts(&sh.run_id, task)
        .map(|a| {
            a.iter()
                .filter(|a| a.status == "failed" || a.status == "timed_out")
                .count() as u32
        })
        .unwrap_or(0)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Commits what the attempt left; returns the branch head afterwards (the
/// agent may have committed on its own too).
async fn commit_work(
    sh: &Shared,
    task: &str,
    n: u32,
    worktree: &std::path::Path,
    label: &str,
) -> Option<String> {
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
            head
        }
        Err(e) => {
            let _ = sh.store.event(
                &sh.run_id,
                Some(task),
                Some(n),
                "commit_failed",
                &json!({ "error": e.to_string() }),
            );
            sh.repo.head(worktree).await.ok()
        }
    }
}
