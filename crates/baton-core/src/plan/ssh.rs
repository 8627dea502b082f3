//! `[executor] kind = "ssh"`: machines reached with the system `ssh`
//! client, each with a number of slots (attempts at once) and labels a
//! profile's `host_labels` pick by. A host is an `ssh_config` alias or
//! `[user@]host[:port]` as a string, or a table:
//!
//! ```toml
//! [executor]
//! kind = "ssh"
//! hosts = [
//!   "mini",                                   # an ssh_config alias
//!   { host = "10.0.0.7", user = "ci", port = 2222, slots = 4, labels = ["gpu"] },
//! ]
//! ```

use super::error::Checker;
use std::time::Duration;

/// The hosts of an SSH executor and how baton reaches them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ssh {
    pub hosts: Vec<SshHost>,
    /// An ssh_config file given to every `ssh` (`-F`); None: the user's.
    pub config: Option<String>,
    /// How long an attempt there has to commit and push once told to end.
    #[serde(with = "super::executor::secs")]
    pub grace: Duration,
    /// baton on the hosts; None: this baton, copied on first use (by hash).
    pub baton: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SshHost {
    /// How baton names it (placement, logs, `baton doctor`): unique.
    pub name: String,
    /// What `ssh` is given: a host name, an address or an ssh_config alias.
    pub host: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// Attempts it runs at once.
    pub slots: u32,
    pub labels: Vec<String>,
    /// Where attempts work there (default `~/.cache/baton`); relative to
    /// the remote home unless absolute.
    pub dir: Option<String>,
}

pub const DEFAULT_SLOTS: u32 = 2;

impl Ssh {
    pub fn host(&self, name: &str) -> Option<&SshHost> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

impl SshHost {
    /// Whether it carries every one of `labels`.
    pub fn has_labels(&self, labels: &[String]) -> bool {
        labels.iter().all(|l| self.labels.contains(l))
    }
}

/// `[user@]host[:port]` (an ssh_config alias is a host without either).
fn parse_address(s: &str) -> Result<(Option<String>, String, Option<u16>), String> {
    let (user, rest) = match s.split_once('@') {
        Some((u, r)) => (Some(u.to_string()), r),
        None => (None, s),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("{p:?} is not a port"))?;
            (h.to_string(), Some(port))
        }
        _ => (rest.to_string(), None),
    };
    if host.trim().is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
        return Err("name a host (an ssh_config alias, or [user@]host[:port])".into());
    }
    if user
        .as_deref()
        .is_some_and(|u| u.is_empty() || u.starts_with('-'))
    {
        return Err("the user before `@` is empty or starts with `-`".into());
    }
    Ok((user, host, port))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    host: String,
    name: Option<String>,
    user: Option<String>,
    port: Option<u16>,
    slots: Option<i64>,
    #[serde(default)]
    labels: Vec<String>,
    dir: Option<String>,
}

fn one_host(value: &toml::Value) -> Result<SshHost, String> {
    let raw = match value {
        toml::Value::String(s) => RawHost {
            host: s.clone(),
            name: None,
            user: None,
            port: None,
            slots: None,
            labels: Vec::new(),
            dir: None,
        },
        toml::Value::Table(_) => value
            .clone()
            .try_into::<RawHost>()
            .map_err(|e| e.message().to_string())?,
        other => {
            return Err(format!(
                "a host is a string or a table, not {}",
                other.type_str()
            ))
        }
    };
    let (user, host, port) = parse_address(&raw.host)?;
    let user = raw.user.or(user);
    let port = raw.port.or(port);
    let slots = match raw.slots {
        None => DEFAULT_SLOTS,
        Some(n) if (1..=256).contains(&n) => n as u32,
        Some(n) => return Err(format!("slots is from 1 to 256, not {n}")),
    };
    let name = raw.name.unwrap_or_else(|| {
        let user = user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("{user}{host}{port}")
    });
    Ok(SshHost {
        name,
        host,
        user,
        port,
        slots,
        labels: raw.labels,
        dir: raw.dir,
    })
}

/// `[executor] hosts`, checked: each host, names unique, at least one.
pub(super) fn check_hosts(
    ck: &mut Checker,
    hosts: Option<&toml::Spanned<Vec<toml::Value>>>,
    at: Option<std::ops::Range<usize>>,
) -> Vec<SshHost> {
    let Some(list) = hosts else {
        let msg = "executor \"ssh\" needs `hosts`: ssh_config aliases or { host, user, port, slots, labels } (see docs/ssh.md)".to_string();
        ck.at(at, None, msg);
        return Vec::new();
    };
    let mut out: Vec<SshHost> = Vec::new();
    for (i, v) in list.get_ref().iter().enumerate() {
        match one_host(v) {
            Ok(h) if out.iter().any(|o| o.name == h.name) => {
                let msg = format!(
                    "executor.hosts: {:?} is named twice (give one a `name`)",
                    h.name
                );
                ck.at(Some(list.span()), None, msg);
            }
            Ok(h) => out.push(h),
            Err(why) => {
                let msg = format!("executor.hosts[{i}]: {why}");
                ck.at(Some(list.span()), None, msg);
            }
        }
    }
    if list.get_ref().is_empty() {
        let msg = "executor.hosts is empty: name at least one host".to_string();
        ck.at(Some(list.span()), None, msg);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(toml_text: &str) -> Result<SshHost, String> {
        let v: toml::Value = toml::from_str(&format!("h = {toml_text}")).unwrap();
        one_host(&v["h"])
    }

    #[test]
    fn a_host_is_an_alias_an_address_or_a_table() {
        let h = host(r#""mini""#).unwrap();
        assert_eq!(
            (h.name.as_str(), h.user, h.port, h.slots),
            ("mini", None, None, DEFAULT_SLOTS)
        );
        let h = host(r#""ci@10.0.0.7:2222""#).unwrap();
        assert_eq!(
            (h.name.as_str(), h.host.as_str(), h.user.as_deref(), h.port),
            ("ci@10.0.0.7:2222", "10.0.0.7", Some("ci"), Some(2222))
        );
        let h = host(r#"{ host = "box", port = 22, slots = 4, labels = ["gpu"], name = "b" }"#)
            .unwrap();
        assert_eq!((h.name.as_str(), h.slots), ("b", 4));
        assert!(h.has_labels(&["gpu".into()]) && !h.has_labels(&["mac".into()]));
    }

    #[test]
    fn bad_hosts_say_what_is_wrong() {
        for (bad, says) in [
            (r#""""#, "name a host"),
            (r#""-oProxyCommand=x""#, "name a host"),
            (r#""box:port""#, "not a port"),
            (r#"{ host = "box", slots = 0 }"#, "slots is from 1"),
            (r#"{ host = "box", cores = 2 }"#, "unknown field"),
            ("3", "a string or a table"),
        ] {
            let err = host(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
