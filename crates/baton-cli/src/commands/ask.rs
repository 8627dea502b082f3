//! `baton ask`: a task's script asks a person and waits for the answer.

use baton_core::ask::{self, AskRequest};
use clap::Args;

/// Ask a person a question from inside a task (an `exec` agent's script,
/// or any command a task runs) and print the answer on stdout when it
/// comes. The question shows in `baton inbox`, the dashboard and the
/// notifications; `baton answer ID TEXT` answers it. Agents that speak MCP
/// have the same as their `ask` tool. Outside a task there is nobody to
/// ask: this needs the BATON_ASK_SOCKET that baton gives each attempt.
///
/// Exit status: 0 with the answer on stdout; 1 when no answer came in time
/// and there is no default (the task fails with "no answer to: ..."); 2 for
/// a question that is not valid.
#[derive(Args)]
#[command(
    after_help = "Example, in a task's script:\n  db=$(baton ask \"Which database?\" --option postgres --option sqlite --timeout 30m --default sqlite)"
)]
pub struct AskArgs {
    /// The question, as a person will read it.
    pub question: String,
    /// An answer to offer (repeat for each); with options, only these are taken.
    #[arg(long = "option", value_name = "TEXT")]
    pub options: Vec<String>,
    /// How long to wait (e.g. 30m, 2h); by default, until answered.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// The answer given when the timeout passes (one of the options, if any).
    #[arg(long, value_name = "TEXT", requires = "timeout")]
    pub default: Option<String>,
}

pub async fn run(args: AskArgs) -> anyhow::Result<i32> {
    let Some(socket) = std::env::var_os(ask::SOCKET_VAR) else {
        return Err(super::usage(format!(
            "baton ask works inside a task baton runs ({} is not set): there is nobody to ask here",
            ask::SOCKET_VAR
        )));
    };
    let req = AskRequest {
        question: args.question,
        options: args.options,
        timeout: args.timeout,
        default: args.default,
        wait: true,
    };
    // Checked here too, so a wrong question is a usage error at once.
    req.check(0).map_err(super::usage)?;
    let asked = ask::ask(std::path::Path::new(&socket), &req)
        .await
        .map_err(super::usage)?;
    eprintln!(
        "asked (question {}); waiting for the answer (`baton answer {} TEXT`)",
        asked.id, asked.id
    );
    match asked.answer().await {
        Ok(text) => {
            println!("{text}");
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(1)
        }
    }
}
