//! What `baton watch` shows and what a key does: plain state, no terminal
//! and no store, so every key is unit-tested.

use baton_core::inbox::ItemKind;
use baton_core::model::ControlKind;
use baton_core::store::{RunRecord, TaskRecord};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// The right-hand pane: what the selected task did (its events), what it
/// changed, or what its agent printed last (an exec agent has no events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    #[default]
    Transcript,
    Diff,
    Log,
}

/// What the keyboard is doing: moving around, typing a steer message, or
/// answering "stop this task?".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Normal,
    Steer(String),
    ConfirmStop(String),
    Help,
    /// Typing the answer to inbox item `id` (a question).
    Answer {
        id: i64,
        text: String,
    },
    /// Choosing a line of the diff to comment on (`at`: its index in the pane).
    PickLine {
        at: usize,
    },
    /// Typing a comment on `path:line`.
    Comment {
        path: String,
        line: u32,
        text: String,
    },
}

/// What the view asks of the world after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Quit,
    /// A control for a task of the run shown.
    Control {
        task: String,
        kind: ControlKind,
        message: Option<String>,
    },
    /// Show another run.
    ShowRun(String),
    /// Answer question `id` (an inbox item).
    Answer {
        id: i64,
        text: String,
    },
    /// Yes or no to inbox item `id`, a plan (of planning run `run`).
    Plan {
        id: i64,
        run: String,
        approve: bool,
    },
    /// A control for the task of an inbox item, in whichever run it is.
    Item {
        run: String,
        task: String,
        kind: ControlKind,
    },
    /// Keep a draft review comment on a line of a task's work.
    Comment {
        task: String,
        path: String,
        line: u32,
        text: String,
    },
    /// Send a task's draft comments to its agent as one review.
    SubmitReview {
        task: String,
    },
}

#[derive(Default)]
pub struct App {
    /// This repository's runs, newest first.
    pub runs: Vec<RunRecord>,
    /// The run shown (its record is in `runs`).
    pub run: Option<String>,
    /// Whether a process drives the run shown now.
    pub live: bool,
    pub tasks: Vec<TaskRecord>,
    pub selected: usize,
    pub pane: Pane,
    pub mode: Mode,
    /// The selected task's transcript, a line each.
    pub transcript: Vec<Line>,
    /// The diff or log pane's text, a line each.
    pub text: Vec<String>,
    /// Lines scrolled up from the end of the pane (0: follow the end).
    pub scroll: usize,
    /// The last answer to a control, or what went wrong.
    pub note: Option<String>,
    /// Everything that needs a person, across runs (`baton inbox`).
    pub inbox: Vec<baton_core::inbox::Item>,
    /// The inbox is shown instead of the run's tasks (`i`).
    pub inbox_open: bool,
    pub inbox_selected: usize,
}

/// A transcript line and how it should look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub tone: Tone,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    /// What the agent said.
    Said,
    Tool,
    Good,
    Bad,
    Dim,
}

impl App {
    pub fn selected_task(&self) -> Option<&TaskRecord> {
        self.tasks.get(self.selected)
    }

    pub fn run_record(&self) -> Option<&RunRecord> {
        let id = self.run.as_deref()?;
        self.runs.iter().find(|r| r.id == id)
    }

    /// New task rows from the store; the same task stays selected.
    pub fn set_tasks(&mut self, tasks: Vec<TaskRecord>) {
        let keep = self.selected_task().map(|t| t.id.clone());
        // A race's candidates right under it.
        let order = baton_core::plan::race::reading_order(&tasks, |t| &t.id);
        self.tasks = order.into_iter().map(|(t, _)| t.clone()).collect();
        self.selected = keep
            .and_then(|id| self.tasks.iter().position(|t| t.id == id))
            .unwrap_or(self.selected)
            .min(self.tasks.len().saturating_sub(1));
    }

