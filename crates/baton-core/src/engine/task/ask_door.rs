//! One attempt's door for questions to a person (see [`crate::ask`]): a
//! Unix socket in a private directory, served in this process for as long
//! as the attempt lasts. It records each question (the task and attempt
//! are the door's, whatever the asker claims), tells the engine when its
//! time runs out, and answers a waiting `baton ask` when the answer comes.

use crate::ask::{AskReply, AskRequest, MAX_PER_TASK};
use crate::clock::now_ms;
use crate::engine::messages::WorkerNote;
use crate::engine::shared::Shared;
use crate::model::Activity;
use crate::store::Store;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc::UnboundedSender;

/// The longest request line taken.
const MAX_LINE: u64 = 64 * 1024;
/// How often a waiting asker's question is looked at.
const ANSWER_POLL: Duration = Duration::from_millis(200);
/// Connections one door serves at once.
const MAX_CONNECTIONS: usize = 8;
/// How long an asker has to send its question.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The door of one attempt; it closes (and its directory goes) when dropped.
pub(crate) struct AskDoor {
    pub dir: PathBuf,
    pub socket: PathBuf,
    /// Some question came through it: the attempt's end looks for answers.
    pub asked: Arc<AtomicBool>,
    /// How many askers wait for their answer now.
    pub waiting: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for AskDoor {
    fn drop(&mut self) {
        self.server.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Who the door speaks for.
#[derive(Clone)]
struct Asker {
    store: Arc<Store>,
    run: String,
    task: String,
    attempt: u32,
    notes: UnboundedSender<WorkerNote>,
    asked: Arc<AtomicBool>,
    waiting: Arc<AtomicUsize>,
    /// The run's questions whose asker waits on a door now.
    live: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
}

pub(crate) fn open(sh: &Shared, task: &str, attempt: u32) -> Result<AskDoor, String> {
    static DOORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let k = DOORS.fetch_add(1, Ordering::Relaxed);
    // Short: a socket path has at most 107 bytes.
    let dir = std::env::temp_dir().join(format!("baton-{}-ask-{k}", std::process::id()));
    super::lead::make_private_dir(&dir)?;
    let socket = dir.join("ask.sock");
    let listener = match tokio::net::UnixListener::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("cannot open {}: {e}", socket.display()));
        }
    };
    let asked = Arc::new(AtomicBool::new(false));
    let waiting = Arc::new(AtomicUsize::new(0));
    let asker = Asker {
        live: sh.live_askers.clone(),
        waiting: waiting.clone(),
        store: sh.store.clone(),
        run: sh.run_id.clone(),
        task: task.to_string(),
        attempt,
        notes: sh.notes.clone(),
        asked: asked.clone(),
    };
    // The connections are the accept loop's: aborted with it when the
    // attempt ends, however long their askers wait.
    let server = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    // A few at once: an agent cannot tie up baton's files.
                    Ok((stream, _)) if conns.len() < MAX_CONNECTIONS => {
                        conns.spawn(serve(asker.clone(), stream));
                    }
                    Ok(_) => tracing::warn!("task {}: more than {MAX_CONNECTIONS} questions at once through its door; one refused", asker.task),
                    Err(e) => {
                        tracing::warn!("task {}: its door for questions: {e}", asker.task);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    });
    Ok(AskDoor {
        dir,
        socket,
        asked,
        waiting,
        server,
    })
}

/// The `ask` tool for an agent that speaks MCP: `baton mcp --ask`, started
/// by its CLI inside its sandbox, a relay with no access of its own. None
/// when this engine was started without baton's own binary.
pub(crate) fn tools(
    sh: &Shared,
    st: &super::Start,
    socket: &Path,
) -> Option<crate::adapter::McpServer> {
    let baton = sh.baton.as_ref()?;
    Some(crate::adapter::McpServer {
        name: "baton".into(),
        command: baton.clone(),
        args: vec!["mcp".into(), "--ask".into(), socket.display().to_string()],
        config_dir: sh.paths.run_dir(&sh.run_id).join("mcp").join(&st.spec.id),
    })
}

