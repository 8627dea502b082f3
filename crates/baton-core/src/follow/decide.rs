//! What to do next with a followed pull request, from what the forge says
//! now and what was already handed to fix attempts: the pure rules, tested
//! without a forge, git or an agent.

use crate::forge::{Check, Pull, PullState, Review, ReviewComment};
use crate::plan::MergeWhen;
use crate::store::PullRecord;
use crate::tracker::MARK;

/// What the forge says about the pull request now.
pub struct Seen<'a> {
    pub pull: &'a Pull,
    pub checks: &'a [Check],
    pub reviews: &'a [Review],
    pub comments: &'a [ReviewComment],
}

/// The caps a pull request is followed within.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub max_fixes: u32,
    pub budget_usd: Option<f64>,
    pub merge_when: MergeWhen,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Merged,
    Closed,
    /// Its branch conflicts with its base: merge the base in (a fix
    /// attempt resolves what git cannot).
    UpdateBase,
    Fix(Trouble),
    Merge,
    /// Stop fixing: a person is needed, for this reason.
    NeedsYou(String),
    /// Nothing to do now; why (for `baton status`).
    Wait(String),
}

/// What a fix attempt is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Trouble {
    /// Checks that failed on the head commit.
    Checks(Vec<Check>),
    /// Review comments on lines, and reviews with words of their own, not
    /// yet handed to a fix.
    Review {
        comments: Vec<ReviewComment>,
        reviews: Vec<Review>,
    },
}

impl Trouble {
    pub fn why(&self) -> &'static str {
        match self {
            Trouble::Checks(_) => "checks",
            Trouble::Review { .. } => "review",
        }
    }
}

/// The next step for `rec` given what is `seen`.
pub fn decide(seen: &Seen<'_>, rec: &PullRecord, caps: Caps) -> Step {
    let pull = seen.pull;
    match pull.state {
        PullState::Merged => return Step::Merged,
        PullState::Closed => return Step::Closed,
        PullState::Open => {}
    }
    if pull.mergeable == Some(false) {
        return Step::UpdateBase;
    }
    if let Some(trouble) = trouble(seen, rec) {
        return match spent(rec, caps) {
            Some(why) => Step::NeedsYou(format!("{why}, and {}", said(&trouble))),
            None => Step::Fix(trouble),
        };
    }
    let pending: Vec<&str> = seen
        .checks
        .iter()
        .filter(|c| c.pending)
        .map(|c| c.name.as_str())
        .collect();
    if !pending.is_empty() {
        return Step::Wait(format!("checks running: {}", pending.join(", ")));
    }
    if seen.checks.iter().any(Check::failed) {
        return Step::Wait("its checks failed; a fix is on the way".into());
    }
    if seen.checks.is_empty() && rec.seen_sha.as_deref() != Some(pull.head_sha.as_str()) {
        // CI may not have reported yet on a commit just pushed.
        return Step::Wait(format!(
            "no checks reported yet on {}",
            short(&pull.head_sha)
        ));
    }
    if let Some(who) = changes_requested(seen.reviews) {
        return Step::Wait(format!("{who} asked for changes; waiting for a new review"));
    }
    match caps.merge_when {
        MergeWhen::Never => Step::Wait("green; a person merges it".into()),
        MergeWhen::Green => Step::Merge,
        MergeWhen::Approved if approved(seen.reviews) => Step::Merge,
        MergeWhen::Approved => Step::Wait("green; waiting for an approval".into()),
    }
}

/// Why no more fix attempts may start, if so.
pub fn spent(rec: &PullRecord, caps: Caps) -> Option<String> {
    if rec.fixes_used >= caps.max_fixes {
        return Some(format!(
            "{} of {} fix attempts used",
            rec.fixes_used, caps.max_fixes
        ));
    }
    match caps.budget_usd {
        Some(b) if rec.spent_usd >= b => Some(format!(
            "fix attempts spent ${:.2} of the ${b:.2} budget",
            rec.spent_usd
        )),
        _ => None,
    }
}

/// What went wrong that no fix attempt has had yet: failed checks first.
fn trouble(seen: &Seen<'_>, rec: &PullRecord) -> Option<Trouble> {
    let head = seen.pull.head_sha.as_str();
    let failed: Vec<Check> = seen.checks.iter().filter(|c| c.failed()).cloned().collect();
    if !failed.is_empty() && rec.handled_sha.as_deref() != Some(head) {
        return Some(Trouble::Checks(failed));
    }
    let comments: Vec<ReviewComment> = seen
        .comments
        .iter()
        .filter(|c| !c.body.contains(MARK) && !rec.handled_comments.contains(&c.id))
        .cloned()
        .collect();
    let reviews: Vec<Review> = seen
        .reviews
        .iter()
        .filter(|r| matches!(r.state.as_str(), "CHANGES_REQUESTED" | "COMMENTED"))
        .filter(|r| !r.body.trim().is_empty() && !r.body.contains(MARK))
        .filter(|r| !rec.handled_reviews.contains(&r.id))
        .cloned()
        .collect();
    if comments.is_empty() && reviews.is_empty() {
        return None;
    }
    Some(Trouble::Review { comments, reviews })
}

