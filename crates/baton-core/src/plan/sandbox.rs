//! A profile's sandbox (`sandbox = "bwrap"` or `"container"`, `network`,
//! `hide`, `memory`, `pids`), as the plan says it; `crate::sandbox` builds
//! bubblewrap's, `crate::container` a container's.

use super::parse_size;

/// What an agent may reach over the network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Network {
    #[default]
    On,
    Off,
    /// Only these `host:port`s, through baton's proxy.
    Allow(Vec<String>),
}

/// Paths hidden from every sandboxed agent unless the profile says
/// otherwise (`~` is the agent's home).
pub const DEFAULT_HIDE: &[&str] = &["~/.ssh", "~/.aws", "~/.gnupg", "~/.config/gh"];

/// What walls the agent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wall {
    /// bubblewrap: the host's own files, read-only but for the desk.
    #[default]
    Bwrap,
    /// A container of the project's image (`[container]`), by Podman or Docker.
    Container,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub wall: Wall,
    pub network: Network,
    pub hide: Vec<String>,
    /// Bytes of memory the agent (its whole process tree) may use.
    pub memory: Option<u64>,
    /// Processes it may have at once.
    pub pids: Option<u32>,
}

impl Network {
    /// This network, also reaching `hosts` (the model gateway, a task's own
    /// services) where it is closed: "off" becomes only them, a list gets
    /// them, "on" reaches them already.
    pub fn reaching(self, hosts: &[String]) -> Network {
        match self {
            Network::Off if !hosts.is_empty() => Network::Allow(hosts.to_vec()),
            Network::Allow(mut list) => {
                list.extend(hosts.iter().cloned());
                Network::Allow(list)
            }
            other => other,
        }
    }
}

/// Reads `network`: "on", "off" or a list of "host:port".
pub fn parse_network(v: &toml::Value) -> Result<Network, String> {
    match v {
        toml::Value::String(s) if s == "on" => Ok(Network::On),
        toml::Value::String(s) if s == "off" => Ok(Network::Off),
        toml::Value::Array(items) => {
            let mut hosts = Vec::new();
            for item in items {
                let Some(h) = item.as_str() else {
                    return Err(format!("network: {item} is not a \"host:port\" string"));
                };
                let ok = h.rsplit_once(':').is_some_and(|(host, port)| {
                    host_name_ok(host) && port.parse::<u16>().is_ok_and(|p| p > 0)
                });
                if !ok {
                    return Err(format!(
                        "network: {h:?} is not \"host:port\" with a host name or address (e.g. \"api.anthropic.com:443\"; no wildcards)"
                    ));
                }
                let h = h.to_ascii_lowercase();
                if hosts.contains(&h) {
                    return Err(format!("network: {h:?} is listed twice"));
                }
                hosts.push(h);
            }
            Ok(Network::Allow(hosts))
        }
        other => Err(format!(
            "network must be \"on\", \"off\" or a list of \"host:port\", not {other}"
        )),
    }
}

/// A host as the proxy matches it: a name or an address, nothing else.
fn host_name_ok(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
}

/// Less than this is no memory for an agent CLI: a typo, not a limit.
pub const MIN_MEMORY: u64 = 16 << 20;

/// A hidden path is absolute (or under `~/`) and not a whole tree the
/// sandbox needs (`/`, `/usr`...).
fn hide_problem(h: &str) -> Option<String> {
    let path = h.strip_prefix("~/").unwrap_or(h);
    if h.contains('\0') {
        return Some(format!("hide: {h:?} holds a NUL"));
    }
    if !(h.starts_with('/') || h.starts_with("~/")) || path.is_empty() {
        return Some(format!(
            "hide: {h:?} must be an absolute path or one under ~/ (e.g. \"~/.ssh\")"
        ));
    }
    let norm = h.trim_end_matches('/');
    let vital = [
        "", "/usr", "/bin", "/lib", "/lib64", "/etc", "/proc", "/dev", "/tmp", "~",
    ];
    if vital.contains(&norm) || norm.split('/').any(|p| p == "..") {
        return Some(format!(
            "hide: {h:?} would hide what every program needs; name the secrets' own directories"
        ));
    }
    None
}

