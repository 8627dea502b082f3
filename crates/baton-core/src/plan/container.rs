//! `[container]`: where the agents of `sandbox = "container"` profiles run:
//! which runtime, and the image (a name, a Dockerfile, or the project's dev
//! container file), plus read-only mounts of the host (an agent CLI's
//! install) and a CPU limit.

use super::error::Checker;
use super::executor::Mount;
use serde::Deserialize;
use std::path::Path;
use toml::Spanned;

/// The dev container file baton reads when `[container]` names no image.
pub const DEVCONTAINER: &str = ".devcontainer/devcontainer.json";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawContainer {
    pub runtime: Option<Spanned<String>>,
    pub image: Option<Spanned<String>>,
    pub dockerfile: Option<Spanned<String>>,
    pub context: Option<Spanned<String>>,
    pub devcontainer: Option<Spanned<String>>,
    pub mounts: Option<Spanned<Vec<String>>>,
    pub cpus: Option<Spanned<f64>>,
}

/// Which container engine runs the containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// Whichever is installed, Podman first.
    #[default]
    Any,
    Podman,
    Docker,
}

/// Where the image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ImageSource {
    /// Nothing said, and the repository has no dev container file.
    #[default]
    None,
    /// An image by name (pulled by the runtime if it lacks it).
    Image(String),
    /// Built from a Dockerfile (relative to the repository) and its context
    /// directory (default: the Dockerfile's own).
    Dockerfile { file: String, context: String },
    /// A `devcontainer.json` (relative to the repository).
    Devcontainer(String),
}

#[derive(Debug, Clone, Default)]
pub struct ContainerSettings {
    pub runtime: Runtime,
    pub image: ImageSource,
    /// Read-only (unless `:rw`) mounts of the host, e.g. node and an agent
    /// CLI's install.
    pub mounts: Vec<Mount>,
    /// CPUs each container may use.
    pub cpus: Option<f64>,
    /// The dev container file, read when the image comes from one.
    pub dev: Option<crate::container::DevContainer>,
}

/// `walled`: a profile works in a container, so the dev container file is
/// read (and must be one baton can run); otherwise it is the editor's alone.
pub(super) fn check_container(
    ck: &mut Checker,
    raw: Option<&Spanned<RawContainer>>,
    repo_root: Option<&Path>,
    walled: bool,
) -> ContainerSettings {
    let repo_root = repo_root.filter(|_| walled);
    let mut out = ContainerSettings::default();
    let default_file = || {
        repo_root
            .filter(|r| r.join(DEVCONTAINER).is_file())
            .map(|_| ImageSource::Devcontainer(DEVCONTAINER.into()))
            .unwrap_or_default()
    };
    let Some(raw) = raw else {
        out.image = default_file();
        out.dev = read_dev(ck, &out.image, repo_root, None);
        return out;
    };
    let (span, raw) = (raw.span(), raw.get_ref());
    if let Some(r) = &raw.runtime {
        out.runtime = match r.get_ref().as_str() {
            "podman" => Runtime::Podman,
            "docker" => Runtime::Docker,
            other => {
                let msg =
                    format!("container.runtime must be \"podman\" or \"docker\", not {other:?}");
                ck.at(Some(r.span()), None, msg);
                Runtime::Any
            }
        };
    }
    let named: Vec<&Spanned<String>> = [&raw.image, &raw.dockerfile, &raw.devcontainer]
        .into_iter()
        .flatten()
        .collect();
    if named.len() > 1 {
        let msg = "[container] takes one of image, dockerfile and devcontainer".to_string();
        ck.at(Some(named[1].span()), None, msg);
    }
    for s in &named {
        if s.get_ref().trim().is_empty() || s.get_ref().contains('\0') {
            ck.at(Some(s.span()), None, "[container]: an empty name".into());
        }
    }
    if raw.context.is_some() && raw.dockerfile.is_none() {
        let msg = "container.context goes with container.dockerfile".to_string();
        ck.at(raw.context.as_ref().map(|c| c.span()), None, msg);
    }
    out.image = if let Some(i) = &raw.image {
        ImageSource::Image(i.get_ref().clone())
    } else if let Some(f) = &raw.dockerfile {
        let file = f.get_ref().clone();
        let context = match &raw.context {
            Some(c) => c.get_ref().clone(),
            None => parent_of(&file),
        };
        ImageSource::Dockerfile { file, context }
    } else if let Some(d) = &raw.devcontainer {
        ImageSource::Devcontainer(d.get_ref().clone())
    } else {
        default_file()
    };
    for path in relative_paths(&out.image) {
        if Path::new(path).is_absolute() || path.split('/').any(|p| p == "..") {
            let msg = format!("[container]: {path:?} must be a path inside the repository");
            ck.at(Some(span.clone()), None, msg);
        }
    }
    out.dev = read_dev(ck, &out.image, repo_root, Some(span));
    for m in raw.mounts.iter().flat_map(|m| m.get_ref()) {
        match Mount::parse(m) {
            Ok(mount) => out.mounts.push(mount),
            Err(why) => {
                let at = raw.mounts.as_ref().map(|m| m.span());
                ck.at(at, None, format!("container.mounts {m:?}: {why}"));
            }
        }
    }
    if let Some(c) = &raw.cpus {
        let n = *c.get_ref();
        if n.is_finite() && n > 0.0 && n <= 1024.0 {
            out.cpus = Some(n);
        } else {
            let msg = format!("container.cpus must be a number of CPUs above 0, not {n}");
            ck.at(Some(c.span()), None, msg);
        }
    }
    out
}

