//! The inbox in `baton watch` (`i`): everything that needs a person across
//! runs on the left, the selected item on the right with what its keys do.

use super::app::App;
use super::view::printable;
use baton_core::clock::now_ms;
use baton_core::duration::human;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;
use std::time::Duration;

fn kind_color(kind: &str) -> Color {
    match kind {
        "question" => Color::Cyan,
        "approval" | "limit" => Color::Yellow,
        _ => Color::Red,
    }
}

pub fn list(f: &mut Frame, app: &App, area: Rect) {
    let rows = app.inbox.iter().map(|i| {
        Row::new(vec![
            i.kind.to_string(),
            i.task.clone().unwrap_or_default(),
            printable(&i.text),
        ])
        .style(Style::new().fg(kind_color(i.kind.as_str())))
    });
    let widths = [
        Constraint::Length(10),
        Constraint::Fill(1),
        Constraint::Fill(3),
    ];
    let title = format!(" inbox: {} need you ", app.inbox.len());
    let table = Table::new(rows, widths)
        .header(Row::new(["kind", "task", "what"]).style(Style::new().add_modifier(Modifier::BOLD)))
        .block(
            Block::new()
                .borders(Borders::RIGHT | Borders::TOP)
                .title(title),
        )
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let selected = Some(app.inbox_selected).filter(|_| !app.inbox.is_empty());
    let mut state = TableState::default().with_selected(selected);
    f.render_stateful_widget(table, area, &mut state);
}

pub fn detail(f: &mut Frame, app: &App, area: Rect) {
    let block = Block::new().borders(Borders::TOP).title(" item ");
    let Some(i) = app.inbox_item() else {
        let none = Paragraph::new("nothing needs you").block(block);
        return f.render_widget(none, area);
    };
    let age = human(Duration::from_millis((now_ms() - i.since).max(0) as u64));
    let mut lines = vec![
        Line::styled(
            format!("{} · item {} · {age} ago", i.kind, i.id),
            Style::new()
                .fg(kind_color(i.kind.as_str()))
                .add_modifier(Modifier::BOLD),
        ),
        Line::from(format!(
            "run {}{}",
            i.run,
            i.task
                .as_deref()
                .map(|t| format!(" · task {t}"))
                .unwrap_or_default()
        )),
        Line::from(""),
        Line::from(printable(&i.text)),
        Line::from(""),
    ];
    for (n, o) in i.options.iter().enumerate() {
        lines.push(Line::from(format!("  {}  {}", n + 1, printable(o))));
    }
    if let Some(d) = &i.default {
        lines.push(Line::styled(
            format!("  (default when the time runs out: {d})"),
            Style::new().fg(Color::DarkGray),
        ));
    }
    let keys: Vec<&str> = i
        .actions
        .iter()
        .map(|a| match *a {
            "answer" if i.options.is_empty() => "Enter type the answer",
            "answer" => "1-9 pick an option · Enter type one",
            "approve" if i.kind == baton_core::inbox::ItemKind::Plan => "a run it",
            "approve" => "a approve",
            "discard" => "d discard",
            "retry" => "r retry",
            "stop" => "s stop",
            other => other,
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::styled(
        keys.join(" · "),
        Style::new().fg(Color::DarkGray),
    ));
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}
