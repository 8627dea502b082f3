//! The full prompt an agent gets: standing instructions, the rendered
//! template, context files, and feedback from the previous attempt.

use crate::plan::{AgentProfile, TaskSpec};
use crate::template::{self, PromptContext};
use std::path::Path;

/// Reads a repository file as the task sees it: from its worktree (so upstream
/// work is visible), else from the main work tree.
fn read_repo_file(worktree: &Path, root: &Path, rel: &str) -> Result<String, String> {
    std::fs::read_to_string(worktree.join(rel))
        .or_else(|_| std::fs::read_to_string(root.join(rel)))
        .map_err(|e| format!("cannot read {rel}: {e}"))
}

/// The prompt of one attempt. `text_prompt`: the prompt is text for a model,
/// so feedback is appended when the template does not place it; an `exec`
/// prompt is a command, and gets feedback only where its template says
/// (and in `BATON_FEEDBACK`).
pub(crate) fn build(
    spec: &TaskSpec,
    profile: &AgentProfile,
    ctx: &PromptContext,
    worktree: &Path,
    root: &Path,
    text_prompt: bool,
) -> Result<String, String> {
    let mut out = String::new();
    if let Some(instr) = &profile.instructions {
        out.push_str(read_repo_file(worktree, root, instr)?.trim_end());
        out.push_str("\n\n");
    }
    let rendered =
        template::render(&spec.prompt, ctx).map_err(|e| format!("prompt template: {e}"))?;
    out.push_str(rendered.trim_end());
    for file in &spec.context {
        let text = read_repo_file(worktree, root, file)?;
        out.push_str(&format!("\n\n--- context: {file} ---\n{}", text.trim_end()));
    }
    if text_prompt && !ctx.feedback.is_empty() && !template::uses_feedback(&spec.prompt) {
        out.push_str(&format!(
            "\n\n--- feedback on the previous attempt ---\n{}",
            ctx.feedback.trim_end()
        ));
    }
    Ok(out)
}
