//! The resolver's attempt on a merge conflict: which profile takes it, and
//! the prompt naming the conflicting paths and what each side meant (this
//! task, and the tasks merged since it started).

use crate::engine::board::Board;
use crate::engine::shared::Shared;
use crate::store::TaskRecord;
use crate::template::{render_resolver, MergedView, ResolveContext, RESOLVER_PROMPT};

/// (profile, prompt) of the resolver attempt for task `i`, whose record is
/// `rec`; `others` are the tasks merged since it started.
pub(crate) fn resolution(
    sh: &Shared,
    board: &Board,
    i: usize,
    rec: &TaskRecord,
    others: Vec<TaskRecord>,
    paths: &[String],
) -> (String, String) {
    let spec = board.spec(i);
    let said = |r: Option<&str>| r.map(|r| r.trim().to_string()).unwrap_or_default();
    let prompt_of = |id: &str| {
        board
            .idx(id)
            .map(|j| board.spec(j).prompt.trim().to_string())
            .unwrap_or_default()
    };
    let ctx = ResolveContext {
        task: rec.id.clone(),
        prompt: spec.prompt.trim().to_string(),
        result: said(rec.result.as_deref()),
        paths: paths.to_vec(),
        merged: others
            .into_iter()
            .map(|t| MergedView {
                prompt: prompt_of(&t.id),
                result: said(t.result.as_deref()),
                id: t.id,
            })
            .collect(),
    };
    // The plan's template was checked when the plan was read.
    let template = sh.plan.run.resolver_prompt.as_deref();
    let prompt = template
        .and_then(|t| render_resolver(t, &ctx).ok())
        .or_else(|| render_resolver(RESOLVER_PROMPT, &ctx).ok())
        .unwrap_or_default();
    let profile = sh.plan.run.resolver.clone();
    (profile.unwrap_or_else(|| spec.agent.clone()), prompt)
}
