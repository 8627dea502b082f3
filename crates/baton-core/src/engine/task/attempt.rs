//! One attempt, in phases: prepare (prompt, launch, environment), run the
//! agent, keep its work (a commit, and its end kept under the attempt's
//! ref whatever happened), judge how the agent ended, then the gates. A
//! request that cuts it short (stop, steer, shutdown, budget) maps to one
//! outcome in one place, whichever phase it came in.

use super::history;
use super::lead;
use super::meter::Meter;
use super::prompt;
use super::remote;
use super::start::Start;
use super::watch::Watch;
use crate::adapter::{self, Adapter, Finish, LaunchRequest};
use crate::clock::now_ms;
use crate::duration::human;
use crate::engine::desk::workspace;
use crate::engine::messages::{Outcome, WorkerCmd};
use crate::engine::process::gates::{self, GateResult};
use crate::engine::process::jail;
use crate::engine::process::output::last_lines;
use crate::engine::process::supervise::{self, Ended, Io, Spec};
use crate::engine::shared::Shared;
use crate::git::Repo;
use crate::model::{Activity, AttemptStatus, EventKind};
use crate::plan::{AgentProfile, Executor};
use crate::store::{AttemptRecord, Store, TaskUpdate};
use crate::template::PromptContext;
use serde_json::json;
use std::ffi::OsString;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

/// How an attempt ended, for the worker.
pub(crate) enum Step {
    /// The task is over, one way or another.
    End(Outcome),
    /// A person steered it: the next attempt gets the message.
    Steered(String),
    /// The agent or a gate failed; a retry may follow.
    Failed {
        reason: String,
        feedback: String,
        commit: Option<String>,
        result: String,
    },
    /// The provider limited the agent (rate limit, overload, quota): not the
    /// task's failure; it may wait and go on.
    Limited(Limited),
}

/// What an attempt the provider limited left.
pub(crate) struct Limited {
    pub limit: adapter::limits::Limit,
    pub reason: String,
    pub commit: Option<String>,
    pub result: String,
}

/// Records how attempt `n` of a task ended.
struct Ledger<'a> {
    sh: &'a Shared,
    task: &'a str,
    n: u32,
}

impl Ledger<'_> {
    async fn finish(&self, status: AttemptStatus, code: Option<i32>, reason: Option<&str>) {
        let (task, n) = (self.task.to_string(), self.n);
        let reason = reason.map(str::to_string);
        let res = self
            .sh
            .db(move |s, run| s.finish_attempt(run, &task, n, status, code, reason.as_deref()))
            .await;
        if let Err(e) = res {
            tracing::error!("cannot record the end of attempt {n} of {}: {e}", self.task);
        }
    }

    async fn fail(&self, reason: String) -> Step {
        self.finish(AttemptStatus::Failed, None, Some(&reason))
            .await;
        Step::End(Outcome::Failed {
            commit: None,
            reason,
            result: String::new(),
        })
    }

    async fn result(&self, result: &str) {
        let upd = TaskUpdate {
            result: Some(result.to_string()),
            ..Default::default()
        };
        self.sh.update_task(self.task, upd, None).await;
    }
}

