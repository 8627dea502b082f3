//! Following a run's pull request to its end (`[land] follow = true`): its
//! checks, reviews and mergeability are looked at every `poll` (at once
//! when a webhook says something changed; less often while nothing does),
//! and each thing that goes wrong gets one fix attempt: a task added to the
//! run, from its integration branch (the pull request's branch), through
//! its gates, `verify` and the merge queue, then pushed. Review threads are
//! answered with the commit that addressed them. It merges when
//! `merge_when` says, and stops, asking for a person, past `max_fixes` or
//! the budget. Every step is an event of the run and a row in the store, so
//! a baton killed mid-follow picks it up where it was.

pub mod decide;
mod fix;
mod open;
pub mod prompt;
mod setup;
mod sync;

pub use fix::FixDriver;
pub use open::{open, Opening};
pub use setup::{forge_for, Forged};

use crate::forge::{Forge, ForgeError, Pull, PullState};
use crate::git::{GitError, Repo};
use crate::model::PullStatus;
use crate::payload::Payload;
use crate::plan::PullSettings;
use crate::store::{PullRecord, Store, StoreError};
use decide::{Caps, Seen, Step};
use std::future::Future;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("{0}")]
    Forge(#[from] ForgeError),
    #[error("{0}")]
    Git(#[from] GitError),
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Someone pushed to the pull request's branch what cannot merge
    /// with baton's work: a person decides.
    #[error("{0}")]
    Diverged(String),
    #[error("{0}")]
    Other(String),
}

/// Follows pull requests of one repository on one forge.
pub struct Follower<'a> {
    pub repo: &'a Repo,
    pub store: &'a Arc<Store>,
    pub forge: &'a dyn Forge,
    pub settings: &'a PullSettings,
    /// Drives a run whose fix task was just added.
    pub fixes: &'a dyn FixDriver,
    /// Says each step (the CLI prints it, the server logs it).
    pub say: &'a (dyn Fn(&str) + Send + Sync),
}

/// What a round left to do.
enum Round {
    /// Ended: merged, closed, or a person is needed.
    Done(PullStatus),
    /// Something was done: look again now.
    Again,
    /// Nothing to do; whether anything changed since the last look, and
    /// whether it is settled (no check running or awaited: only a person
    /// moves it now, so looks may grow rarer).
    Idle { changed: bool, settled: bool },
}

/// Quiet rounds stretch the wait up to this many polls.
const MAX_STRETCH: u32 = 8;

