//! The full prompt an agent gets: standing instructions, the rendered
//! template, context files, and feedback from the previous attempt.

use crate::plan::{AgentProfile, TaskSpec};
use crate::template::{self, PromptContext};
use std::path::Path;

/// Reads a repository file as the task sees it: from its worktree (so upstream
/// work is visible), else from the main work tree.
fn read_repo_file(worktree: &Path, root: &Path, rel: &str) -> Result<String, String> {
    match read_inside(worktree, rel) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => read_inside(root, rel),
        Err(e) => Err(e),
    }
    .map_err(|e| format!("cannot read {rel}: {e}"))
}

/// A file below `base`, read without following a link on the way: a
/// worktree's files are what agents committed, and a link there
/// (`notes.md` -> `~/.ssh/id_ed25519`) would have baton read, outside any
/// sandbox, what the link names and hand it to an agent.
fn read_inside(base: &Path, rel: &str) -> std::io::Result<String> {
    let rel = Path::new(rel);
    if !rel
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Err(std::io::Error::other("not a path inside the repository"));
    }
    let mut at = base.to_path_buf();
    for part in rel.components() {
        at.push(part);
        if std::fs::symlink_metadata(&at)?.file_type().is_symlink() {
            return Err(std::io::Error::other(format!(
                "{} is a link (committed by an agent?); baton reads no context through a link",
                rel.display()
            )));
        }
    }
    std::fs::read_to_string(at)
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
