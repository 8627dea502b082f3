//! The board's rules, one by one: no git, no processes, no store.

use super::*;
use crate::engine::messages::{MergeResult, Outcome};
use crate::model::ControlKind;
use crate::plan::OnFailure;
use std::time::Duration;

fn spec(id: &str, needs: &[&str]) -> TaskSpec {
    TaskSpec {
        id: id.into(),
        prompt: String::new(),
        agent: "fake".into(),
        needs: needs.iter().map(|n| n.to_string()).collect(),
        context: Vec::new(),
        gates: Vec::new(),
        retries: 0,
        timeout: Duration::from_secs(60),
        budget_usd: None,
        approve: false,
        merge: true,
        fail_if: None,
        on_failure: OnFailure::Stop,
        stall_after: Duration::from_secs(60),
        files: Default::default(),
        resolve_conflicts: false,
        lead: None,
        race: None,
        candidate: None,
    }
}

fn with_files(mut s: TaskSpec, globs: &[&str]) -> TaskSpec {
    let globs: Vec<String> = globs.iter().map(|g| g.to_string()).collect();
    s.files = crate::plan::FileSet::new(&globs).unwrap();
    s
}

fn rules(max_parallel: usize) -> Rules {
    Rules {
        run: "r1".into(),
        max_parallel,
        service: false,
        auto_approve: false,
        overlap_allowed: false,
        profile_limits: HashMap::new(),
        accounts: HashMap::new(),
        fallbacks: HashMap::new(),
    }
}

fn board(max_parallel: usize, specs: Vec<TaskSpec>) -> Board {
    Board::new(rules(max_parallel), specs)
}

/// The tasks an action list starts, by id.
fn started(b: &Board, actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Start { task, .. } => Some(b.id(*task).to_string()),
            _ => None,
        })
        .collect()
}

/// Each recorded status change as (task, status).
fn moves(b: &Board, actions: &[Action]) -> Vec<(String, TaskStatus)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Record {
                task,
                status: Some(s),
                ..
            } => Some((b.id(*task).to_string(), *s)),
            _ => None,
        })
        .collect()
}

fn next_started(b: &mut Board) -> Vec<String> {
    let acts = b.next();
    started(b, &acts)
}

fn next_moves(b: &mut Board) -> Vec<(String, TaskStatus)> {
    let acts = b.next();
    moves(b, &acts)
}

fn status(b: &Board, id: &str) -> TaskStatus {
    b.status(b.idx(id).unwrap())
}

fn fail(b: &mut Board, id: &str) -> Vec<Action> {
    let i = b.idx(id).unwrap();
    b.finished(
        i,
        Outcome::Failed {
            commit: None,
            reason: "gate failed".into(),
            result: String::new(),
        },
    )
}

fn done(b: &mut Board, id: &str) -> Vec<Action> {
    let i = b.idx(id).unwrap();
    b.finished(
        i,
        Outcome::Done {
            commit: "c1".into(),
            result: "ok".into(),
        },
    )
}

fn merge(b: &mut Board, id: &str) -> Vec<Action> {
    let i = b.idx(id).unwrap();
    b.merged(
        i,
        MergeResult::Merged {
            integration: Some("h2".into()),
        },
    )
}

#[test]
fn ready_tasks_start_up_to_max_parallel_in_plan_order() {
    let mut b = board(2, vec![spec("a", &[]), spec("b", &[]), spec("c", &[])]);
    let a = b.next();
    assert_eq!(started(&b, &a), ["a", "b"]);
    assert_eq!(b.running(), 2);
    assert!(next_started(&mut b).is_empty(), "the limit holds");
    done(&mut b, "a");
    assert_eq!(b.running(), 1);
    assert_eq!(next_started(&mut b), ["c"]);
}

#[test]
fn a_task_waits_until_what_it_needs_is_merged() {
    let mut b = board(3, vec![spec("api", &[]), spec("docs", &["api"])]);
    assert_eq!(next_started(&mut b), ["api"]);
    let acts = done(&mut b, "api");
    assert_eq!(moves(&b, &acts), [("api".into(), TaskStatus::Merging)]);
    assert!(acts.contains(&Action::Merge(0)));
    assert!(next_started(&mut b).is_empty(), "merging is not merged");
    let acts = merge(&mut b, "api");
    assert!(acts.contains(&Action::DropWorktree(0)));
    assert_eq!(next_started(&mut b), ["docs"]);
}

