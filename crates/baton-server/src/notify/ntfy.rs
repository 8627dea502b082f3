//! ntfy (ntfy.sh, or a server of your own, with its phone app): a message
//! published as JSON to the topic's server, with up to three HTTP actions
//! (the action links: tapping one acts, no app or token needed) and the
//! dashboard as its click target.

use super::{Channel, Notice, Sent};

/// ntfy shows at most this many actions.
const MAX_ACTIONS: usize = 3;

pub struct Ntfy {
    /// The server's root, where JSON messages are published.
    server: String,
    topic: String,
    /// The variable holding an access token, for a protected topic.
    token_env: Option<String>,
}

impl Ntfy {
    pub fn new(topic_url: &str, token_env: Option<&str>) -> Result<Ntfy, String> {
        let (server, topic) = topic_url
            .rsplit_once('/')
            .filter(|(s, t)| s.contains("://") && !t.is_empty())
            .ok_or_else(|| format!("{topic_url:?} is not an ntfy topic's URL"))?;
        Ok(Ntfy {
            server: server.to_string(),
            topic: topic.to_string(),
            token_env: token_env.map(str::to_string),
        })
    }

    /// The message as ntfy's JSON publishing takes it.
    fn message(&self, n: &Notice) -> serde_json::Value {
        let actions: Vec<serde_json::Value> = n
            .actions
            .iter()
            .take(MAX_ACTIONS)
            .map(|b| {
                serde_json::json!({
                    "action": "http", "label": b.label, "url": b.url,
                    "method": "POST", "clear": true,
                })
            })
            .collect();
        let urgent = matches!(n.kind.as_str(), "question" | "approval");
        serde_json::json!({
            "topic": self.topic,
            "title": n.title,
            "message": n.text,
            "priority": if urgent { 4 } else { 3 },
            "tags": [n.kind],
            "click": n.click,
            "actions": actions,
        })
    }
}

impl Channel for Ntfy {
    fn name(&self) -> &'static str {
        "ntfy"
    }

    fn send<'a>(&'a self, n: &'a Notice) -> Sent<'a> {
        Box::pin(async move {
            let mut headers = Vec::new();
            if let Some(var) = &self.token_env {
                match std::env::var(var) {
                    Ok(t) if !t.is_empty() => headers.push(format!("Authorization: Bearer {t}")),
                    _ => return Err(format!("{var} (notify.ntfy_token_env) is not set")),
                }
            }
            let body = self.message(n).to_string();
            super::post(&format!("{}/", self.server), &body, &headers).await
        })
    }
}
