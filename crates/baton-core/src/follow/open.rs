//! Opening a run's pull request through the forge (or bringing one opened
//! before up to date), and telling the issues its work came from.

use super::{FollowError, Follower};
use crate::forge::{Forge, NewPull};
use crate::model::PullStatus;
use crate::payload::Payload;
use crate::plan::PullSettings;
use crate::store::{Event, PullRecord, RunRecord, SourceItem, Store, TaskRecord};
use std::sync::Arc;

/// A finished run to offer as a pull request.
pub struct Opening<'a> {
    pub repo: &'a crate::git::Repo,
    pub store: &'a Arc<Store>,
    pub forge: &'a dyn Forge,
    pub settings: &'a PullSettings,
    /// `owner/name` on the forge.
    pub repo_name: &'a str,
    pub run: &'a RunRecord,
    pub tasks: &'a [TaskRecord],
    pub gates: &'a [Event],
    /// The branch it goes into.
    pub base: &'a str,
    /// Follow it (a pull request that needed a person is followed again,
    /// with its fix attempts counted from none).
    pub follow: bool,
}

/// Pushes the run's integration branch and opens its pull request, or
/// answers the one it opened before (pushed again, so it has all the
/// run's work). Issues the run's tasks came from are named (`Fixes #N`)
/// and told.
pub async fn open(o: &Opening<'_>) -> Result<PullRecord, FollowError> {
    let head = o.run.integration_branch.clone();
    let spec = format!("refs/heads/{head}:refs/heads/{head}");
    let remote = o.settings.remote.as_str();
    crate::git::git_ok(&o.repo.root, ["push", "-q", remote, spec.as_str()]).await?;
    let id = o.run.id.clone();
    if let Some(mut rec) = o.store.call(move |s| s.pull(&id)).await? {
        let again = matches!(rec.status, PullStatus::NeedsYou | PullStatus::Open);
        if o.follow && again {
            rec.status = PullStatus::Following;
            rec.fixes_used = 0;
            rec.spent_usd = 0.0;
            rec.note = None;
            let row = rec.clone();
            o.store.call(move |s| s.put_pull(&row)).await?;
        }
        return Ok(rec);
    }
    let id = o.run.id.clone();
    let items = o.store.call(move |s| s.run_source_items(&id)).await?;
    let mut body = crate::land::pr_body(o.run, o.tasks, o.gates);
    let issues = issues_here(&items, o.repo_name);
    if !issues.is_empty() {
        body.push('\n');
        for (n, _) in &issues {
            body.push_str(&format!("Fixes #{n}\n"));
        }
    }
    let new = NewPull {
        title: crate::land::pr_title(o.run, o.tasks),
        body,
        head: head.clone(),
        base: o.base.to_string(),
    };
    let pull = o.forge.open(&new).await?;
    let mut rec = PullRecord::opened(
        &o.run.id,
        pull.number,
        &pull.url,
        o.repo_name,
        &head,
        o.base,
    );
    if !o.follow {
        rec.status = PullStatus::Open;
    }
    let (row, run) = (rec.clone(), o.run.id.clone());
    let payload = Payload::PullOpened {
        number: pull.number,
        url: pull.url.clone(),
    };
    o.store
        .call(move |s| {
            s.put_pull(&row)?;
            s.event(&run, None, None, payload)
        })
        .await?;
    for (n, _) in &issues {
        let text = format!(
            "baton opened pull request #{} with the work of run `{}`: {}",
            pull.number, o.run.id, pull.url
        );
        let _ = o.forge.comment(*n, &crate::tracker::marked(&text)).await;
    }
    Ok(rec)
}

/// The issues of `repo` the items name: (number, item).
fn issues_here<'a>(items: &'a [SourceItem], repo: &str) -> Vec<(u64, &'a SourceItem)> {
    items
        .iter()
        .filter(|i| {
            let src = i.source.strip_prefix("github:").unwrap_or("");
            src.split('#').next() == Some(repo)
        })
        .filter_map(|i| Some((i.item.strip_prefix('#')?.parse().ok()?, i)))
        .collect()
}

/// Tells the issues the run's work came from that its pull request is
/// merged, closes them (if `Fixes #N` did not already) and records their
/// end as reported.
pub(super) async fn tell_merged(f: &Follower<'_>, rec: &PullRecord) {
    let text = format!(
        "Done: pull request #{} is merged ({}; run `{}`, {} fix attempts, fixes cost ${:.2}).",
        rec.number, rec.url, rec.run_id, rec.fixes_used, rec.spent_usd
    );
    tell_issues(f, rec, &text, true).await
}

/// Tells the issues the run's work came from that its pull request was
/// closed without a merge (they stay open), and records their end as
/// reported.
pub(super) async fn tell_closed(f: &Follower<'_>, rec: &PullRecord) {
    let text = format!(
        "Pull request #{} ({}) was closed without a merge; the work of run `{}` stays on the branch `{}`.",
        rec.number, rec.url, rec.run_id, rec.head
    );
    tell_issues(f, rec, &text, false).await
}

async fn tell_issues(f: &Follower<'_>, rec: &PullRecord, text: &str, close: bool) {
    let run = rec.run_id.clone();
    let items = match f.store.call(move |s| s.run_source_items(&run)).await {
        Ok(items) => items,
        Err(e) => {
            return (f.say)(&format!(
                "cannot read the issues of run {}: {e}",
                rec.run_id
            ))
        }
    };
    for (n, item) in issues_here(&items, &rec.repo) {
        if item.reported_at.is_some() {
            continue;
        }
        if let Err(e) = f.forge.comment(n, &crate::tracker::marked(text)).await {
            (f.say)(&format!("cannot comment on issue #{n}: {e}"));
        }
        if close {
            if let Err(e) = f.forge.close_issue(n).await {
                (f.say)(&format!("cannot close issue #{n}: {e}"));
            }
        }
        let (source, key) = (item.source.clone(), item.item.clone());
        let marked = f
            .store
            .call(move |s| s.mark_source_item_reported(&source, &key))
            .await;
        if let Err(e) = marked {
            (f.say)(&format!("issue #{n}: its report is not recorded: {e}"));
        }
    }
}
