//! Web Push from `baton serve`: browsers that enabled notifications on the
//! dashboard subscribe (their push service's endpoint and keys are kept in
//! the store); each notice is encrypted for each of them (RFC 8291) and
//! sent with the server's VAPID identity (RFC 8292, its key made once and
//! kept where no sandbox sees it). The service worker (`/sw.js`) shows it with its buttons, which
//! act through the notice's signed action links. A subscription its push
//! service says is gone (404, 410) is forgotten.

pub mod crypto;

use super::{Channel, Notice, Sent};
use crate::sign::{b64url, unb64url};
use crate::state::AppState;
use crypto::Vapid;
use std::path::Path;
use std::sync::Arc;

/// The file of the VAPID key (in `StatePaths::secrets`).
const KEY: &str = "vapid.pkcs8";
/// How long a push service keeps a message for a browser that is away.
const TTL_SECS: u64 = 24 * 3600;
/// At most this many buttons (what browsers show).
const MAX_ACTIONS: usize = 2;
/// The longest body, in characters.
const MAX_BODY: usize = 1000;

/// The server's VAPID identity, made the first time and kept in `secrets`
/// (hidden from every sandbox).
pub fn vapid(secrets: &Path) -> Result<Vapid, String> {
    let doc = baton_core::access::kept_key(secrets, KEY, || Vapid::generate().map(|d| b64url(&d)))
        .map_err(|e| format!("cannot keep the VAPID key: {e}"))?;
    let bytes = unb64url(&doc).ok_or("the stored VAPID key does not read")?;
    Vapid::from_pkcs8(&bytes)
}

/// Checks a subscription's keys as a browser gives them.
pub fn check_subscription(endpoint: &str, p256dh: &str, auth: &str) -> Result<(), String> {
    if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
        return Err(format!(
            "the endpoint must be an http(s) URL, not {endpoint:?}"
        ));
    }
    match unb64url(p256dh) {
        Some(k) if k.len() == 65 && k[0] == 4 => {}
        _ => return Err("keys.p256dh must be an uncompressed P-256 key, base64url".into()),
    }
    match unb64url(auth) {
        Some(a) if a.len() == 16 => Ok(()),
        _ => Err("keys.auth must be 16 bytes, base64url".into()),
    }
}

pub struct WebPush {
    pub state: Arc<AppState>,
    pub vapid: Vapid,
    /// Who to contact about this server (RFC 8292's `sub`).
    pub subject: String,
}

impl WebPush {
    /// What the service worker gets: the notice, with each button's link.
    pub(super) fn payload(n: &Notice) -> String {
        let buttons: Vec<_> = n.actions.iter().take(MAX_ACTIONS).collect();
        let actions: Vec<_> = buttons
            .iter()
            .enumerate()
            .map(|(i, b)| serde_json::json!({ "action": format!("a{i}"), "title": b.label }))
            .collect();
        let links: serde_json::Map<String, serde_json::Value> = buttons
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("a{i}"), serde_json::Value::from(b.url.clone())))
            .collect();
        let repo = n.repo.as_ref().map(|r| format!("{r}-")).unwrap_or_default();
        let tag = n
            .item
            .as_ref()
            .map(|i| format!("baton-{repo}{}", i.id))
            .unwrap_or_else(|| format!("baton-{repo}{}-{}", n.kind, n.run));
        // A push record holds under 4 KiB: a long question is cut (the
        // dashboard has all of it).
        let body: String = match n.text.chars().count() > MAX_BODY {
            true => n.text.chars().take(MAX_BODY).chain("…".chars()).collect(),
            false => n.text.clone(),
        };
        serde_json::json!({
            "title": format!("baton: {}", n.title),
            "body": body,
            "tag": tag,
            "kind": n.kind,
            "actions": actions,
            "links": links,
            "click": n.click,
        })
        .to_string()
    }

    async fn push_one(
        &self,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        payload: &[u8],
    ) -> Result<(), String> {
        let (ua, secret) = (
            unb64url(p256dh).unwrap_or_default(),
            unb64url(auth).unwrap_or_default(),
        );
        let body = crypto::encrypt(&ua, &secret, payload, &ring::rand::SystemRandom::new())?;
        let exp = baton_core::clock::now_ms() as u64 / 1000 + 12 * 3600;
        let headers = vec![
            format!(
                "Authorization: {}",
                self.vapid.authorization(endpoint, exp, &self.subject)?
            ),
            "Content-Encoding: aes128gcm".to_string(),
            "Content-Type: application/octet-stream".to_string(),
            format!("TTL: {TTL_SECS}"),
            "Urgency: high".to_string(),
        ];
        let status = super::post_bytes(endpoint, &body, &headers).await?;
        match status {
            200..=299 => Ok(()),
            // Gone, or (403) made with a key this server no longer has.
            403 | 404 | 410 => {
                let e = endpoint.to_string();
                let _ = self.state.store.call(move |s| s.remove_push(&e)).await;
                Err(format!(
                    "the push service says subscription {endpoint} is gone ({status}); forgotten"
                ))
            }
            other => Err(format!("the push service answered {other}")),
        }
    }
}

impl Channel for WebPush {
    fn name(&self) -> &'static str {
        "Web Push"
    }

    /// One send reaches every subscribed browser: a retry would show the
    /// notice twice on those that had it.
    fn retried(&self) -> bool {
        false
    }

    fn send<'a>(&'a self, n: &'a Notice) -> Sent<'a> {
        Box::pin(async move {
            let subs = self
                .state
                .store
                .call(|s| s.push_subscriptions())
                .await
                .map_err(|e| e.to_string())?;
            let payload = Self::payload(n);
            let mut failed = Vec::new();
            for (endpoint, p256dh, auth) in subs {
                if let Err(e) = self
                    .push_one(&endpoint, &p256dh, &auth, payload.as_bytes())
                    .await
                {
                    failed.push(e);
                }
            }
            match failed.is_empty() {
                true => Ok(()),
                false => Err(failed.join("; ")),
            }
        })
    }
}
