//! `baton plan`: an agent writes the plan for a goal; baton checks it, shows
//! it and, if asked, runs it.

use super::{open_repo, usage};
use crate::ci::CiOutput;
use crate::progress;
use baton_core::init::{plan_text, Project};
use baton_core::planner::{self, Profiles};
use baton_core::Engine;
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Have an agent write the plan for a goal. The planner works in a scratch
/// worktree of the base commit with the goal, the repository, your agent
/// profiles, the plan reference and the rules for parallel work (.baton/planner.md
/// replaces them); baton checks what it writes like `baton check` and gives
/// the errors back to it until the plan is valid (--retries), then prints
/// its phases and writes it.
#[derive(Args)]
pub struct PlanArgs {
    /// What the plan should achieve, in your words.
    pub goal: String,
    /// The profile that plans (default: defaults.agent of the profiles'
    /// plan, else the first agent CLI installed).
    #[arg(long, value_name = "PROFILE")]
    pub agent: Option<String>,
    /// Where to write the plan (default: baton.toml); never overwritten.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Take the agent profiles from this plan (default: baton.toml when it
    /// exists, else one profile for each agent CLI installed).
    #[arg(long, value_name = "PLAN")]
    pub from: Option<PathBuf>,
    /// The planner's standing instructions (default: .baton/planner.md when
    /// the repository has it, else baton's own).
    #[arg(long, value_name = "FILE")]
    pub instructions: Option<PathBuf>,
    /// How many times the planner may try again after a plan that does not
    /// validate.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub retries: u32,
    /// Run the plan once it is written (asks first).
    #[arg(long)]
    pub run: bool,
    /// With --run: do not ask.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub async fn run(cwd: &Path, args: PlanArgs) -> anyhow::Result<i32> {
    let repo = open_repo(cwd)?;
    let output = cwd.join(args.output.as_deref().unwrap_or(Path::new("baton.toml")));
    if output.exists() {
        return Err(usage(format!(
            "{} exists; baton plan never overwrites a file (name another with -o FILE)",
            output.display()
        )));
    }
    let user = super::user_config()?;
    let profiles = profiles(cwd, &repo, args.from.as_deref(), user.as_ref())?;
    let instructions = match &args.instructions {
        Some(p) => Some(
            std::fs::read_to_string(cwd.join(p))
                .map_err(|e| usage(format!("cannot read instructions {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let exe = std::env::current_exe()?;
    let setup = planner::Setup {
        goal: &args.goal,
        profiles: &profiles,
        agent: args.agent.as_deref(),
        instructions,
        check: vec![exe.display().to_string(), "check".into()],
        retries: args.retries,
        waits: false,
        user: user.as_ref(),
    };
    let prepared = planner::prepare(&repo.root, &repo.state_dir(), setup).map_err(|e| match e {
        planner::PrepareError::Io(m) => anyhow::anyhow!(m),
        other => usage(other.to_string()),
    })?;
    let (profile, out, plan) = (prepared.profile, prepared.out, prepared.plan);
    eprintln!(
        "planning with {profile} (its plan goes to {})",
        out.display()
    );
    let opts = super::engine_options()?;
    let engine = Engine::start(repo.clone(), plan, opts).await?;
    let run = engine.run_id().to_string();
    let store = engine.store().clone();
    let code = progress::drive(engine, false, &CiOutput::new(Some("text"), None)).await?;
    if code != 0 {
        eprintln!(
            "error: the planner did not write a valid plan (`baton logs plan --run {run}` says what it did{})",
            if out.exists() { format!("; its last draft is {}", out.display()) } else { String::new() }
        );
        return Ok(code);
    }
    let shown = output.strip_prefix(cwd).unwrap_or(&output).to_path_buf();
    let (text, plan) =
        planner::read_plan(&out, &shown, &repo.root, user.as_ref()).map_err(anyhow::Error::msg)?;
    std::fs::write(&output, &text)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", output.display()))?;
    let id = run.clone();
    let said = store
        .call(move |s| s.task(&id, "plan"))
        .await?
        .and_then(|t| t.result);
    if let Some(said) = said.filter(|s| !s.trim().is_empty()) {
        println!("planner: {}", said.trim());
    }
    println!("wrote {}", shown.display());
    super::check::print_phases(&plan);
    if !args.run {
        println!("next: `baton run {}`", shown.display());
        return Ok(0);
    }
    if !args.yes && !confirm(&format!("run {} now?", shown.display()))? {
        println!("not run; `baton run {}` runs it", shown.display());
        return Ok(0);
    }
    super::run::run(cwd, super::run::RunArgs::for_plan(shown)).await
}

/// The profiles the planner may use and give to tasks: a plan's (with the
/// user config's), else the user config's, else one per agent CLI found.
fn profiles(
    cwd: &Path,
    repo: &baton_core::Repo,
    from: Option<&Path>,
    user: Option<&baton_core::plan::UserConfig>,
) -> anyhow::Result<Profiles> {
    let path = cwd.join(from.unwrap_or(Path::new("baton.toml")));
    if path.exists() || from.is_some() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
        let text = baton_core::plan::compose(user, &text);
        return Profiles::from_plan_text(&path.display().to_string(), &text)
            .map_err(|e| usage(e.to_string()));
    }
    if let Some(u) = user.filter(|u| !u.profiles().is_empty()) {
        let shown = u.path.display().to_string();
        return Profiles::from_plan_text(&shown, &u.compose("")).map_err(|e| usage(e.to_string()));
    }
    let found = super::installed_agents();
    let text = plan_text(&found, Project::detect(&repo.root));
    Profiles::from_plan_text("(installed agents)", &text).map_err(|e| usage(e.to_string()))
}

/// Asks yes/no on the terminal; without one, the answer is no.
fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        eprintln!("{question} no terminal to ask on (pass --yes to run unattended)");
        return Ok(false);
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