/// The dev container file the image comes from, read and checked.
fn read_dev(
    ck: &mut Checker,
    image: &ImageSource,
    repo_root: Option<&Path>,
    at: Option<std::ops::Range<usize>>,
) -> Option<crate::container::DevContainer> {
    let (ImageSource::Devcontainer(file), Some(root)) = (image, repo_root) else {
        return None;
    };
    let read = std::fs::read_to_string(root.join(file))
        .map_err(|e| format!("cannot read it: {e}"))
        .and_then(|t| crate::container::devcontainer::parse(&t));
    match read {
        Ok(d) => Some(d),
        Err(e) => {
            ck.at(at, None, format!("[container] devcontainer {file}: {e}"));
            None
        }
    }
}

/// Whether any profile's agent works in a container.
pub fn any_walled(agents: &std::collections::BTreeMap<String, super::AgentProfile>) -> bool {
    agents
        .values()
        .any(|a| a.sandbox.as_ref().map(|s| s.wall) == Some(super::sandbox::Wall::Container))
}

/// A profile in a container needs an image to run.
pub(super) fn check_profiles(
    ck: &mut Checker,
    agents: &std::collections::BTreeMap<String, super::AgentProfile>,
    settings: &ContainerSettings,
) {
    if settings.image != ImageSource::None {
        return;
    }
    for (name, a) in agents {
        let walled = a.sandbox.as_ref().map(|s| s.wall);
        if walled == Some(super::sandbox::Wall::Container) {
            let msg = format!(
                "sandbox = \"container\" needs an image: [container] image, dockerfile or devcontainer (or a {DEVCONTAINER} in the repository)"
            );
            ck.at(None, Some(format!("agent {name:?}")), msg);
        }
    }
}

/// The directory of a relative file ("." for one at the top).
fn parent_of(file: &str) -> String {
    match Path::new(file)
        .parent()
        .map(|p| p.to_string_lossy().to_string())
    {
        Some(p) if !p.is_empty() => p,
        _ => ".".into(),
    }
}

fn relative_paths(image: &ImageSource) -> Vec<&str> {
    match image {
        ImageSource::Dockerfile { file, context } => vec![file, context],
        ImageSource::Devcontainer(f) => vec![f],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, root: Option<&Path>) -> (ContainerSettings, Vec<String>) {
        check_walled(text, root, true)
    }

    fn check_walled(
        text: &str,
        root: Option<&Path>,
        walled: bool,
    ) -> (ContainerSettings, Vec<String>) {
        #[derive(Deserialize)]
        struct T {
            container: Option<Spanned<RawContainer>>,
        }
        let t: T = toml::from_str(text).unwrap();
        let mut ck = Checker::new(text);
        let s = check_container(&mut ck, t.container.as_ref(), root, walled);
        (s, ck.diags.into_iter().map(|d| d.message).collect())
    }

    #[test]
    fn the_image_is_named_built_or_read_from_the_dev_container_file() {
        let (s, e) = check(
            "[container]\nimage = \"debian:12\"\nruntime = \"podman\"\ncpus = 1.5\n",
            None,
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(s.image, ImageSource::Image("debian:12".into()));
        assert_eq!((s.runtime, s.cpus), (Runtime::Podman, Some(1.5)));
        let (s, _) = check("[container]\ndockerfile = \"ci/Dockerfile\"\n", None);
        let want = ImageSource::Dockerfile {
            file: "ci/Dockerfile".into(),
            context: "ci".into(),
        };
        assert_eq!(s.image, want);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check("", Some(dir.path())).0.image, ImageSource::None);
        std::fs::create_dir_all(dir.path().join(".devcontainer")).unwrap();
        std::fs::write(dir.path().join(DEVCONTAINER), "{}").unwrap();
        let (s, _) = check("", Some(dir.path()));
        assert_eq!(s.image, ImageSource::Devcontainer(DEVCONTAINER.into()));
        let (s, _) = check(
            "[container]\nmounts = [\"/usr/bin/node\"]\n",
            Some(dir.path()),
        );
        assert_eq!(s.image, ImageSource::Devcontainer(DEVCONTAINER.into()));
        assert_eq!(s.mounts[0].pod, "/usr/bin/node");
    }

    #[test]
    fn a_dev_container_file_is_the_editors_alone_until_a_profile_works_in_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".devcontainer")).unwrap();
        let compose = r#"{"dockerComposeFile": "compose.yml", "service": "app"}"#;
        std::fs::write(dir.path().join(DEVCONTAINER), compose).unwrap();
        let (s, e) = check_walled("", Some(dir.path()), false);
        assert!(e.is_empty() && s.dev.is_none(), "{e:?}");
        let (_, e) = check_walled("", Some(dir.path()), true);
        assert!(e.iter().any(|m| m.contains("compose project")), "{e:?}");
    }

    #[test]
    fn a_wrong_container_section_says_what() {
        for (text, want) in [
            ("runtime = \"lxc\"", "\"podman\" or \"docker\""),
            ("image = \"a\"\ndockerfile = \"b\"", "one of image"),
            ("context = \".\"", "goes with container.dockerfile"),
            ("dockerfile = \"../x/Dockerfile\"", "inside the repository"),
            ("devcontainer = \"/etc/x.json\"", "inside the repository"),
            ("mounts = [\"relative\"]", "container.mounts"),
            ("cpus = 0.0", "above 0"),
            ("image = \"\"", "empty"),
        ] {
            let (_, e) = check(&format!("[container]\n{text}\n"), None);
            assert!(e.iter().any(|m| m.contains(want)), "{text}: {e:?}");
        }
    }
}
