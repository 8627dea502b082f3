//! `[gateway]`: where the model gateway listens and where each provider's
//! requests go (`[gateway.providers.anthropic] url = ...`, likewise
//! `openai` and `gemini`: an enterprise proxy, or a test's model server),
//! and which profiles go through it (`gateway = true` on a profile).

use super::error::Checker;
use super::raw::RawGateway;
use crate::gateway::{AccountLimits, GatewaySettings, Provider, Upstream};

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
        let url = p.get_ref().url.get_ref().trim().trim_end_matches('/');
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains('?') {
            let msg = format!("gateway.providers.{name}.url must be an http:// or https:// URL without a query, not {url:?}");
            ck.at(Some(p.get_ref().url.span()), subject.clone(), msg);
            continue;
        }
        out.providers.insert(
            provider,
            Upstream {
                url: url.to_string(),
            },
        );
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
    }
    out
}

/// Whether a profile with `gateway = true` can have it: its CLI speaks an
/// API the gateway stands in front of, and it runs here.
pub(super) fn gateway_problem(adapter: &str, speaks: bool, remote: bool) -> Option<String> {
    if !speaks {
        return Some(format!(
            "gateway = true: the gateway stands in front of the claude, codex, gemini, aider and opencode adapters, not {adapter:?}"
        ));
    }
    remote.then(|| "gateway = true: not yet for attempts on a remote executor".to_string())
}
