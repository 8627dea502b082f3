//! What `baton check` and `baton doctor` say about a plan's containers:
//! what the dev container file asks that baton does not do, and whether
//! the engine and the image are here.

use super::image::{self, Wanted};
use crate::plan::container::{ContainerSettings, ImageSource};
use crate::plan::sandbox::Network;
use crate::plan::Plan;
use std::path::Path;

/// Warnings about the plan's containers and services that need no engine
/// to find; `root`: the repository's.
pub fn warnings(plan: &Plan, root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let remote: Vec<&str> = plan
        .agents
        .iter()
        .filter(|(_, a)| !matches!(a.executor, crate::plan::Executor::Local))
        .map(|(n, _)| n.as_str())
        .collect();
    if !plan.workspace.services.is_empty() && !remote.is_empty() {
        out.push(format!(
            "[[workspace.service]] runs beside agents of this machine only: {} get none",
            remote.join(", ")
        ));
    }
    out.extend(dev_warnings(plan, root));
    out
}

/// What the dev container file asks that baton does not do or lend.
fn dev_warnings(plan: &Plan, root: &Path) -> Vec<String> {
    let settings = &plan.container;
    let (ImageSource::Devcontainer(file), Some(dev)) = (&settings.image, &settings.dev) else {
        return Vec::new();
    };
    if !crate::plan::container::any_walled(&plan.agents) {
        return Vec::new();
    }
    let mut out = Vec::new();
    if !dev.unsupported.is_empty() {
        out.push(format!(
            "{file}: baton does not act on {} (ignored)",
            dev.unsupported.join(", ")
        ));
    }
    let lent = crate::engine::process::cell::dev_mounts(settings, root);
    if !lent.is_empty() {
        let list: Vec<String> = lent.iter().map(|(h, i)| format!("{h} at {i}")).collect();
        out.push(format!(
            "{file}: its mounts are lent read-only: {}",
            list.join(", ")
        ));
    }
    if lent.len() < dev.mounts.len() {
        out.push(format!(
            "{file}: only mounts of the repository's own files are lent (not your home, a socket or /run: the file is the repository's, which an agent can change)"
        ));
    }
    let closed: Vec<&str> = plan
        .agents
        .iter()
        .filter(|(_, a)| a.sandbox.as_ref().is_some_and(|s| s.network != Network::On))
        .map(|(n, _)| n.as_str())
        .collect();
    if !dev.forward_ports.is_empty() && !closed.is_empty() {
        out.push(format!(
            "{file}: forwardPorts are published only for profiles with network = \"on\", not {}",
            closed.join(", ")
        ));
    }
    out
}

/// `baton doctor`'s lines about the container engine, the agents' image
/// and the services' images: each with whether it is fine. `baton`: this
/// binary, tried inside the image (the network bridge runs it there).
pub async fn doctor(plan: &Plan, root: &Path, baton: Option<&Path>) -> Vec<(bool, String)> {
    let settings = &plan.container;
    let engine = match super::runtime::locate(settings.runtime).await {
        Ok(e) => e,
        Err(e) => return vec![(false, format!("engine: {e}"))],
    };
    let mut out = vec![(true, format!("engine: {}", engine.describe()))];
    if crate::plan::container::any_walled(&plan.agents) {
        let (line, ready) = image_line(&engine, settings, root).await;
        out.push(line);
        // The bridge runs for a closed network, services or the gateway.
        let bridged = plan.agents.values().any(|a| {
            a.sandbox.as_ref().is_some_and(|s| {
                s.wall == crate::plan::sandbox::Wall::Container
                    && (matches!(s.network, Network::Allow(_))
                        || !plan.workspace.services.is_empty()
                        || a.gateway != crate::plan::GatewayUse::Off)
            })
        });
        if let (Some(image), Some(baton), true) = (ready, baton, bridged) {
            out.push(bridge_line(&engine, &image, baton).await);
        }
    }
    for svc in &plan.workspace.services {
        let line = if image::exists(&engine, &svc.image).await {
            format!("service {}: image {} here", svc.name, svc.image)
        } else {
            format!(
                "service {}: image {} not here; the first attempt pulls it",
                svc.name, svc.image
            )
        };
        out.push((true, line));
    }
    out
}

/// The agents' image: a line, and its name if it is ready.
async fn image_line(
    engine: &super::Engine,
    settings: &ContainerSettings,
    root: &Path,
) -> ((bool, String), Option<String>) {
    let from = match &settings.image {
        ImageSource::Image(_) => "the plan".to_string(),
        ImageSource::Dockerfile { file, .. } => file.clone(),
        ImageSource::Devcontainer(file) => file.clone(),
        ImageSource::None => String::new(),
    };
    match image::wanted(settings, settings.dev.as_ref(), root) {
        Err(e) => ((false, format!("image: {e}")), None),
        Ok(Wanted::Named(n)) if image::exists(engine, &n).await => {
            ((true, format!("image {n} (from {from}): here")), Some(n))
        }
        Ok(Wanted::Named(n)) => (
            (
                true,
                format!("image {n} (from {from}): not here; the first attempt pulls it"),
            ),
            None,
        ),
        Ok(Wanted::Built(r)) => match image::tag_of(&r, root).await {
            Err(e) => ((false, format!("image: {e}")), None),
            Ok(tag) if image::exists(engine, &tag).await => (
                (true, format!("image {tag} (built from {from}): here")),
                Some(tag),
            ),
            Ok(tag) => (
                (
                    true,
                    format!(
                        "image {tag}: not built yet; the first attempt builds it from {}",
                        r.dockerfile.display()
                    ),
                ),
                None,
            ),
        },
    }
}

/// Whether this baton runs inside the image: the network bridge of an
/// allow-list or of services is this binary, run there.
async fn bridge_line(engine: &super::Engine, image: &str, baton: &Path) -> (bool, String) {
    let bind = format!("--volume={0}:{0}:ro", baton.display());
    let out = tokio::process::Command::new(&engine.program)
        .args(["run", "--rm", "--network=none"])
        .args(super::runtime::ulimits())
        .arg(bind)
        .arg(image)
        .arg(baton)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => (true, "bridge: baton runs inside the image".into()),
        Ok(o) => (
            false,
            format!(
                "bridge: baton cannot run inside the image (it needs a glibc as new as this machine's), so a network list or services cannot work there: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        ),
        Err(e) => (false, format!("bridge: cannot run {}: {e}", engine.program)),
    }
}
