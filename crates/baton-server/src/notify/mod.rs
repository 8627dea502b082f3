//! Notifications from `baton serve`: when something enters the inbox (an
//! agent's question, an approval, a failure, a rate-limit hold, a pull
//! request that needs a person) or a run ends, each channel of `[notify]`
//! (and `serve --webhook`) is told once, with links that act on it (see
//! [`links`]). Quiet hours hold what comes in; what still needs a person
//! when they end is told then. The log is read from where the last server
//! left it, so a restart neither repeats nor loses an item.

pub mod links;
mod ntfy;
pub mod push;
mod webhook;

use crate::state::AppState;
use baton_core::clock::now_ms;
use baton_core::inbox::{Item, ItemKind};
use baton_core::model::EventKind;
use baton_core::payload::Payload;
use baton_core::plan::NotifySettings;
use baton_core::store::Event;
use links::Links;
use std::sync::Arc;
use std::time::Duration;

/// Where the notifier's place in the event log is kept.
const PLACE: &str = "notify";

/// One thing told: what it is about, in words, and what can be done.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Notice {
    /// `question`, `approval`, ..., `stalled`, or `run`.
    pub kind: String,
    /// The kind of the event that brought it (`approval_needed`, ...).
    pub event: String,
    pub run: String,
    pub task: Option<String>,
    pub title: String,
    pub text: String,
    /// The inbox item, when it is one.
    pub item: Option<Item>,
    /// Buttons: what each does, and the link that does it.
    pub actions: Vec<Button>,
    /// The dashboard's page for it, when the server's address is known.
    pub click: Option<String>,
    /// The repository's name on a server of several (its item ids are its
    /// own: a browser's notices of two repositories must not replace each
    /// other).
    pub repo: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Button {
    pub label: String,
    pub url: String,
}

/// What a channel's send comes to.
type Sent<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;

/// A way of telling people: the webhook, ntfy, Web Push.
trait Channel: Send + Sync {
    fn name(&self) -> &'static str;
    fn send<'a>(&'a self, notice: &'a Notice) -> Sent<'a>;
    /// Whether a failed send is tried again as a whole (not where one
    /// send reaches many, some of which may have had it).
    fn retried(&self) -> bool {
        true
    }
}

/// How long a failed send waits before each try again: a server that is
/// down for a few minutes still gets what needs a person.
const RETRY_WAITS: [Duration; 3] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
];

/// Starts the notifier for a server reached at `base`, with the action
/// links its notices carry (and `/api/act` checks).
pub fn spawn_notifier(
    state: Arc<AppState>,
    settings: NotifySettings,
    base: &str,
) -> Result<(), String> {
    let api = format!("{}{}", base.trim_end_matches('/'), state.opts.api());
    let links = Links::open(&state.paths.secrets(), &api, settings.link_ttl)?;
    let _ = state.links.set(links.clone());
    spawn(state, settings, links, base.to_string());
    Ok(())
}

/// Starts the notifier's channels and its loop; `base` is where people
/// reach this server.
fn spawn(state: Arc<AppState>, settings: NotifySettings, links: Links, base: String) {
    let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
    if let Some(url) = settings.webhook.clone().or(state.opts.webhook.clone()) {
        channels.push(Arc::new(webhook::Webhook { url }));
    }
    if let Some(topic) = &settings.ntfy {
        match ntfy::Ntfy::new(topic, settings.ntfy_token_env.as_deref()) {
            Ok(n) => channels.push(Arc::new(n)),
            Err(e) => tracing::warn!("notify: {e}"),
        }
    }
    // Web Push is always on: it sends to the browsers that subscribed.
    match push::vapid(&state.push_secrets()) {
        Ok(vapid) => channels.push(Arc::new(push::WebPush {
            state: state.clone(),
            vapid,
            subject: match base.starts_with("https://") {
                true => base.clone(),
                false => "mailto:baton@localhost".into(),
            },
        })),
        Err(e) => tracing::warn!("notify: no Web Push: {e}"),
    }
    let teller = Teller {
        state,
        settings,
        links,
        channels,
        base,
        held: Vec::new(),
    };
    tokio::spawn(teller.run());
}

