//! An attempt whose profile runs on a cluster: the agent's launch, prepared
//! as for a local attempt, becomes a [`JobRequest`] that baton's own
//! `__kube-attempt` process turns into a Job and follows. That process is
//! what the engine supervises (the pod's log is its output: events, usage,
//! budgets and `stall_after` work as for a local agent; ending it deletes
//! the Job). Its end says where the pod pushed the work and how the pod's
//! gates went.

use super::start::Start;
use crate::engine::process::gates::GateResult;
use crate::engine::process::supervise::Ended;
use crate::engine::shared::Shared;
use crate::executor::{JobRequest, PodAttempt, PodEnd};
use crate::payload::{CheckEnd, Payload};
use crate::plan::Kubernetes;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// A launched remote attempt: what to run here, and where its end goes.
pub(crate) struct Remote {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub end_file: PathBuf,
    /// How long the follower may take to end once asked: the pod's grace
    /// to commit and push, and a margin for the cluster.
    pub grace: Duration,
    /// The attempt's time here: the pod's, and time for the pod to start.
    pub timeout: Duration,
}

const START_MARGIN: Duration = Duration::from_secs(120);

pub(crate) struct Launched<'a> {
    pub program: &'a OsString,
    pub args: &'a [OsString],
    pub env: &'a [(OsString, OsString)],
    pub stdin_lines: &'a [String],
    pub files: &'a [(PathBuf, String)],
    pub gate_env: &'a [(OsString, OsString)],
}

fn text(s: &std::ffi::OsStr) -> String {
    s.to_string_lossy().into_owned()
}

fn pairs(env: &[(OsString, OsString)]) -> Vec<(String, String)> {
    env.iter().map(|(k, v)| (text(k), text(v))).collect()
}

/// Writes the attempt's [`JobRequest`] next to its log; the process that
/// runs it is baton's `__kube-attempt`.
pub(crate) async fn launch(
    sh: &Shared,
    st: &Start,
    cluster: &Kubernetes,
    n: u32,
    l: Launched<'_>,
) -> Result<Remote, String> {
    let baton = sh.baton.clone().ok_or(
        "an attempt on Kubernetes needs baton's own binary to follow its Job, and this engine was started without it",
    )?;
    let task = &st.spec.id;
    let start = sh
        .repo
        .resolve_commit(&st.desk.branch)
        .await
        .map_err(|e| format!("cannot read the task's branch {}: {e}", st.desk.branch))?;
    let mut files: Vec<(PathBuf, String)> = l.files.to_vec();
    // The prompt file the environment names, for agents that read it.
    if let Some((_, p)) = l.env.iter().find(|(k, _)| k == "BATON_PROMPT_FILE") {
        let path = PathBuf::from(p);
        if let Ok(t) = tokio::fs::read_to_string(&path).await {
            files.push((path, t));
        }
    }
    let homes = [
        "HOME",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_CACHE_HOME",
        "XDG_STATE_HOME",
        "CODEX_HOME",
        "TMPDIR",
    ];
    let dirs = l
        .env
        .iter()
        .filter(|(k, v)| homes.iter().any(|h| k == h) && std::path::Path::new(v).is_absolute())
        .map(|(_, v)| PathBuf::from(v))
        .collect();
    let mut env = pairs(l.env);
    env.extend(identity(&sh.repo.root).await);
    let log = sh.paths.attempt_log(&sh.run_id, task, n);
    let req = JobRequest {
        pod: PodAttempt {
            run: sh.run_id.clone(),
            task: task.clone(),
            attempt: n,
            git_url: cluster.remote.clone().unwrap_or_default(),
            branch: st.desk.branch.clone(),
            start,
            keep_ref: crate::paths::attempt_ref(&sh.run_id, task, n),
            worktree: st.desk.worktree.clone(),
            program: text(l.program),
            args: l.args.iter().map(|a| text(a)).collect(),
            env,
            stdin_lines: l.stdin_lines.to_vec(),
            files,
            dirs,
            gates: st.spec.gates.clone(),
            gate_env: pairs(l.gate_env),
            timeout_secs: st.spec.timeout.as_secs().max(1),
            message: format!("baton: {task} attempt {n} (in its pod)"),
        },
        cluster: cluster.clone(),
        git_dir: sh.repo.common_dir.clone(),
        end_file: log.with_extension("end.json"),
        door: None,
    };
    let spec_file = log.with_extension("job.json");
    let json = serde_json::to_string_pretty(&req).map_err(|e| e.to_string())?;
    if let Some(dir) = spec_file.parent() {
        let _ = tokio::fs::create_dir_all(dir).await;
    }
    let _ = tokio::fs::remove_file(&req.end_file).await;
    tokio::fs::write(&spec_file, json)
        .await
        .map_err(|e| format!("cannot write {}: {e}", spec_file.display()))?;
    Ok(Remote {
        program: baton.into(),
        args: vec!["__kube-attempt".into(), spec_file.into()],
        end_file: req.end_file,
        grace: cluster.grace + Duration::from_secs(15),
        timeout: st.spec.timeout + cluster.grace + START_MARGIN,
    })
}

