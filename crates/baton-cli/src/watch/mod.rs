//! `baton watch`: a terminal dashboard of a run. It reads the store like
//! every other view (so it watches a run driven by `baton run` in another
//! terminal, by `serve`, or one long finished) and acts through the same
//! control path as `baton stop` and the API.

pub mod app;
mod data;
mod inbox_view;
mod transcript;
mod view;

#[cfg(test)]
mod tests;

use app::{App, Command};
pub use data::Source;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::{DefaultTerminal, Terminal};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the view reads the store.
const REFRESH: Duration = Duration::from_millis(300);
/// How often a shown diff is read again (it runs git).
const DIFF_REFRESH: Duration = Duration::from_secs(2);

enum Input {
    Key(event::KeyEvent),
    Resize,
}

/// Leaves the terminal as it was found, however the view ends: on return,
/// on error, and on a panic (before its message is printed).
struct Restore;

/// Whether the terminal is ours now. Restoring twice would leave the
/// alternate screen twice, and the second time moves the cursor back over
/// what was printed in between (a panic's message).
static TAKEN: AtomicBool = AtomicBool::new(false);

impl Restore {
    fn take() -> std::io::Result<(Restore, DefaultTerminal)> {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            hook(info);
        }));
        TAKEN.store(true, Ordering::SeqCst);
        let guard = Restore;
        terminal::enable_raw_mode()?;
        execute!(std::io::stdout(), terminal::EnterAlternateScreen)?;
        let term = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
        Ok((guard, term))
    }
}

fn restore() {
    if TAKEN.swap(false, Ordering::SeqCst) {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(
            std::io::stdout(),
            terminal::LeaveAlternateScreen,
            cursor::Show
        );
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        restore();
    }
}

/// Shows `run` (default: the newest) until the person quits.
pub async fn run(source: Source, run: Option<String>) -> anyhow::Result<i32> {
    let source = Arc::new(source);
    let mut app = App::default();
    if let Some(run) = run {
        app.show_run(run);
    }
    source.refresh(&mut app, true).await?;
    let (_restore, mut terminal) = Restore::take()?;
    let mut keys = read_keys();
    let (notes_tx, mut notes) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut stop = signals()?;
    let mut tick = tokio::time::interval(REFRESH);
    let mut diff_read = Instant::now();
    let mut first = true;
    loop {
        terminal.draw(|f| view::draw(f, &app))?;
        if std::mem::take(&mut first) && failpoint("watch_panic") {
            panic!("failpoint watch_panic: the view panics with the terminal taken");
        }
        let mut refresh = false;
        tokio::select! {
            input = keys.recv() => match input {
                Some(Input::Key(key)) => {
                    let before = (app.selected, app.pane);
                    match app.on_key(key) {
                        Some(Command::Quit) => break,
                        Some(Command::ShowRun(id)) => {
                            app.show_run(id);
                            refresh = true;
                        }
                        Some(
                            cmd @ (Command::Control { .. }
                            | Command::Answer { .. }
                            | Command::Item { .. }
                            | Command::Plan { .. }
                            | Command::Comment { .. }
                            | Command::SubmitReview { .. }),
                        ) => {
                            // The answer comes as a note; the view stays live meanwhile.
                            let (source, tx) = (source.clone(), notes_tx.clone());
                            let rec = app.run_record().cloned();
                            tokio::spawn(async move {
                                let _ = tx.send(source.act(rec, cmd).await);
                            });
                        }
                        None => refresh = before != (app.selected, app.pane),
                    }
                }
                Some(Input::Resize) => {}
                None => break,
            },
            Some(note) = notes.recv() => {
                app.note = Some(note);
                refresh = true;
            }
            _ = tick.tick() => refresh = true,
            _ = stop.recv() => break,
        }
        if refresh {
            let diff = app.text.is_empty() || diff_read.elapsed() >= DIFF_REFRESH;
            if diff {
                diff_read = Instant::now();
            }
            if let Err(e) = source.refresh(&mut app, diff).await {
                app.note = Some(format!("error: cannot read the store: {e}"));
            }
        }
    }
    Ok(0)
}

/// Keys from the terminal, read on a thread of their own (crossterm's read
/// blocks).
fn read_keys() -> tokio::sync::mpsc::UnboundedReceiver<Input> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || loop {
        let input = match event::read() {
            Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => Input::Key(k),
            Ok(Event::Resize(..)) => Input::Resize,
            Ok(_) => continue,
            Err(_) => break,
        };
        if tx.send(input).is_err() {
            break;
        }
    });
    rx
}

/// SIGTERM and SIGHUP end the view as `q` does (the terminal is restored);
/// in raw mode Ctrl-C arrives as a key.
fn signals() -> std::io::Result<tokio::sync::mpsc::Receiver<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = hup.recv() => {}
            _ = int.recv() => {}
        }
        let _ = tx.send(()).await;
    });
    Ok(rx)
}

fn failpoint(name: &str) -> bool {
    std::env::var_os("BATON_FAILPOINT").is_some_and(|v| v == name)
}
