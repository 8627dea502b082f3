//! `[[workspace.service]]`: a server a task's code needs beside it (a
//! database, a cache), started from its image for each attempt of each
//! running task, on a port of the task's own block, and removed with it.

use super::error::Checker;
use crate::duration::parse_duration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

/// How long a service has to answer before the attempt fails.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub name: Spanned<String>,
    pub image: Spanned<String>,
    pub port: Spanned<i64>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub command: Option<Vec<String>>,
    pub healthcheck: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub ready_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Lower-case letters, digits, `_` and `-`: its variables' `NAME`.
    pub name: String,
    pub image: String,
    /// The port it listens on inside its container.
    pub port: u16,
    pub env: Vec<(String, String)>,
    pub command: Vec<String>,
    /// Run inside the service's container until it exits 0 (after its
    /// port answers).
    pub healthcheck: Option<String>,
    /// `BATON_SERVICE_<NAME>_URL`, with `{host}` and `{port}` filled in.
    pub url: Option<String>,
    pub ready_timeout: Duration,
}

impl Service {
    /// The prefix of its variables: `BATON_SERVICE_DB`.
    pub fn var_prefix(&self) -> String {
        format!(
            "BATON_SERVICE_{}",
            self.name.to_ascii_uppercase().replace('-', "_")
        )
    }
}

pub(super) fn check_services(ck: &mut Checker, raw: &[Spanned<RawService>]) -> Vec<Service> {
    let mut out: Vec<Service> = Vec::new();
    for s in raw {
        let r = s.get_ref();
        let name = r.name.get_ref().clone();
        let ok_name = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !ok_name {
            let msg = format!("workspace.service name {name:?} must be lower-case letters, digits, `_` or `-` (at most 32)");
            ck.at(Some(r.name.span()), None, msg);
        }
        let prefix = |n: &str| n.to_ascii_uppercase().replace('-', "_");
        if out.iter().any(|o| prefix(&o.name) == prefix(&name)) {
            let msg = format!(
                "workspace.service {name:?} is named twice (`-` and `_` are one in its variables)"
            );
            ck.at(Some(r.name.span()), None, msg);
        }
        for k in r.env.keys() {
            let ok = k
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                let msg = format!("workspace.service {name:?}: env {k:?} is not a variable name");
                ck.at(Some(r.name.span()), None, msg);
            } else if crate::container::ENGINE_VARS.contains(&k.as_str()) {
                // It would reach the engine's own client, which starts the service.
                let msg = format!("workspace.service {name:?}: env {k:?} is the container engine's own; set it in the image");
                ck.at(Some(r.name.span()), None, msg);
            }
        }
        if r.image.get_ref().trim().is_empty() {
            ck.at(
                Some(r.image.span()),
                None,
                format!("workspace.service {name:?} has no image"),
            );
        }
        let port = match u16::try_from(*r.port.get_ref()) {
            Ok(p) if p > 0 => p,
            _ => {
                let msg = format!(
                    "workspace.service {name:?}: port must be from 1 to 65535, not {}",
                    r.port.get_ref()
                );
                ck.at(Some(r.port.span()), None, msg);
                0
            }
        };
        let ready_timeout = match &r.ready_timeout {
            Some(t) => parse_duration(t.get_ref()).unwrap_or_else(|e| {
                ck.at(
                    Some(t.span()),
                    None,
                    format!("workspace.service {name:?} ready_timeout: {e}"),
                );
                DEFAULT_READY_TIMEOUT
            }),
            None => DEFAULT_READY_TIMEOUT,
        };
        if let Some(h) = r
            .healthcheck
            .as_ref()
            .filter(|h| h.get_ref().trim().is_empty())
        {
            ck.at(
                Some(h.span()),
                None,
                format!("workspace.service {name:?} has an empty healthcheck"),
            );
        }
        out.push(Service {
            name,
            image: r.image.get_ref().clone(),
            port,
            env: r.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            command: r.command.clone().unwrap_or_default(),
            healthcheck: r.healthcheck.as_ref().map(|h| h.get_ref().clone()),
            url: r.url.as_ref().map(|u| u.get_ref().clone()),
            ready_timeout,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> (Vec<Service>, Vec<String>) {
        #[derive(Deserialize)]
        struct T {
            service: Vec<Spanned<RawService>>,
        }
        let t: T = toml::from_str(text).unwrap();
        let mut ck = Checker::new(text);
        let s = check_services(&mut ck, &t.service);
        (s, ck.diags.into_iter().map(|d| d.message).collect())
    }

    #[test]
    fn a_service_has_a_name_an_image_and_a_port() {
        let (s, e) = check("[[service]]\nname = \"db-main\"\nimage = \"postgres:16\"\nport = 5432\nenv = { POSTGRES_PASSWORD = \"pw\" }\nurl = \"postgres://postgres:pw@{host}:{port}/postgres\"\n");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(s[0].var_prefix(), "BATON_SERVICE_DB_MAIN");
        assert_eq!(
            (s[0].port, s[0].ready_timeout),
            (5432, DEFAULT_READY_TIMEOUT)
        );
        for (text, want) in [
            ("name = \"DB\"\nimage = \"a\"\nport = 1", "lower-case"),
            ("name = \"db\"\nimage = \"\"\nport = 1", "no image"),
            ("name = \"db\"\nimage = \"a\"\nport = 70000", "port must be"),
            (
                "name = \"db\"\nimage = \"a\"\nport = 1\nready_timeout = \"soon\"",
                "ready_timeout",
            ),
        ] {
            let (_, e) = check(&format!("[[service]]\n{text}\n"));
            assert!(e.iter().any(|m| m.contains(want)), "{text}: {e:?}");
        }
        let twice = "[[service]]\nname = \"db\"\nimage = \"a\"\nport = 1\n[[service]]\nname = \"db\"\nimage = \"b\"\nport = 2\n";
        assert!(check(twice).1.iter().any(|m| m.contains("twice")));
        let alike = twice
            .replacen("\"db\"", "\"db-a\"", 1)
            .replacen("\"db\"", "\"db_a\"", 1);
        assert!(
            check(&alike).1.iter().any(|m| m.contains("twice")),
            "{alike}"
        );
        let bad_env =
            "[[service]]\nname = \"db\"\nimage = \"a\"\nport = 1\nenv = { \"A=B\" = \"x\" }\n";
        assert!(check(bad_env)
            .1
            .iter()
            .any(|m| m.contains("not a variable name")));
    }
}
