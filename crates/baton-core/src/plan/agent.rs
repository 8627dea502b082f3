//! The plan's `[agent.NAME]` profiles checked into [`AgentProfile`]s: their
//! adapter and command, home, limits, executor and sandbox, and the
//! fallbacks that name other profiles.

use super::error::Checker;
use super::raw::{RawAgent, RawPlan, RawTask};
use super::validate::{check_file, is_valid_id};
use super::AgentProfile;
use crate::duration::parse_duration;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

pub(super) fn check_agents(
    ck: &mut Checker,
    raw: &RawPlan,
    repo_root: Option<&Path>,
    executor: &super::ExecutorSettings,
) -> BTreeMap<String, AgentProfile> {
    let defaults = raw.defaults.as_ref().map(|d| d.get_ref());
    let mut out = BTreeMap::new();
    for (name, a) in &raw.agent {
        let profile = check_agent(
            ck,
            name,
            a.get_ref(),
            a.span(),
            repo_root,
            executor,
            defaults,
        );
        out.insert(name.clone(), profile);
    }
    for (name, a) in &raw.agent {
        check_fallbacks(ck, name, a.get_ref(), &out);
    }
    out
}

fn check_agent(
    ck: &mut Checker,
    name: &str,
    a: &RawAgent,
    span: Range<usize>,
    repo_root: Option<&Path>,
    executor: &super::ExecutorSettings,
    defaults: Option<&RawTask>,
) -> AgentProfile {
    let subject = Some(format!("agent {name:?}"));
    let adapter = a.adapter.get_ref().as_str();
    if !is_valid_id(name) {
        let msg = "profile names may use only letters, digits, '_' and '-'";
        ck.at(Some(span.clone()), subject.clone(), msg.into());
    }
    if crate::adapter::find(adapter).is_none() {
        let msg = format!(
            "unknown adapter {adapter:?}; expected one of {}",
            crate::adapter::names().join(", ")
        );
        ck.at(Some(a.adapter.span()), subject.clone(), msg);
    }
    check_command(ck, a, &span, &subject);
    if let Some(instr) = &a.instructions {
        check_file(ck, repo_root, instr, subject.clone(), "instructions file");
    }
    if a.account.as_ref().is_some_and(|acc| acc.trim().is_empty()) {
        let msg = "account is empty: name the provider account the profile's limits are shared under, or leave it out".to_string();
        ck.at(Some(span.clone()), subject.clone(), msg);
    }
    let executor = super::executor::profile_executor(ck, executor, a.executor.as_ref(), &subject);
    // On a remote executor, where it runs is the agent's sandbox.
    let sandbox = match executor {
        super::Executor::Local => profile_sandbox(ck, a, defaults, span, &subject),
        super::Executor::Remote(_) => None,
    };
    let gateway = match a.gateway.as_ref().map(|g| *g.get_ref()) {
        None => super::GatewayUse::Auto,
        Some(true) => super::GatewayUse::On,
        Some(false) => super::GatewayUse::Off,
    };
    if let Some(g) = a.gateway.as_ref().filter(|g| *g.get_ref()) {
        let speaks = crate::gateway::Provider::of_profile(adapter, a.model.as_deref(), &a.env);
        if let Some(msg) = super::gateway::gateway_problem(adapter, speaks.is_some()) {
            ck.at(Some(g.span()), subject.clone(), msg);
        }
    }
    AgentProfile {
        name: name.to_string(),
        adapter: adapter.to_string(),
        model: a.model.clone(),
        args: a.args.clone(),
        env: a.env.clone(),
        instructions: a.instructions.as_ref().map(|s| s.get_ref().clone()),
        command: a.command.as_ref().map(|c| c.get_ref().clone()),
        hermetic_home: hermetic_home(ck, a, &subject),
        max_parallel: max_parallel(ck, a, &subject),
        sandbox,
        max_wait: max_wait(ck, a, &subject),
        fallback: a
            .fallback
            .as_ref()
            .map(|f| f.get_ref().clone())
            .unwrap_or_default(),
        account: a.account.clone().filter(|a| !a.trim().is_empty()),
        host_labels: host_labels(ck, a, &executor, &subject),
        executor,
        ask: a.ask.unwrap_or(true),
        gateway,
    }
}

