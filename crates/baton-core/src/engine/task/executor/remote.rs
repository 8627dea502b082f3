//! A remote executor's attempt, on this side: the agent's launch, prepared
//! as for a local attempt, becomes a [`FollowRequest`] that baton's own
//! `__follow` process hands to the executor's driver (which, for
//! Kubernetes, makes a Job and follows its pod). That process is what the
//! engine supervises (the remote attempt's output is its output: events,
//! usage, budgets and `stall_after` work as for a local agent; ending it
//! ends the remote attempt). Its end says where the remote side pushed the
//! work and how its gates went.

use super::super::launch::Prepared;
use super::super::start::Start;
use super::hosts::HostClaim;
use crate::engine::process::supervise::Spec;
use crate::engine::shared::Shared;
use crate::executor::{FollowRequest, PodAttempt, PodEnd};
use crate::payload::Payload;
use crate::plan::{AgentProfile, Remote};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A placed attempt: the follower to run here, and where its end goes.
pub(crate) struct Follower {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub end_file: PathBuf,
    /// How long the follower may take to end once asked: the remote
    /// side's grace to commit and push, and a margin.
    pub grace: Duration,
    /// The attempt's time here: the remote side's, and time for it to start.
    pub timeout: Duration,
    /// The SSH host's slot it holds, if it went to one.
    pub host: Option<HostClaim>,
    /// Its agent takes messages while it runs (through its follower's stdin).
    pub live: bool,
}

const START_MARGIN: Duration = Duration::from_secs(120);

fn text(s: &std::ffi::OsStr) -> String {
    s.to_string_lossy().into_owned()
}

fn pairs(env: &[(OsString, OsString)]) -> Vec<(String, String)> {
    env.iter().map(|(k, v)| (text(k), text(v))).collect()
}

/// Writes the attempt's [`FollowRequest`] next to its log; the process
/// that runs it is baton's `__follow`.
pub(crate) async fn place(
    sh: &Shared,
    st: &Start,
    profile: &AgentProfile,
    remote: &Remote,
    takes_steers: bool,
    n: u32,
    p: &Prepared,
) -> Result<Follower, String> {
    let stdin_lines = p.launch.stdin_lines.as_deref().unwrap_or_default();
    let baton = sh.baton.clone().ok_or(
        "an attempt on a remote executor needs baton's own binary to follow it, and this engine was started without it",
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
    // An attempt an earlier baton left running there, which this one's
    // follower adopts: this very attempt, taken up again by `resume`, or
    // (from an older baton) an earlier one.
    let earlier = uncollected(&log, n).await;
    let same = earlier.as_ref().filter(|(m, _)| *m == n).map(|(_, r)| r);
    if same.is_some() {
        // Its output comes again from its start: what the earlier baton
        // wrote of it is kept beside it.
        let _ = tokio::fs::rename(&log, log.with_extension("log.1")).await;
    }
    let host = match remote {
        Remote::Ssh(ssh) => {
            let adopted = earlier.as_ref().and_then(|(_, r)| r.host.as_deref());
            Some(sh.hosts.claim(ssh, &profile.host_labels, adopted).await?)
        }
        _ => None,
    };
    // Its agent takes messages while it runs when its CLI does
    // (`takes_steers`) and its executor hands them over (through baton's
    // own git door).
    let live = takes_steers && remote.git_remote().is_none();
    // A host's cache serves every repository that works there: the key
    // says whose.
    let setup_key = match sh.plan.workspace.setup.is_empty() {
        true => None,
        false => {
            let key = crate::engine::desk::pool::setup_key(sh, &start).await;
            Some(format!(
                "{}-{key}",
                crate::container::repo_key(&sh.repo.common_dir)
            ))
        }
    };
    let req = FollowRequest {
        pod: PodAttempt {
            run: sh.run_id.clone(),
            task: task.clone(),
            attempt: n,
            git_url: remote.git_remote().unwrap_or_default().to_string(),
            branch: st.desk.branch.clone(),
            start,
            keep_ref: crate::paths::attempt_ref(&sh.run_id, task, n),
            worktree: st.desk.worktree.clone(),
            program: text(&p.launch.program),
            args: p.launch.args.iter().map(|a| text(a)).collect(),
            env,
            stdin_lines: stdin_lines.to_vec(),
            live: live.then(|| profile.adapter.clone()),
            files,
            dirs,
            gates: st.spec.gates.clone(),
            gate_env: pairs(&super::super::launch::gate_env(&p.env)),
            setup: sh.plan.workspace.setup.clone(),
            setup_key,
            setup_timeout_secs: sh.plan.workspace.setup_timeout.as_secs(),
            timeout_secs: st.spec.timeout.as_secs().max(1),
            message: format!("baton: {task} attempt {n} ({})", remote.kind()),
        },
        executor: remote.clone(),
        git_dir: sh.repo.common_dir.clone(),
        end_file: log.with_extension("end.json"),
        door: None,
        gateway_env: p
            .gate
            .iter()
            .flat_map(|g| g.env.iter().map(|(k, _)| text(k)))
            .collect(),
        gateway_token: p.gate.as_ref().map(|g| g.access.token.clone()),
        host: host.as_ref().map(|h| h.host.clone()),
        gateway_url: p.gate.as_ref().map(|g| g.gateway.url()),
    };
    // The door its remote side was told, which the follower serves again.
    let req = FollowRequest {
        door: same.and_then(|r| r.door.clone()),
        ..req
    };
    if let Some(g) = &p.gate {
        // An adopted attempt holds that attempt's token.
        let token = earlier.and_then(|(_, r)| r.gateway_token);
        if let Some(earlier) = token.filter(|t| t.starts_with("baton-gw-")) {
            g.gateway.honour(&g.access.token, &earlier);
        }
    }
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
        args: vec!["__follow".into(), spec_file.into()],
        end_file: req.end_file,
        grace: remote.grace() + Duration::from_secs(15),
        // Setup runs there too, before the agent, each command with its time.
        timeout: st.spec.timeout
            + remote.grace()
            + START_MARGIN
            + sh.plan.workspace.setup_timeout * sh.plan.workspace.setup.len() as u32,
        host,
        live,
    })
}

