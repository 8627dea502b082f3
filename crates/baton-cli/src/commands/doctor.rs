//! `baton doctor`: which agent CLIs are here, their versions, and whether
//! each profile of a plan can start.

use super::{load_plan, which};
use baton_core::adapter::program_name;
use baton_core::plan::sandbox::Wall;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Check which agent CLIs are installed (and their versions), and whether
/// every profile in the plan can start. Exits 1 if one cannot.
#[derive(Args)]
pub struct DoctorArgs {
    /// The plan whose profiles to check (skipped if it does not exist).
    #[arg(default_value = "baton.toml")]
    pub plan: PathBuf,
}

async fn version(bin: &Path) -> Result<String, String> {
    let child = tokio::process::Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await {
        Ok(Ok(out)) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            Ok(text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string())
        }
        Ok(Ok(out)) => Err(format!(
            "`--version` exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("`--version` did not answer within 20 s".into()),
    }
}

pub async fn run(cwd: &Path, args: DoctorArgs) -> anyhow::Result<i32> {
    println!("agent CLIs:");
    for cli in baton_core::adapter::ADAPTERS.iter().filter_map(|a| a.cli) {
        match which(cli) {
            Some(p) => match version(&p).await {
                Ok(v) => println!("  {cli:<9} {v}  ({})", p.display()),
                Err(e) => println!("  {cli:<9} found at {} but broken: {e}", p.display()),
            },
            None => println!("  {cli:<9} not found on PATH"),
        }
    }
    let sandbox = tokio::task::spawn_blocking(baton_core::sandbox::probe).await?;
    match &sandbox {
        Ok(v) => println!(
            "sandbox: {v} works here (sandbox = \"bwrap\"); {}",
            baton_core::sandbox::privilege_note()
        ),
        Err(e) => println!("sandbox: {e}"),
    }
    let plan_path = if args.plan.is_absolute() {
        args.plan.clone()
    } else {
        cwd.join(&args.plan)
    };
    if !plan_path.exists() {
        println!(
            "no plan at {}; pass one to check its profiles",
            args.plan.display()
        );
        return Ok(0);
    }
    let (repo, plan) = load_plan(cwd, &args.plan)?;
    println!("profiles in {}:", args.plan.display());
    let mut bad = 0;
    for (name, profile) in &plan.agents {
        let used = plan.tasks.iter().filter(|t| &t.agent == name).count();
        let program = program_name(&profile.cli());
        if let baton_core::plan::Executor::Remote(r) = &profile.executor {
            println!(
                "  {name} [{}]: runs {program:?} in {}; {used} task(s)",
                profile.adapter,
                r.holds_the_cli()
            );
            continue;
        }
        let in_container = profile
            .sandbox
            .as_ref()
            .is_some_and(|s| s.wall == Wall::Container);
        let verdict = match which(&program) {
            _ if in_container => Ok(format!(
                "runs {program:?} in its container (from the image or [container] mounts)"
            )),
            None => Err(format!("cannot start: {program:?} not found on PATH (install it, or set the profile's `command`)")),
            Some(p) if profile.adapter == "exec" => Ok(format!("runs {}", p.display())),
            Some(p) => version(&p).await.map(|v| format!("{v} ({})", p.display())).map_err(|e| format!("cannot start: {e}")),
        };
        let walled = |s: &baton_core::plan::sandbox::Sandbox| s.wall == Wall::Bwrap;
        let verdict = match (profile.sandbox.as_ref().filter(|s| walled(s)), &sandbox) {
            (Some(_), Err(e)) => verdict.and(Err(format!("its sandbox cannot start: {e}"))),
            _ => verdict,
        };
        match verdict {
            Ok(v) => println!("  {name} [{}]: ok, {v}; {used} task(s)", profile.adapter),
            Err(e) => {
                bad += 1;
                println!("  {name} [{}]: {e}; {used} task(s)", profile.adapter);
            }
        }
        if let Some(spec) = &profile.sandbox {
            for rule in sandbox_rules(spec, profile) {
                println!("      {rule}");
            }
        }
        if let Some((ok, line)) = gateway_line(&plan, profile, &repo.root).await {
            bad += usize::from(!ok);
            println!("      {line}");
        }
    }
    let services = !plan.workspace.services.is_empty();
    if baton_core::plan::container::any_walled(&plan.agents) || services {
        println!("containers (sandbox = \"container\", services):");
        let me = std::env::current_exe().ok();
        let lines = baton_core::container::notes::doctor(&plan, &repo.root, me.as_deref()).await;
        for (ok, line) in lines {
            bad += usize::from(!ok);
            println!("  {}  {line}", if ok { "ok" } else { "NO" });
        }
        for w in baton_core::container::notes::warnings(&plan, &repo.root) {
            println!("  note  {w}");
        }
    }
    if let Some(remote) = &plan.executor.remote {
        println!("{}:", remote.title());
        bad += remote_checks(remote).await;
    }
    Ok(if bad > 0 { 1 } else { 0 })
}

/// Whether a profile's agent goes through the model gateway, where to and
/// whose key it carries (never the key itself; a key file or command is
/// read to see that it gives one). None: a CLI the gateway does not front.
async fn gateway_line(
    plan: &baton_core::plan::Plan,
    p: &baton_core::plan::AgentProfile,
    repo: &std::path::Path,
) -> Option<(bool, String)> {
    use baton_core::gateway::{decide, read_key, Decision, KeyFrom};
    let from_baton = |v: &str| std::env::var(v).ok();
    let route = match decide(p, &plan.gateway, from_baton) {
        Decision::Through(r) => r,
        Decision::Login(_) => {
            let line = "gateway: not behind it, no key found (its CLI's own login is used)";
            return Some((true, line.into()));
        }
        Decision::Broken(why) => return Some((false, format!("gateway: {why}"))),
        Decision::Direct if p.gateway == baton_core::plan::GatewayUse::Off => {
            return Some((true, "gateway: not behind it (gateway = false)".into()))
        }
        Decision::Direct => return None,
    };
    let provider = route.provider;
    let upstream = (route.upstream.clone())
        .or_else(|| plan.gateway.providers.get(&provider).cloned())
        .map_or_else(|| "nowhere".to_string(), |u| u.url);
    // A proxy's address may hold its user and password: never shown.
    let upstream = without_userinfo(&upstream);
    let whose = route.key.describe();
    let read = match &route.key {
        KeyFrom::Source { source, .. } => read_key(source, repo).await.err().map(|e| {
            // A person reads this: the command's error output too.
            let detail = e.detail.map(|d| format!(": {d}")).unwrap_or_default();
            format!("{}{detail}", e.why)
        }),
        KeyFrom::Given { .. } => None,
    };
    Some(match read {
        None => (
            true,
            format!("gateway: {provider} at {upstream}, its key from {whose}"),
        ),
        Some(e) => (
            false,
            format!(
                "gateway: {provider} at {upstream}, but its key from {whose} cannot be read: {e}"
            ),
        ),
    })
}

/// `url` less a `user:password@` before its host.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}{path}")
}

