//! `baton init`: writes a first, commented `baton.toml` for this repository.

use super::{open_repo, usage};
use baton_core::init::{plan_text, Project};
use clap::Args;
use std::path::{Path, PathBuf};

/// Write a commented baton.toml for this repository: a profile for each
/// agent CLI installed (as `baton doctor` finds them), and one example task
/// whose gate is the project's own test command (cargo, npm, pytest, go or
/// make). Never overwrites a file.
///
/// With --user: write your user config instead (~/.config/baton/config.toml,
/// or $XDG_CONFIG_HOME/baton/config.toml, or $BATON_CONFIG): profiles every
/// plan sees, so plans need not repeat them.
#[derive(Args)]
pub struct InitArgs {
    /// Where to write the plan (relative to the repository root).
    #[arg(default_value = "baton.toml")]
    pub plan: PathBuf,
    /// Write the user config (profiles, defaults, prices and notifications
    /// for every plan) rather than a plan.
    #[arg(long, conflicts_with = "plan")]
    pub user: bool,
}

pub async fn run(cwd: &Path, args: InitArgs) -> anyhow::Result<i32> {
    if args.user {
        return write_user();
    }
    let repo = open_repo(cwd)?;
    let path = if args.plan.is_absolute() {
        args.plan.clone()
    } else {
        repo.root.join(&args.plan)
    };
    if path.exists() {
        return Err(usage(format!(
            "{} exists; baton init never overwrites a file (name another with `baton init FILE`)",
            path.display()
        )));
    }
    let found = super::installed_agents();
    let project = Project::detect(&repo.root);
    let text = plan_text(&found, project);
    std::fs::write(&path, &text)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    let shown = path.strip_prefix(&repo.root).unwrap_or(&path).display();
    println!("wrote {shown}");
    match found.first() {
        Some(first) => println!("  agents found: {} (the default: {first})", found.join(", ")),
        None => println!("  no agent CLI found on PATH (claude, codex, gemini, opencode, aider): the example runs with bash; `baton doctor` says more"),
    }
    match project.test_command() {
        Some(t) => println!(
            "  project: {}; the example task's gate is `{t}`",
            project.name()
        ),
        None => println!("  project: not recognised; add gates to the example task"),
    }
    println!("next: `baton check {shown}`, then `baton run {shown}`");
    Ok(0)
}

/// `baton init --user`: the user config, with a profile per agent CLI found.
fn write_user() -> anyhow::Result<i32> {
    let path = super::user_config_path().ok_or_else(|| {
        usage("no place for a user config: set HOME, XDG_CONFIG_HOME or BATON_CONFIG")
    })?;
    if path.exists() {
        return Err(usage(format!(
            "{} exists; baton init never overwrites a file (edit it, or `baton check` to see what it gives)",
            path.display()
        )));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot make {}: {e}", dir.display()))?;
    }
    let found = super::installed_agents();
    std::fs::write(&path, baton_core::init::user_text(&found))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    match found.first() {
        Some(first) => println!("  profiles: {} (the default: {first})", found.join(", ")),
        None => {
            println!("  no agent CLI found on PATH: add profiles by hand (docs/user-config.md)")
        }
    }
    println!("every plan now sees these profiles; a plan's own [agent.NAME] replaces one of the same name");
    Ok(0)
}
