//! `baton msg`: send a task a message.

use super::{find_run, open_repo, open_store, usage};
use baton_core::control::{self, ControlError};
use baton_core::model::ControlKind;
use clap::Args;
use std::path::Path;

/// Send a running (or waiting) task a message. A running Claude Code gets
/// it at once as a new user turn and goes on; other agents get it with
/// their next attempt (nothing is restarted: `baton steer` restarts). The
/// message is in the task's transcript.
#[derive(Args)]
pub struct MsgArgs {
    pub task: String,
    pub text: String,
    /// The run (default: the latest).
    #[arg(long)]
    pub run: Option<String>,
}

pub async fn run(cwd: &Path, args: MsgArgs) -> anyhow::Result<i32> {
    let repo = open_repo(cwd)?;
    let (store, paths) = open_store(&repo)?;
    let rec = find_run(&store, args.run.as_deref())?;
    let posted = control::post_message(&store, &paths, &rec, None, &args.task, &args.text).await;
    let id = match posted {
        Ok(id) => id,
        Err(
            e @ (ControlError::Refused(_)
            | ControlError::NoTask { .. }
            | ControlError::NotLive { .. }),
        ) => return Err(usage(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let id = id.to_string();
    super::send_control(
        cwd,
        Some(&rec.id),
        &args.task,
        ControlKind::Message,
        Some(&id),
    )
    .await
}