/// Who commits in the pod: the identity commits here have (baton's
/// environment, else the repository's `user.name` and `user.email`), which
/// a local agent inherits and a pod does not.
async fn identity(root: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in ["name", "email"] {
        let configured = crate::git::git_ok(root, ["config", &format!("user.{key}")])
            .await
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        for who in ["AUTHOR", "COMMITTER"] {
            let var = format!("GIT_{who}_{}", key.to_uppercase());
            if let Some(v) = std::env::var(&var).ok().or_else(|| configured.clone()) {
                out.push((var, v));
            }
        }
    }
    out
}

/// The pod's end, once its follower is gone; the task's worktree (and so
/// its branch) is moved to the commit the pod pushed, so the rest of the
/// attempt (keeping the work, the merge) goes as for a local one.
pub(crate) async fn land(sh: &Shared, st: &Start, n: u32, remote: &Remote) -> Option<PodEnd> {
    let text = tokio::fs::read_to_string(&remote.end_file).await.ok()?;
    let mut end: PodEnd = serde_json::from_str(&text).ok()?;
    if let (Some(c), true) = (end.commit.clone(), end.pushed) {
        let reset = ["reset", "-q", "--hard", c.as_str()];
        let moved = sh.repo.in_desk_ok(&st.desk.worktree, reset).await;
        if let Err(e) = moved {
            let why = format!("cannot take the pod's work {c}: {e}");
            let data = Payload::CommitFailed { error: why.clone() };
            sh.event(Some(&st.spec.id), Some(n), data).await;
            end.pushed = false;
            end.error = Some(why);
        }
    }
    Some(end)
}

/// The pod's gates as events and a result, in the words of local gates.
pub(crate) async fn gates(
    sh: &Shared,
    task: &str,
    n: u32,
    end: &PodEnd,
    expected: usize,
    timeout: Duration,
) -> GateResult {
    // A failure of the pod's own, with what went wrong in it.
    let pod_failed = |what: String| {
        let why = end.error.as_deref().map(|e| format!(": {e}"));
        let reason = format!("{what}{}", why.unwrap_or_default());
        GateResult::Failed {
            feedback: reason.clone(),
            reason,
        }
    };
    if !end.pushed {
        return pod_failed("the pod's work did not reach baton".into());
    }
    for g in &end.gates {
        let started = Payload::GateStarted {
            gate: g.gate.clone(),
        };
        sh.event(Some(task), Some(n), started).await;
        let ended = match (g.code, g.timed_out, &g.error) {
            (Some(c), _, _) => Ended::Exited(c),
            (None, true, _) => Ended::TimedOut,
            (None, false, e) => Ended::SpawnFailed(e.clone().unwrap_or_default()),
        };
        let (passed, reason) =
            crate::engine::process::gates::judge("gate", &g.gate, &ended, timeout);
        let data = Payload::GateFinished(CheckEnd {
            gate: g.gate.clone(),
            passed,
            duration_ms: g.duration_ms,
            reason: reason.clone(),
        });
        sh.event(Some(task), Some(n), data).await;
        if !passed {
            return crate::engine::process::gates::failed(&g.gate, reason, &g.tail);
        }
    }
    if end.gates.len() < expected {
        let ran = end.gates.len();
        return pod_failed(format!("the pod ran {ran} of the task's {expected} gates"));
    }
    GateResult::Passed
}