/// `notice` saying which repository it is about, on a server of several.
fn named(mut notice: Notice) -> Notice {
    if let Some(name) = &notice.repo {
        notice.title = format!("{name}: {}", notice.title);
        notice.text = match notice.text.strip_prefix("baton: ") {
            Some(rest) => format!("baton ({name}): {rest}"),
            None => format!("({name}) {}", notice.text),
        };
    }
    notice
}

struct Teller {
    state: Arc<AppState>,
    settings: NotifySettings,
    links: Links,
    channels: Vec<Arc<dyn Channel>>,
    base: String,
    /// Items that came in during quiet hours.
    held: Vec<i64>,
}

impl Teller {
    async fn run(mut self) {
        let mut wake = self.state.store.subscribe();
        let mut shutdown = self.state.shutdown_rx();
        let store = self.state.store.clone();
        // A first server starts at the log's end: what happened before it
        // is not news.
        let mut last = match store.call(|s| s.notified_seq(PLACE)).await {
            Ok(Some(seq)) => seq,
            _ => store.call(|s| s.last_seq()).await.unwrap_or(0),
        };
        // What a server stopped during quiet hours was holding.
        self.held = store.call(|s| s.held_notices()).await.unwrap_or_default();
        loop {
            tokio::select! {
                _ = wake.recv() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => return,
            }
            let quiet = self
                .settings
                .is_quiet(baton_core::clock::local_minute(now_ms()));
            if !quiet && !self.held.is_empty() {
                self.tell_held().await;
            }
            let after = last;
            let Ok(events) = store.call(move |s| s.all_events_after(after, 500)).await else {
                continue;
            };
            let Some(end) = events.last().map(|e| e.seq) else {
                continue;
            };
            // The inbox as it is now, read once for the batch (and only if
            // an event in it may have opened an item).
            let mut inbox = None;
            for e in &events {
                let Some(notice) = self.notice(e, &mut inbox).await else {
                    continue;
                };
                if !self.settings.tells(&notice.kind) {
                    continue;
                }
                match (&notice.item, quiet) {
                    (Some(item), true) => {
                        let id = item.id;
                        self.held.push(id);
                        if let Err(e) = store.call(move |s| s.hold_notice(id)).await {
                            tracing::warn!(
                                "notify: cannot keep item {id} for the end of quiet hours: {e}"
                            );
                        }
                    }
                    // A run's end or a stall in quiet hours is not held.
                    (None, true) => {}
                    _ => self.tell(&notice).await,
                }
            }
            last = end;
            if let Err(e) = store.call(move |s| s.set_notified_seq(PLACE, end)).await {
                tracing::warn!("notify: cannot keep its place in the event log: {e}");
            }
        }
    }

    /// What event `e` tells, if anything; `inbox` is read the first time
    /// an event may have opened an item.
    async fn notice(&self, e: &Event, inbox: &mut Option<Vec<Item>>) -> Option<Notice> {
        let task = e.task_id.clone();
        match e.kind {
            EventKind::RunFinished => {
                let status = match e.payload() {
                    Some(Payload::RunFinished { status }) => status.to_string(),
                    _ => "finished".into(),
                };
                let title = format!("run {} {status}", e.run_id);
                Some(self.plain("run", e, title.clone(), title))
            }
            EventKind::Stalled => {
                let t = task.clone().unwrap_or_default();
                let text = format!("task {t} of run {} has gone silent (stalled)", e.run_id);
                Some(self.plain("stalled", e, format!("{t} stalled"), text))
            }
            // A planner's success opens a plan waiting for a yes.
            k if k.needs_attention()
                || k == EventKind::Waiting
                || (k == EventKind::Succeeded && task.as_deref() == Some("plan")) =>
            {
                let items = match inbox {
                    Some(items) => items,
                    None => inbox.insert(self.inbox().await),
                };
                let item = items.iter().find(|i| i.id == e.seq)?.clone();
                Some(self.of_item(item))
            }
            _ => None,
        }
    }

