//! What following a run's pull request needs, the same for the CLI and the
//! server: the `[land]` settings of the run's plan, the repository's name
//! on the forge, and the forge's client.

use crate::forge::{Forge, ForgeKind};
use crate::git::Repo;
use crate::plan::{Plan, PullSettings};
use crate::store::RunRecord;
use std::path::Path;

pub struct Forged {
    pub settings: PullSettings,
    /// `owner/name`.
    pub repo_name: String,
    pub forge: Box<dyn Forge>,
}

/// The forge for `run`'s pull request (`remote`: push there instead of
/// the plan's remote). Its secrets are withheld from every agent started
/// from here on. Err: why it cannot be followed, said whole.
pub async fn forge_for(
    repo: &Repo,
    run: &RunRecord,
    kinds: &[&ForgeKind],
    remote: Option<String>,
) -> Result<Forged, String> {
    let plan = Plan::parse_config(Path::new(&run.plan_path), &run.plan_source, None)
        .map_err(|e| format!("the plan of run {}: {e}", run.id))?;
    let mut settings = plan.pull;
    if let Some(r) = remote {
        settings.remote = r;
    }
    let repo_name = repo_name(repo, &settings).await?;
    crate::process::withhold(&settings.secret_vars());
    let forge = crate::forge::make(kinds, &settings, &repo_name)?;
    Ok(Forged {
        settings,
        repo_name,
        forge,
    })
}

/// `owner/name`: `[land] repo`, else read from the remote's URL.
async fn repo_name(repo: &Repo, s: &PullSettings) -> Result<String, String> {
    if let Some(r) = &s.repo {
        return Ok(r.clone());
    }
    let url = crate::git::git_ok(&repo.root, ["remote", "get-url", s.remote.as_str()])
        .await
        .map_err(|e| format!("cannot read the URL of remote {}: {e}", s.remote))?;
    crate::plan::repo_of_url(&url).ok_or_else(|| {
        format!(
            "the remote {} ({}) does not say a GitHub repository; set [land] repo = \"owner/name\"",
            s.remote,
            url.trim()
        )
    })
}
