//! A person may push to the pull request's branch (a fix of their own, a
//! merge from the web page). Their commits come into baton's copy before
//! baton changes the branch again: when a look sees the forge's head is
//! not baton's, and before every push. They are fast-forwarded when baton
//! has nothing newer, else merged; a push that conflicts with baton's work
//! goes to a person, since two people's intents meet there.

use super::{fix, FollowError, Follower, Round};
use crate::forge::Pull;
use crate::git::MergeOutcome;
use crate::store::PullRecord;

/// What baton's copy of the branch became against the remote's.
pub(super) enum Synced {
    /// It holds everything the remote's has.
    Same,
    /// It took commits from the remote's (fast-forwarded or merged).
    Taken,
    /// The remote's cannot merge with it: why, in words.
    Conflict(String),
}

impl Follower<'_> {
    /// A look that finds the forge's head is not baton's copy: someone
    /// else's push comes in (and, merged, goes out). Some(round) when it
    /// did something or needs a person.
    pub(super) async fn take_their_push(
        &self,
        rec: &mut PullRecord,
        pull: &Pull,
    ) -> Result<Option<Round>, FollowError> {
        if Some(pull.head_sha.as_str()) == self.ours(rec).await?.as_deref() {
            return Ok(None);
        }
        match self.sync_with_remote(rec).await? {
            Synced::Same => Ok(None),
            Synced::Taken => {
                fix::push(self, rec).await?;
                Ok(Some(Round::Again))
            }
            Synced::Conflict(why) => Ok(Some(self.needs_you(rec, why).await?)),
        }
    }

    /// Fetches the remote's branch and brings what baton's copy lacks of it
    /// into the copy.
    pub(super) async fn sync_with_remote(&self, rec: &PullRecord) -> Result<Synced, FollowError> {
        let head_ref = format!("refs/heads/{}", rec.head);
        let missing = || FollowError::Other(format!("the branch {} is gone", rec.head));
        let ours = self.ours(rec).await?.ok_or_else(missing)?;
        let kept = format!("refs/baton/pulls/{}/head", rec.run_id);
        let remote = self.settings.remote.as_str();
        let theirs = self.repo.fetch_branch(remote, &rec.head, &kept).await?;
        if self.repo.is_ancestor(&theirs, &ours).await? {
            return Ok(Synced::Same);
        }
        let short = super::decide::short(&theirs);
        if self.repo.is_ancestor(&ours, &theirs).await? {
            self.repo.move_ref(&head_ref, &theirs, &ours).await?;
            (self.say)(&format!(
                "#{}: took the push to {} ({short})",
                rec.number, rec.head
            ));
            return Ok(Synced::Taken);
        }
        let message = format!("Merge the push to {} (baton)", rec.head);
        match self.repo.merge_commits(&ours, &theirs, &message).await? {
            MergeOutcome::Merged(commit) => {
                self.repo.move_ref(&head_ref, &commit, &ours).await?;
                (self.say)(&format!(
                    "#{}: merged the push to {} ({short}) with baton's work",
                    rec.number, rec.head
                ));
                Ok(Synced::Taken)
            }
            MergeOutcome::Conflict(paths) => Ok(Synced::Conflict(format!(
                "a push to {} ({short}) conflicts with baton's work in {}",
                rec.head,
                paths.join(", ")
            ))),
        }
    }

    async fn ours(&self, rec: &PullRecord) -> Result<Option<String>, FollowError> {
        let head_ref = format!("refs/heads/{}", rec.head);
        Ok(self.repo.ref_commit(&head_ref).await?)
    }
}
