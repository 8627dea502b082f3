//! Drawing `baton watch`: a header, the run's tasks, the selected task's
//! transcript or diff, and one line for input, answers and keys.

use super::app::{App, Line as TLine, Mode, Pane, Tone};
use crate::progress::{elapsed, state_label, symbol};
use baton_core::clock::now_ms;
use baton_core::duration::human;
use baton_core::model::TaskStatus;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState};
use ratatui::Frame;
use std::time::Duration;

pub fn draw(f: &mut Frame, app: &App) {
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(Paragraph::new(header(app)), head);
    let list_width = (body.width * 9 / 20).clamp(30.min(body.width), 72);
    let [left, right] =
        Layout::horizontal([Constraint::Length(list_width), Constraint::Min(10)]).areas(body);
    if app.inbox_open {
        super::inbox_view::list(f, app, left);
        super::inbox_view::detail(f, app, right);
    } else {
        tasks(f, app, left);
        pane(f, app, right);
    }
    f.render_widget(Paragraph::new(footer(app)), foot);
    if app.mode == Mode::Help {
        help(f, body);
    }
}

fn header(app: &App) -> Line<'static> {
    let Some(run) = app.run_record() else {
        return Line::from(
            "baton watch · no runs in this repository yet; start one with `baton run`",
        );
    };
    let count = |s: TaskStatus| app.tasks.iter().filter(|t| t.status == s).count();
    let done = app.tasks.iter().filter(|t| t.status.is_finished()).count();
    let cost: f64 = app.tasks.iter().filter_map(|t| t.cost_usd).sum();
    let age = human(Duration::from_millis(
        (run.finished_at.unwrap_or_else(now_ms) - run.created_at).max(0) as u64,
    ));
    let driven = if app.live {
        "live"
    } else {
        "not driven by any process"
    };
    let mut spans = vec![
        Span::styled("baton watch ", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            "· run {} · {} ({driven}) · {} running · {done}/{} done · {age}",
            run.id,
            run.status,
            count(TaskStatus::Running),
            app.tasks.len()
        )),
    ];
    if cost > 0.0 {
        spans.push(Span::raw(format!(" · ${cost:.4}")));
    }
    if !app.inbox.is_empty() {
        spans.push(Span::styled(
            format!(" · {} need you (i)", app.inbox.len()),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    Line::from(spans)
}

fn status_color(s: TaskStatus) -> Color {
    match s {
        TaskStatus::Succeeded => Color::Green,
        TaskStatus::Failed | TaskStatus::Conflicted | TaskStatus::Stopped => Color::Red,
        TaskStatus::Running | TaskStatus::Merging => Color::Cyan,
        TaskStatus::AwaitingApproval => Color::Yellow,
        TaskStatus::Pending | TaskStatus::Skipped => Color::DarkGray,
    }
}

fn tasks(f: &mut Frame, app: &App, area: Rect) {
    let rows = app.tasks.iter().map(|t| {
        let attempt = if t.attempts > 0 {
            format!("#{}", t.attempts)
        } else {
            String::new()
        };
        let cost = t.cost_usd.map(|c| format!("${c:.2}")).unwrap_or_default();
        Row::new(vec![
            Cell::from(symbol(t.status)).style(Style::new().fg(status_color(t.status))),
            Cell::from(match baton_core::plan::race::candidate_of_id(&t.id) {
                Some(_) => format!("  {}", t.id),
                None => t.id.clone(),
            }),
            Cell::from(state_label(t)),
            Cell::from(attempt),
            Cell::from(elapsed(t)),
            Cell::from(cost),
        ])
    });
    let widths = [
        Constraint::Length(1),
        Constraint::Fill(2),
        Constraint::Fill(3),
        Constraint::Length(3),
        Constraint::Length(7),
        Constraint::Length(6),
    ];
    let table = Table::new(rows, widths)
        .header(
            Row::new(["", "task", "state", "try", "time", "cost"])
                .style(Style::new().add_modifier(Modifier::BOLD)),
        )
        .block(Block::new().borders(Borders::RIGHT))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state =
        TableState::default().with_selected(Some(app.selected).filter(|_| !app.tasks.is_empty()));
    f.render_stateful_widget(table, area, &mut state);
}

fn pane(f: &mut Frame, app: &App, area: Rect) {
    let task = app.selected_task().map(|t| t.id.as_str()).unwrap_or("");
    let title = match app.pane {
        Pane::Transcript => format!(" transcript of {task} "),
        Pane::Diff => format!(" diff of {task} "),
        Pane::Log => format!(" log of {task} "),
    };
    let block = Block::new().borders(Borders::TOP).title(title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let width = inner.width.max(1) as usize;
    let rows: Vec<Line> = match app.pane {
        Pane::Transcript => {
            let mut rows = Vec::new();
            for l in &app.transcript {
                for piece in wrap(&l.text, width) {
                    rows.push(Line::styled(piece, tone(l)));
                }
            }
            if rows.is_empty() {
                rows.push(Line::styled(
                    "(nothing yet)",
                    Style::new().fg(Color::DarkGray),
                ));
            }
            rows
        }
        Pane::Diff => {
            let picked = match app.mode {
                Mode::PickLine { at } => Some(at),
                _ => None,
            };
            app.text
                .iter()
                .enumerate()
                .map(|(i, l)| match picked == Some(i) {
                    true => {
                        Line::styled(printable(l), diff_style(l).add_modifier(Modifier::REVERSED))
                    }
                    false => Line::styled(printable(l), diff_style(l)),
                })
                .collect()
        }
        Pane::Log => app
            .text
            .iter()
            .flat_map(|l| wrap(l, width))
            .map(Line::from)
            .collect(),
    };
    // The end of the pane, `scroll` lines up: a long transcript costs only
    // what fits on screen.
    let height = inner.height as usize;
    let mut end = rows.len() - app.scroll.min(rows.len().saturating_sub(height));
    // The line being picked for a comment stays in sight (diff rows are
    // the pane's lines one for one).
    if let (Pane::Diff, Mode::PickLine { at }) = (app.pane, &app.mode) {
        if *at < end.saturating_sub(height) || *at >= end {
            end = (at + height / 2).clamp(height.min(rows.len()), rows.len());
        }
    }
    let start = end.saturating_sub(height);
    let shown: Vec<Line> = rows[start..end].to_vec();
    f.render_widget(Paragraph::new(shown), inner);
}

/// `text` without what would drive the terminal instead of showing: colour
/// and cursor sequences (an agent's log is full of them) and other control
/// characters; tabs become spaces.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI (ESC [ ... final byte) or a two-character escape.
                if chars.next_if_eq(&'[').is_some() {
                    while chars.next().is_some_and(|c| !('@'..='~').contains(&c)) {}
                } else {
                    chars.next();
                }
            }
            '\t' => out.push_str("    "),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// `text` cut into pieces of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let chars: Vec<char> = printable(text).chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars.chunks(width).map(|c| c.iter().collect()).collect()
}

fn tone(l: &TLine) -> Style {
    match l.tone {
        Tone::Plain => Style::new(),
        Tone::Said => Style::new().fg(Color::White).add_modifier(Modifier::BOLD),
        Tone::Tool => Style::new().fg(Color::Cyan),
        Tone::Good => Style::new().fg(Color::Green),
        Tone::Bad => Style::new().fg(Color::Red),
        Tone::Dim => Style::new().fg(Color::DarkGray),
    }
}

fn diff_style(l: &str) -> Style {
    if l.starts_with("+++") || l.starts_with("---") || l.starts_with("diff --git") {
        Style::new().add_modifier(Modifier::BOLD)
    } else if l.starts_with('+') {
        Style::new().fg(Color::Green)
    } else if l.starts_with('-') {
        Style::new().fg(Color::Red)
    } else if l.starts_with("@@") {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new()
    }
}

fn footer(app: &App) -> Line<'static> {
    let task = app
        .selected_task()
        .map(|t| t.id.clone())
        .unwrap_or_default();
    match &app.mode {
        Mode::Steer(text) => Line::from(vec![
            Span::styled(format!("steer {task}> "), Style::new().fg(Color::Yellow)),
            Span::raw(format!("{text}▏")),
            Span::styled("   Enter send · Esc cancel", Style::new().fg(Color::DarkGray)),
        ]),
        Mode::PickLine { .. } => Line::styled(
            "↑↓ the line to comment on · Enter comment there · Esc cancel",
            Style::new().fg(Color::Yellow),
        ),
        Mode::Comment { path, line, text } => Line::from(vec![
            Span::styled(format!("comment {path}:{line}> "), Style::new().fg(Color::Yellow)),
            Span::raw(format!("{text}▏")),
            Span::styled("   Enter keep · Esc cancel", Style::new().fg(Color::DarkGray)),
        ]),
        Mode::Answer { id, text } => Line::from(vec![
            Span::styled(format!("answer {id}> "), Style::new().fg(Color::Yellow)),
            Span::raw(format!("{text}▏")),
            Span::styled("   Enter send · Esc cancel", Style::new().fg(Color::DarkGray)),
        ]),
        Mode::ConfirmStop(t) => Line::styled(
            format!("stop {t}? its agent is killed and its work committed (y/n)"),
            Style::new().fg(Color::Yellow),
        ),
        _ => match &app.note {
            Some(note) => Line::from(note.clone()),
            None if app.inbox_open => Line::styled(
                "↑↓ select · 1-9 pick an option · Enter answer · a approve · r retry · s stop · d discard · i Esc back · q quit",
                Style::new().fg(Color::DarkGray),
            ),
            None => Line::styled(
                "↑↓ select · Tab pane · s stop · m steer · a approve · r retry · i inbox · [ ] runs · ? help · q quit",
                Style::new().fg(Color::DarkGray),
            ),
        },
    }
}

const HELP: &str = "\
↑ ↓  j k      select a task (g first, G last)
PgUp PgDn     scroll the transcript or diff (back to the end: PgDn)
Tab  d        the selected task's transcript / diff / log
s             stop the task (asks first): its work is committed
m             steer: type a message, Enter sends it to the agent
a             approve a task that waits for approval
r             retry a failed, stopped, conflicted or skipped task
c             in the diff: pick a line (↑↓, Enter) and comment on it
S             send the task's comments to its agent as one review
i             the inbox: what needs you across runs; answer a question
              (1-9 an option, Enter to type), approve, retry, stop
[  ]          an older / a newer run
q  Esc        quit (the run goes on)

Any key closes this.";

fn help(f: &mut Frame, area: Rect) {
    let width = 70.min(area.width);
    let height = (HELP.lines().count() as u16 + 2).min(area.height);
    let at = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    f.render_widget(Clear, at);
    f.render_widget(
        Paragraph::new(HELP).block(Block::new().borders(Borders::ALL).title(" keys ")),
        at,
    );
}