    /// What `key` does now.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Command> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Some(Command::Quit);
        }
        match std::mem::take(&mut self.mode) {
            Mode::Steer(text) => self.steer_key(key, text),
            Mode::ConfirmStop(task) => {
                if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                    return Some(self.control(&task, ControlKind::Stop, None));
                }
                self.note = Some(format!("{task} keeps running"));
                None
            }
            Mode::Help => None,
            Mode::Answer { id, text } => self.answer_key(key, id, text),
            Mode::PickLine { at } => self.pick_key(key, at),
            Mode::Comment { path, line, text } => self.comment_key(key, path, line, text),
            Mode::Normal if self.inbox_open => self.inbox_key(key),
            Mode::Normal => self.normal_key(key),
        }
    }

    /// The inbox item selected, if the inbox has any.
    pub fn inbox_item(&self) -> Option<&baton_core::inbox::Item> {
        self.inbox.get(self.inbox_selected)
    }

    /// New inbox items from the store; the same item stays selected.
    pub fn set_inbox(&mut self, items: Vec<baton_core::inbox::Item>) {
        let keep = self.inbox_item().map(|i| i.id);
        self.inbox = items;
        self.inbox_selected = keep
            .and_then(|id| self.inbox.iter().position(|i| i.id == id))
            .unwrap_or(self.inbox_selected)
            .min(self.inbox.len().saturating_sub(1));
    }

    /// Keys in the inbox: move, answer (type, or a digit for an option),
    /// approve, retry, stop, back.
    fn inbox_key(&mut self, key: KeyEvent) -> Option<Command> {
        let last = self.inbox.len().saturating_sub(1);
        match key.code {
            KeyCode::Char('q') => return Some(Command::Quit),
            KeyCode::Esc | KeyCode::Char('i') => self.inbox_open = false,
            KeyCode::Down | KeyCode::Char('j') => {
                self.inbox_selected = (self.inbox_selected + 1).min(last)
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.inbox_selected = self.inbox_selected.saturating_sub(1)
            }
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Enter => {
                let item = self.item_allowing("answer")?;
                self.mode = Mode::Answer {
                    id: item.id,
                    text: String::new(),
                };
            }
            KeyCode::Char(c @ '1'..='9') => {
                let item = self.item_allowing("answer")?;
                let n = c as usize - '1' as usize;
                let Some(option) = item.options.get(n).cloned() else {
                    self.note = Some(format!("the question has {} options", item.options.len()));
                    return None;
                };
                let id = item.id;
                self.note = Some(format!("answering {option}…"));
                return Some(Command::Answer { id, text: option });
            }
            KeyCode::Char('a') if self.inbox_item().is_some_and(|i| i.kind == ItemKind::Plan) => {
                return self.plan_decision(true)
            }
            KeyCode::Char('a') => return self.item_control("approve", ControlKind::Approve),
            KeyCode::Char('d') => return self.plan_decision(false),
            KeyCode::Char('r') => return self.item_control("retry", ControlKind::Retry),
            KeyCode::Char('s') => return self.item_control("stop", ControlKind::Stop),
            _ => {}
        }
        None
    }

    /// The selected item when it allows `action`; otherwise a note why not.
    fn item_allowing(&mut self, action: &str) -> Option<baton_core::inbox::Item> {
        let Some(item) = self.inbox_item().cloned() else {
            self.note = Some("nothing needs you".into());
            return None;
        };
        if !item.actions.contains(&action) {
            let can = match item.actions.is_empty() {
                true => "nothing here".to_string(),
                false => item.actions.join(", "),
            };
            self.note = Some(format!("item {} ({}) allows {can}", item.id, item.kind));
            return None;
        }
        Some(item)
    }

    /// Yes (`a`) or no (`d`) to the selected plan waiting for one.
    fn plan_decision(&mut self, approve: bool) -> Option<Command> {
        let item = self.item_allowing(if approve { "approve" } else { "discard" })?;
        self.note = Some(match approve {
            true => format!("running the plan of run {}…", item.run),
            false => format!("discarding the plan of run {}…", item.run),
        });
        Some(Command::Plan {
            id: item.id,
            run: item.run,
            approve,
        })
    }

    fn item_control(&mut self, action: &str, kind: ControlKind) -> Option<Command> {
        let item = self.item_allowing(action)?;
        let task = item.task.clone()?;
        self.note = Some(format!("asking {task} to {kind}…"));
        Some(Command::Item {
            run: item.run,
            task,
            kind,
        })
    }

    /// The index of the first line from `from` (going by `step`) of the
    /// diff pane that can be commented on.
    fn next_place(&self, from: usize, step: isize) -> Option<usize> {
        let places = baton_core::review::places(&self.text);
        let mut i = from as isize;
        while i >= 0 && (i as usize) < places.len() {
            if places[i as usize].is_some() {
                return Some(i as usize);
            }
            i += step;
        }
        None
    }

    /// Keys while choosing the line to comment on.
    fn pick_key(&mut self, key: KeyEvent, at: usize) -> Option<Command> {
        let moved = match key.code {
            KeyCode::Esc => {
                self.note = Some("no comment".into());
                return None;
            }
            KeyCode::Down | KeyCode::Char('j') => self.next_place(at + 1, 1),
            KeyCode::Up | KeyCode::Char('k') => {
                at.checked_sub(1).and_then(|a| self.next_place(a, -1))
            }
            KeyCode::Enter => {
                let places = baton_core::review::places(&self.text);
                if let Some(Some((path, line))) = places.get(at).cloned() {
                    self.mode = Mode::Comment {
                        path,
                        line,
                        text: String::new(),
                    };
                    return None;
                }
                None
            }
            _ => None,
        };
        self.mode = Mode::PickLine {
            at: moved.unwrap_or(at),
        };
        None
    }

    fn comment_key(
        &mut self,
        key: KeyEvent,
        path: String,
        line: u32,
        mut text: String,
    ) -> Option<Command> {
        match key.code {
            KeyCode::Esc => self.note = Some("no comment".into()),
            KeyCode::Enter if text.trim().is_empty() => {
                self.note = Some("nothing kept: the comment is empty".into());
            }
            KeyCode::Enter => {
                let task = self.selected_task()?.id.clone();
                self.note = Some(format!("keeping the comment on {path}:{line}…"));
                return Some(Command::Comment {
                    task,
                    path,
                    line,
                    text,
                });
            }
            KeyCode::Backspace => {
                text.pop();
                self.mode = Mode::Comment { path, line, text };
            }
            KeyCode::Char(c) => {
                text.push(c);
                self.mode = Mode::Comment { path, line, text };
            }
            _ => self.mode = Mode::Comment { path, line, text },
        }
        None
    }

    fn answer_key(&mut self, key: KeyEvent, id: i64, mut text: String) -> Option<Command> {
        match key.code {
            KeyCode::Esc => self.note = Some("not answered".into()),
            KeyCode::Enter if text.trim().is_empty() => {
                self.note = Some("nothing sent: the answer is empty".into());
            }
            KeyCode::Enter => {
                self.note = Some("answering…".into());
                return Some(Command::Answer { id, text });
            }
            KeyCode::Backspace => {
                text.pop();
                self.mode = Mode::Answer { id, text };
            }
            KeyCode::Char(c) => {
                text.push(c);
                self.mode = Mode::Answer { id, text };
            }
            _ => self.mode = Mode::Answer { id, text },
        }
        None
    }

    fn normal_key(&mut self, key: KeyEvent) -> Option<Command> {
        let page = 10;
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Some(Command::Quit),
            KeyCode::Down | KeyCode::Char('j') => self.select(self.selected + 1),
            KeyCode::Up | KeyCode::Char('k') => self.select(self.selected.saturating_sub(1)),
            KeyCode::Home | KeyCode::Char('g') => self.select(0),
            KeyCode::End | KeyCode::Char('G') => self.select(usize::MAX),
            KeyCode::PageUp => self.scroll += page,
            KeyCode::PageDown => self.scroll = self.scroll.saturating_sub(page),
            KeyCode::Tab | KeyCode::Char('d') => {
                self.pane = match self.pane {
                    Pane::Transcript => Pane::Diff,
                    Pane::Diff => Pane::Log,
                    Pane::Log => Pane::Transcript,
                };
                self.scroll = 0;
                self.text.clear();
            }
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Char('c') if self.pane == Pane::Diff => {
                let Some(at) = self.next_place(0, 1) else {
                    self.note = Some("nothing in the diff to comment on".into());
                    return None;
                };
                self.mode = Mode::PickLine { at };
            }
            KeyCode::Char('S') => {
                let task = self.selected_task()?.id.clone();
                self.note = Some(format!("sending the review of {task}…"));
                return Some(Command::SubmitReview { task });
            }
            KeyCode::Char('i') => {
                self.inbox_open = true;
                if self.inbox.is_empty() {
                    self.note = Some("nothing needs you".into());
                }
            }
            KeyCode::Char('[') => return self.other_run(1),
            KeyCode::Char(']') => return self.other_run(-1),
            KeyCode::Char('s') => {
                let task = self.actionable(ControlKind::Stop)?;
                self.mode = Mode::ConfirmStop(task);
            }
            KeyCode::Char('m') => {
                self.actionable(ControlKind::Steer)?;
                self.mode = Mode::Steer(String::new());
            }
            KeyCode::Char('a') => {
                let task = self.actionable(ControlKind::Approve)?;
                return Some(self.control(&task, ControlKind::Approve, None));
            }
            KeyCode::Char('r') => {
                let task = self.actionable(ControlKind::Retry)?;
                return Some(self.control(&task, ControlKind::Retry, None));
            }
            _ => {}
        }
        None
    }

    fn steer_key(&mut self, key: KeyEvent, mut text: String) -> Option<Command> {
        match key.code {
            KeyCode::Esc => {
                self.note = Some("steer cancelled".into());
            }
            KeyCode::Enter => {
                let task = self.selected_task()?.id.clone();
                if text.trim().is_empty() {
                    self.note = Some("nothing sent: the message is empty".into());
                    return None;
                }
                return Some(self.control(&task, ControlKind::Steer, Some(text)));
            }
            KeyCode::Backspace => {
                text.pop();
                self.mode = Mode::Steer(text);
            }
            KeyCode::Char(c) => {
                text.push(c);
                self.mode = Mode::Steer(text);
            }
            _ => self.mode = Mode::Steer(text),
        }
        None
    }

    fn select(&mut self, i: usize) {
        let last = self.tasks.len().saturating_sub(1);
        if i.min(last) != self.selected {
            self.selected = i.min(last);
            self.scroll = 0;
            self.transcript.clear();
            self.text.clear();
        }
    }

    /// The selected task when `kind` may be asked of it now; otherwise a
    /// note that says why not.
    fn actionable(&mut self, kind: ControlKind) -> Option<String> {
        let Some(t) = self.selected_task() else {
            self.note = Some("no task selected".into());
            return None;
        };
        if !t.status.actions().contains(&kind) {
            self.note = Some(format!(
                "{} is {}: it cannot be {}",
                t.id,
                t.status,
                done(kind)
            ));
            return None;
        }
        Some(t.id.clone())
    }

    fn control(&mut self, task: &str, kind: ControlKind, message: Option<String>) -> Command {
        self.note = Some(format!("asking {task} to {kind}…"));
        Command::Control {
            task: task.to_string(),
            kind,
            message,
        }
    }

    /// The run `step` places older (positive) or newer (negative) than the
    /// one shown.
    fn other_run(&mut self, step: isize) -> Option<Command> {
        let at = self
            .run
            .as_deref()
            .and_then(|id| self.runs.iter().position(|r| r.id == id))
            .unwrap_or(0) as isize;
        let to = at + step;
        if to < 0 || to as usize >= self.runs.len() {
            self.note = Some(
                if step > 0 {
                    "no older run"
                } else {
                    "no newer run"
                }
                .into(),
            );
            return None;
        }
        Some(Command::ShowRun(self.runs[to as usize].id.clone()))
    }

    /// Shows `run` from now on: its tasks come with the next refresh.
    pub fn show_run(&mut self, run: String) {
        if self.run.as_deref() != Some(run.as_str()) {
            self.run = Some(run);
            self.tasks.clear();
            self.selected = 0;
            self.scroll = 0;
            self.transcript.clear();
            self.text.clear();
        }
    }
}

fn done(kind: ControlKind) -> &'static str {
    match kind {
        ControlKind::Stop => "stopped",
        ControlKind::Steer => "steered",
        ControlKind::Approve => "approved",
        ControlKind::Retry => "retried",
        ControlKind::Add => "added",
        ControlKind::Message => "messaged",
        ControlKind::Answer => "answered",
        ControlKind::Pick => "picked",
    }
}
