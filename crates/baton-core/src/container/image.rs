//! The image a run's containers start from: one named in the plan (pulled
//! if the engine lacks it), or built from a Dockerfile (the plan's or the
//! dev container file's) once per content: the tag is a hash of the
//! Dockerfile, its build arguments and the files of its context (git's
//! record of the tracked ones; size and time of those changed or
//! untracked), so an unchanged project reuses its image and a changed one
//! gets anew.

use super::{DevContainer, Engine};
use crate::plan::container::{ContainerSettings, ImageSource};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::Command;

/// What to build: a Dockerfile, its context, its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    pub dockerfile: PathBuf,
    pub context: PathBuf,
    pub args: BTreeMap<String, String>,
}

/// Where the image comes from, paths made absolute.
#[derive(Debug, Clone, PartialEq)]
pub enum Wanted {
    Named(String),
    Built(Recipe),
}

/// What the settings ask for, under the repository at `root`.
pub fn wanted(
    settings: &ContainerSettings,
    dev: Option<&DevContainer>,
    root: &Path,
) -> Result<Wanted, String> {
    match (&settings.image, dev) {
        (ImageSource::Image(name), _) => Ok(Wanted::Named(name.clone())),
        (ImageSource::Dockerfile { file, context }, _) => Ok(Wanted::Built(Recipe {
            dockerfile: root.join(file),
            context: root.join(context),
            args: BTreeMap::new(),
        })),
        (ImageSource::Devcontainer(file), Some(dev)) => {
            let dir = root.join(file);
            let dir = dir.parent().unwrap_or(root);
            match (&dev.image, &dev.build) {
                (_, Some(b)) => {
                    let (dockerfile, context) = (dir.join(&b.dockerfile), dir.join(&b.context));
                    for p in [&dockerfile, &context] {
                        if !inside(root, p) {
                            return Err(format!(
                                "{file}: {} is outside the repository",
                                p.display()
                            ));
                        }
                    }
                    Ok(Wanted::Built(Recipe {
                        dockerfile,
                        context,
                        args: b.args.clone(),
                    }))
                }
                (Some(name), None) => Ok(Wanted::Named(name.clone())),
                (None, None) => Err(format!("{file} names no image")),
            }
        }
        _ => Err(
            "sandbox = \"container\" needs an image: [container] image, dockerfile or devcontainer"
                .into(),
        ),
    }
}

/// Whether `p` (made of `root` and relative parts) stays in `root`.
fn inside(root: &Path, p: &Path) -> bool {
    let mut depth: Vec<std::path::Component> = Vec::new();
    let Ok(rest) = p.strip_prefix(root) else {
        return false;
    };
    for c in rest.components() {
        match c {
            std::path::Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            std::path::Component::CurDir => {}
            other => depth.push(other),
        }
    }
    true
}

/// The tag of an image built from `recipe`: the same for the same content.
pub async fn tag_of(recipe: &Recipe, root: &Path) -> Result<String, String> {
    let file = tokio::fs::read(&recipe.dockerfile)
        .await
        .map_err(|e| format!("cannot read {}: {e}", recipe.dockerfile.display()))?;
    let mut h = Sha256::new();
    h.update(&file);
    for (k, v) in &recipe.args {
        h.update(format!("\0{k}={v}").as_bytes());
    }
    let git = |args: &'static [&'static str]| {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(root)
            .args(args)
            .arg("--")
            .arg(&recipe.context);
        cmd.stdin(Stdio::null());
        async move {
            let out = cmd
                .output()
                .await
                .map_err(|e| format!("cannot list the build context: {e}"))?;
            match out.status.success() {
                true => Ok(out.stdout),
                false => Err(format!(
                    "cannot list the build context {}: {}",
                    recipe.context.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
            }
        }
    };
    h.update(git(&["ls-files", "-s"]).await?);
    // Edited or new files are not in git's record: their size and time are.
    let changed = git(&["ls-files", "-m", "-o", "--exclude-standard", "-z"]).await?;
    for name in changed.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let path = root.join(String::from_utf8_lossy(name).as_ref());
        if let Ok(m) = tokio::fs::metadata(&path).await {
            let when = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            h.update(name);
            h.update(format!("\0{}\0{:?}", m.len(), when).as_bytes());
        }
    }
    let hex = format!("{:x}", h.finalize());
    Ok(format!("baton.local/build:{}", &hex[..16]))
}

/// The image ready in the engine: its name. Builds or pulls what is missing.
pub async fn ensure(engine: &Engine, wanted: &Wanted, root: &Path) -> Result<String, String> {
    let name = match wanted {
        Wanted::Named(n) => n.clone(),
        Wanted::Built(r) => tag_of(r, root).await?,
    };
    if exists(engine, &name).await {
        return Ok(name);
    }
    let mut cmd = Command::new(&engine.program);
    match wanted {
        Wanted::Named(n) => {
            cmd.args(["pull", n.as_str()]);
        }
        Wanted::Built(r) => {
            cmd.arg("build");
            cmd.args(super::runtime::ulimits());
            cmd.arg(format!("--tag={name}"))
                .arg("--file")
                .arg(&r.dockerfile);
            for (k, v) in &r.args {
                cmd.arg(format!("--build-arg={k}={v}"));
            }
            cmd.arg(&r.context);
        }
    }
    // A stopped run does not leave a build or pull behind.
    let out = cmd
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", engine.program))?;
    if out.status.success() {
        return Ok(name);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: String = err
        .lines()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    Err(match wanted {
        Wanted::Named(n) => format!("the image {n} is not here and cannot be pulled: {tail}"),
        Wanted::Built(r) => format!(
            "cannot build the image from {}: {tail}",
            r.dockerfile.display()
        ),
    })
}

/// Whether the engine has the image.
pub async fn exists(engine: &Engine, name: &str) -> bool {
    let mut cmd = Command::new(&engine.program);
    if engine.is_podman() {
        cmd.args(["image", "exists", name]);
    } else {
        cmd.args(["image", "inspect", name]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_stays_inside_the_repository() {
        let root = Path::new("/r");
        assert!(inside(root, &root.join(".devcontainer/..")));
        assert!(inside(root, &root.join(".devcontainer/Dockerfile")));
        assert!(!inside(root, &root.join(".devcontainer/../..")));
        assert!(!inside(root, &root.join("../x")));
        assert!(!inside(root, Path::new("/elsewhere")));
    }
}
