//! What an attempt's agent is started with: its prompt and launch (from the
//! adapter), its sandbox and proxy, its cgroup, a lead's tools, its
//! environment, and where it runs (here, or a cluster's pod).

use super::ask_door;
use super::lead;
use super::prompt;
use super::start::Start;
use crate::adapter::{self, Adapter, LaunchRequest};
use crate::engine::process::jail;
use crate::engine::shared::Shared;
use crate::payload::Payload;
use crate::plan::sandbox::Wall;
use crate::plan::AgentProfile;
use crate::template::PromptContext;
use std::ffi::OsString;

/// The gates see what the agent saw, except a prompt that could be huge.
pub(super) fn gate_env(env: &[(OsString, OsString)]) -> Vec<(OsString, OsString)> {
    env.iter()
        .filter(|(k, _)| k != "BATON_PROMPT")
        .cloned()
        .collect()
}

/// What an attempt launches, and with which environment.
pub(crate) struct Prepared {
    pub(super) launch: adapter::Launch,
    pub(super) env: Vec<(OsString, OsString)>,
    /// The sandbox the agent runs in (and its gates), and the proxy of an
    /// allow-list, for as long as the attempt lasts.
    pub(super) jail: Option<jail::Jail>,
    /// A lead's tools, served outside its sandbox for as long as it runs.
    pub(super) _door: Option<lead::Door>,
    /// The door for questions to a person (a local attempt's).
    pub(super) ask: Option<ask_door::AskDoor>,
    /// The desk's own git directory, which the agent commits to inside.
    pub(super) own_git: Option<crate::sandbox::OwnGit>,
    /// The cgroup that holds the agent to its `memory` and `pids`.
    pub(super) cgroup: Option<crate::sandbox::cgroup::Cgroup>,
    /// The attempt's own services, removed with it.
    pub(super) _services: Option<super::services::Services>,
    /// Where the agent runs (set once the launch is prepared).
    pub(super) placement: super::executor::Placement,
    /// Its pass through the model gateway, if its profile goes through it.
    pub(super) gate: Option<super::gate::GatePass>,
    /// Variables of baton's own environment the agent must not inherit.
    pub(super) unset: Vec<OsString>,
}

pub(super) async fn prepare(
    sh: &Shared,
    st: &Start,
    adapter: &dyn Adapter,
    profile: &AgentProfile,
    n: u32,
) -> Result<Prepared, String> {
    let feedback = st.feedback.clone().unwrap_or_default();
    let text_prompt = adapter.prompt_is_text();
    let said = prompts(sh, st, profile, n, &feedback, text_prompt).await?;
    let (full_prompt, agent_prompt, inbox) = (said.full, said.agent, said.inbox);
    // Questions come in only where baton itself runs the agent.
    let ask = match profile.executor {
        crate::plan::Executor::Local if profile.ask => Some(ask_door::open(sh, &st.spec.id, n)?),
        _ => None,
    };
    let ask_socket = ask.as_ref().map(|a| a.socket.as_path());
    let (mcp, door) = match lead::open(sh, st, n, ask_socket).await? {
        Some((tools, door)) => (Some(tools), Some(door)),
        None => (ask_socket.and_then(|s| ask_door::tools(sh, st, s)), None),
    };
    let gate = super::gate::pass(sh, st, profile, n)?;
    let cli = profile.cli();
    let mut launch = adapter.launch(&LaunchRequest {
        profile: &cli,
        prompt: &agent_prompt,
        worktree: &st.desk.worktree,
        attempt: n,
        session: st.session.as_deref(),
        files: &st.spec.context,
        mcp: mcp.as_ref(),
        sandboxed: profile.sandbox.is_some(),
        gateway: gate.as_ref().map(|g| &g.access),
    })?;
    write_files(&launch.files).await?;
    let mut adapter_env = std::mem::take(&mut launch.env);
    if !inbox.is_empty() {
        adapter_env.push(("BATON_MESSAGES".into(), inbox.join("\n").into()));
    }
    if let Some(s) = ask_socket {
        adapter_env.push((crate::ask::SOCKET_VAR.into(), s.into()));
    }
    let mut env = attempt_env(sh, st, profile, n, &full_prompt, &feedback, adapter_env).await?;
    // Services run beside an agent of this machine; a pod has its own.
    let local = matches!(profile.executor, crate::plan::Executor::Local);
    let walled = profile.sandbox.as_ref().map(|s| s.wall) == Some(Wall::Container);
    if local && (walled || !sh.plan.workspace.services.is_empty()) {
        // What an earlier attempt of the task left (a killed command's
        // container, a service on the port this one takes) goes first.
        super::services::clear(sh, &st.spec.id).await?;
    }
    let services = match local {
        true => super::services::start(sh, &st.spec.id, n).await?,
        false => None,
    };
    let service_addrs: Vec<String> = services.iter().flat_map(|s| s.addrs.clone()).collect();
    env.extend(services.iter().flat_map(|s| s.env.iter().cloned()));
    let mut unset = Vec::new();
    if let Some(g) = &gate {
        // The agent holds its token, never a key: none from its profile,
        // none inherited from baton's environment.
        let set_here = |k: &OsString| g.env.iter().any(|(s, _)| s == k);
        env.retain(|(k, _)| !crate::gateway::PROVIDER_VARS.iter().any(|v| k == *v) && !set_here(k));
        env.extend(g.env.iter().cloned());
        unset.extend(crate::gateway::PROVIDER_VARS.iter().map(OsString::from));
    }
    // What a closed sandbox still reaches, and a container with its own
    // network through the bridge: its services, and the model gateway
    // (the only way to the provider then).
    let mut reach = service_addrs;
    reach.extend(gate.as_ref().map(|g| g.host()));
    let spec = profile.sandbox.as_ref().map(|s| {
        let mut s = s.clone();
        s.network = s.network.reaching(&reach);
        // A key baton reads from a file is never the agent's to read.
        s.hide.extend(super::gate::key_files(sh));
        s
    });
    let (jail, own_git, cgroup) = match &spec {
        Some(spec) => {
            let own =
                jail::make_own_git(sh, &jail::desk_name(&st.spec.id), &st.desk.worktree).await?;
            let room = jail::Room {
                spec,
                worktree: &st.desk.worktree,
                own_git: &own,
                env: &env,
                agent: Some(profile),
                doors: door
                    .as_ref()
                    .map(|d| d.dir.as_path())
                    .into_iter()
                    .chain(ask.as_ref().map(|a| a.dir.as_path()))
                    .collect(),
                task: Some(&st.spec.id),
                attempt: Some(n),
                loopback: &reach,
                files: launch.files.iter().map(|(p, _)| p.as_path()).collect(),
            };
            let j = jail::draw(sh, room).await?;
            // A container's limits are its engine's (`--memory`, `--pids-limit`).
            let cgroup = match spec.wall {
                Wall::Bwrap => limits(sh, st, spec, n).await,
                Wall::Container => None,
            };
            (Some(j), Some(own), cgroup)
        }
        None => (None, None, None),
    };
    if let Some(j) = &jail {
        let args = std::mem::take(&mut launch.args);
        (launch.program, launch.args) = j.command(launch.program.clone(), args);
    }
    Ok(Prepared {
        launch,
        env,
        jail,
        _door: door,
        ask,
        own_git,
        cgroup,
        _services: services,
        placement: super::executor::Placement::Local,
        gate,
        unset,
    })
}

