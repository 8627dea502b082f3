//! `baton completions` and `baton man`: shell completions and a man page,
//! generated from the same definitions as `--help`.

use clap::Args;
use clap_complete::Shell;

/// Print a completion script for a shell, e.g.
/// `baton completions bash > ~/.local/share/bash-completion/completions/baton`.
#[derive(Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs, cmd: clap::Command) -> anyhow::Result<i32> {
    let mut shown = without_hidden(cmd);
    clap_complete::generate(args.shell, &mut shown, "baton", &mut std::io::stdout());
    Ok(0)
}

/// The command as a person sees it: some shells' completions would offer
/// hidden subcommands (the internal watchdog) too.
fn without_hidden(cmd: clap::Command) -> clap::Command {
    let visible: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    clap::Command::new("baton")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommands(visible)
        .args(cmd.get_arguments().cloned())
}

/// Print baton's man page (roff), e.g. `baton man > baton.1; man ./baton.1`.
#[derive(Args)]
pub struct ManArgs {}

pub fn man(cmd: clap::Command) -> anyhow::Result<i32> {
    clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
    Ok(0)
}