#[test]
fn skips_travel_down_a_chain_whatever_the_file_order() {
    let mut s = vec![spec("c", &["b"]), spec("b", &["a"]), spec("a", &[])];
    for t in &mut s {
        t.on_failure = OnFailure::Continue;
    }
    let mut b = board(3, s);
    b.next();
    fail(&mut b, "a");
    let acts = b.next();
    assert_eq!(
        moves(&b, &acts),
        [
            ("b".into(), TaskStatus::Skipped),
            ("c".into(), TaskStatus::Skipped)
        ]
    );
    let Action::Record { update, .. } = &acts[1] else {
        panic!("{acts:?}")
    };
    assert_eq!(
        update.reason,
        Some(Some("needs \"b\", which was skipped".into()))
    );
    assert!(b.is_done(false));
    assert_eq!(b.wind_up().1, RunStatus::Failed);
}

#[test]
fn on_failure_stop_holds_back_new_work_but_lets_running_tasks_finish() {
    let mut b = board(2, vec![spec("a", &[]), spec("b", &[]), spec("c", &[])]);
    b.next();
    fail(&mut b, "a");
    let acts = b.next();
    assert_eq!(moves(&b, &acts), [("c".into(), TaskStatus::Skipped)]);
    assert_eq!(status(&b, "b"), TaskStatus::Running);
    let Action::Record { update, .. } = &acts[0] else {
        panic!()
    };
    assert_eq!(
        update.reason,
        Some(Some(
            "not started: task \"a\" failed and its on_failure is \"stop\"".into()
        ))
    );
}

#[test]
fn on_failure_continue_starts_the_rest() {
    let mut s = vec![spec("a", &[]), spec("b", &[])];
    s[0].on_failure = OnFailure::Continue;
    let mut b = board(1, s);
    b.next();
    fail(&mut b, "a");
    assert_eq!(next_started(&mut b), ["b"]);
}

#[test]
fn a_service_run_ignores_on_failure_and_waits_for_more_tasks() {
    let mut r = rules(2);
    r.service = true;
    let mut b = Board::new(r, vec![spec("t1", &[]), spec("t2", &[])]);
    b.next();
    fail(&mut b, "t1");
    done(&mut b, "t2");
    merge(&mut b, "t2");
    assert!(b.next().is_empty());
    assert!(!b.is_done(false), "a service run goes on until shut down");
    let i = b.add(spec("t3", &[])).unwrap();
    assert!(b.add(spec("t3", &[])).is_err(), "ids are unique");
    assert_eq!(next_started(&mut b), ["t3"]);
    assert_eq!(b.id(i), "t3");
    b.shutdown();
    b.finished(i, Outcome::Interrupted { commit: None });
    assert!(b.is_done(false));
}

#[test]
fn approval_waits_for_a_person_then_merges_or_drops_the_worktree() {
    let mut s = vec![spec("m", &[]), spec("n", &[])];
    s[0].approve = true;
    s[1].approve = true;
    s[1].merge = false;
    let mut b = board(2, s);
    b.next();
    let acts = done(&mut b, "m");
    assert_eq!(
        moves(&b, &acts),
        [("m".into(), TaskStatus::AwaitingApproval)]
    );
    done(&mut b, "n");
    assert!(!b.is_done(false), "a person is waited for");

    let r = b.request(0, ControlKind::Approve, None);
    assert!(r.ok, "{}", r.message);
    assert!(r.actions.contains(&Action::Merge(0)));
    // The same outcome as a merge = false task that needs no approval.
    let r = b.request(1, ControlKind::Approve, None);
    assert_eq!(moves(&b, &r.actions), [("n".into(), TaskStatus::Succeeded)]);
    assert!(r.actions.contains(&Action::DropWorktree(1)));
    let again = b.request(1, ControlKind::Approve, None);
    assert!(!again.ok);
    assert!(again.message.contains("already ended (succeeded)"));
}

#[test]
fn auto_approve_goes_straight_to_the_merge_queue() {
    let mut s = vec![spec("m", &[])];
    s[0].approve = true;
    let mut r = rules(1);
    r.auto_approve = true;
    let mut b = Board::new(r, s);
    b.next();
    let acts = done(&mut b, "m");
    assert_eq!(moves(&b, &acts), [("m".into(), TaskStatus::Merging)]);
}

#[test]
fn stop_asks_a_running_worker_and_ends_a_waiting_task_at_once() {
    let mut b = board(1, vec![spec("a", &[]), spec("b", &[])]);
    b.next();
    let r = b.request(0, ControlKind::Stop, None);
    assert!(r.ok);
    assert_eq!(
        r.actions,
        [Action::Send {
            task: 0,
            cmd: WorkerCmd::Stop
        }]
    );
    assert!(r.message.contains("baton/r1/task/a"), "{}", r.message);
    let r = b.request(1, ControlKind::Stop, None);
    assert_eq!(moves(&b, &r.actions), [("b".into(), TaskStatus::Stopped)]);
    done(&mut b, "a");
    let r = b.request(0, ControlKind::Stop, None);
    assert!(!r.ok && r.message.contains("being merged"), "{}", r.message);
}