    fn plain(&self, kind: &str, e: &Event, title: String, text: String) -> Notice {
        named(Notice {
            kind: kind.into(),
            event: e.kind.to_string(),
            run: e.run_id.clone(),
            task: e.task_id.clone(),
            title,
            text: format!("baton: {text}"),
            item: None,
            actions: Vec::new(),
            click: self.click(&e.run_id, e.task_id.as_deref()),
            repo: self.state.opts.name.clone(),
        })
    }

    /// The notice of an inbox item, with a button for each thing a person
    /// can do from a phone: each of a question's options, approve, retry.
    fn of_item(&self, item: Item) -> Notice {
        let now = now_ms();
        let task = item.task.clone().unwrap_or_default();
        let mut actions = Vec::new();
        for a in &item.actions {
            match *a {
                "answer" => {
                    for o in &item.options {
                        actions.push(Button {
                            label: o.clone(),
                            url: self.links.link(item.id, "answer", Some(o), now),
                        });
                    }
                }
                "approve" | "retry" | "discard" => actions.push(Button {
                    label: match (item.kind, *a) {
                        (ItemKind::Plan, "approve") => "Run it".into(),
                        _ => capitalised(a),
                    },
                    url: self.links.link(item.id, a, None, now),
                }),
                _ => {}
            }
        }
        let title = match item.kind.as_str() {
            "question" => format!("{task} asks"),
            "approval" => format!("{task} waits for your approval"),
            "pull" => format!("run {} needs you", item.run),
            "plan" => "a plan waits for a yes".to_string(),
            other => format!("{task} {other}"),
        };
        let text = match item.kind.as_str() {
            "question" => format!("baton: task {task} of run {} asks: {}", item.run, item.text),
            "approval" => format!(
                "baton: task {task} of run {} waits for your approval",
                item.run
            ),
            "pull" | "plan" => format!("baton: {}", item.text),
            _ => format!(
                "baton: task {task} of run {} {}: {}",
                item.run, item.kind, item.text
            ),
        };
        let event = match item.kind.as_str() {
            "question" => EventKind::QuestionAsked,
            "approval" => EventKind::ApprovalNeeded,
            "conflicted" => EventKind::Conflicted,
            "limit" => EventKind::Waiting,
            "pull" => EventKind::PullNeedsYou,
            "plan" => EventKind::Succeeded,
            _ => EventKind::Failed,
        };
        named(Notice {
            kind: item.kind.to_string(),
            event: event.to_string(),
            run: item.run.clone(),
            task: item.task.clone(),
            title,
            text,
            click: match item.kind {
                // The dashboard opens the plan to read (and edit) it.
                ItemKind::Plan => Some(format!(
                    "{}/?{}proposal={}",
                    self.base.trim_end_matches('/'),
                    self.state.opts.repo_query(),
                    item.run
                )),
                _ => self.click(&item.run, item.task.as_deref()),
            },
            item: Some(item),
            actions,
            repo: self.state.opts.name.clone(),
        })
    }

    fn click(&self, run: &str, task: Option<&str>) -> Option<String> {
        let base = self.base.trim_end_matches('/');
        let repo = self.state.opts.repo_query();
        Some(match task {
            Some(t) => format!("{base}/?{repo}run={run}&task={t}"),
            None => format!("{base}/?{repo}run={run}"),
        })
    }

    async fn tell(&self, notice: &Notice) {
        for c in &self.channels {
            if let Err(e) = c.send(notice).await {
                tracing::warn!("notify: {} failed: {e}", c.name());
                if c.retried() {
                    tokio::spawn(retry(c.clone(), notice.clone()));
                }
            }
        }
    }

    /// The inbox now (empty when it cannot be read: said in the log).
    async fn inbox(&self) -> Vec<Item> {
        match self.state.store.call(|s| s.inbox(now_ms())).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!("notify: cannot read the inbox: {e}");
                Vec::new()
            }
        }
    }

    /// Quiet hours ended: what still needs a person is told now.
    async fn tell_held(&mut self) {
        let inbox = self.inbox().await;
        for id in std::mem::take(&mut self.held) {
            if let Some(item) = inbox.iter().find(|i| i.id == id) {
                let notice = self.of_item(item.clone());
                self.tell(&notice).await;
            }
            let released = self.state.store.call(move |s| s.release_notice(id)).await;
            if let Err(e) = released {
                tracing::warn!("notify: cannot let item {id} go: {e}");
            }
        }
    }
}