/// Prints a remote executor's checks; how many failed.
async fn remote_checks(remote: &baton_core::plan::Remote) -> usize {
    let checks = match crate::executors::driver(remote.kind()) {
        Ok(d) => (d.doctor)(remote).await,
        Err(e) => vec![(false, e)],
    };
    let mut bad = 0;
    for (ok, line) in checks {
        if !ok {
            bad += 1;
        }
        println!("  {} {line}", if ok { "ok " } else { "NO " });
    }
    bad
}

/// A container's walls in words.
fn container_rules(spec: &baton_core::plan::sandbox::Sandbox) -> Vec<String> {
    use baton_core::plan::sandbox::Network;
    let mut rules = vec![
        "sandbox: container; sees: its worktree and its desk's own git directory (writable), the repository's objects (read-only), its CLI's own state, [container] mounts; nothing else of this machine".to_string(),
        "processes: the container's own; each command's container is removed when it ends".to_string(),
        match &spec.network {
            Network::On => "network: the engine's own network (not this machine's loopback)".to_string(),
            Network::Off => "network: none".to_string(),
            Network::Allow(list) => format!(
                "network: only {} (through baton's proxy; every connection is an event)",
                list.join(", ")
            ),
        },
    ];
    if let Some(m) = spec.memory {
        rules.push(format!(
            "memory: at most {} (the container's limit)",
            baton_core::memory::human(m)
        ));
    }
    if let Some(p) = spec.pids {
        rules.push(format!("processes: at most {p} (the container's limit)"));
    }
    rules
}

/// A profile's sandbox in words: what its agents may and may not do.
fn sandbox_rules(
    spec: &baton_core::plan::sandbox::Sandbox,
    profile: &baton_core::plan::AgentProfile,
) -> Vec<String> {
    use baton_core::plan::sandbox::Network;
    if spec.wall == Wall::Container {
        return container_rules(spec);
    }
    let mut rules = vec![
        "sandbox: bwrap; writes: its worktree, its desk's own git directory (the commits it makes; the repository's refs and objects read-only), a private /tmp".to_string(),
        format!("privileges: {}", baton_core::sandbox::privilege_note()),
        if profile.hermetic_home {
            "home: its own (hermetic), writable".to_string()
        } else {
            format!(
                "home: yours, read-only but for {}'s own state",
                profile.adapter
            )
        },
        format!("hidden: {}", spec.hide.join(", ")),
        "processes: its own PID namespace; nothing outlives it".to_string(),
        match &spec.network {
            Network::On => "network: on".to_string(),
            Network::Off => "network: off".to_string(),
            Network::Allow(list) => format!(
                "network: only {} (through baton's proxy; every connection is an event)",
                list.join(", ")
            ),
        },
    ];
    if spec.memory.is_some() || spec.pids.is_some() {
        rules.push(baton_core::sandbox::cgroup::describe(
            baton_core::sandbox::cgroup::Limits {
                memory: spec.memory,
                pids: spec.pids,
            },
        ));
    }
    rules
}