#[test]
fn steer_reaches_the_task_wherever_it_is() {
    let mut s = vec![spec("run", &[]), spec("wait", &[]), spec("later", &["run"])];
    s[1].approve = true;
    let mut b = board(2, s);
    b.next();
    let r = b.request(0, ControlKind::Steer, Some("use v2".into()));
    assert!(r.actions.contains(&Action::Send {
        task: 0,
        cmd: WorkerCmd::Steer("use v2".into())
    }));
    done(&mut b, "wait");
    let r = b.request(1, ControlKind::Steer, Some("smaller".into()));
    assert!(r.ok);
    assert!(r.actions.contains(&Action::Start {
        task: 1,
        feedback: Some("smaller".into())
    }));
    assert_eq!(status(&b, "wait"), TaskStatus::Running);
    let r = b.request(2, ControlKind::Steer, Some("first".into()));
    assert!(r.ok && r.message.contains("has not started"));
    let fb = r.actions.iter().any(|a| {
        matches!(a, Action::Record { status: None, update, .. } if update.feedback == Some(Some("first".into())))
    });
    assert!(fb, "{:?}", r.actions);
}

#[test]
fn retry_reopens_a_failed_task_and_what_was_skipped_because_of_it() {
    let mut b = board(2, vec![spec("a", &[]), spec("b", &["a"]), spec("c", &[])]);
    b.next();
    fail(&mut b, "a");
    done(&mut b, "c");
    b.next();
    assert_eq!(status(&b, "b"), TaskStatus::Skipped);
    assert!(
        b.check_retry(1).is_none(),
        "a skipped task can be retried too"
    );
    let r = b.retry(0, "try harder".into(), 1);
    assert!(r.ok, "{}", r.message);
    assert_eq!(
        moves(&b, &r.actions),
        [
            ("a".into(), TaskStatus::Pending),
            ("b".into(), TaskStatus::Pending)
        ]
    );
    let Action::Record { update, .. } = &r.actions[0] else {
        panic!()
    };
    assert_eq!(update.retry_from, Some(1));
    assert_eq!(update.feedback, Some(Some("try harder".into())));
    assert_eq!(
        next_started(&mut b),
        ["a"],
        "a forced task runs despite on_failure"
    );
}

#[test]
fn retry_is_refused_for_a_task_that_did_not_end_badly_or_when_the_budget_is_spent() {
    let mut b = board(1, vec![spec("a", &[])]);
    b.next();
    let r = b.retry(0, String::new(), 0);
    assert!(!r.ok);
    assert!(
        r.message.contains("is running; only a failed"),
        "{}",
        r.message
    );
    fail(&mut b, "a");
    b.spent(2.0, 1.0);
    let r = b.retry(0, String::new(), 1);
    assert!(
        !r.ok && r.message.contains("budget_usd is spent"),
        "{}",
        r.message
    );
}

#[test]
fn a_spent_budget_stops_running_agents_and_starts_nothing_new() {
    let mut s = vec![spec("a", &[]), spec("b", &[])];
    s[0].on_failure = OnFailure::Continue;
    let mut b = board(1, s);
    b.next();
    assert!(b.spent(0.5, 1.0).is_empty(), "under budget");
    let acts = b.spent(1.5, 1.0);
    assert!(matches!(
        acts[0],
        Action::RunEvent(Payload::BudgetExceeded { .. })
    ));
    assert!(matches!(
        &acts[1],
        Action::Send { task: 0, cmd: WorkerCmd::OverBudget(r) } if r.contains("$1.5000 of its budget_usd $1.0000")
    ));
    assert!(b.spent(2.0, 1.0).is_empty(), "once");
    fail(&mut b, "a");
    assert_eq!(next_moves(&mut b), [("b".into(), TaskStatus::Skipped)]);
}

#[test]
fn shutdown_stops_workers_starts_nothing_and_leaves_the_run_interrupted() {
    let mut b = board(1, vec![spec("a", &[]), spec("b", &[])]);
    b.next();
    let acts = b.shutdown();
    assert_eq!(
        acts[1],
        Action::Send {
            task: 0,
            cmd: WorkerCmd::Shutdown
        }
    );
    assert!(b.refuse(ControlKind::Retry).is_some());
    assert!(b.refuse(ControlKind::Stop).is_none());
    let acts = b.finished(0, Outcome::Interrupted { commit: None });
    assert_eq!(moves(&b, &acts), [("a".into(), TaskStatus::Pending)]);
    assert!(b.next().is_empty());
    assert!(b.is_done(false));
    let (acts, status) = b.wind_up();
    assert!(acts.is_empty(), "pending tasks stay pending for resume");
    assert_eq!(status, RunStatus::Interrupted);
}

