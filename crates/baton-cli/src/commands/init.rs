//! `baton init`: writes a first, commented `baton.toml` for this repository.

use super::{open_repo, usage};
use baton_core::init::{plan_text, Project};
use clap::Args;
use std::path::{Path, PathBuf};

/// Write a commented baton.toml for this repository: a profile for each
/// agent CLI installed (as `baton doctor` finds them), and one example task
/// whose gate is the project's own test command (cargo, npm, pytest, go or
/// make). Never overwrites a file.
#[derive(Args)]
pub struct InitArgs {
    /// Where to write the plan (relative to the repository root).
    #[arg(default_value = "baton.toml")]
    pub plan: PathBuf,
}

pub async fn run(cwd: &Path, args: InitArgs) -> anyhow::Result<i32> {
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
