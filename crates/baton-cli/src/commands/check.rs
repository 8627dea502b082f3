//! `baton check`: validate a plan and print its DAG as phases.

use super::{load_plan, which};
use clap::Args;
use std::path::{Path, PathBuf};

/// Validate a plan and print its tasks as phases, without running anything.
#[derive(Args)]
pub struct CheckArgs {
    /// The plan file.
    #[arg(default_value = "baton.toml")]
    pub plan: PathBuf,
}

pub async fn run(cwd: &Path, args: CheckArgs) -> anyhow::Result<i32> {
    let (repo, plan) = load_plan(cwd, &args.plan)?;
    plan.resolve_base(&repo).await?;
    plan.check_copies(&repo).await?;
    print_phases(&plan);
    print_origins(&plan);
    for (a, b) in plan.overlapping_pairs() {
        let how = if plan.run.overlap_allowed {
            "they may run at the same time (run.overlap = \"allow\") and conflict"
        } else {
            "they will not run at the same time"
        };
        eprintln!("warning: tasks {a:?} and {b:?} declare overlapping files; {how}");
    }
    for w in baton_core::container::notes::warnings(&plan, &repo.root) {
        eprintln!("warning: {w}");
    }
    for (name, a) in &plan.agents {
        let program = baton_core::adapter::program_name(&a.cli());
        if which(&program).is_none() {
            eprintln!(
                "warning: agent {name:?}: {program:?} is not on PATH; `baton doctor` says more"
            );
        }
    }
    Ok(0)
}

/// Where each profile came from, when a user config gave the plan some.
fn print_origins(plan: &baton_core::Plan) {
    let Some(user) = &plan.user else { return };
    println!("profiles:");
    let width = plan.agents.keys().map(String::len).max().unwrap_or(0);
    for name in plan.agents.keys() {
        let from = if user.profiles.contains(name) {
            format!("from the user config {}", user.path)
        } else if user.replaced.contains(name) {
            "from the plan (in place of the user config's)".to_string()
        } else {
            "from the plan".to_string()
        };
        println!("  {name:width$}  {from}");
    }
}

/// The plan's tasks as phases, on stdout (`check` and `plan`).
pub fn print_phases(plan: &baton_core::Plan) {
    let phases = plan.phases();
    println!(
        "{}: {} task{}, {} phase{}, max_parallel {}",
        plan.path.display(),
        plan.tasks.len(),
        if plan.tasks.len() == 1 { "" } else { "s" },
        phases.len(),
        if phases.len() == 1 { "" } else { "s" },
        plan.run.max_parallel
    );
    for (n, phase) in phases.iter().enumerate() {
        println!("phase {}:", n + 1);
        for t in phase {
            let mut line = format!("  {} [{}]", t.id, t.agent);
            if !t.needs.is_empty() {
                line.push_str(&format!(" needs {}", t.needs.join(", ")));
            }
            let mut notes = Vec::new();
            if !t.gates.is_empty() {
                notes.push(format!(
                    "{} gate{}",
                    t.gates.len(),
                    if t.gates.len() == 1 { "" } else { "s" }
                ));
            }
            if t.retries > 0 {
                notes.push(format!("retries {}", t.retries));
            }
            if t.approve {
                notes.push("needs approval".into());
            }
            if !t.merge {
                notes.push("no merge".into());
            }
            if !notes.is_empty() {
                line.push_str(&format!(" ({})", notes.join(", ")));
            }
            println!("{line}");
        }
    }
}
