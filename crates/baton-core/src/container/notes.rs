//! What `baton check` and `baton doctor` say about a plan's containers:
//! what the dev container file asks that baton does not do, and whether
//! the engine and the image are here.

use super::image::{self, Wanted};
use crate::plan::container::{ContainerSettings, ImageSource};
use crate::plan::sandbox::Network;
use crate::plan::Plan;
use std::path::Path;

/// Warnings about the plan's containers that need no engine to find.
pub fn warnings(plan: &Plan) -> Vec<String> {
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

/// `baton doctor`'s lines about the container engine and the image: each
/// with whether it is fine.
pub async fn doctor(settings: &ContainerSettings, root: &Path) -> Vec<(bool, String)> {
    let asked = settings.runtime;
    let engine = match tokio::task::spawn_blocking(move || super::runtime::find(asked)).await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return vec![(false, format!("engine: {e}"))],
        Err(e) => return vec![(false, format!("engine: {e}"))],
    };
    let mut out = vec![(true, format!("engine: {}", engine.describe()))];
    let from = match &settings.image {
        ImageSource::Image(_) => "the plan".to_string(),
        ImageSource::Dockerfile { file, .. } => file.clone(),
        ImageSource::Devcontainer(file) => file.clone(),
        ImageSource::None => String::new(),
    };
    let line = match image::wanted(settings, settings.dev.as_ref(), root) {
        Err(e) => (false, format!("image: {e}")),
        Ok(Wanted::Named(n)) if image::exists(&engine, &n).await => {
            (true, format!("image {n} (from {from}): here"))
        }
        Ok(Wanted::Named(n)) => (
            true,
            format!("image {n} (from {from}): not here; the first attempt pulls it"),
        ),
        Ok(Wanted::Built(r)) => match image::tag_of(&r, root).await {
            Err(e) => (false, format!("image: {e}")),
            Ok(tag) if image::exists(&engine, &tag).await => {
                (true, format!("image {tag} (built from {from}): here"))
            }
            Ok(tag) => (
                true,
                format!(
                    "image {tag}: not built yet; the first attempt builds it from {}",
                    r.dockerfile.display()
                ),
            ),
        },
    };
    out.push(line);
    out
}