#[test]
fn a_conflict_ends_the_task_and_applies_on_failure() {
    let mut b = board(1, vec![spec("a", &[]), spec("b", &[])]);
    b.next();
    done(&mut b, "a");
    let acts = b.merged(
        0,
        MergeResult::Conflict {
            paths: vec!["x.txt".into()],
            reason: "merge conflict".into(),
        },
    );
    assert_eq!(moves(&b, &acts), [("a".into(), TaskStatus::Conflicted)]);
    assert_eq!(next_moves(&mut b), [("b".into(), TaskStatus::Skipped)]);
}

#[test]
fn restore_keeps_finished_work_and_remembers_failures_and_forced_tasks() {
    let mut b = board(2, vec![spec("a", &[]), spec("b", &[]), spec("c", &[])]);
    let statuses = HashMap::from([
        ("a".to_string(), TaskStatus::Failed),
        ("b".to_string(), TaskStatus::Pending),
        ("c".to_string(), TaskStatus::Succeeded),
    ]);
    b.restore(&statuses, &[]);
    assert_eq!(next_moves(&mut b), [("b".into(), TaskStatus::Skipped)]);

    let mut b = board(2, vec![spec("a", &[]), spec("b", &[])]);
    b.restore(&statuses, &["b".to_string()]);
    assert_eq!(next_started(&mut b), ["b"]);
}

#[test]
fn wind_up_skips_what_never_could_start() {
    let mut b = board(1, vec![spec("a", &[]), spec("b", &["missing"])]);
    b.next();
    done(&mut b, "a");
    merge(&mut b, "a");
    b.next();
    assert!(b.is_done(false));
    let (acts, status) = b.wind_up();
    assert_eq!(moves(&b, &acts), [("b".into(), TaskStatus::Skipped)]);
    assert_eq!(status, RunStatus::Failed);
}

#[test]
fn answers_say_what_will_happen_when_requests_pile_up() {
    let mut b = board(1, vec![spec("a", &[])]);
    b.next();
    assert!(b.request(0, ControlKind::Stop, None).ok);
    let again = b.request(0, ControlKind::Stop, None);
    assert!(
        !again.ok && again.message.contains("being stopped already"),
        "{}",
        again.message
    );
    assert!(again.actions.is_empty());
    let steer = b.request(0, ControlKind::Steer, Some("wait".into()));
    assert!(
        !steer.ok && steer.message.contains("being stopped"),
        "{}",
        steer.message
    );
    assert!(!steer
        .actions
        .iter()
        .any(|a| matches!(a, Action::Send { .. })));
    b.finished(
        0,
        Outcome::Stopped {
            commit: None,
            reason: "stopped".into(),
        },
    );
    let after = b.request(0, ControlKind::Steer, Some("late".into()));
    assert!(!after.ok && after.message.contains("already ended (stopped)"));
}

#[test]
fn tasks_that_declare_overlapping_files_never_run_at_once() {
    let specs = vec![
        with_files(spec("api", &[]), &["src/api/**"]),
        with_files(spec("handler", &[]), &["src/api/handlers.rs"]),
        with_files(spec("ui", &[]), &["src/ui/**"]),
    ];
    let mut b = board(3, specs.clone());
    assert_eq!(next_started(&mut b), ["api", "ui"], "handler waits for api");
    done(&mut b, "api");
    assert!(
        next_started(&mut b).is_empty(),
        "api's work is not merged yet: handler would start without it"
    );
    merge(&mut b, "api");
    assert_eq!(next_started(&mut b), ["handler"]);

    let mut r = rules(3);
    r.overlap_allowed = true;
    let mut b = Board::new(r, specs);
    assert_eq!(next_started(&mut b), ["api", "handler", "ui"]);
}

#[test]
fn a_profile_runs_no_more_tasks_than_its_max_parallel() {
    let mut r = rules(4);
    r.profile_limits.insert("slow".into(), 1);
    let mut s = vec![spec("a", &[]), spec("b", &[]), spec("c", &[])];
    s[0].agent = "slow".into();
    s[1].agent = "slow".into();
    let mut b = Board::new(r, s);
    assert_eq!(next_started(&mut b), vec!["a", "c"]);
    assert!(next_started(&mut b).is_empty());
    merge(&mut b, "a");
    assert_eq!(next_started(&mut b), vec!["b"]);
}