/// What attempt `n`'s agent is told: the `full` prompt (instructions,
/// template, context, feedback), what its `agent` gets (only the feedback
/// when it resumes its session), and the messages that could not reach it
/// while it ran (`inbox`, which come with this attempt).
struct Prompts {
    full: String,
    agent: String,
    inbox: Vec<String>,
}

async fn prompts(
    sh: &Shared,
    st: &Start,
    profile: &AgentProfile,
    n: u32,
    feedback: &str,
    text_prompt: bool,
) -> Result<Prompts, String> {
    let ctx = PromptContext {
        tasks: st.upstream.clone(),
        feedback: feedback.to_string(),
        task: st.spec.id.clone(),
        run: sh.run_id.clone(),
        attempt: n,
        payload: sh.plan.payload.clone(),
    };
    let root = &sh.repo.root;
    let worktree = &st.desk.worktree;
    let full = prompt::build(&st.spec, profile, &ctx, worktree, root, text_prompt)?;
    // A resumed session has the task already: it gets only what is new.
    let mut agent = match (&st.session, feedback.is_empty()) {
        (Some(_), false) => format!("Feedback on your previous attempt:\n{feedback}"),
        _ => full.clone(),
    };
    let task = st.spec.id.clone();
    let inbox: Vec<String> = sh
        .db(move |s, run| s.take_undelivered(run, &task))
        .await
        .unwrap_or_default()
        .iter()
        .map(|m| m.said())
        .collect();
    if !inbox.is_empty() && text_prompt {
        // A resumed session told nothing new but messages (an answer to its
        // question, say) gets just them: it has the task already.
        match (&st.session, feedback.is_empty()) {
            (Some(_), true) => agent = inbox.join("\n"),
            _ => agent.push_str(&format!("\n\n{}", inbox.join("\n"))),
        }
    }
    Ok(Prompts { full, agent, inbox })
}

/// The files the adapter asks for (its MCP config, say), written first.
async fn write_files(files: &[(std::path::PathBuf, String)]) -> Result<(), String> {
    for (path, text) in files {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        tokio::fs::write(path, text)
            .await
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The cgroup of an attempt whose profile limits memory or processes; a
/// machine where they cannot be applied gets a notice saying why.
pub(super) async fn limits(
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
            let data = Payload::SandboxNotice { notice };
            sh.event(Some(&st.spec.id), Some(n), data).await;
            None
        }
    }
}

pub(super) const MAX_ENV_PROMPT: usize = 64 * 1024;

/// The environment of an attempt: baton's variables, a home of its own if
/// the profile asks, the adapter's defaults, then the profile's `env`.
pub(super) async fn attempt_env(
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
        ("PWD".into(), st.desk.worktree.clone().into()),
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
