//! `baton inbox`: everything that needs a person, across runs.

use super::{open_repo, open_store};
use baton_core::inbox::Item;
use clap::Args;
use std::path::Path;

/// List what needs a person across this repository's runs: questions
/// agents asked, tasks waiting for approval, tasks that failed or
/// conflicted, tasks held by a provider's limit, pull requests baton
/// stopped fixing (runs that ended over a day ago are left out). Each item
/// has an id: `baton answer ID TEXT` answers a question, and `baton approve
/// ID`, `baton retry ID` and `baton stop ID` act on an item's task.
#[derive(Args)]
pub struct InboxArgs {
    /// An array of items (id, kind, run, task, text, options, since, actions).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cwd: &Path, args: InboxArgs) -> anyhow::Result<i32> {
    let repo = open_repo(cwd)?;
    let items = match open_store(&repo) {
        Ok((store, _)) => {
            let now = baton_core::clock::now_ms();
            store.call(move |s| s.inbox(now)).await?
        }
        // No run yet: nothing needs anyone.
        Err(_) => Vec::new(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(0);
    }
    if items.is_empty() {
        println!("nothing needs you");
        return Ok(0);
    }
    for item in &items {
        println!("{}", line(item, baton_core::clock::now_ms()));
    }
    Ok(0)
}

/// One item in a line (and its choices on the next).
fn line(i: &Item, now: i64) -> String {
    let age = baton_core::duration::human(std::time::Duration::from_millis(
        (now - i.since).max(0) as u64
    ));
    let task = i
        .task
        .as_deref()
        .map(|t| format!(" {t}"))
        .unwrap_or_default();
    let mut out = format!(
        "{:>6}  {:<10} {}{task}  {age} ago\n        {}",
        i.id, i.kind, i.run, i.text
    );
    if !i.options.is_empty() {
        out.push_str(&format!("\n        options: {}", i.options.join(" | ")));
    }
    if let Some(d) = &i.default {
        out.push_str(&format!(" (default: {d})"));
    }
    let act: Vec<String> = i
        .actions
        .iter()
        .map(|a| match *a {
            "answer" => format!("baton answer {} TEXT", i.id),
            other => format!("baton {other} {}", i.id),
        })
        .collect();
    if !act.is_empty() {
        out.push_str(&format!("\n        {}", act.join("  ·  ")));
    }
    out
}