/// Tries a failed send again, a few times, apart; the log says how it went.
async fn retry(channel: Arc<dyn Channel>, notice: Notice) {
    for wait in RETRY_WAITS {
        tokio::time::sleep(wait).await;
        match channel.send(&notice).await {
            Ok(()) => {
                tracing::info!(
                    "notify: {} took {:?} on a later try",
                    channel.name(),
                    notice.title
                );
                return;
            }
            Err(e) => tracing::warn!("notify: {} failed again: {e}", channel.name()),
        }
    }
    tracing::error!(
        "notify: {} gave up on {:?} after {} tries",
        channel.name(),
        notice.title,
        RETRY_WAITS.len() + 1
    );
}

pub(crate) fn capitalised(word: &str) -> String {
    let mut c = word.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Sends `body` (JSON) with `headers`; an error unless it was taken (2xx).
pub(crate) async fn post(url: &str, body: &str, headers: &[String]) -> Result<(), String> {
    let mut all = vec!["Content-Type: application/json".to_string()];
    all.extend(headers.iter().cloned());
    match post_bytes(url, body.as_bytes(), &all).await? {
        200..=299 => Ok(()),
        status => Err(format!("POST answered {status}")),
    }
}

/// POSTs `body` with curl (so that https works without a TLS stack in
/// baton) and `headers`, which go through a private file, not the command
/// line every local user can read; the HTTP status.
pub(crate) async fn post_bytes(url: &str, body: &[u8], headers: &[String]) -> Result<u16, String> {
    use std::process::Stdio;
    let file = HeaderFile::write(headers)?;
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args([
        "-sS",
        "-m",
        "10",
        "-X",
        "POST",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ])
    .arg("-H")
    .arg(format!("@{}", file.0.display()))
    .args(["--data-binary", "@-", url])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("cannot run curl: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(body).await;
    }
    match tokio::time::timeout(Duration::from_secs(15), child.wait_with_output()).await {
        Ok(Ok(out)) => String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| {
                format!(
                    "POST failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            }),
        _ => Err("the POST did not finish".into()),
    }
}

/// Headers for curl in a file only this user can read, gone when dropped.
struct HeaderFile(std::path::PathBuf);

impl HeaderFile {
    fn write(headers: &[String]) -> Result<HeaderFile, String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("baton-{}-headers-{n}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let file = HeaderFile(path);
        f.write_all(headers.join("\n").as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", file.0.display()))?;
        Ok(file)
    }
}

impl Drop for HeaderFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(repo: Option<&str>) -> Notice {
        Notice {
            kind: "approval".into(),
            event: "approval_needed".into(),
            run: "r1".into(),
            task: Some("a".into()),
            title: "a waits for your approval".into(),
            text: "baton: task a of run r1 waits for your approval".into(),
            item: None,
            actions: Vec::new(),
            click: None,
            repo: repo.map(str::to_string),
        }
    }

    #[test]
    fn a_notice_of_one_of_several_repositories_names_it() {
        let n = named(notice(Some("docs")));
        assert_eq!(n.title, "docs: a waits for your approval");
        assert_eq!(
            n.text,
            "baton (docs): task a of run r1 waits for your approval"
        );
        let alone = named(notice(None));
        assert_eq!(alone.title, "a waits for your approval");
        assert_eq!(
            alone.text,
            "baton: task a of run r1 waits for your approval"
        );
        let tag = |n: &Notice| {
            let p: serde_json::Value = serde_json::from_str(&push::WebPush::payload(n)).unwrap();
            p["tag"].as_str().unwrap().to_string()
        };
        assert_ne!(tag(&notice(Some("docs"))), tag(&notice(Some("web"))));
        assert_eq!(tag(&notice(None)), "baton-approval-r1");
    }
}
