//! `baton token new`: a token for the API of a `baton serve` (for another
//! machine, a script, a CI job). Shown once; only its hash is stored.
//! `baton token url`: the link that signs this user's browser in to the
//! repository's `baton serve`.

use super::open_repo;
use baton_core::paths::StatePaths;
use baton_core::store::Store;
use clap::{Args, Subcommand};
use std::path::Path;

/// Manage API tokens for `baton serve`.
#[derive(Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub cmd: TokenCmd,
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a token and print it (once: only its hash is kept).
    New {
        /// What the token is for.
        #[arg(long, default_value = "api")]
        label: String,
    },
    /// Print the dashboard's address for the running `baton serve`, with
    /// this user's token in a fragment that signs the browser in.
    Url,
}

pub fn run(cwd: &Path, args: TokenArgs) -> anyhow::Result<i32> {
    let repo = open_repo(cwd)?;
    let store = Store::open(&StatePaths::new(repo.state_dir()).db())?;
    match args.cmd {
        TokenCmd::Url => {
            let Some(server) = crate::client::find(&repo.state_dir()) else {
                anyhow::bail!(
                    "no baton serve answers for this repository; start one with `baton serve`"
                );
            };
            let token = baton_core::access::local_token().map_err(anyhow::Error::msg)?;
            println!("{}#token={token}", server.dashboard());
        }
        TokenCmd::New { label } => {
            let token = baton_server::new_token();
            store.add_token(&baton_server::hash_token(&token), &label)?;
            println!("{token}");
            eprintln!("keep it: it is not shown again. Use it as `Authorization: Bearer <token>`, or open the dashboard at http://HOST:PORT/#token=<token>");
        }
    }
    Ok(0)
}
