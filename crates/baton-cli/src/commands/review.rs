//! `baton review`: comments on lines of a task's work, sent to its agent
//! as one review.

use super::{find_run, open_repo, open_store, usage};
use baton_core::control::ControlError;
use baton_core::review::{self, Mark};
use clap::{ArgAction, Args};
use std::path::Path;

/// Review a task's work: comment on lines of its files (`--comment
/// PATH:LINE TEXT`, repeatable; kept as drafts), and send the comments to
/// its agent as one review (`--submit`, with an optional `--note` on the
/// whole). A running agent gets the review as a message; a task waiting
/// for approval (or a failed or stopped one) gets a new attempt with it;
/// no retry is used. Without options, lists the task's comments and, for
/// those sent, whether the lines they were on have changed since
/// ("changed: addressed?") or not.
#[derive(Args)]
#[command(
    after_help = "Example:\n  baton review api --comment src/api.rs:42 \"handle the empty list\" --comment src/api.rs:80 \"rename to fetch_all\" --submit"
)]
pub struct ReviewArgs {
    /// The task.
    pub task: String,
    /// The run (default: the latest).
    #[arg(long)]
    pub run: Option<String>,
    /// A comment on a line of the task's work, as it is now.
    #[arg(long = "comment", num_args = 2, value_names = ["PATH:LINE", "TEXT"], action = ArgAction::Append)]
    pub comments: Vec<String>,
    /// A note on the whole, sent with the comments.
    #[arg(long)]
    pub note: Option<String>,
    /// Send the comments (and the note) to the agent now.
    #[arg(long)]
    pub submit: bool,
    /// The task's comments as JSON (each with its `mark`).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cwd: &Path, args: ReviewArgs) -> anyhow::Result<i32> {
    let repo = open_repo(cwd)?;
    let (store, paths) = open_store(&repo)?;
    let rec = find_run(&store, args.run.as_deref())?;
    let refused = |e: ControlError| match e {
        e @ (ControlError::Refused(_)
        | ControlError::NoTask { .. }
        | ControlError::NotLive { .. }) => usage(e.to_string()),
        other => anyhow::Error::new(other),
    };
    for pair in args.comments.chunks(2) {
        let (place, text) = (&pair[0], &pair[1]);
        let (path, line) = review::parse_place(place).map_err(usage)?;
        let c = review::add_comment(&repo, &store, &rec.id, &args.task, (&path, line), text)
            .await
            .map_err(refused)?;
        eprintln!(
            "comment {} on {}:{} kept (a draft until --submit)",
            c.id, c.path, c.line
        );
    }
    let mut code = 0;
    if args.submit {
        let answer = review::submit(&store, &paths, &rec, &args.task, args.note.as_deref())
            .await
            .map_err(refused)?;
        match answer.ok {
            true => eprintln!("review sent: {}", answer.message),
            false => {
                eprintln!("error: {}", answer.message);
                code = 1;
            }
        }
    } else if args.note.is_some() {
        return Err(usage("--note goes with --submit"));
    }
    let marked = review::marked(&repo, &store, &rec.id, &args.task)
        .await
        .map_err(refused)?;
    if args.json {
        let list: Vec<serde_json::Value> = marked
            .iter()
            .map(|(c, m)| {
                let mut v = serde_json::to_value(c).unwrap_or_default();
                v["mark"] = serde_json::to_value(m).unwrap_or_default();
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if !args.submit && args.comments.is_empty() {
        if marked.is_empty() {
            println!("no comments on {}", args.task);
        }
        for (c, m) in &marked {
            let said = match m {
                Mark::Draft => "draft",
                Mark::Sent => "sent",
                Mark::Changed => "changed: addressed?",
                Mark::Unchanged => "unchanged",
                Mark::Gone => "file gone",
            };
            println!("{:>5}  {}:{}  [{said}]  {}", c.id, c.path, c.line, c.text);
        }
    }
    Ok(code)
}
