//! Action links: a notification's buttons (approve, retry, answer with one
//! of a question's options), as URLs that act without a baton token. Each
//! is signed (HMAC-SHA256 under a key kept in the store), says what it does
//! to which inbox item, runs out (`[notify] link_ttl`), and works once: its
//! nonce is spent when it is used. A forged, changed, expired or reused
//! link changes nothing.

use crate::sign::{hex, hmac_sha256, same, unhex};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file of the links' key (in `StatePaths::secrets`).
const KEY: &str = "action-links";

/// What a link does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// The inbox item.
    pub item: i64,
    /// `answer`, `approve`, `retry` or `stop`.
    pub action: String,
    /// The answer, for `answer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// When it runs out (ms since the epoch).
    pub expires: i64,
    pub nonce: String,
}

/// Why a link does nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LinkError {
    #[error("this link is not one of baton's (its signature does not match)")]
    Forged,
    #[error("this link ran out; act from the dashboard or with `baton inbox`")]
    Expired,
    #[error("this link was used already")]
    Used,
}

/// Signs and checks links.
#[derive(Clone)]
pub struct Links {
    key: Vec<u8>,
    /// Where people reach this repository's API (`serve --public-url`, else
    /// the server's address, then /api or /api/repos/<name>).
    base: String,
    ttl_ms: i64,
}

impl Links {
    /// The links of the API reached at `base`; the key is made once and
    /// kept in `secrets`, a directory every sandbox hides (an agent that
    /// read it could approve its own work).
    pub fn open(secrets: &Path, base: &str, ttl: std::time::Duration) -> Result<Links, String> {
        let key =
            baton_core::access::kept_key(secrets, KEY, || Ok(baton_core::access::new_token()))
                .map_err(|e| format!("cannot keep the action links' key: {e}"))?;
        Ok(Links {
            key: key.into_bytes(),
            base: base.trim_end_matches('/').to_string(),
            ttl_ms: ttl.as_millis().min(i64::MAX as u128) as i64,
        })
    }

    /// The URL that does `action` (with `answer`) to `item`, from `now`.
    pub fn link(&self, item: i64, action: &str, answer: Option<&str>, now: i64) -> String {
        let claim = Claim {
            item,
            action: action.to_string(),
            answer: answer.map(str::to_string),
            expires: now.saturating_add(self.ttl_ms),
            nonce: baton_core::access::new_token()[..24].to_string(),
        };
        let body = hex(serde_json::to_string(&claim).unwrap_or_default().as_bytes());
        let sig = hex(&hmac_sha256(&self.key, body.as_bytes()));
        format!("{}/act/{body}.{sig}", self.base)
    }

    /// What `token` (the link's last part) does, if baton signed it and it
    /// has not run out at `now`. Whether it was used is the store's.
    pub fn check(&self, token: &str, now: i64) -> Result<Claim, LinkError> {
        let (body, sig) = token.split_once('.').ok_or(LinkError::Forged)?;
        if !same(
            &sig.to_ascii_lowercase(),
            &hex(&hmac_sha256(&self.key, body.as_bytes())),
        ) {
            return Err(LinkError::Forged);
        }
        let json = unhex(body).ok_or(LinkError::Forged)?;
        let claim: Claim = serde_json::from_slice(&json).map_err(|_| LinkError::Forged)?;
        if claim.expires <= now {
            return Err(LinkError::Expired);
        }
        Ok(claim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> Links {
        Links {
            key: b"k".to_vec(),
            base: "https://baton.example/api".into(),
            ttl_ms: 1000,
        }
    }

    fn token(url: &str) -> &str {
        url.rsplit('/').next().unwrap()
    }

    #[test]
    fn a_link_says_what_it_does_and_nothing_else_passes() {
        let l = links();
        let url = l.link(42, "answer", Some("blue"), 5000);
        assert!(url.starts_with("https://baton.example/api/act/"), "{url}");
        let c = l.check(token(&url), 5500).unwrap();
        assert_eq!(
            (c.item, c.action.as_str(), c.answer.as_deref()),
            (42, "answer", Some("blue"))
        );
        assert_eq!(l.check(token(&url), 6000), Err(LinkError::Expired));
        // Another item, another answer, another key: all refused.
        let other = l.link(43, "answer", Some("red"), 5000);
        let (body, _) = token(&url).split_once('.').unwrap();
        let (_, other_sig) = token(&other).split_once('.').unwrap();
        assert_eq!(
            l.check(&format!("{body}.{other_sig}"), 5500),
            Err(LinkError::Forged)
        );
        let mut changed = body.to_string();
        changed.replace_range(0..2, "5b");
        let sig = token(&url).split_once('.').unwrap().1;
        assert_eq!(
            l.check(&format!("{changed}.{sig}"), 5500),
            Err(LinkError::Forged)
        );
        let stranger = Links {
            key: b"other".to_vec(),
            ..links()
        };
        assert_eq!(stranger.check(token(&url), 5500), Err(LinkError::Forged));
        assert_eq!(l.check("nonsense", 0), Err(LinkError::Forged));
        // Two links for the same thing differ (each is spent on its own).
        assert_ne!(
            l.link(42, "approve", None, 0),
            l.link(42, "approve", None, 0)
        );
    }
}
