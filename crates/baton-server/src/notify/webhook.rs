//! The webhook: a JSON POST that Slack-style incoming hooks accept
//! (`{"text": ...}`), with the item and its action links for a bot.

use super::{Channel, Notice, Sent};

pub struct Webhook {
    pub url: String,
}

impl Channel for Webhook {
    fn name(&self) -> &'static str {
        "the webhook"
    }

    fn send<'a>(&'a self, n: &'a Notice) -> Sent<'a> {
        Box::pin(async move {
            let mut body = serde_json::json!({
                "text": n.text,
                "run": n.run,
                "task": n.task.clone().unwrap_or_default(),
                "kind": n.event,
                "title": n.title,
                "item": n.item,
                "actions": n.actions,
                "click": n.click,
            });
            // On a server of several repositories: which one.
            if let Some(repo) = &n.repo {
                body["repo"] = serde_json::Value::String(repo.clone());
            }
            super::post(&self.url, &body.to_string(), &[]).await
        })
    }
}