fn said(t: &Trouble) -> String {
    match t {
        Trouble::Checks(c) => {
            let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
            format!("checks failed: {}", names.join(", "))
        }
        Trouble::Review { comments, reviews } => {
            format!(
                "{} review comments are unanswered",
                comments.len() + reviews.len()
            )
        }
    }
}

/// Each reviewer's latest say (comments aside).
fn latest(reviews: &[Review]) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in reviews {
        if !matches!(
            r.state.as_str(),
            "APPROVED" | "CHANGES_REQUESTED" | "DISMISSED"
        ) {
            continue;
        }
        match out.iter_mut().find(|(a, _)| *a == r.author) {
            Some(seen) => seen.1 = &r.state,
            None => out.push((&r.author, &r.state)),
        }
    }
    out
}

/// Who asks for changes still (their latest review says so).
fn changes_requested(reviews: &[Review]) -> Option<String> {
    let who: Vec<&str> = latest(reviews)
        .into_iter()
        .filter(|(_, s)| *s == "CHANGES_REQUESTED")
        .map(|(a, _)| a)
        .collect();
    (!who.is_empty()).then(|| who.join(", "))
}

fn approved(reviews: &[Review]) -> bool {
    latest(reviews).iter().any(|(_, s)| *s == "APPROVED")
}

pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// Checks in a few words (`baton status`): `2 passed, 1 failed (lint)`.
pub fn checks_summary(checks: &[Check]) -> String {
    if checks.is_empty() {
        return "no checks".into();
    }
    let passed = checks.iter().filter(|c| !c.pending && !c.failed()).count();
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.failed())
        .map(|c| c.name.as_str())
        .collect();
    let pending = checks.iter().filter(|c| c.pending).count();
    let mut parts = vec![format!("{passed} passed")];
    if !failed.is_empty() {
        parts.push(format!("{} failed ({})", failed.len(), failed.join(", ")));
    }
    if pending > 0 {
        parts.push(format!("{pending} running"));
    }
    parts.join(", ")
}