/// `host_labels`: only on SSH hosts, and some host must carry them all.
fn host_labels(
    ck: &mut Checker,
    a: &RawAgent,
    executor: &super::Executor,
    subject: &Option<String>,
) -> Vec<String> {
    let Some(labels) = &a.host_labels else {
        return Vec::new();
    };
    let wanted = labels.get_ref();
    let msg = match executor {
        super::Executor::Remote(r) => match r.as_ref() {
            super::Remote::Ssh(ssh) if ssh.hosts.iter().any(|h| h.has_labels(wanted)) => None,
            super::Remote::Ssh(_) => Some(format!(
                "no host in [executor] hosts carries every one of host_labels {wanted:?}"
            )),
            _ => {
                Some("host_labels picks among SSH hosts; this profile does not run on them".into())
            }
        },
        super::Executor::Local => {
            Some("host_labels picks among SSH hosts; this profile runs here".into())
        }
    };
    if let Some(msg) = msg {
        ck.at(Some(labels.span()), subject.clone(), msg);
    }
    wanted.clone()
}

/// `command` names a program; an exec profile must have one.
fn check_command(ck: &mut Checker, a: &RawAgent, span: &Range<usize>, subject: &Option<String>) {
    match &a.command {
        Some(cmd) if cmd.get_ref().is_empty() || cmd.get_ref()[0].trim().is_empty() => {
            let msg = "`command` is empty; name a program";
            ck.at(Some(cmd.span()), subject.clone(), msg.into());
        }
        Some(_) => {}
        None if a.adapter.get_ref() == "exec" => {
            let msg = "an exec profile needs `command`, e.g. command = [\"bash\", \"-ec\"]";
            ck.at(Some(span.clone()), subject.clone(), msg.into());
        }
        None => {}
    }
}

fn hermetic_home(ck: &mut Checker, a: &RawAgent, subject: &Option<String>) -> bool {
    match a.home.as_ref().map(|h| (h.get_ref().as_str(), h.span())) {
        None | Some(("inherit", _)) => false,
        Some(("hermetic", _)) => true,
        Some((other, span)) => {
            let msg = format!("home must be \"inherit\" (the user's home) or \"hermetic\" (one of its own), not {other:?}");
            ck.at(Some(span), subject.clone(), msg);
            false
        }
    }
}

fn max_parallel(ck: &mut Checker, a: &RawAgent, subject: &Option<String>) -> Option<usize> {
    let m = a.max_parallel.as_ref()?;
    let n = usize::try_from(*m.get_ref()).ok().filter(|n| *n >= 1);
    if n.is_none() {
        let msg = format!("max_parallel must be at least 1, not {}", m.get_ref());
        ck.at(Some(m.span()), subject.clone(), msg);
    }
    n
}

/// How long the profile's tasks wait out a provider's limit.
fn max_wait(ck: &mut Checker, a: &RawAgent, subject: &Option<String>) -> Duration {
    let Some(w) = &a.max_wait else {
        return super::DEFAULT_MAX_WAIT;
    };
    parse_duration(w.get_ref()).unwrap_or_else(|e| {
        ck.at(Some(w.span()), subject.clone(), format!("max_wait: {e}"));
        super::DEFAULT_MAX_WAIT
    })
}

/// A fallback names another profile of the plan.
fn check_fallbacks(
    ck: &mut Checker,
    name: &str,
    a: &RawAgent,
    profiles: &BTreeMap<String, AgentProfile>,
) {
    for f in a.fallback.iter() {
        for fb in f.get_ref() {
            if fb == name || !profiles.contains_key(fb) {
                let why = if fb == name {
                    "the profile itself"
                } else {
                    "no profile of the plan"
                };
                ck.at(
                    Some(f.span()),
                    Some(format!("agent {name:?}")),
                    format!("fallback {fb:?} is {why}; name other profiles"),
                );
            }
        }
    }
}

/// A profile's sandbox: its own fields, else `[defaults]`' `sandbox` and
/// `network`.
fn profile_sandbox(
    ck: &mut Checker,
    a: &RawAgent,
    defaults: Option<&RawTask>,
    span: std::ops::Range<usize>,
    subject: &Option<String>,
) -> Option<super::sandbox::Sandbox> {
    let mode = a
        .sandbox
        .as_ref()
        .or(defaults.and_then(|d| d.sandbox.as_ref()));
    let network = a
        .network
        .as_ref()
        .or(defaults.and_then(|d| d.network.as_ref()));
    let at = mode
        .map(|m| m.span())
        .or(network.map(|n| n.span()))
        .unwrap_or(span);
    let parsed = super::sandbox::parse(
        mode.map(|m| m.get_ref().as_str()),
        network.map(|n| n.get_ref()),
        a.hide.as_deref(),
        a.memory.as_ref().map(|m| m.get_ref().as_str()),
        a.pids.as_ref().map(|p| *p.get_ref()),
    );
    match parsed {
        Ok(s) => s,
        Err(e) => {
            ck.at(Some(at), subject.clone(), e);
            None
        }
    }
}
