//! `baton watch` without a terminal: keys, what is drawn, transcripts.

use super::app::{App, Command, Mode, Pane};
use baton_core::adapter::{AgentEvent, ToolKind, UsageMode, UsageReport};
use baton_core::model::{AttemptKind, ControlKind, TaskStatus};
use baton_core::payload::{CheckEnd, Payload};
use baton_core::store::{Event, TaskRecord};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

fn task(id: &str, status: TaskStatus) -> TaskRecord {
    TaskRecord {
        run_id: "r1".into(),
        id: id.into(),
        setup_done: false,
        status,
        attempts: 1,
        failures: 0,
        branch: format!("baton/r1/task/{id}"),
        worktree: None,
        start_commit: None,
        commit_id: None,
        merged: false,
        result: None,
        reason: None,
        feedback: None,
        files: None,
        input_tokens: None,
        output_tokens: None,
        cost_usd: Some(0.25),
        wire: Default::default(),
        started_at: None,
        finished_at: None,
        activity: None,
        session_id: None,
        last_output_at: None,
        retry_from: 0,
        agent: None,
        needs: vec![],
        warnings: vec![],
        conflict_ahead: vec![],
    }
}

fn app() -> App {
    let mut app = App::default();
    app.set_tasks(vec![
        task("build", TaskStatus::Running),
        task("docs", TaskStatus::Failed),
        task("review", TaskStatus::AwaitingApproval),
    ]);
    app
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(app: &mut App, codes: &[KeyCode]) -> Option<Command> {
    let mut last = None;
    for c in codes {
        last = app.on_key(key(*c));
    }
    last
}

fn control(task: &str, kind: ControlKind, message: Option<&str>) -> Option<Command> {
    Some(Command::Control {
        task: task.into(),
        kind,
        message: message.map(str::to_string),
    })
}

#[test]
fn stop_asks_first_and_only_y_sends_it() {
    let mut app = app();
    assert_eq!(press(&mut app, &[KeyCode::Char('s')]), None);
    assert_eq!(app.mode, Mode::ConfirmStop("build".into()));
    assert_eq!(press(&mut app, &[KeyCode::Char('n')]), None);
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(
        press(&mut app, &[KeyCode::Char('s'), KeyCode::Char('y')]),
        control("build", ControlKind::Stop, None)
    );
}

#[test]
fn steer_is_typed_on_the_input_line_and_sent_with_enter() {
    let mut app = app();
    press(&mut app, &[KeyCode::Char('m')]);
    for c in "use tabsx".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    // Keys that mean something elsewhere are text here.
    assert_eq!(app.mode, Mode::Steer("use tabsx".into()));
    let sent = press(&mut app, &[KeyCode::Backspace, KeyCode::Enter]);
    assert_eq!(sent, control("build", ControlKind::Steer, Some("use tabs")));
    assert_eq!(app.mode, Mode::Normal);
    // An empty message and Esc send nothing.
    assert_eq!(press(&mut app, &[KeyCode::Char('m'), KeyCode::Enter]), None);
    assert_eq!(
        press(
            &mut app,
            &[KeyCode::Char('m'), KeyCode::Char('x'), KeyCode::Esc]
        ),
        None
    );
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn a_control_the_task_cannot_take_is_refused_with_a_note() {
    let mut app = app();
    // build is running: no approve, no retry.
    assert_eq!(press(&mut app, &[KeyCode::Char('a')]), None);
    assert_eq!(
        app.note.as_deref(),
        Some("build is running: it cannot be approved")
    );
    assert_eq!(press(&mut app, &[KeyCode::Char('r')]), None);
    // docs failed: retry; review awaits approval: approve.
    assert_eq!(
        press(&mut app, &[KeyCode::Down, KeyCode::Char('r')]),
        control("docs", ControlKind::Retry, None)
    );
    assert_eq!(
        press(&mut app, &[KeyCode::Char('s')]),
        None,
        "a failed task cannot be stopped"
    );
    assert_eq!(
        press(&mut app, &[KeyCode::Char('j'), KeyCode::Char('a')]),
        control("review", ControlKind::Approve, None)
    );
}

#[test]
fn selection_stays_on_its_task_when_the_rows_change_and_within_bounds() {
    let mut app = app();
    press(
        &mut app,
        &[KeyCode::Down, KeyCode::Down, KeyCode::Down, KeyCode::Down],
    );
    assert_eq!(app.selected_task().unwrap().id, "review");
    app.set_tasks(vec![
        task("review", TaskStatus::Succeeded),
        task("docs", TaskStatus::Failed),
    ]);
    assert_eq!(app.selected_task().unwrap().id, "review");
    app.set_tasks(vec![task("docs", TaskStatus::Failed)]);
    assert_eq!(app.selected_task().unwrap().id, "docs");
    app.set_tasks(vec![]);
    assert!(app.selected_task().is_none());
    assert_eq!(press(&mut app, &[KeyCode::Char('s')]), None);
}

#[test]
fn tab_cycles_the_panes_and_q_ctrl_c_quit() {
    let mut app = app();
    let panes: Vec<Pane> = (0..3)
        .map(|_| {
            press(&mut app, &[KeyCode::Tab]);
            app.pane
        })
        .collect();
    assert_eq!(panes, [Pane::Diff, Pane::Log, Pane::Transcript]);
    assert_eq!(press(&mut app, &[KeyCode::Char('q')]), Some(Command::Quit));
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    press(&mut app, &[KeyCode::Char('m')]);
    assert_eq!(app.on_key(ctrl_c), Some(Command::Quit), "even while typing");
}

/// An event as the store keeps it.
fn event(said: Payload) -> Event {
    let (kind, data) = said.into_parts();
    Event {
        seq: 1,
        run_id: "r1".into(),
        ts: 61_500,
        task_id: Some("build".into()),
        attempt: Some(1),
        kind,
        data,
    }
}

#[test]
fn a_transcript_says_what_the_agent_said_and_did() {
    let events = [
        event(Payload::AttemptStarted {
            attempt: 2,
            kind: AttemptKind::Work,
            feedback: true,
            resumes_session: false,
        }),
        event(Payload::Agent(AgentEvent::Message {
            text: "I will fix it.\nFirst the test.".into(),
        })),
        event(Payload::Agent(AgentEvent::ToolCall {
            id: "t1".into(),
            name: "Bash".into(),
            kind: ToolKind::Command,
            detail: "cargo test".into(),
        })),
        event(Payload::Agent(AgentEvent::Usage(UsageReport {
            input_tokens: 5,
            output_tokens: 0,
            cost_usd: None,
            model: None,
            mode: UsageMode::Add,
        }))),
        event(Payload::GateFinished(CheckEnd {
            gate: "cargo test".into(),
            passed: false,
            duration_ms: 2000,
            reason: "gate `cargo test` failed\nerror[E0308]".into(),
        })),
    ];
    let text: Vec<String> = super::transcript::lines(&events, 0)
        .into_iter()
        .map(|l| l.text)
        .collect();
    insta::assert_snapshot!(text.join("\n"), @r"
      1m01s  ── attempt 2 started (with feedback)
      1m01s  I will fix it.
             First the test.
      1m01s  ▸ Bash cargo test
      1m01s  gate `cargo test` failed in 2.0s
             gate `cargo test` failed
             error[E0308]
    ");
}

#[test]
fn printable_drops_what_would_drive_the_terminal() {
    let shown = super::view::printable("\u{1b}[31mred\u{1b}[0m\tdone\u{7}\r");
    assert_eq!(shown, "red    done");
}

#[test]
fn the_screen_shows_the_tasks_and_the_selected_ones_transcript() {
    use ratatui::backend::TestBackend;
    let mut app = app();
    app.transcript = super::transcript::lines(
        &[event(Payload::Agent(AgentEvent::Message {
            text: "working on the build".into(),
        }))],
        0,
    );
    let mut term = ratatui::Terminal::new(TestBackend::new(110, 12)).unwrap();
    term.draw(|f| super::view::draw(f, &app)).unwrap();
    let screen: String = term
        .backend()
        .buffer()
        .content()
        .chunks(110)
        .map(|row| {
            row.iter()
                .map(|c| c.symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    for want in [
        "build",
        "docs",
        "review",
        "transcript of build",
        "working on the build",
        "q quit",
    ] {
        assert!(screen.contains(want), "{want:?} not on screen:\n{screen}");
    }
    app.mode = Mode::Steer("hello".into());
    term.draw(|f| super::view::draw(f, &app)).unwrap();
    let last: String = term.backend().buffer().content()[110 * 11..]
        .iter()
        .map(|c| c.symbol())
        .collect();
    assert!(last.starts_with("steer build> hello"), "{last}");
}

fn item(
    id: i64,
    kind: baton_core::inbox::ItemKind,
    options: &[&str],
    actions: Vec<&'static str>,
) -> baton_core::inbox::Item {
    baton_core::inbox::Item {
        id,
        kind,
        run: "r2".into(),
        task: Some(format!("t{id}")),
        text: "Which colour?".into(),
        options: options.iter().map(|o| o.to_string()).collect(),
        since: 0,
        actions,
        expires_at: None,
        default: None,
    }
}

#[test]
fn the_inbox_answers_by_option_or_by_typing_and_acts_on_other_runs() {
    use baton_core::inbox::ItemKind;
    let mut a = app();
    a.set_inbox(vec![
        item(
            7,
            ItemKind::Question,
            &["red", "blue"],
            vec!["answer", "stop"],
        ),
        item(9, ItemKind::Approval, &[], vec!["approve", "stop"]),
    ]);
    assert_eq!(a.on_key(key(KeyCode::Char('i'))), None);
    assert!(a.inbox_open);
    assert_eq!(
        a.on_key(key(KeyCode::Char('2'))),
        Some(Command::Answer {
            id: 7,
            text: "blue".into()
        })
    );
    assert_eq!(a.on_key(key(KeyCode::Char('3'))), None, "no third option");
    assert_eq!(a.on_key(key(KeyCode::Char('a'))), None);
    assert!(
        a.note.as_deref().unwrap().contains("allows answer, stop"),
        "{:?}",
        a.note
    );
    a.on_key(key(KeyCode::Enter));
    for c in "teal".chars() {
        a.on_key(key(KeyCode::Char(c)));
    }
    assert_eq!(
        a.mode,
        Mode::Answer {
            id: 7,
            text: "teal".into()
        }
    );
    assert_eq!(
        a.on_key(key(KeyCode::Enter)),
        Some(Command::Answer {
            id: 7,
            text: "teal".into()
        })
    );
    a.on_key(key(KeyCode::Down));
    assert_eq!(
        a.on_key(key(KeyCode::Char('a'))),
        Some(Command::Item {
            run: "r2".into(),
            task: "t9".into(),
            kind: ControlKind::Approve
        })
    );
    // The selection stays on its item when the inbox changes under it.
    a.set_inbox(vec![item(
        9,
        ItemKind::Approval,
        &[],
        vec!["approve", "stop"],
    )]);
    assert_eq!(a.inbox_item().map(|i| i.id), Some(9));
    a.on_key(key(KeyCode::Esc));
    assert!(!a.inbox_open, "Esc goes back to the run");
    // Back on the run, keys are the run's again.
    a.on_key(key(KeyCode::Down));
    assert!(matches!(
        a.on_key(key(KeyCode::Char('r'))),
        Some(Command::Control { task, kind: ControlKind::Retry, .. }) if task == "docs"
    ));
}

#[test]
fn a_plan_in_the_inbox_is_run_with_a_and_discarded_with_d() {
    use baton_core::inbox::ItemKind;
    let mut a = app();
    let mut plan = item(11, ItemKind::Plan, &[], vec!["approve", "discard"]);
    plan.task = None;
    a.set_inbox(vec![
        item(9, ItemKind::Approval, &[], vec!["approve", "stop"]),
        plan,
    ]);
    a.on_key(key(KeyCode::Char('i')));
    assert_eq!(a.on_key(key(KeyCode::Char('d'))), None);
    assert!(
        a.note.as_deref().unwrap().contains("allows approve, stop"),
        "a task is not discarded: {:?}",
        a.note
    );
    a.on_key(key(KeyCode::Down));
    let plan = |approve| Command::Plan {
        id: 11,
        run: "r2".into(),
        approve,
    };
    assert_eq!(a.on_key(key(KeyCode::Char('a'))), Some(plan(true)));
    assert_eq!(a.on_key(key(KeyCode::Char('d'))), Some(plan(false)));
    assert_eq!(a.on_key(key(KeyCode::Char('r'))), None);
}
