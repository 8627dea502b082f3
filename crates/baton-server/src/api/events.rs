//! The event log as Server-Sent Events, for every run. Each message carries
//! its sequence number as `id`, so a client that reconnects (EventSource
//! sends Last-Event-ID) or asks with `?after=` gets exactly what it missed.

use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use baton_core::store::Event as StoredEvent;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

#[derive(Deserialize)]
pub struct StreamQuery {
    after: Option<i64>,
}

struct Cursor {
    st: Arc<AppState>,
    last: i64,
    wake: tokio::sync::broadcast::Receiver<i64>,
    pending: VecDeque<StoredEvent>,
}

/// Events appended by other processes (a `baton run` elsewhere) are found by
/// polling; this process's own wake the stream at once.
const POLL: Duration = Duration::from_millis(250);

pub async fn stream(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let from_header = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let last = match from_header.or(q.after) {
        Some(last) => last,
        None => st.store.call(|s| s.last_seq()).await.unwrap_or(0),
    };
    let cursor = Cursor {
        wake: st.store.subscribe(),
        st,
        last,
        pending: VecDeque::new(),
    };
    let s = stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(e) = c.pending.pop_front() {
                c.last = e.seq;
                let data = serde_json::to_string(&e).unwrap_or_default();
                let ev = Event::default()
                    .id(e.seq.to_string())
                    .event("baton")
                    .data(data);
                return Some((Ok(ev), c));
            }
            let after = c.last;
            match c
                .st
                .store
                .call(move |s| s.all_events_after(after, 500))
                .await
            {
                Ok(evs) if !evs.is_empty() => {
                    c.pending.extend(evs);
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("event stream: {e}"),
            }
            let mut shutdown = c.st.shutdown_rx();
            if *shutdown.borrow() {
                return None;
            }
            tokio::select! {
                _ = c.wake.recv() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => return None,
            }
        }
    });
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
