//! The Kubernetes executor: the agent's launch, prepared as for a local
//! attempt, becomes a [`JobRequest`] that baton's own `__kube-attempt`
//! process turns into a Job and follows. That process is
//! what the engine supervises (the pod's log is its output: events, usage,
//! budgets and `stall_after` work as for a local agent; ending it deletes
//! the Job). Its end says where the pod pushed the work and how the pod's
//! gates went.

use super::super::launch::Prepared;
use super::super::start::Start;
use crate::engine::process::supervise::Spec;
use crate::engine::shared::Shared;
use crate::executor::{JobRequest, PodAttempt, PodEnd};
use crate::payload::Payload;
use crate::plan::Kubernetes;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A placed attempt: the follower to run here, and where its end goes.
pub(crate) struct Follower {
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

fn text(s: &std::ffi::OsStr) -> String {
    s.to_string_lossy().into_owned()
}

fn pairs(env: &[(OsString, OsString)]) -> Vec<(String, String)> {
    env.iter().map(|(k, v)| (text(k), text(v))).collect()
}

/// Writes the attempt's [`JobRequest`] next to its log; the process that
/// runs it is baton's `__kube-attempt`.
pub(crate) async fn place(
    sh: &Shared,
    st: &Start,
    cluster: &Kubernetes,
    n: u32,
    p: &Prepared,
    gate_env: &[(OsString, OsString)],
) -> Result<Follower, String> {
    let stdin_lines = p.launch.stdin_lines.as_deref().unwrap_or_default();
    let baton = sh.baton.clone().ok_or(
        "an attempt on Kubernetes needs baton's own binary to follow its Job, and this engine was started without it",
    )?;
    let task = &st.spec.id;
    let start = sh
        .repo
        .resolve_commit(&st.desk.branch)
        .await
        .map_err(|e| format!("cannot read the task's branch {}: {e}", st.desk.branch))?;
    let (files, dirs) = (carried_files(p).await, homes(p));
    let mut env = pairs(&p.env);
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
            program: text(&p.launch.program),
            args: p.launch.args.iter().map(|a| text(a)).collect(),
            env,
            stdin_lines: stdin_lines.to_vec(),
            files,
            dirs,
            gates: st.spec.gates.clone(),
            gate_env: pairs(gate_env),
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
    Ok(Follower {
        program: baton.into(),
        args: vec!["__kube-attempt".into(), spec_file.into()],
        end_file: req.end_file,
        grace: cluster.grace + Duration::from_secs(15),
        timeout: st.spec.timeout + cluster.grace + START_MARGIN,
    })
}

/// The files the agent gets outside its worktree (its settings, and the
/// prompt file its environment names, for agents that read it).
async fn carried_files(p: &Prepared) -> Vec<(PathBuf, String)> {
    let mut files: Vec<(PathBuf, String)> = p.launch.files.to_vec();
    if let Some((_, f)) = p.env.iter().find(|(k, _)| k == "BATON_PROMPT_FILE") {
        let path = PathBuf::from(f);
        if let Ok(t) = tokio::fs::read_to_string(&path).await {
            files.push((path, t));
        }
    }
    files
}

/// The homes the agent's environment names (a hermetic home), made in the
/// pod before it starts.
fn homes(p: &Prepared) -> Vec<PathBuf> {
    const HOMES: [&str; 7] = [
        "HOME",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_CACHE_HOME",
        "XDG_STATE_HOME",
        "CODEX_HOME",
        "TMPDIR",
    ];
    p.env
        .iter()
        .filter(|(k, v)| HOMES.iter().any(|h| k == h) && Path::new(v).is_absolute())
        .map(|(_, v)| PathBuf::from(v))
        .collect()
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

impl Follower {
    /// The follower is the process the engine supervises, with the pod's
    /// time and grace.
    pub fn shape(&self, spec: &mut Spec<'_>) {
        spec.program = self.program.clone();
        spec.args = self.args.clone();
        spec.env = Vec::new();
        spec.timeout = self.timeout;
        spec.grace = self.grace;
    }

    /// The pod's end, once its follower is gone (see [`land`]).
    pub async fn land(self, sh: &Shared, st: &Start, n: u32) -> Option<PodEnd> {
        land(sh, st, n, &self.end_file).await
    }
}

/// The pod's end, once its follower is gone; the task's worktree (and so
/// its branch) is moved to the commit the pod pushed, so the rest of the
/// attempt (keeping the work, the merge) goes as for a local one.
async fn land(sh: &Shared, st: &Start, n: u32, end_file: &Path) -> Option<PodEnd> {
    let text = tokio::fs::read_to_string(end_file).await.ok()?;
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
