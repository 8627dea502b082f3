//! `baton answer`: a person answers an agent's question.

use super::{open_repo, open_store};
use baton_core::control;
use clap::Args;
use std::path::Path;

/// Answer a question an agent asked (its id is in `baton inbox`). A
/// question with options takes one of them. The task goes on with the
/// answer: a waiting agent continues its session with it as a new turn; a
/// script's `baton ask` prints it. A run nobody drives now keeps the answer
/// until `baton resume`.
#[derive(Args)]
pub struct AnswerArgs {
    /// The question's id (from `baton inbox`).
    pub id: i64,
    /// The answer.
    pub text: String,
}

pub async fn run(cwd: &Path, args: AnswerArgs) -> anyhow::Result<i32> {
    let repo = open_repo(cwd)?;
    let (store, paths) = open_store(&repo)?;
    super::said(control::answer_question(&store, &paths, args.id, &args.text).await)
}
