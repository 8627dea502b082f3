//! A batch of merges under the run's `verify` (`verify_batch`): each task's
//! merge commit is made on the one before it, so checking the last commit
//! checks them all at once. When that fails, the first task whose merge
//! breaks the checks is found by bisection, as merge queues like bors and
//! Zuul do: every prefix that passes lands, the culprit fails, and the tasks
//! after it go back to the queue (their merges sat on the culprit's).
//! Pure: the merge lane runs the checks and moves the branch.

/// One task of the batch and its merge commit.
pub(crate) type Merge = (usize, String);

#[derive(Debug)]
pub(crate) struct Batch {
    merges: Vec<Merge>,
    /// `merges[..lo]` are known good (and handed out to land).
    lo: usize,
    /// `merges[..hi]` is known to fail the checks, once one failed.
    hi: Option<usize>,
    /// How many merges the commit under check holds.
    probe: usize,
    /// The checks' words on the last failing prefix: (reason, feedback).
    failure: Option<(String, String)>,
}

/// What to do after a verdict.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Next {
    /// Merges now known good, oldest first: publish the last one's commit.
    pub land: Vec<Merge>,
    /// The task whose merge breaks the checks, with (reason, feedback).
    pub culprit: Option<(usize, String, String)>,
    /// Tasks to merge again, in order: their merge commits hold the culprit's.
    pub requeue: Vec<usize>,
    /// The commit to check next; None: the batch is over.
    pub check: Option<String>,
}

impl Batch {
    /// A batch of at least one merge, and the commit to check first (the
    /// last, which holds them all).
    pub fn new(merges: Vec<Merge>) -> Option<(Batch, String)> {
        let last = merges.last()?.1.clone();
        let probe = merges.len();
        let batch = Batch {
            merges,
            lo: 0,
            hi: None,
            probe,
            failure: None,
        };
        Some((batch, last))
    }

    /// The tasks of the batch that have not landed, in order.
    pub fn unsettled(&self) -> impl Iterator<Item = usize> + '_ {
        self.merges[self.lo..].iter().map(|(t, _)| *t)
    }

    /// The task whose merge is the commit under check.
    pub fn probed_task(&self) -> usize {
        self.merges[self.probe - 1].0
    }

    /// The commit under check passed.
    pub fn passed(&mut self) -> Next {
        let land = self.merges[self.lo..self.probe].to_vec();
        self.lo = self.probe;
        let mut next = self.search();
        next.land = land;
        next
    }

    /// The commit under check failed, for this reason.
    pub fn failed(&mut self, reason: String, feedback: String) -> Next {
        self.hi = Some(self.probe);
        self.failure = Some((reason, feedback));
        self.search()
    }

    /// The next step of the search for the first failing prefix.
    fn search(&mut self) -> Next {
        let Some(hi) = self.hi else {
            return Next::default();
        };
        if hi - self.lo == 1 {
            let (reason, feedback) = self.failure.take().unwrap_or_default();
            let culprit = Some((self.merges[self.lo].0, reason, feedback));
            let requeue = self.merges[hi..].iter().map(|(t, _)| *t).collect();
            self.lo = self.merges.len();
            return Next {
                culprit,
                requeue,
                ..Next::default()
            };
        }
        self.probe = (self.lo + hi) / 2;
        Next {
            check: Some(self.merges[self.probe - 1].1.clone()),
            ..Next::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> (Batch, String) {
        let merges = (0..n).map(|i| (i, format!("m{i}"))).collect();
        Batch::new(merges).expect("a batch")
    }

    fn fail(b: &mut Batch) -> Next {
        b.failed("check failed".into(), "output".into())
    }

    /// Runs the search with the task at `bad` breaking every commit that
    /// holds it; returns what landed, the culprit, the requeued and how many
    /// checks ran.
    fn bisect(n: usize, bad: Option<usize>) -> (Vec<usize>, Option<usize>, Vec<usize>, usize) {
        let (mut b, mut check) = batch(n);
        let (mut landed, mut checks) = (Vec::new(), 0);
        loop {
            checks += 1;
            let holds_bad = bad.is_some_and(|x| b.probe > x);
            assert_eq!(
                check,
                format!("m{}", b.probe - 1),
                "checks the probe's commit"
            );
            let next = if holds_bad { fail(&mut b) } else { b.passed() };
            landed.extend(next.land.iter().map(|(t, _)| *t));
            match next.check {
                Some(c) => check = c,
                None => {
                    let culprit = next.culprit.map(|(t, _, _)| t);
                    return (landed, culprit, next.requeue, checks);
                }
            }
        }
    }

    #[test]
    fn a_batch_that_passes_lands_whole_after_one_check() {
        assert_eq!(bisect(4, None), (vec![0, 1, 2, 3], None, vec![], 1));
    }

    #[test]
    fn a_batch_of_one_that_fails_names_its_task_at_once() {
        let (mut b, _) = batch(1);
        let next = fail(&mut b);
        assert_eq!(
            next,
            Next {
                culprit: Some((0, "check failed".into(), "output".into())),
                ..Next::default()
            }
        );
    }

    #[test]
    fn one_bad_task_in_four_lands_those_before_and_requeues_those_after() {
        assert_eq!(bisect(4, Some(1)), (vec![0], Some(1), vec![2, 3], 3));
        assert_eq!(bisect(4, Some(0)), (vec![], Some(0), vec![1, 2, 3], 3));
        assert_eq!(bisect(4, Some(3)), (vec![0, 1, 2], Some(3), vec![], 3));
    }

    #[test]
    fn every_position_of_the_culprit_is_found_in_log_checks() {
        for n in 1..=16 {
            for bad in 0..n {
                let (landed, culprit, requeue, checks) = bisect(n, Some(bad));
                assert_eq!(landed, (0..bad).collect::<Vec<_>>(), "n={n} bad={bad}");
                assert_eq!(culprit, Some(bad));
                assert_eq!(requeue, (bad + 1..n).collect::<Vec<_>>());
                let log2 = usize::BITS - (n - 1).leading_zeros();
                assert!(
                    checks <= 1 + log2 as usize,
                    "n={n} bad={bad}: {checks} checks"
                );
            }
        }
    }

    #[test]
    fn the_culprit_gets_the_words_of_its_own_failing_check() {
        let (mut b, _) = batch(2);
        b.failed("both".into(), "f-both".into());
        assert_eq!(b.probed_task(), 0);
        let next = b.failed("first".into(), "f-first".into());
        assert_eq!(next.culprit, Some((0, "first".into(), "f-first".into())));
        assert_eq!(next.requeue, vec![1]);
        assert_eq!(b.unsettled().count(), 0);
    }

    #[test]
    fn an_empty_batch_is_none() {
        assert!(Batch::new(Vec::new()).is_none());
    }
}
