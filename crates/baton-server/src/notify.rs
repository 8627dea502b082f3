//! When a task needs a person (waiting for approval, failed, conflicted,
//! stalled) the event log says so and the dashboard shows it; with a
//! webhook configured, it also gets a JSON POST that Slack-style incoming
//! hooks accept (`{"text": ...}`), sent with curl so that https works without
//! a TLS stack in baton.

use crate::state::AppState;
use baton_core::model::EventKind;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

pub fn spawn(state: Arc<AppState>) {
    let Some(url) = state.opts.webhook.clone() else {
        return;
    };
    tokio::spawn(async move {
        let mut wake = state.store.subscribe();
        let mut shutdown = state.shutdown_rx();
        let mut last = state.store.call(|s| s.last_seq()).await.unwrap_or(0);
        loop {
            tokio::select! {
                _ = wake.recv() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => return,
            }
            let after = last;
            let Ok(events) = state
                .store
                .call(move |s| s.all_events_after(after, 500))
                .await
            else {
                continue;
            };
            for e in events {
                last = e.seq;
                if !e.kind.needs_attention() {
                    continue;
                }
                let task = e.task_id.clone().unwrap_or_default();
                let said = e.payload();
                let why = said
                    .as_ref()
                    .and_then(|p| p.reason())
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                let what = match e.kind {
                    EventKind::ApprovalNeeded => "waits for your approval".to_string(),
                    EventKind::Stalled => "has gone silent (stalled)".to_string(),
                    k => format!("{k}{why}"),
                };
                let text = match e.kind {
                    EventKind::PullNeedsYou => {
                        format!("baton: the pull request of run {} needs you{why}", e.run_id)
                    }
                    _ => format!("baton: task {task} of run {} {what}", e.run_id),
                };
                let body = serde_json::json!({
                    "text": text,
                    "run": e.run_id, "task": task, "kind": e.kind,
                });
                post(&url, &body.to_string()).await;
            }
        }
    });
}

async fn post(url: &str, body: &str) {
    let child = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "-m",
            "10",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
            url,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("webhook: cannot run curl: {e}");
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(body.as_bytes()).await;
    }
    match tokio::time::timeout(Duration::from_secs(15), child.wait_with_output()).await {
        Ok(Ok(out)) if out.status.success() => {}
        Ok(Ok(out)) => tracing::warn!(
            "webhook POST failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        _ => tracing::warn!("webhook POST did not finish"),
    }
}