#[test]
fn a_hold_keeps_ready_tasks_waiting_and_says_so_once() {
    let mut b = board(2, vec![spec("a", &[]), spec("b", &["a"])]);
    assert!(b.hold(Some("512 MiB free, 2 GiB needed".into())).is_empty());
    let acts = b.next();
    assert!(started(&b, &acts).is_empty());
    let waits: Vec<_> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Record {
                task,
                update,
                event: Some(Payload::Waiting { for_, .. }),
                ..
            } => Some((b.id(*task).to_string(), update.activity, for_.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        waits,
        vec![(
            "a".to_string(),
            Some(Some(Activity::WaitingMemory)),
            "memory".to_string()
        )]
    );
    assert!(b.next().is_empty(), "told once");
    assert!(!b.is_done(false), "the run waits for room");
    assert_eq!(status(&b, "a"), TaskStatus::Pending);
    let released = b.hold(None);
    assert_eq!(released.len(), 1, "its waiting is cleared");
    assert_eq!(next_started(&mut b), vec!["a"]);
}

#[test]
fn a_limited_profile_starts_no_task_until_its_limit_passes_and_the_run_waits_for_it() {
    let mut other = spec("b", &[]);
    other.agent = "other".into();
    let mut b = board(4, vec![spec("a", &[]), other]);
    b.limit("fake", 1_000, Some("waiting: rate limit on fake".into()));
    let acts = b.next();
    assert_eq!(started(&b, &acts), ["b"], "another profile keeps working");
    let told: Vec<_> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Record {
                task,
                event: Some(Payload::Waiting { reason, .. }),
                ..
            } => Some((b.id(*task).to_string(), reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        [("a".to_string(), "waiting: rate limit on fake".to_string())]
    );
    assert!(next_started(&mut b).is_empty(), "told once, still held");
    b.finished(
        1,
        Outcome::Done {
            commit: "c".into(),
            result: String::new(),
        },
    );
    assert!(!b.is_done(false), "a held task is still to run");
    assert!(b.release_limits(999).is_empty(), "not over yet");
    let freed = b.release_limits(1_000);
    assert_eq!(freed.len(), 1, "its waiting is over");
    assert_eq!(next_started(&mut b), ["a"]);
}

#[test]
fn profiles_of_one_account_share_its_limit() {
    let mut r = rules(4);
    r.accounts = HashMap::from([
        ("fake".to_string(), "team".to_string()),
        ("other".to_string(), "team".to_string()),
    ]);
    let mut other = spec("b", &[]);
    other.agent = "other".into();
    let mut third = spec("c", &[]);
    third.agent = "solo".into();
    let mut b = Board::new(r, vec![spec("a", &[]), other, third]);
    assert_eq!(b.limit_key("other"), "team");
    b.limit(
        "other",
        1_000,
        Some("waiting: rate limit on other (account team)".into()),
    );
    assert_eq!(
        next_started(&mut b),
        ["c"],
        "only the profile of another account starts"
    );
    b.release_limits(2_000);
    assert_eq!(next_started(&mut b), ["a", "b"]);
}

#[test]
fn a_fallback_is_one_that_has_not_worked_on_the_task_and_is_not_limited_if_one_can_be() {
    let mut r = rules(4);
    let to = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    r.fallbacks = HashMap::from([("fake".to_string(), to(&["x", "y", "z"]))]);
    r.accounts = HashMap::from([("y".to_string(), "team".to_string())]);
    let mut b = Board::new(r, vec![spec("a", &[])]);
    let worked = to(&["fake"]);
    assert_eq!(b.fallback("fake", &worked, 0).as_deref(), Some("x"));
    assert_eq!(
        b.fallback("fake", &to(&["fake", "x"]), 0).as_deref(),
        Some("y")
    );
    // x's quota ran out (held for fallbacks only); y's account is limited.
    b.limit("x", 500, None);
    b.limit("team", 500, Some("waiting: rate limit".into()));
    assert_eq!(b.fallback("fake", &worked, 100).as_deref(), Some("z"));
    assert_eq!(
        next_started(&mut b),
        ["a"],
        "a quota held for fallbacks keeps no task of fake waiting"
    );
    // Every fresh one limited: the first of them rather than none.
    assert_eq!(
        b.fallback("fake", &to(&["fake", "z"]), 100).as_deref(),
        Some("x")
    );
    assert_eq!(
        b.fallback("fake", &worked, 600).as_deref(),
        Some("x"),
        "the holds passed"
    );
    assert_eq!(b.fallback("fake", &to(&["fake", "x", "y", "z"]), 0), None);
    assert_eq!(b.fallback("nobody", &worked, 0), None);
}

#[test]
fn a_limit_only_grows_and_a_hold_for_fallbacks_becomes_a_wait_when_the_provider_says_so() {
    let mut b = board(4, vec![spec("a", &[])]);
    b.limit("fake", 1_000, None);
    b.limit("fake", 500, Some("waiting: rate limit on fake".into()));
    assert!(next_started(&mut b).is_empty(), "now its tasks wait");
    assert!(b.release_limits(999).is_empty(), "the later time holds");
    assert_eq!(b.release_limits(1_000).len(), 1);
    assert_eq!(next_started(&mut b), ["a"]);
}

#[test]
fn a_task_told_it_waits_that_moves_on_waits_no_more_and_a_release_passes_it_by() {
    let mut a = spec("a", &[]);
    a.on_failure = crate::plan::OnFailure::Continue;
    let mut b = board(4, vec![a, spec("b", &[])]);
    b.hold(Some("short of memory".into()));
    assert_eq!(b.next().len(), 2, "both told they wait");
    let r = b.request(0, ControlKind::Stop, None);
    assert!(r.ok);
    let cleared = r.actions.iter().any(|a| {
        matches!(a, Action::Record { status: Some(TaskStatus::Stopped), update, .. }
            if update.activity == Some(None))
    });
    assert!(cleared, "its stop clears its waiting: {:?}", r.actions);
    let released = b.hold(None);
    assert_eq!(released.len(), 1, "only b still waited: {released:?}");
    assert_eq!(next_started(&mut b), ["b"]);
}

#[test]
fn a_resolver_asked_to_stop_is_still_a_resolver_when_it_ends() {
    let mut b = board(4, vec![spec("a", &[])]);
    assert_eq!(next_started(&mut b), ["a"]);
    done(&mut b, "a");
    let paths = ["f.txt".to_string()];
    b.resolve(0, &paths);
    assert!(b.request(0, ControlKind::Stop, None).ok);
    assert!(
        !b.request(0, ControlKind::Stop, None).ok,
        "stopping already"
    );
    b.finished(
        0,
        Outcome::Failed {
            commit: None,
            reason: "stopped".into(),
            result: String::new(),
        },
    );
    assert_eq!(status(&b, "a"), TaskStatus::Conflicted);
}

#[test]
fn a_task_waiting_for_an_answer_holds_no_slot_keeps_the_run_going_and_starts_on_the_answer() {
    let mut b = board(1, vec![spec("a", &[]), spec("b", &[])]);
    assert_eq!(next_started(&mut b), ["a"]);
    let waiting = Outcome::Waiting {
        commit: None,
        question: "Which?".into(),
    };
    b.finished(0, waiting);
    assert!(b.waits_answer(0));
    assert_eq!(b.status(0), TaskStatus::Pending);
    // Its slot went to the other task; the waiting one is not started again.
    assert_eq!(next_started(&mut b), ["b"]);
    b.finished(
        1,
        Outcome::Done {
            commit: "c".into(),
            result: String::new(),
        },
    );
    assert!(!b.is_done(false), "a run with a waiting task does not end");
    let reply = b.answered(0, 7, "the answer".into(), false);
    assert!(reply.ok, "{}", reply.message);
    assert!(matches!(
        reply.actions.last(),
        Some(Action::Start { task: 0, .. })
    ));
    assert_eq!(b.status(0), TaskStatus::Running);
}

#[test]
fn no_answer_in_time_fails_a_waiting_task_and_stops_a_running_one() {
    let mut b = board(2, vec![spec("a", &[]), spec("b", &[])]);
    next_started(&mut b);
    b.finished(
        0,
        Outcome::Waiting {
            commit: None,
            question: "Which?".into(),
        },
    );
    let acts = b.no_answer(0, "no answer to: Which?".into());
    assert_eq!(b.status(0), TaskStatus::Failed);
    assert!(
        matches!(&acts[0], Action::Record { event: Some(Payload::Failed { reason }), .. } if reason == "no answer to: Which?")
    );
    // A running agent (a script's `baton ask`) is stopped with the reason.
    let acts = b.no_answer(1, "no answer to: Now?".into());
    assert!(
        matches!(&acts[..], [Action::Send { task: 1, cmd: WorkerCmd::NoAnswer(r) }] if r == "no answer to: Now?")
    );
    // Once is enough.
    assert!(b.no_answer(1, "again".into()).is_empty());
}

/// Race task `id` of `n` candidates picked by `pick`, with files, after
/// `needs`; expanded as the engine does.
fn race(id: &str, n: usize, pick: crate::plan::race::Pick, needs: &[&str]) -> Vec<TaskSpec> {
    let mut t = with_files(spec(id, needs), &["src/**"]);
    t.race = Some(crate::plan::race::Race {
        agents: vec!["fake".into(); n],
        pick,
    });
    crate::plan::race::expand(&[t])
}

#[test]
fn a_race_picked_first_outruns_the_others_and_merges_its_winner() {
    let mut specs = race("t", 3, crate::plan::race::Pick::First, &[]);
    specs.push(spec("after", &["t"]));
    let mut b = board(2, specs);
    // Candidates do not wait for each other's files; max_parallel holds.
    assert_eq!(next_started(&mut b), ["t.1", "t.2"]);
    let acts = fail(&mut b, "t.1");
    assert_eq!(moves(&b, &acts), [("t.1".into(), TaskStatus::Failed)]);
    assert_eq!(
        next_started(&mut b),
        ["t.3"],
        "a failed candidate stops nothing"
    );
    let acts = done(&mut b, "t.3");
    assert_eq!(moves(&b, &acts), [("t.3".into(), TaskStatus::Succeeded)]);
    let t3 = b.idx("t.3").unwrap();
    assert!(
        !acts.iter().any(|a| matches!(a, Action::Merge(_))),
        "a candidate never merges: {acts:?}"
    );
    assert!(
        acts.contains(&Action::DropWorktree(t3)),
        "no rank command reads its desk: {acts:?}"
    );
    let t2 = b.idx("t.2").unwrap();
    assert!(acts.iter().any(
        |a| matches!(a, Action::Send { task, cmd: WorkerCmd::Outrun(why) }
        if *task == t2 && why.contains("candidate t.3 of task \"t\" passed its gates first"))
    ));
    // The pick starts at once; t.2 is still stopping.
    assert_eq!(next_started(&mut b), ["t"]);
    let acts = b.finished(
        t2,
        Outcome::Stopped {
            commit: None,
            reason: "outrun".into(),
        },
    );
    assert_eq!(moves(&b, &acts), [("t.2".into(), TaskStatus::Stopped)]);
    let acts = done(&mut b, "t");
    assert_eq!(moves(&b, &acts), [("t".into(), TaskStatus::Merging)]);
    assert!(
        next_started(&mut b).is_empty(),
        "`after` waits for the merge"
    );
    merge(&mut b, "t");
    assert_eq!(next_started(&mut b), ["after"]);
    done(&mut b, "after");
    merge(&mut b, "after");
    let (_, status) = b.wind_up();
    assert_eq!(
        status,
        RunStatus::Succeeded,
        "lost candidates do not fail the run"
    );
}

#[test]
fn a_race_picked_first_skips_candidates_not_started() {
    let mut b = board(1, race("t", 3, crate::plan::race::Pick::First, &[]));
    assert_eq!(next_started(&mut b), ["t.1"]);
    let acts = done(&mut b, "t.1");
    let skipped: Vec<_> = moves(&b, &acts).into_iter().skip(1).collect();
    assert_eq!(
        skipped,
        [
            ("t.2".into(), TaskStatus::Skipped),
            ("t.3".into(), TaskStatus::Skipped)
        ]
    );
    assert_eq!(next_started(&mut b), ["t"]);
}

#[test]
fn a_race_picked_from_all_waits_for_every_candidate_and_fails_with_none() {
    let all = crate::plan::race::Pick::All {
        rank_by: vec![],
        rank: None,
    };
    let mut specs = race("t", 2, all, &[]);
    specs.push(spec("after", &["t"]));
    let mut b = board(5, specs);
    assert_eq!(next_started(&mut b), ["t.1", "t.2"]);
    let acts = done(&mut b, "t.1");
    assert!(
        !acts.iter().any(|a| matches!(a, Action::Send { .. })),
        "nobody is outrun"
    );
    assert!(next_started(&mut b).is_empty(), "t.2 has not ended");
    fail(&mut b, "t.2");
    assert_eq!(next_started(&mut b), ["t"]);
    fail(&mut b, "t");
    assert_eq!(next_moves(&mut b), [("after".into(), TaskStatus::Skipped)]);
    let (_, status) = b.wind_up();
    assert_eq!(status, RunStatus::Failed);
}

#[test]
fn a_race_whose_upstream_failed_is_skipped_with_its_candidates() {
    let mut specs = vec![spec("up", &[])];
    specs.extend(race("t", 2, crate::plan::race::Pick::First, &["up"]));
    let mut b = board(5, specs);
    assert_eq!(next_started(&mut b), ["up"]);
    fail(&mut b, "up");
    let skipped: Vec<String> = next_moves(&mut b).into_iter().map(|(id, _)| id).collect();
    assert_eq!(skipped, ["t.1", "t.2", "t"]);
}

fn ranked() -> crate::plan::race::Pick {
    crate::plan::race::Pick::All {
        rank_by: vec![],
        rank: Some("cat score".into()),
    }
}

#[test]
fn a_ranked_race_keeps_its_candidates_desks_until_it_picked() {
    let mut b = board(5, race("t", 2, ranked(), &[]));
    next_started(&mut b);
    let acts = done(&mut b, "t.1");
    assert!(
        !acts.iter().any(|a| matches!(a, Action::DropWorktree(_))),
        "{acts:?}"
    );
    done(&mut b, "t.2");
    assert_eq!(next_started(&mut b), ["t"]);
    let acts = done(&mut b, "t");
    let kept = acts.iter().filter(|a| matches!(a, Action::DropWorktree(_)));
    assert_eq!(kept.count(), 2, "both desks go once it picked: {acts:?}");
}

#[test]
fn a_stopped_race_stops_its_candidates_and_frees_their_desks() {
    let mut b = board(5, race("t", 3, ranked(), &[]));
    assert_eq!(next_started(&mut b), ["t.1", "t.2", "t.3"]);
    done(&mut b, "t.1");
    let t = b.idx("t").unwrap();
    let reply = b.request(t, ControlKind::Stop, None);
    assert!(reply.ok, "{}", reply.message);
    let stopping = reply.actions.iter().filter(|a| {
        matches!(a, Action::Send { cmd: WorkerCmd::Outrun(why), .. } if why.contains("its race was stopped"))
    });
    assert_eq!(stopping.count(), 2, "{:?}", reply.actions);
    let t1 = b.idx("t.1").unwrap();
    assert!(reply.actions.contains(&Action::DropWorktree(t1)));
    assert_eq!(status(&b, "t"), TaskStatus::Stopped);
}

#[test]
fn a_race_is_retried_through_its_candidates_and_takes_no_steer() {
    let mut b = board(5, race("t", 2, crate::plan::race::Pick::First, &[]));
    next_started(&mut b);
    fail(&mut b, "t.1");
    fail(&mut b, "t.2");
    assert_eq!(next_started(&mut b), ["t"]);
    fail(&mut b, "t");
    let t = b.idx("t").unwrap();
    let no = b.retry(t, String::new(), 0);
    assert!(
        !no.ok
            && no
                .message
                .contains("retry one of its candidates (t.1, t.2)"),
        "{}",
        no.message
    );
    let t2 = b.idx("t.2").unwrap();
    let yes = b.retry(t2, String::new(), 1);
    assert!(yes.ok, "{}", yes.message);
    assert_eq!(
        status(&b, "t"),
        TaskStatus::Pending,
        "the race waits for it again"
    );
    assert_eq!(next_started(&mut b), ["t.2"]);
    let steer = b.request(t, ControlKind::Steer, Some("x".into()));
    assert!(
        !steer.ok && steer.message.contains("takes no steer"),
        "{}",
        steer.message
    );
}

#[test]
fn after_a_crash_candidates_outrun_before_it_do_not_start_again() {
    let mut b = board(5, race("t", 3, crate::plan::race::Pick::First, &[]));
    let statuses: HashMap<String, TaskStatus> = [
        ("t.1".to_string(), TaskStatus::Pending),
        ("t.2".to_string(), TaskStatus::Succeeded),
        ("t.3".to_string(), TaskStatus::Pending),
    ]
    .into_iter()
    .collect();
    b.restore(&statuses, &[]);
    let acts = b.next();
    assert_eq!(started(&b, &acts), ["t"]);
    assert_eq!(
        moves(&b, &acts),
        [
            ("t.1".into(), TaskStatus::Skipped),
            ("t.3".into(), TaskStatus::Skipped)
        ]
    );
}

#[test]
fn a_race_whose_merge_fails_verify_fails_without_picking_again() {
    let mut b = board(5, race("t", 2, crate::plan::race::Pick::First, &[]));
    next_started(&mut b);
    done(&mut b, "t.1");
    assert_eq!(next_started(&mut b), ["t"]);
    done(&mut b, "t");
    let t = b.idx("t").unwrap();
    let acts = b.merged(
        t,
        MergeResult::VerifyFailed {
            reason: "verify failed".into(),
            feedback: "f".into(),
            retry: true,
        },
    );
    assert_eq!(moves(&b, &acts), [("t".into(), TaskStatus::Failed)]);
}