pub(crate) async fn run(
    sh: &Shared,
    st: &mut Start,
    adapter: &dyn Adapter,
    profile: &AgentProfile,
    n: u32,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Step {
    let task = st.spec.id.clone();
    let ledger = Ledger { sh, task: &task, n };
    if st.needs_setup {
        if let Some(step) = setup(&ledger, st, profile, cmds).await {
            return step;
        }
    }
    let mut prepared = match prepare(sh, st, adapter, profile, n).await {
        Ok(p) => p,
        Err(reason) => return ledger.fail(reason).await,
    };
    prepared.remote = match &profile.executor {
        Executor::Local => None,
        Executor::Kubernetes(cluster) => {
            let gate_env = gate_env(&prepared.env);
            let launched = remote::Launched {
                program: &prepared.launch.program,
                args: &prepared.launch.args,
                env: &prepared.env,
                stdin_lines: prepared.launch.stdin_lines.as_deref().unwrap_or_default(),
                files: &prepared.launch.files,
                gate_env: &gate_env,
            };
            match remote::launch(sh, st, cluster, n, launched).await {
                Ok(r) => Some(r),
                Err(reason) => return ledger.fail(reason).await,
            }
        }
    };
    let seen = match &prepared.own_git {
        Some(own) => history::Seen::Own(own.dir.clone()),
        None => history::Seen::Worktree(sh.repo.desk_git_dir(&st.worktree)),
    };
    let before = history::before(sh, &st.worktree, seen).await;
    let mut ran = run_agent(sh, st, adapter, profile, n, &prepared, cmds).await;
    let remote = prepared.remote.take();
    let pod = match &remote {
        Some(r) => remote::land(sh, st, n, r).await,
        None => None,
    };
    // The pod's own timeout ended its agent: a timeout, as it would be here.
    if pod.as_ref().is_some_and(|p| p.timed_out) && matches!(ran.out.ended, Ended::Exited(_)) {
        ran.out.ended = Ended::TimedOut;
    }
    if let (Some(_), None) = (&remote, &pod) {
        // No pod said how it went: the reason is what its follower said.
        let said = ran
            .out
            .stderr_tail
            .trim()
            .lines()
            .last()
            .map(str::to_string);
        ran.last_error = said.or(ran.last_error.take());
    }
    if let Some(cg) = prepared.cgroup.take() {
        cg.remove().await;
    }
    if let Some(s) = ran.session.clone() {
        st.session = Some(s);
    }
    let finish = ran.out.finish.clone().unwrap_or_default();
    let result = finish.final_message.clone();

    crate::failpoint::hit("agent-ended");
    // Whatever happened, the work is kept.
    let kept = Kept {
        label: label(&ran.out.ended),
        before: &before,
        own_git: prepared.own_git.as_ref(),
    };
    let commit = match keep_work(sh, st, n, kept).await {
        Ok(c) => c,
        Err(reason) => {
            ledger
                .finish(AttemptStatus::Failed, None, Some(&reason))
                .await;
            return Step::End(match ran.out.ended {
                Ended::Cmd(WorkerCmd::Shutdown) => Outcome::Interrupted { commit: None },
                _ => Outcome::Failed {
                    commit: None,
                    reason,
                    result,
                },
            });
        }
    };
    let verdict = judge(&ran, &finish, n, st.spec.timeout);
    if let (Verdict::Failed { reason, code, .. }, Some(limit)) = (&verdict, &finish.limit) {
        ledger
            .finish(AttemptStatus::Failed, *code, Some(reason))
            .await;
        return Step::Limited(Limited {
            limit: limit.clone(),
            reason: reason.clone(),
            commit,
            result,
        });
    }
    if let Some(step) = settle(&ledger, st, verdict, commit.clone(), &result).await {
        return step;
    }
    ledger.result(&result).await;
    if remote.is_some() {
        let end = pod.unwrap_or_default();
        let gated = remote::gates(sh, &task, n, &end, st.spec.gates.len(), st.spec.timeout).await;
        return checked(&ledger, st, gated, commit, result).await;
    }
    let gate_env = gate_env(&prepared.env);
    let jail = prepared.jail.as_ref().map(|j| j.args.as_slice());
    check(&ledger, st, &gate_env, jail, commit, result, cmds).await
}

/// The gates see what the agent saw, except a prompt that could be huge.
fn gate_env(env: &[(OsString, OsString)]) -> Vec<(OsString, OsString)> {
    env.iter()
        .filter(|(k, _)| k != "BATON_PROMPT")
        .cloned()
        .collect()
}

/// `[workspace] setup` in the task's new worktree, once: a failure fails
/// the task (no retry would fix it) with the command and its output.
async fn setup(
    ledger: &Ledger<'_>,
    st: &mut Start,
    profile: &AgentProfile,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Option<Step> {
    let (sh, task) = (ledger.sh, ledger.task);
    let t = task.to_string();
    sh.write("set activity", move |s, run| {
        s.set_activity(run, &t, Some(Activity::Setup), Some(now_ms()))
    })
    .await;
    let mut env: Vec<(OsString, OsString)> = vec![
        ("PWD".into(), st.worktree.clone().into()),
        ("BATON_RUN".into(), sh.run_id.clone().into()),
        ("BATON_TASK".into(), task.into()),
    ];
    env.extend(st.desk_env.iter().cloned());
    // The project's setup runs code the agents wrote: in their sandbox.
    let jail = match &profile.sandbox {
        Some(spec) => match jail::check_jail(
            sh,
            spec,
            &jail::desk_name(task),
            Some(task),
            Some(ledger.n),
            &st.worktree,
            &env,
        )
        .await
        {
            Ok(j) => Some(j),
            Err(reason) => return Some(ledger.fail(reason).await),
        },
        None => None,
    };
    let args = jail.as_ref().map(|j| j.args.as_slice());
    match workspace::setup(sh, task, ledger.n, &st.worktree, &env, args, cmds).await {
        GateResult::Passed => {
            st.needs_setup = false;
            if st.keep_ignored {
                let key = match st.setup_key.take() {
                    Some(k) => k,
                    None => crate::engine::desk::pool::setup_key(sh, &st.start_commit).await,
                };
                crate::engine::desk::pool::write_key(&sh.repo, &st.worktree, &key);
            }
            let upd = TaskUpdate {
                setup_done: Some(true),
                ..Default::default()
            };
            sh.update_task(task, upd, None).await;
            None
        }
        GateResult::Failed { feedback, .. } => Some(ledger.fail(feedback).await),
        GateResult::Interrupted(cmd) => {
            Some(interrupted(ledger, cmd, None, None, String::new()).await)
        }
    }
}

/// The attempt ends here unless the agent passed and `fail_if` does not match.
async fn settle(
    ledger: &Ledger<'_>,
    st: &Start,
    verdict: Verdict,
    commit: Option<String>,
    result: &str,
) -> Option<Step> {
    let result = result.to_string();
    match verdict {
        Verdict::Passed => {}
        Verdict::Interrupted(cmd) => {
            return Some(interrupted(ledger, cmd, None, commit, result).await)
        }
        Verdict::NotStarted(reason) => {
            ledger
                .finish(AttemptStatus::Failed, None, Some(&reason))
                .await;
            return Some(Step::End(Outcome::Failed {
                commit,
                reason,
                result: String::new(),
            }));
        }
        Verdict::Failed {
            reason,
            feedback,
            code,
        } => {
            let status = match code {
                Some(_) => AttemptStatus::Failed,
                None => AttemptStatus::TimedOut,
            };
            ledger.finish(status, code, Some(&reason)).await;
            return Some(Step::Failed {
                reason,
                feedback,
                commit,
                result,
            });
        }
    }
    let reason = fail_if(st, &result)?;
    ledger
        .finish(AttemptStatus::Failed, Some(0), Some(&reason))
        .await;
    ledger.result(&result).await;
    Some(Step::End(Outcome::Failed {
        commit,
        reason,
        result,
    }))
}

/// The gates, once the agent is done and passed.
async fn check(
    ledger: &Ledger<'_>,
    st: &Start,
    env: &[(OsString, OsString)],
    jail: Option<&[OsString]>,
    commit: Option<String>,
    result: String,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> Step {
    let sh = ledger.sh;
    let gates = gates::GateRun {
        kind: gates::Kind::Gate,
        task: Some(ledger.task),
        attempt: Some(ledger.n),
        gates: &st.spec.gates,
        worktree: &st.worktree,
        log: sh.paths.attempt_log(&sh.run_id, ledger.task, ledger.n),
        timeout: st.spec.timeout,
        env,
        jail,
    };
    crate::failpoint::hit("gates");
    let gated = gates::run_all(ledger.sh, gates, cmds).await;
    checked(ledger, st, gated, commit, result).await
}

/// The attempt's end, from how its gates went.
async fn checked(
    ledger: &Ledger<'_>,
    st: &Start,
    gated: GateResult,
    commit: Option<String>,
    result: String,
) -> Step {
    match gated {
        GateResult::Passed => {
            ledger.finish(AttemptStatus::Succeeded, Some(0), None).await;
            Step::End(Outcome::Done {
                commit: commit.unwrap_or_else(|| st.start_commit.clone()),
                result,
            })
        }
        GateResult::Interrupted(cmd) => interrupted(ledger, cmd, Some(0), commit, result).await,
        GateResult::Failed { reason, feedback } => {
            ledger
                .finish(AttemptStatus::Failed, Some(0), Some(&reason))
                .await;
            Step::Failed {
                reason,
                feedback,
                commit,
                result,
            }
        }
    }
}

/// A request cut the attempt short: the agent (`code` None) or, once it
/// exited 0, its gates.
async fn interrupted(
    ledger: &Ledger<'_>,
    cmd: WorkerCmd,
    code: Option<i32>,
    commit: Option<String>,
    result: String,
) -> Step {
    let in_gates = code.is_some();
    let (status, why, step) = match cmd {
        WorkerCmd::Shutdown => (
            AttemptStatus::Interrupted,
            if in_gates {
                "baton was stopped during gates".to_string()
            } else {
                "baton was stopped".to_string()
            },
            Step::End(Outcome::Interrupted { commit }),
        ),
        WorkerCmd::Stop => (
            AttemptStatus::Stopped,
            if in_gates {
                "stopped during gates".to_string()
            } else {
                "stopped by request".to_string()
            },
            Step::End(Outcome::Stopped {
                commit,
                reason: "stopped by request (baton stop)".into(),
            }),
        ),
        WorkerCmd::OverBudget(reason) => (
            AttemptStatus::Failed,
            reason.clone(),
            Step::End(Outcome::Failed {
                commit,
                reason,
                result,
            }),
        ),
        // A message never ends an attempt (supervise hands it over or
        // leaves it); were it to, it would be a steer.
        WorkerCmd::Steer(message) | WorkerCmd::Message { said: message, .. } => (
            AttemptStatus::Steered,
            "restarted with a message".to_string(),
            Step::Steered(message),
        ),
    };
    ledger.finish(status, code, Some(&why)).await;
    step
}

/// What an attempt launches, and with which environment.
struct Prepared {
    launch: adapter::Launch,
    env: Vec<(OsString, OsString)>,
    /// The sandbox the agent runs in (and its gates), and the proxy of an
    /// allow-list, for as long as the attempt lasts.
    jail: Option<jail::Jail>,
    /// A lead's tools, served outside its sandbox for as long as it runs.
    _door: Option<lead::Door>,
    /// The desk's own git directory, which the agent commits to inside.
    own_git: Option<crate::sandbox::OwnGit>,
    /// The cgroup that holds the agent to its `memory` and `pids`.
    cgroup: Option<crate::sandbox::cgroup::Cgroup>,
    /// On a cluster: the process here that makes and follows its Job.
    remote: Option<remote::Remote>,
}

async fn prepare(
    sh: &Shared,
    st: &Start,
    adapter: &dyn Adapter,
    profile: &AgentProfile,
    n: u32,
) -> Result<Prepared, String> {
    let feedback = st.feedback.clone().unwrap_or_default();
    let ctx = PromptContext {
        tasks: st.upstream.clone(),
        feedback: feedback.clone(),
        task: st.spec.id.clone(),
        run: sh.run_id.clone(),
        attempt: n,
    };
    let root = &sh.repo.root;
    let text_prompt = adapter.prompt_is_text();
    let full_prompt = prompt::build(&st.spec, profile, &ctx, &st.worktree, root, text_prompt)?;
    // A resumed session has the task already: it gets only what is new.
    let mut agent_prompt = match (&st.session, feedback.is_empty()) {
        (Some(_), false) => format!("Feedback on your previous attempt:\n{feedback}"),
        _ => full_prompt.clone(),
    };
    // Messages that could not reach it while it ran come with this attempt.
    let task = st.spec.id.clone();
    let inbox: Vec<String> = sh
        .db(move |s, run| s.take_undelivered(run, &task))
        .await
        .unwrap_or_default()
        .iter()
        .map(|m| m.said())
        .collect();
    if !inbox.is_empty() && text_prompt {
        agent_prompt.push_str(&format!("\n\n{}", inbox.join("\n")));
    }
    let (mcp, door) = match lead::open(sh, st, n).await? {
        Some((tools, door)) => (Some(tools), Some(door)),
        None => (None, None),
    };
    let cli = profile.cli();
    let mut launch = adapter.launch(&LaunchRequest {
        profile: &cli,
        prompt: &agent_prompt,
        worktree: &st.worktree,
        attempt: n,
        session: st.session.as_deref(),
        files: &st.spec.context,
        mcp: mcp.as_ref(),
        sandboxed: profile.sandbox.is_some(),
    })?;
    for (path, text) in &launch.files {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        tokio::fs::write(path, text)
            .await
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let mut adapter_env = std::mem::take(&mut launch.env);
    if !inbox.is_empty() {
        adapter_env.push(("BATON_MESSAGES".into(), inbox.join("\n").into()));
    }
    let env = attempt_env(sh, st, profile, n, &full_prompt, &feedback, adapter_env).await?;
    let (jail, own_git, cgroup) = match &profile.sandbox {
        Some(spec) => {
            let own = jail::make_own_git(sh, &jail::desk_name(&st.spec.id), &st.worktree).await?;
            let room = jail::Room {
                spec,
                worktree: &st.worktree,
                own_git: &own,
                env: &env,
                agent: Some(profile),
                door: door.as_ref().map(|d| d.dir.as_path()),
                task: Some(&st.spec.id),
                attempt: Some(n),
            };
            let j = jail::draw(sh, room).await?;
            (Some(j), Some(own), limits(sh, st, spec, n).await)
        }
        None => (None, None, None),
    };
    if let Some(j) = &jail {
        let args = std::mem::take(&mut launch.args);
        (launch.program, launch.args) = crate::sandbox::wrap(&j.args, launch.program.clone(), args);
    }
    Ok(Prepared {
        launch,
        env,
        jail,
        _door: door,
        own_git,
        cgroup,
        remote: None,
    })
}

/// The cgroup of an attempt whose profile limits memory or processes; a
/// machine where they cannot be applied gets a notice saying why.
async fn limits(
    sh: &Shared,
    st: &Start,
    spec: &crate::plan::sandbox::Sandbox,
    n: u32,
) -> Option<crate::sandbox::cgroup::Cgroup> {
    use crate::sandbox::cgroup::{Cgroup, Limits};
    let limits = Limits {
        memory: spec.memory,
        pids: spec.pids,
    };
    if limits == Limits::default() {
        return None;
    }
    let name = format!("baton-{}-{}-{n}", std::process::id(), st.spec.id);
    match Cgroup::make(&name, limits) {
        Ok(cg) => Some(cg),
        Err(notice) => {
            let data = serde_json::json!({ "notice": notice });
            sh.event(Some(&st.spec.id), Some(n), EventKind::SandboxNotice, data)
                .await;
            None
        }
    }
}

const MAX_ENV_PROMPT: usize = 64 * 1024;

/// The environment of an attempt: baton's variables, a home of its own if
/// the profile asks, the adapter's defaults, then the profile's `env`.
async fn attempt_env(
    sh: &Shared,
    st: &Start,
    profile: &AgentProfile,
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
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let masked = sh.redactor.redact(prompt);
    tokio::fs::write(&prompt_file, masked.as_bytes())
        .await
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
    env.extend(st.desk_env.iter().cloned());
    if profile.hermetic_home {
        let home = sh.paths.run_dir(&sh.run_id).join("homes").join(task);
        for sub in ["", ".config", ".local/share", ".cache", ".local/state"] {
            tokio::fs::create_dir_all(home.join(sub))
                .await
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

/// The agent's process, from start to end, and what its stream said.
struct AgentRun {
    out: supervise::Outcome,
    session: Option<String>,
    last_error: Option<String>,
    /// The sandbox limit the agent hit (its memory, its processes).
    limit_hit: Option<String>,
}

async fn run_agent(
    sh: &Shared,
    st: &Start,
    adapter: &dyn Adapter,
    profile: &AgentProfile,
    n: u32,
    p: &Prepared,
    cmds: &mut UnboundedReceiver<WorkerCmd>,
) -> AgentRun {
    let remote = p.remote.as_ref();
    let task = st.spec.id.as_str();
    let mut spec = Spec {
        program: p.launch.program.clone(),
        args: p.launch.args.clone(),
        env: p.env.clone(),
        cwd: &st.worktree,
        log: sh.paths.attempt_log(&sh.run_id, task, n),
        timeout: st.spec.timeout,
        cgroup: p
            .cgroup
            .as_ref()
            .map(|c| c.procs().to_vec())
            .unwrap_or_default(),
        grace: crate::process::KILL_GRACE,
    };
    // On a cluster the process here follows the Job: the agent's
    // environment and stdin travel in its request, not to it.
    if let Some(r) = remote {
        spec.program = r.program.clone();
        spec.args = r.args.clone();
        spec.env = Vec::new();
        spec.timeout = r.timeout;
        spec.grace = r.grace;
    }
    let id = task.to_string();
    let earlier: Vec<AttemptRecord> = sh
        .db(move |s, run| s.attempts(run, &id))
        .await
        .map(|a| a.into_iter().filter(|a| a.n != n).collect())
        .unwrap_or_default();
    let mut watch = Watch {
        sh,
        task,
        n,
        activity: None,
        meter: Meter::new(
            sh.prices.clone(),
            profile.model.clone(),
            session_base(&earlier, st.session.as_deref()),
        ),
        prior_cost: earlier.iter().filter_map(|a| a.cost_usd).sum(),
        budget: st.spec.budget_usd,
        session: None,
        last_error: None,
    };
    let steer = |m: &str| adapter.steer_line(m);
    let local = remote.is_none();
    let io = Io {
        parser: Some(adapter.parser()),
        stdin_lines: p.launch.stdin_lines.clone().filter(|_| local),
        // A pod's stdin is not reachable: a steer restarts its attempt.
        steer: if local { Some(&steer) } else { None },
        stall_after: Some(st.spec.stall_after),
        redactor: Some(sh.redactor.clone()),
    };
    let out = supervise::run(spec, io, sh.watchdog.as_ref(), cmds, &mut watch).await;
    AgentRun {
        out,
        session: watch.session,
        last_error: watch.last_error,
        limit_hit: p.cgroup.as_ref().and_then(|c| c.hit()),
    }
}

/// Tokens that earlier attempts already counted in the same agent session
/// (agents like Codex report session totals).
fn session_base(earlier: &[AttemptRecord], session: Option<&str>) -> (u64, u64) {
    let Some(session) = session else {
        return (0, 0);
    };
    earlier
        .iter()
        .filter(|a| a.session_id.as_deref() == Some(session))
        .fold((0, 0), |acc, a| {
            (
                acc.0 + a.input_tokens.unwrap_or(0).max(0) as u64,
                acc.1 + a.output_tokens.unwrap_or(0).max(0) as u64,
            )
        })
}

/// How the agent's process ended, in the commit message's words.
fn label(ended: &Ended) -> String {
    match ended {
        Ended::Exited(0) => "done".to_string(),
        Ended::Exited(c) => format!("exit {c}"),
        Ended::TimedOut => "timed out".into(),
        Ended::Cmd(WorkerCmd::Stop) => "stopped".into(),
        Ended::Cmd(WorkerCmd::Steer(_)) => "steered".into(),
        Ended::Cmd(WorkerCmd::Message { .. }) => "done".into(),
        Ended::Cmd(WorkerCmd::Shutdown) => "interrupted".into(),
        Ended::Cmd(WorkerCmd::OverBudget(_)) => "over budget".into(),
        Ended::SpawnFailed(_) => "could not start".into(),
    }
}

/// What the agent's end means, before any gate runs.
enum Verdict {
    Passed,
    Interrupted(WorkerCmd),
    NotStarted(String),
    /// `code` is the exit status, None for a timeout.
    Failed {
        reason: String,
        feedback: String,
        code: Option<i32>,
    },
}

fn judge(ran: &AgentRun, finish: &Finish, n: u32, timeout: std::time::Duration) -> Verdict {
    let with_last_error = |r: String| match &ran.last_error {
        Some(e) => format!("{r}; the agent's last error: {}", adapter::clip(e, 300)),
        None => r,
    };
    match &ran.out.ended {
        Ended::Cmd(cmd) => Verdict::Interrupted(cmd.clone()),
        Ended::SpawnFailed(reason) => Verdict::NotStarted(reason.clone()),
        Ended::TimedOut => {
            let r = with_last_error(format!("attempt {n} timed out after {}", human(timeout)));
            Verdict::Failed {
                feedback: format!("{r}; the agent was stopped. Work in smaller steps."),
                reason: r,
                code: None,
            }
        }
        Ended::Exited(code) if *code != 0 => {
            let mut r = format!("agent exited with status {code}");
            if let Some(hit) = &ran.limit_hit {
                r = format!("{r}: {hit}");
            } else if let Some(e) = finish.error.as_ref().or(ran.last_error.as_ref()) {
                r = format!("{r}: {}", adapter::clip(e, 300));
            }
            let tail = ran.out.stderr_tail.trim();
            let feedback = if tail.is_empty() {
                r.clone()
            } else {
                format!(
                    "{r}. The end of its error output:\n{}",
                    last_lines(tail, 20)
                )
            };
            Verdict::Failed {
                reason: r,
                feedback,
                code: Some(*code),
            }
        }
        Ended::Exited(code) => match (&finish.error, finish.complete) {
            (Some(e), _) => Verdict::Failed {
                reason: format!("agent reported an error: {e}"),
                feedback: format!("The agent reported an error: {e}"),
                code: Some(*code),
            },
            (None, false) => {
                let r = with_last_error("the agent's output ended without its final result (interrupted, or not the output format baton expects)".to_string());
                Verdict::Failed {
                    feedback: r.clone(),
                    reason: r,
                    code: Some(*code),
                }
            }
            (None, true) => Verdict::Passed,
        },
    }
}

/// The task's `fail_if`, if it matches the final message.
fn fail_if(st: &Start, result: &str) -> Option<String> {
    let re = st.spec.fail_if.as_ref()?;
    let m = re.find(result)?;
    Some(format!(
        "fail_if /{}/ matched the final message: {:?}",
        re.as_str(),
        m.as_str()
    ))
}

/// What keeping an attempt's work needs to know.
struct Kept<'a> {
    /// How the agent ended, in the commit message's words.
    label: String,
    before: &'a history::Before,
    /// A sandboxed desk's own git directory, whose commits come home first.
    own_git: Option<&'a crate::sandbox::OwnGit>,
}

/// Commits what the attempt left and keeps the branch head (the agent may
/// have committed on its own too) under the attempt's ref. Err: the work
/// could not be committed; it stays in the worktree, which is kept.
async fn keep_work(sh: &Shared, st: &Start, n: u32, k: Kept<'_>) -> Result<Option<String>, String> {
    let (task, worktree) = (st.spec.id.as_str(), st.worktree.as_path());
    let msg = format!("baton: {task} attempt {n} ({})", k.label);
    match k.own_git {
        Some(own) => take_home(sh, task, n, worktree, own).await,
        None => restore_dot_git(sh, task, n, worktree).await,
    }
    let kept = match sh.repo.commit_all(worktree, &msg).await {
        Ok(committed) => {
            let (branch, start) = (&st.branch, &st.start_commit);
            let head = history::settle(sh, task, n, branch, start, worktree, k.before).await;
            if committed {
                let data = json!({ "commit": head });
                sh.event(Some(task), Some(n), EventKind::Committed, data)
                    .await;
            }
            if let Some(h) = &head {
                keep_ref(&sh.repo, &sh.store, &sh.run_id, task, n, h).await;
            }
            Ok(head)
        }
        Err(e) => {
            let data = json!({ "error": e.to_string() });
            sh.event(Some(task), Some(n), EventKind::CommitFailed, data)
                .await;
            Err(format!(
                "cannot commit the attempt's work (it is left uncommitted in {}): {e}",
                worktree.display()
            ))
        }
    };
    if let Some(own) = k.own_git {
        // Home now (and read by the history above): in step with the branch
        // again for the gates, else gone (a resume brings home only what an
        // agent left since).
        let renewed = if st.spec.gates.is_empty() {
            own.remove()
        } else {
            own.make(&sh.repo, worktree).await
        };
        if let Err(e) = renewed {
            tracing::warn!("task {task}: cannot renew the desk's own git directory: {e}");
        }
    }
    kept
}

/// An agent without a sandbox can rewrite or replace its worktree's `.git`
/// (baton's own git never follows it): what it put there is moved aside,
/// kept, baton's pointer goes back, and the task says so.
async fn restore_dot_git(sh: &Shared, task: &str, n: u32, worktree: &std::path::Path) {
    let Some(trusted) = sh.repo.desk_git_dir(worktree) else {
        return;
    };
    let dotgit = worktree.join(".git");
    let named = crate::git::dot_git_target(worktree);
    let same = |p: &std::path::Path| p.canonicalize().ok() == trusted.canonicalize().ok();
    if named.as_deref().is_some_and(same) {
        return;
    }
    let aside = sh
        .paths
        .run_dir(&sh.run_id)
        .join("desks")
        .join(jail::desk_name(task))
        .join(format!("dot-git-{n}"));
    let moved = aside
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            std::fs::rename(&dotgit, &aside).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
        })
        .and_then(|()| std::fs::write(&dotgit, format!("gitdir: {}\n", trusted.display())));
    let said = match moved {
        Ok(()) => format!(
            "the agent rewrote its worktree's .git; baton's git did not follow it, what it wrote is kept at {}, and the worktree points at its git directory again",
            aside.display()
        ),
        Err(e) => format!("the agent rewrote its worktree's .git, and baton could not put it back: {e}"),
    };
    let data = json!({ "warnings": [said.clone()], "kept": [] });
    sh.event(Some(task), Some(n), EventKind::BranchRewritten, data)
        .await;
    let id = task.to_string();
    if let Err(e) = sh
        .db(move |s, run| s.add_task_warnings(run, &id, &[said]))
        .await
    {
        tracing::warn!("task {task}: cannot record a warning: {e}");
    }
}

/// A sandboxed agent's commits, from its desk's own git directory: fetched
/// into the repository and made the head of the task's branch (the index
/// with it; the files stay as the agent left them, for the leftover
/// commit). If they cannot be had (the agent broke its git directory), the
/// task says so and its files are committed as they are.
pub(crate) async fn take_home(
    sh: &Shared,
    task: &str,
    n: u32,
    worktree: &std::path::Path,
    own: &crate::sandbox::OwnGit,
) {
    if let Err(e) = fetch_home(&sh.repo, &sh.run_id, task, n, worktree, own).await {
        let said = vec![format!(
            "the agent's commits could not be fetched from its desk's git directory ({e}); what its files hold is committed as it is"
        )];
        let data = json!({ "warnings": said, "kept": [] });
        sh.event(Some(task), Some(n), EventKind::BranchRewritten, data)
            .await;
        let id = task.to_string();
        if let Err(e) = sh
            .db(move |s, run| s.add_task_warnings(run, &id, &said))
            .await
        {
            tracing::warn!("task {task}: cannot record a warning: {e}");
        }
    }
}

/// [`take_home`]'s git: fetch, then the branch and index moved there.
pub(crate) async fn fetch_home(
    repo: &Repo,
    run: &str,
    task: &str,
    n: u32,
    worktree: &std::path::Path,
    own: &crate::sandbox::OwnGit,
) -> Result<(), crate::git::GitError> {
    let keep = format!("{}-desk", crate::paths::attempt_ref(run, task, n));
    let Some(head) = own.bring_home(repo, &keep).await? else {
        // Its HEAD never moved: what it did is in its files.
        return Ok(());
    };
    let moved = repo
        .in_desk_ok(worktree, ["reset", "-q", head.as_str(), "--"])
        .await;
    let removed = repo.delete_ref(&keep).await;
    moved?;
    removed
}

/// Keeps `commit` under attempt `n`'s ref and records where.
pub(crate) async fn keep_ref(
    repo: &Repo,
    store: &Arc<Store>,
    run: &str,
    task: &str,
    n: u32,
    commit: &str,
) {
    let name = crate::paths::attempt_ref(run, task, n);
    match repo.set_ref(&name, commit).await {
        Ok(()) => {
            let (run, task) = (run.to_string(), task.to_string());
            let recorded = store
                .call(move |s| s.set_attempt_ref(&run, &task, n, &name))
                .await;
            if let Err(e) = recorded {
                tracing::warn!("cannot record where attempt {n}'s work is kept: {e}");
            }
        }
        Err(e) => tracing::warn!("cannot keep attempt {n} of task {task} under {name}: {e}"),
    }
}