/// Reviews in a few words: `approved by ana; changes asked by bo`.
pub fn reviews_summary(reviews: &[Review]) -> String {
    let latest = latest(reviews);
    let by = |state: &str| -> Vec<&str> {
        latest
            .iter()
            .filter(|(_, s)| *s == state)
            .map(|(a, _)| *a)
            .collect()
    };
    let mut parts = Vec::new();
    let (yes, no) = (by("APPROVED"), by("CHANGES_REQUESTED"));
    if !yes.is_empty() {
        parts.push(format!("approved by {}", yes.join(", ")));
    }
    if !no.is_empty() {
        parts.push(format!("changes asked by {}", no.join(", ")));
    }
    if parts.is_empty() {
        return "no reviews".into();
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pull(sha: &str) -> Pull {
        Pull {
            number: 3,
            url: "u".into(),
            state: PullState::Open,
            head_sha: sha.into(),
            base: "main".into(),
            mergeable: Some(true),
        }
    }

    fn check(name: &str, conclusion: Option<&str>) -> Check {
        Check {
            id: 1,
            name: name.into(),
            pending: conclusion.is_none(),
            conclusion: conclusion.map(str::to_string),
            url: None,
            summary: String::new(),
        }
    }

    fn review(id: u64, who: &str, state: &str, body: &str) -> Review {
        Review {
            id,
            author: who.into(),
            state: state.into(),
            body: body.into(),
        }
    }

    fn comment(id: u64, body: &str) -> ReviewComment {
        ReviewComment {
            id,
            author: "ana".into(),
            path: "src/a.rs".into(),
            line: Some(3),
            hunk: "@@".into(),
            body: body.into(),
            in_reply_to: None,
        }
    }

    fn rec() -> PullRecord {
        let mut r = PullRecord::opened("r", 3, "u", "a/b", "baton/r", "main");
        r.seen_sha = Some("h1".into());
        r
    }

    const CAPS: Caps = Caps {
        max_fixes: 2,
        budget_usd: Some(1.0),
        merge_when: MergeWhen::Approved,
    };

    fn step(
        p: &Pull,
        checks: &[Check],
        reviews: &[Review],
        comments: &[ReviewComment],
        r: &PullRecord,
    ) -> Step {
        let seen = Seen {
            pull: p,
            checks,
            reviews,
            comments,
        };
        decide(&seen, r, CAPS)
    }

    #[test]
    fn a_failed_check_gets_one_fix_per_head_and_then_the_cap_asks_for_a_person() {
        let p = pull("h1");
        let checks = [
            check("build", Some("success")),
            check("test", Some("failure")),
        ];
        let mut r = rec();
        let Step::Fix(Trouble::Checks(failed)) = step(&p, &checks, &[], &[], &r) else {
            panic!("no fix")
        };
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].name, "test");
        r.handled_sha = Some("h1".into());
        assert!(
            matches!(step(&p, &checks, &[], &[], &r), Step::Wait(w) if w.contains("fix is on the way"))
        );
        // A new head that fails again: a fix while the cap allows.
        let p2 = pull("h2");
        r.fixes_used = 2;
        match step(&p2, &checks, &[], &[], &r) {
            Step::NeedsYou(why) => {
                assert!(why.contains("2 of 2 fix attempts used"), "{why}");
                assert!(why.contains("checks failed: test"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        r.fixes_used = 0;
        r.spent_usd = 1.5;
        assert!(
            matches!(step(&p2, &checks, &[], &[], &r), Step::NeedsYou(w) if w.contains("budget"))
        );
    }

    #[test]
    fn review_comments_not_yet_handled_go_to_one_fix_and_baton_s_own_never() {
        let p = pull("h1");
        let ok = [check("ci", Some("success"))];
        let mut r = rec();
        let comments = [
            comment(10, "rename this"),
            comment(11, "done <!-- baton -->"),
        ];
        let reviews = [
            review(1, "ana", "COMMENTED", ""),
            review(2, "bo", "CHANGES_REQUESTED", "please add a test"),
        ];
        let Step::Fix(Trouble::Review {
            comments: c,
            reviews: rv,
        }) = step(&p, &ok, &reviews, &comments, &r)
        else {
            panic!("no review fix")
        };
        assert_eq!(c.iter().map(|c| c.id).collect::<Vec<_>>(), [10]);
        assert_eq!(rv.iter().map(|r| r.id).collect::<Vec<_>>(), [2]);
        r.handled_comments = vec![10];
        r.handled_reviews = vec![2];
        let s = step(&p, &ok, &reviews, &comments, &r);
        assert!(
            matches!(&s, Step::Wait(w) if w.contains("bo asked for changes")),
            "{s:?}"
        );
        let approved = [reviews[1].clone(), review(3, "bo", "APPROVED", "")];
        assert_eq!(step(&p, &ok, &approved, &comments, &r), Step::Merge);
    }

    #[test]
    fn it_merges_only_when_green_and_as_merge_when_says() {
        let mut r = rec();
        let p = pull("h1");
        let running = [check("ci", None)];
        assert!(
            matches!(step(&p, &running, &[], &[], &r), Step::Wait(w) if w.contains("running: ci"))
        );
        let ok = [check("ci", Some("success")), check("docs", Some("skipped"))];
        assert!(
            matches!(step(&p, &ok, &[], &[], &r), Step::Wait(w) if w.contains("waiting for an approval"))
        );
        let green = Caps {
            merge_when: MergeWhen::Green,
            ..CAPS
        };
        let seen = Seen {
            pull: &p,
            checks: &ok,
            reviews: &[],
            comments: &[],
        };
        assert_eq!(decide(&seen, &r, green), Step::Merge);
        let never = Caps {
            merge_when: MergeWhen::Never,
            ..CAPS
        };
        assert!(
            matches!(decide(&seen, &r, never), Step::Wait(w) if w.contains("a person merges it"))
        );
        // No checks on a head seen for the first time: CI may not have said yet.
        r.seen_sha = None;
        let none = Seen {
            pull: &p,
            checks: &[],
            reviews: &[],
            comments: &[],
        };
        assert!(
            matches!(decide(&none, &r, green), Step::Wait(w) if w.contains("no checks reported yet"))
        );
        r.seen_sha = Some("h1".into());
        assert_eq!(decide(&none, &r, green), Step::Merge);
    }

    #[test]
    fn merged_closed_and_conflicting_pulls_say_so_first() {
        let r = rec();
        let mut p = pull("h1");
        p.mergeable = Some(false);
        let failing = [check("ci", Some("failure"))];
        assert_eq!(step(&p, &failing, &[], &[], &r), Step::UpdateBase);
        p.state = PullState::Merged;
        assert_eq!(step(&p, &failing, &[], &[], &r), Step::Merged);
        p.state = PullState::Closed;
        assert_eq!(step(&p, &[], &[], &[], &r), Step::Closed);
    }

    #[test]
    fn summaries_say_checks_and_reviews_in_a_few_words() {
        let checks = [
            check("a", Some("success")),
            check("b", Some("failure")),
            check("c", None),
        ];
        assert_eq!(checks_summary(&checks), "1 passed, 1 failed (b), 1 running");
        let reviews = [
            review(1, "ana", "APPROVED", ""),
            review(2, "bo", "CHANGES_REQUESTED", "x"),
        ];
        assert_eq!(
            reviews_summary(&reviews),
            "approved by ana; changes asked by bo"
        );
        assert_eq!(reviews_summary(&[]), "no reviews");
    }
}