async fn serve(asker: Asker, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_LINE));
    let read = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await;
    let reply = match read {
        Ok(Ok(_)) if line.ends_with('\n') => match serde_json::from_str::<AskRequest>(&line) {
            Ok(req) => asker.record(&req).await.map(|id| (id, req.wait)),
            Err(e) => Err(format!("the request does not read: {e}")),
        },
        Ok(Ok(_)) => Err(format!("a request is one line of at most {MAX_LINE} bytes")),
        Ok(Err(e)) => Err(format!("cannot read the request: {e}")),
        Err(_) => Err(format!(
            "no question within {} s",
            REQUEST_TIMEOUT.as_secs()
        )),
    };
    let (id, wait) = match reply {
        Ok(x) => x,
        Err(message) => {
            let _ = send(&mut write, &AskReply::Error { message }).await;
            return;
        }
    };
    if !wait {
        let _ = send(&mut write, &AskReply::Asked { id }).await;
        return;
    }
    // Said before the asker hears back, so its first words do not read as
    // work; and the answer is this door's to hand over while it waits.
    asker.waiting.fetch_add(1, Ordering::SeqCst);
    asker.live(id, true);
    asker.activity(Some(Activity::WaitingAnswer)).await;
    let answer = match send(&mut write, &AskReply::Asked { id }).await {
        Ok(()) => asker.wait(id, reader.into_inner().into_inner()).await,
        Err(_) => None,
    };
    // Delivered only once the asker has it: one gone meanwhile leaves the
    // answer to its task.
    if let Some((reply, message)) = answer {
        if send(&mut write, &reply).await.is_ok() {
            if let Some(m) = message {
                asker.delivered(id, m).await;
            }
        }
    }
    asker.live(id, false);
    if asker.waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
        asker.activity(Some(Activity::Working)).await;
    }
}

async fn send(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    reply: &AskReply,
) -> std::io::Result<()> {
    let mut line = serde_json::to_string(reply).unwrap_or_default();
    line.push('\n');
    write.write_all(line.as_bytes()).await
}

impl Asker {
    /// Records the question; its id, or why not.
    async fn record(&self, req: &AskRequest) -> Result<i64, String> {
        let q = req.check(now_ms())?;
        let (run, task, attempt) = (self.run.clone(), self.task.clone(), self.attempt);
        let expires_at = q.expires_at;
        let id = self
            .store
            .call(move |s| -> Result<i64, String> {
                let cannot = |e: crate::store::StoreError| format!("baton cannot record the question: {e}");
                if s.questions_asked(&run, &task).map_err(cannot)? >= MAX_PER_TASK {
                    return Err(format!(
                        "task {task:?} asked {MAX_PER_TASK} questions in this run, the most one task may"
                    ));
                }
                s.ask(&run, &task, attempt, &q).map_err(cannot)
            })
            .await?;
        self.asked.store(true, Ordering::SeqCst);
        let _ = self.notes.send(WorkerNote::Asked {
            task: self.task.clone(),
            question: id,
            expires_at,
        });
        Ok(id)
    }

    /// The answer for a waiting asker, with the message that carries it
    /// (to mark delivered once the asker has it). None when the asker went
    /// away first: the answer then goes to the task as for any other.
    async fn wait(
        &self,
        id: i64,
        mut from: impl AsyncReadExt + Unpin,
    ) -> Option<(AskReply, Option<i64>)> {
        let mut byte = [0u8; 1];
        loop {
            tokio::select! {
                _ = tokio::time::sleep(ANSWER_POLL) => {}
                // An asker says nothing more: its end, or a byte, means it is gone.
                _ = from.read(&mut byte) => return None,
            }
            let found = self.store.call(move |s| s.question(id)).await;
            let q = match found {
                Ok(Some(q)) => q,
                Ok(None) => {
                    let message = format!("question {id} is gone from the store");
                    return Some((AskReply::Error { message }, None));
                }
                Err(e) => {
                    tracing::warn!("cannot read question {id}: {e}");
                    continue;
                }
            };
            if q.is_open() {
                continue;
            }
            return Some(match (q.answer.clone(), q.message_id) {
                (Some(text), Some(message)) => (AskReply::Answer { text }, Some(message)),
                _ => {
                    let message = format!("no answer to: {}", q.question.text);
                    (AskReply::Error { message }, None)
                }
            });
        }
    }

    /// Question `id`'s asker waits on this door now (or no longer).
    fn live(&self, id: i64, on: bool) {
        if let Ok(mut live) = self.live.lock() {
            match on {
                true => live.insert(id),
                false => live.remove(&id),
            };
        }
    }

    /// The asker has the answer: its message is delivered.
    async fn delivered(&self, id: i64, message: i64) {
        if let Err(e) = self.store.call(move |s| s.mark_delivered(message)).await {
            tracing::warn!("cannot mark the answer to question {id} delivered: {e}");
        }
    }

    async fn activity(&self, a: Option<Activity>) {
        let (run, task) = (self.run.clone(), self.task.clone());
        if let Err(e) = self
            .store
            .call(move |s| s.set_activity(&run, &task, a, None))
            .await
        {
            tracing::warn!("cannot set the activity of task {}: {e}", self.task);
        }
    }
}