impl Follower<'_> {
    /// Follows `run`'s pull request until it merges, closes or needs a
    /// person (its status), or until `stop`. `wake` cuts a wait short (a
    /// webhook). Only the forge refusing baton's token ends it with an error.
    pub async fn follow(
        &self,
        run: &str,
        wake: &tokio::sync::Notify,
        stop: impl Future<Output = ()>,
    ) -> Result<PullStatus, FollowError> {
        tokio::pin!(stop);
        let poll = self.settings.poll;
        let mut stretch = 1u32;
        loop {
            // A rate limit is waited out whole: a webhook does not cut it short.
            let mut limited = false;
            let wait = match self.round(run).await {
                Ok(Round::Done(status)) => return Ok(status),
                Ok(Round::Again) => {
                    stretch = 1;
                    continue;
                }
                Ok(Round::Idle { changed: true, .. }) | Ok(Round::Idle { settled: false, .. }) => {
                    stretch = 1;
                    poll
                }
                Ok(Round::Idle { .. }) => {
                    let wait = poll * stretch;
                    stretch = (stretch * 2).min(MAX_STRETCH);
                    wait
                }
                Err(FollowError::Forge(ForgeError::Credentials(m))) => {
                    return Err(FollowError::Forge(ForgeError::Credentials(m)))
                }
                Err(FollowError::Forge(ForgeError::Limited { why, until_ms })) => {
                    (self.say)(&format!("{why}; looking again after it"));
                    limited = true;
                    crate::tracker::limit_wait(until_ms)
                }
                Err(e) => {
                    (self.say)(&format!("pull request of run {run}: {e}; trying again"));
                    let wait = poll * stretch;
                    stretch = (stretch * 2).min(MAX_STRETCH);
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = wake.notified(), if !limited => {}
                _ = &mut stop => return Ok(PullStatus::Following),
            }
        }
    }

    async fn round(&self, run: &str) -> Result<Round, FollowError> {
        let r = run.to_string();
        let mut rec =
            self.store.call(move |s| s.pull(&r)).await?.ok_or_else(|| {
                FollowError::Other(format!("run {run} has opened no pull request"))
            })?;
        if rec.status != PullStatus::Following {
            return Ok(Round::Done(rec.status));
        }
        if let Some(f) = rec.fixing.clone() {
            return self.after_fix(&mut rec, f).await;
        }
        let pull = self.forge.pull(rec.number).await?;
        match pull.state {
            PullState::Merged => return self.merged(&mut rec, None).await,
            PullState::Closed => return self.closed(&mut rec).await,
            PullState::Open => {}
        }
        if let Some(round) = self.take_their_push(&mut rec, &pull).await? {
            return Ok(round);
        }
        let checks = self.forge.checks(&pull.head_sha).await?;
        let reviews = self.forge.reviews(rec.number).await?;
        let comments = self.forge.review_comments(rec.number).await?;
        let seen = Seen {
            pull: &pull,
            checks: &checks,
            reviews: &reviews,
            comments: &comments,
        };
        let step = decide::decide(&seen, &rec, self.caps());
        let (cs, rs) = (
            decide::checks_summary(&checks),
            decide::reviews_summary(&reviews),
        );
        let fresh = rec.seen_sha.as_deref() != Some(pull.head_sha.as_str());
        let changed = fresh || rec.checks != cs || rec.reviews != rs;
        // CI running, or not reported yet on a new head: its end is near.
        let settled = !(checks.iter().any(|c| c.pending) || (fresh && checks.is_empty()));
        rec.seen_sha = Some(pull.head_sha.clone());
        (rec.checks, rec.reviews) = (cs, rs);
        match step {
            Step::Merged => self.merged(&mut rec, None).await,
            Step::Closed => self.closed(&mut rec).await,
            Step::UpdateBase => self.update_base(&mut rec, &pull).await,
            Step::Fix(trouble) => self.fix_trouble(&mut rec, &pull, trouble).await,
            Step::Merge => {
                let commit = self.forge.merge(rec.number, &pull.head_sha).await?;
                self.merged(&mut rec, Some(commit)).await
            }
            Step::NeedsYou(why) => self.needs_you(&mut rec, why).await,
            Step::Wait(why) => {
                if changed {
                    (self.say)(&format!("pull request #{}: {why}", rec.number));
                }
                rec.note = Some(why);
                self.save(&rec).await?;
                Ok(Round::Idle { changed, settled })
            }
        }
    }

    fn caps(&self) -> Caps {
        Caps {
            max_fixes: self.settings.max_fixes,
            budget_usd: self.settings.budget_usd,
            merge_when: self.settings.merge_when,
        }
    }

    async fn save(&self, rec: &PullRecord) -> Result<(), FollowError> {
        let row = rec.clone();
        Ok(self.store.call(move |s| s.put_pull(&row)).await?)
    }

    async fn event(&self, run: &str, payload: Payload) -> Result<(), FollowError> {
        let run = run.to_string();
        self.store
            .call(move |s| s.event(&run, None, None, payload))
            .await?;
        Ok(())
    }

    /// Comments on the pull request (with baton's mark). A comment that
    /// does not go through is said, not a reason to stop.
    async fn comment(&self, number: u64, text: &str) {
        let text = crate::tracker::marked(text);
        if let Err(e) = self.forge.comment(number, &text).await {
            (self.say)(&format!("cannot comment on #{number}: {e}"));
        }
    }

    async fn needs_you(&self, rec: &mut PullRecord, why: String) -> Result<Round, FollowError> {
        (self.say)(&format!(
            "pull request #{} needs a person: {why}",
            rec.number
        ));
        rec.status = PullStatus::NeedsYou;
        rec.note = Some(why.clone());
        self.save(rec).await?;
        let number = rec.number;
        let reason = why.clone();
        self.event(&rec.run_id, Payload::PullNeedsYou { number, reason })
            .await?;
        let text = format!(
            "baton stops fixing this pull request and needs a person: {why}. After a look, `baton land --pr --follow {}` picks it up again with {} more fix attempts.",
            rec.run_id, self.settings.max_fixes
        );
        self.comment(number, &text).await;
        Ok(Round::Done(PullStatus::NeedsYou))
    }

    async fn closed(&self, rec: &mut PullRecord) -> Result<Round, FollowError> {
        (self.say)(&format!(
            "pull request #{} was closed without a merge",
            rec.number
        ));
        rec.status = PullStatus::Closed;
        rec.note = Some("closed without a merge".into());
        self.save(rec).await?;
        let number = rec.number;
        self.event(&rec.run_id, Payload::PullClosed { number })
            .await?;
        open::tell_closed(self, rec).await;
        Ok(Round::Done(PullStatus::Closed))
    }

    /// Merged (by baton: `commit`, or by a person): its issues hear it and
    /// close.
    async fn merged(
        &self,
        rec: &mut PullRecord,
        commit: Option<String>,
    ) -> Result<Round, FollowError> {
        (self.say)(&format!("pull request #{} is merged", rec.number));
        rec.status = PullStatus::Merged;
        rec.note = Some(match &commit {
            Some(c) => format!("merged by baton as {}", decide::short(c)),
            None => "merged".into(),
        });
        self.save(rec).await?;
        let (number, commit) = (rec.number, commit.unwrap_or_default());
        self.event(&rec.run_id, Payload::PullMerged { number, commit })
            .await?;
        open::tell_merged(self, rec).await;
        Ok(Round::Done(PullStatus::Merged))
    }

    /// Merges the base into the pull request's branch; what git cannot
    /// merge goes to a fix attempt.
    async fn update_base(&self, rec: &mut PullRecord, pull: &Pull) -> Result<Round, FollowError> {
        let remote = self.settings.remote.as_str();
        let base_ref = format!("refs/baton/pulls/{}/base", rec.run_id);
        let base = self
            .repo
            .fetch_branch(remote, &pull.base, &base_ref)
            .await?;
        let head_ref = format!("refs/heads/{}", rec.head);
        let missing = || FollowError::Other(format!("the branch {} is gone", rec.head));
        let tip = self.repo.ref_commit(&head_ref).await?.ok_or_else(missing)?;
        if self.repo.is_ancestor(&base, &tip).await? {
            rec.note = Some("the forge says it conflicts, but it holds its base".into());
            self.save(rec).await?;
            return Ok(Round::Idle {
                changed: false,
                settled: true,
            });
        }
        let message = format!("Merge {} into {} (baton)", pull.base, rec.head);
        match self.repo.merge_commits(&tip, &base, &message).await? {
            crate::git::MergeOutcome::Merged(commit) => {
                self.repo.move_ref(&head_ref, &commit, &tip).await?;
                fix::push(self, rec).await?;
                (self.say)(&format!("merged {} into #{}", pull.base, rec.number));
                let number = rec.number;
                let c = commit.clone();
                self.event(&rec.run_id, Payload::PullBaseMerged { number, commit: c })
                    .await?;
                Ok(Round::Again)
            }
            crate::git::MergeOutcome::Conflict(paths) => {
                if let Some(why) = decide::spent(rec, self.caps()) {
                    let why = format!("{why}, and it conflicts with {}", pull.base);
                    return self.needs_you(rec, why).await;
                }
                let prompt = prompt::for_conflict(rec.number, &pull.base, &base, &paths);
                let fix = fix::Planned {
                    why: "conflict",
                    prompt,
                    mentioned: paths,
                    comments: Vec::new(),
                };
                self.start_fix(rec, fix).await
            }
        }
    }
}
