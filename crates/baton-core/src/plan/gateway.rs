//! `[gateway]`: where the model gateway listens and where each provider's
//! requests go (`[gateway.providers.anthropic] url = ...`, likewise
//! `openai` and `gemini`: an enterprise proxy, or a test's model server),
//! and which profiles go through it (`gateway = true` on a profile).

use super::error::Checker;
use super::raw::RawGateway;
use crate::gateway::{AccountLimits, GatewaySettings, KeySource, Provider, Upstream};
use toml::Spanned;

pub(super) fn check_gateway(ck: &mut Checker, raw: &Option<RawGateway>) -> GatewaySettings {
    let mut out = GatewaySettings::default();
    let Some(r) = raw else {
        return out;
    };
    let subject = Some("[gateway]".to_string());
    if let Some(listen) = &r.listen {
        match listen.get_ref().parse::<std::net::SocketAddr>() {
            Ok(_) => out.listen = listen.get_ref().clone(),
            Err(_) => ck.at(
                Some(listen.span()),
                subject.clone(),
                format!(
                    "gateway.listen is an address and port (\"127.0.0.1:0\", \"0.0.0.0:7411\"), not {:?}",
                    listen.get_ref()
                ),
            ),
        }
    }
    if let Some(host) = &r.host {
        let h = host.get_ref().trim();
        let bad = h.is_empty() || h.contains(|c: char| c == '/' || c == '@' || c.is_whitespace());
        if bad {
            let msg = format!("gateway.host is the name (or address) pods reach this machine by, without a scheme or port, not {h:?}");
            ck.at(Some(host.span()), subject.clone(), msg);
        } else {
            out.host = Some(h.to_string());
        }
    }
    for (name, p) in &r.providers {
        let Ok(provider) = name.parse::<Provider>() else {
            let known: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
            let msg = format!(
                "gateway.providers.{name}: no such provider ({})",
                known.join(", ")
            );
            ck.at(Some(p.span()), subject.clone(), msg);
            continue;
        };
        let raw = p.get_ref();
        let at = format!("gateway.providers.{name}");
        if let Some(source) = key_source(ck, &at, &raw.key_file, &raw.key_command) {
            out.provider_keys.insert(provider, source);
        }
        let Some(url) = &raw.url else {
            continue;
        };
        let text = url.get_ref().trim().trim_end_matches('/');
        if !(text.starts_with("https://") || text.starts_with("http://")) || text.contains('?') {
            let msg = format!(
                "{at}.url must be an http:// or https:// URL without a query, not {text:?}"
            );
            ck.at(Some(url.span()), subject.clone(), msg);
            continue;
        }
        let url = text.to_string();
        out.providers.insert(provider, Upstream { url });
    }
    out.log_bodies = r.log_bodies;
    for (name, a) in &r.accounts {
        let raw = a.get_ref();
        let mut positive = |key: &str, v: Option<i64>| -> Option<u64> {
            let v = v?;
            if v >= 1 {
                return Some(v as u64);
            }
            let msg = format!("gateway.accounts.{name}.{key} must be at least 1, not {v}");
            ck.at(Some(a.span()), subject.clone(), msg);
            None
        };
        let small = |v: u64| v.min(u32::MAX as u64) as u32;
        let limits = AccountLimits {
            rpm: positive("rpm", raw.rpm).map(small),
            tpm: positive("tpm", raw.tpm),
            concurrency: positive("concurrency", raw.concurrency).map(small),
        };
        out.accounts.insert(name.clone(), limits);
        let at = format!("gateway.accounts.{name}");
        if let Some(source) = key_source(ck, &at, &raw.key_file, &raw.key_command) {
            out.account_keys.insert(name.clone(), source);
        }
    }
    out
}

/// Where `at`'s key is read from: a file or a command, not both, and
/// neither empty.
fn key_source(
    ck: &mut Checker,
    at: &str,
    file: &Option<Spanned<String>>,
    command: &Option<Spanned<String>>,
) -> Option<KeySource> {
    let subject = Some("[gateway]".to_string());
    match (file, command) {
        (Some(_), Some(c)) => {
            let msg = format!("{at}: key_file and key_command both name its key; keep one");
            ck.at(Some(c.span()), subject, msg);
            None
        }
        (Some(v), None) | (None, Some(v)) if v.get_ref().trim().is_empty() => {
            let which = if file.is_some() {
                "key_file"
            } else {
                "key_command"
            };
            ck.at(Some(v.span()), subject, format!("{at}.{which} is empty"));
            None
        }
        (Some(f), None) => Some(KeySource::File(f.get_ref().trim().to_string())),
        (None, Some(c)) => Some(KeySource::Command(c.get_ref().clone())),
        (None, None) => None,
    }
}

/// Whether a profile with `gateway = true` can have it: its CLI speaks an
/// API the gateway stands in front of.
pub(super) fn gateway_problem(adapter: &str, speaks: bool) -> Option<String> {
    (!speaks).then(|| format!(
        "gateway = true: the gateway stands in front of the claude, codex, gemini, aider and opencode adapters, not {adapter:?}"
    ))
}