/// The sandbox of a profile from its fields (`mode`: "bwrap", "container"
/// or "off").
pub fn parse(
    mode: Option<&str>,
    network: Option<&toml::Value>,
    hide: Option<&[String]>,
    memory: Option<&str>,
    pids: Option<i64>,
) -> Result<Option<Sandbox>, String> {
    let wall = match mode {
        None | Some("off") => None,
        Some("bwrap") => Some(Wall::Bwrap),
        Some("container") => Some(Wall::Container),
        Some(other) => {
            return Err(format!(
                "sandbox must be \"bwrap\", \"container\" or \"off\", not {other:?}"
            ))
        }
    };
    let Some(wall) = wall else {
        let set: Vec<&str> = [
            network.map(|_| "network"),
            hide.map(|_| "hide"),
            memory.map(|_| "memory"),
            pids.map(|_| "pids"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(first) = set.first() {
            return Err(format!(
                "{first} needs a sandbox (sandbox = \"bwrap\" or \"container\")"
            ));
        }
        return Ok(None);
    };
    let network = network.map(parse_network).transpose()?.unwrap_or_default();
    let hide = match hide {
        Some(h) => h.to_vec(),
        None => DEFAULT_HIDE.iter().map(|s| s.to_string()).collect(),
    };
    if let Some(problem) = hide.iter().find_map(|h| hide_problem(h)) {
        return Err(problem);
    }
    let memory = memory
        .map(parse_size)
        .transpose()
        .map_err(|e| format!("memory: {e}"))?;
    if let Some(m) = memory.filter(|m| *m < MIN_MEMORY) {
        return Err(format!(
            "memory: {m} bytes is too little for an agent (at least 16M; write it like \"4G\")"
        ));
    }
    let pids = match pids {
        Some(n) if !(1..=1_000_000).contains(&n) => {
            return Err(format!("pids must be at least 1, not {n}"))
        }
        Some(n) => Some(n as u32),
        None => None,
    };
    Ok(Some(Sandbox {
        wall,
        network,
        hide,
        memory,
        pids,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> toml::Value {
        toml::from_str::<toml::Table>(&format!("x = {s}")).unwrap()["x"].clone()
    }

    #[test]
    fn network_is_on_off_or_host_ports() {
        assert_eq!(parse_network(&v("\"off\"")).unwrap(), Network::Off);
        assert_eq!(
            parse_network(&v("[\"API.example.com:443\", \"127.0.0.1:8080\"]")).unwrap(),
            Network::Allow(vec!["api.example.com:443".into(), "127.0.0.1:8080".into()])
        );
        assert!(parse_network(&v("[\"example.com\"]"))
            .unwrap_err()
            .contains("host:port"));
        assert!(parse_network(&v("[\"example.com:0\"]")).is_err());
        assert!(parse_network(&v("[\"*:443\"]")).is_err());
        assert!(parse_network(&v("[\"a.io:443\", \"A.io:443\"]"))
            .unwrap_err()
            .contains("twice"));
        assert!(parse_network(&v("\"sometimes\"")).is_err());
    }

    #[test]
    fn a_closed_network_also_reaches_what_the_attempt_needs() {
        let gw = vec!["127.0.0.1:9000".to_string()];
        assert_eq!(Network::Off.reaching(&gw), Network::Allow(gw.clone()));
        assert_eq!(Network::Off.reaching(&[]), Network::Off);
        assert_eq!(Network::On.reaching(&gw), Network::On);
        let list = Network::Allow(vec!["a.io:443".into()]);
        assert_eq!(
            list.reaching(&gw),
            Network::Allow(vec!["a.io:443".into(), "127.0.0.1:9000".into()])
        );
    }

    #[test]
    fn a_sandbox_is_off_unless_asked_and_its_options_need_it() {
        assert_eq!(parse(None, None, None, None, None).unwrap(), None);
        assert_eq!(parse(Some("off"), None, None, None, None).unwrap(), None);
        let e = parse(None, Some(&v("\"off\"")), None, None, None).unwrap_err();
        assert_eq!(
            e,
            "network needs a sandbox (sandbox = \"bwrap\" or \"container\")"
        );
        let c = parse(Some("container"), Some(&v("\"off\"")), None, None, None);
        assert_eq!(c.unwrap().unwrap().wall, Wall::Container);
        let s = parse(Some("bwrap"), None, None, Some("2G"), Some(64))
            .unwrap()
            .unwrap();
        assert_eq!(s.network, Network::On);
        assert_eq!(s.hide.len(), DEFAULT_HIDE.len());
        assert_eq!((s.memory, s.pids), (Some(2 << 30), Some(64)));
        assert!(parse(Some("docker"), None, None, None, None).is_err());
        assert!(parse(Some("bwrap"), None, None, None, Some(0)).is_err());
        assert!(parse(Some("bwrap"), None, None, Some("1K"), None).is_err());
        for bad in ["/", "relative", "~", "/usr/", "~/../x"] {
            let hide = [bad.to_string()];
            assert!(
                parse(Some("bwrap"), None, Some(&hide), None, None).is_err(),
                "{bad}"
            );
        }
        let fine = ["~/.ssh".to_string(), "/srv/keys".to_string()];
        assert!(parse(Some("bwrap"), None, Some(&fine), None, None).is_ok());
    }
}