/// The request of the task's latest attempt up to `log`'s (`n`) whose end
/// was never collected (it may still run there), and its number.
async fn uncollected(log: &Path, n: u32) -> Option<(u32, FollowRequest)> {
    for m in (1..=n).rev() {
        let request = log.with_file_name(format!("attempt-{m}.job.json"));
        let Ok(text) = tokio::fs::read_to_string(&request).await else {
            continue;
        };
        let end = log.with_file_name(format!("attempt-{m}.end.json"));
        if tokio::fs::try_exists(end).await.unwrap_or(false) {
            return None;
        }
        return serde_json::from_str(&text).ok().map(|r| (m, r));
    }
    None
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

/// The homes the agent's environment names (a hermetic home), made
/// over there before it starts.
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

/// Who commits in the remote side: the identity commits here have (baton's
/// environment, else the repository's `user.name` and `user.email`), which
/// a local agent inherits and a remote one does not.
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
    /// The follower is the process the engine supervises, with the remote side's
    /// time and grace.
    pub fn shape(&self, spec: &mut Spec<'_>) {
        spec.program = self.program.clone();
        spec.args = self.args.clone();
        spec.env = Vec::new();
        spec.timeout = self.timeout;
        spec.grace = self.grace;
    }

    /// The remote end, once its follower is gone (see [`land`]).
    pub async fn land(self, sh: &Shared, st: &Start, n: u32) -> Option<PodEnd> {
        let end = land(sh, st, n, &self.end_file).await;
        if let (Some(claim), Some(true)) = (&self.host, end.as_ref().map(|e| e.unreachable)) {
            sh.hosts.lost(&claim.host);
        }
        end
    }
}

/// The remote end, once its follower is gone; the task's worktree (and so
/// its branch) is moved to the commit the remote side pushed, so the rest of the
/// attempt (keeping the work, the merge) goes as for a local one.
async fn land(sh: &Shared, st: &Start, n: u32, end_file: &Path) -> Option<PodEnd> {
    let text = tokio::fs::read_to_string(end_file).await.ok()?;
    let mut end: PodEnd = serde_json::from_str(&text).ok()?;
    if let (Some(c), true) = (end.commit.clone(), end.pushed) {
        let reset = ["reset", "-q", "--hard", c.as_str()];
        let moved = sh.repo.in_desk_ok(&st.desk.worktree, reset).await;
        if let Err(e) = moved {
            let why = format!("cannot take the remote side's work {c}: {e}");
            let data = Payload::CommitFailed { error: why.clone() };
            sh.event(Some(&st.spec.id), Some(n), data).await;
            end.pushed = false;
            end.error = Some(why);
        }
    }
    Some(end)
}
