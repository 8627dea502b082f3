//! `[executor]`: where attempts run. `local` is baton's own process groups
//! on this machine; a remote executor ([`Remote`]) runs them elsewhere:
//! `kubernetes` makes each attempt a Job on a cluster; `ssh` runs it on one
//! of a list of machines ([`super::ssh`]). A profile may say
//! `executor = "local"` or the remote's kind to override the plan's
//! choice, so quick tasks stay local and heavy ones go elsewhere.

use super::error::Checker;
use super::raw::RawExecutor;
use super::ssh::Ssh;
use crate::duration::parse_duration;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Where one profile's attempts run.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Executor {
    #[default]
    Local,
    Remote(Arc<Remote>),
}

impl Executor {
    pub fn name(&self) -> &'static str {
        match self {
            Executor::Local => "local",
            Executor::Remote(r) => r.kind(),
        }
    }
}

/// An executor that runs attempts away from baton's process groups, with
/// its settings. Each attempt there is followed by a process of baton's
/// own here (`baton __follow`), which the binary's driver for the kind
/// runs; the attempt itself is `baton __pod-attempt` over there.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
// Outside baton-core a match on it has an arm for the others, so that a
// new executor's variant does not change another executor's driver.
#[non_exhaustive]
pub enum Remote {
    Kubernetes(Box<Kubernetes>),
    Ssh(Ssh),
}

impl Remote {
    /// Its `executor.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Remote::Kubernetes(_) => "kubernetes",
            Remote::Ssh(_) => "ssh",
        }
    }

    /// Whether a profile's `executor = "name"` means this one.
    fn is_named(&self, name: &str) -> bool {
        match self {
            Remote::Kubernetes(_) => matches!(name, "kubernetes" | "k8s"),
            Remote::Ssh(_) => name == "ssh",
        }
    }

    /// Where it is, for `baton doctor`'s heading.
    pub fn title(&self) -> String {
        match self {
            Remote::Kubernetes(k) => format!(
                "cluster (executor \"kubernetes\", namespace {})",
                k.namespace
            ),
            Remote::Ssh(s) => format!("SSH hosts (executor \"ssh\", {} host(s))", s.hosts.len()),
        }
    }

    /// Where an agent's CLI comes from there.
    pub fn holds_the_cli(&self) -> &'static str {
        match self {
            Remote::Kubernetes(_) => "the cluster's image",
            Remote::Ssh(_) => "each host's PATH",
        }
    }

    /// How long an attempt there has to commit and push once told to end.
    pub fn grace(&self) -> Duration {
        match self {
            Remote::Kubernetes(k) => k.grace,
            Remote::Ssh(s) => s.grace,
        }
    }

    /// A git remote both baton and the attempt reach, used instead of
    /// baton's own git door.
    pub fn git_remote(&self) -> Option<&str> {
        match self {
            Remote::Kubernetes(k) => k.remote.as_deref(),
            Remote::Ssh(_) => None,
        }
    }
}

/// A cluster and how attempts' Jobs are made on it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Kubernetes {
    pub namespace: String,
    /// Holds git, the agent's CLI and baton.
    pub image: String,
    /// baton inside the image.
    pub baton: String,
    /// Requests and limits of the agent's container (`cpu`, `memory`).
    pub resources: BTreeMap<String, String>,
    pub service_account: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    /// Secrets whose keys become the container's environment (API keys):
    /// the Job spec never holds a key.
    pub env_from: Vec<String>,
    /// Host paths mounted into the pod (`"/host"`, `"/host:/in/pod"`,
    /// `"/host:/in/pod:rw"`; read-only unless `rw`).
    pub mounts: Vec<Mount>,
    /// Pods share the node's network (a one-node cluster on loopback).
    pub host_network: bool,
    /// How long a pod has to commit and push after SIGTERM.
    #[serde(with = "secs")]
    pub grace: Duration,
    /// Where baton offers the repository to pods (`host:port`, port 0:
    /// any free one), and the host pods use to reach it.
    pub git_listen: String,
    pub git_host: Option<String>,
    /// A remote both baton and the pods reach, used instead of baton's own
    /// git endpoint.
    pub remote: Option<String>,
    /// The kubeconfig and context (default: `$KUBECONFIG`, `~/.kube/config`).
    pub kubeconfig: Option<String>,
    pub context: Option<String>,
    /// Pods kept running while the run goes on, each waiting for an
    /// attempt to claim it (0: every attempt makes its Job).
    #[serde(default)]
    pub warm: u32,
    /// A warm pod whose attempt is over takes the run's next one (tidied:
    /// every process it left killed, its worktree gone) instead of ending.
    #[serde(default)]
    pub reuse: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    pub host: String,
    pub pod: String,
    pub writable: bool,
}

impl Mount {
    /// `"/host"`, `"/host:/in/pod"` or `"/host:/in/pod:rw"` (or `:ro`).
    pub fn parse(s: &str) -> Result<Mount, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (host, pod, mode) = match parts.as_slice() {
            [h] => (*h, *h, "ro"),
            [h, p] => (*h, *p, "ro"),
            [h, p, m] => (*h, *p, *m),
            _ => return Err("too many `:`".into()),
        };
        if !host.starts_with('/') || !pod.starts_with('/') {
            return Err("name absolute paths, \"/host\" or \"/host:/in/pod\"".into());
        }
        let writable = match mode {
            "ro" => false,
            "rw" => true,
            other => return Err(format!("the mode is \"ro\" or \"rw\", not {other:?}")),
        };
        Ok(Mount {
            host: host.into(),
            pod: pod.into(),
            writable,
        })
    }
}

/// The default executor of the plan's profiles and the cluster, if any.
#[derive(Debug, Clone, Default)]
pub struct ExecutorSettings {
    pub default: Executor,
    /// The remote executor `[executor]` describes, if any.
    pub remote: Option<Arc<Remote>>,
}

const DEFAULT_GRACE: Duration = Duration::from_secs(30);

pub(super) fn check_executor(ck: &mut Checker, raw: &RawExecutor) -> ExecutorSettings {
    let kind = raw.kind.as_ref().map(|k| k.get_ref().as_str());
    let at = raw.kind.as_ref().map(|k| k.span());
    let wants_hosts = raw.hosts.is_some() || kind == Some("ssh");
    let wants_cluster = raw.image.is_some() || matches!(kind, Some("kubernetes" | "k8s"));
    if wants_hosts && wants_cluster {
        let msg =
            "[executor] describes either SSH hosts (`hosts`) or a cluster (`image`), not both"
                .to_string();
        ck.at(at.clone(), None, msg);
    }
    let remote = if wants_hosts {
        Some(Arc::new(Remote::Ssh(check_ssh(ck, raw))))
    } else {
        wants_cluster.then(|| Arc::new(Remote::Kubernetes(Box::new(check_kubernetes(ck, raw)))))
    };
    let default = match (kind, &remote) {
        (None | Some("local"), _) => Executor::Local,
        (Some(name), Some(r)) if r.is_named(name) => Executor::Remote(r.clone()),
        (Some(other), _) => {
            let msg = format!(
                "executor.kind must be \"local\", \"kubernetes\" or \"ssh\", not {other:?}"
            );
            ck.at(at, None, msg);
            Executor::Local
        }
    };
    ExecutorSettings { default, remote }
}

fn check_grace(ck: &mut Checker, raw: &RawExecutor) -> Duration {
    match &raw.grace {
        Some(g) => parse_duration(g.get_ref()).unwrap_or_else(|e| {
            ck.at(Some(g.span()), None, format!("executor.grace: {e}"));
            DEFAULT_GRACE
        }),
        None => DEFAULT_GRACE,
    }
}

/// `warm`: how many pods are kept waiting (0 to 64).
fn check_warm(ck: &mut Checker, raw: &RawExecutor) -> u32 {
    match &raw.warm {
        Some(w) if (0..=64).contains(w.get_ref()) => *w.get_ref() as u32,
        Some(w) => {
            let msg = format!("executor.warm is from 0 to 64, not {}", w.get_ref());
            ck.at(Some(w.span()), None, msg);
            0
        }
        None => 0,
    }
}

/// `reuse`: only for warm pods (there are none to reuse without them).
fn check_reuse(ck: &mut Checker, raw: &RawExecutor, warm: u32) -> bool {
    let Some(r) = &raw.reuse else {
        return false;
    };
    if *r.get_ref() && warm == 0 {
        let msg =
            "executor.reuse hands a warm pod the run's next attempt: set warm = N too".to_string();
        ck.at(Some(r.span()), None, msg);
    }
    *r.get_ref()
}

fn check_ssh(ck: &mut Checker, raw: &RawExecutor) -> Ssh {
    let at = raw.kind.as_ref().map(|k| k.span());
    if let Some(w) = &raw.warm {
        let msg = "executor.warm keeps pods on a cluster; SSH hosts start each attempt at once"
            .to_string();
        ck.at(Some(w.span()), None, msg);
    }
    if let Some(r) = &raw.reuse {
        let msg =
            "executor.reuse is for warm pods on a cluster; an SSH host's attempts each start anew"
                .to_string();
        ck.at(Some(r.span()), None, msg);
    }
    let hosts = super::ssh::check_hosts(ck, raw.hosts.as_ref(), at);
    Ssh {
        hosts,
        config: raw.ssh_config.clone(),
        grace: check_grace(ck, raw),
        baton: raw.baton.clone(),
    }
}

fn check_kubernetes(ck: &mut Checker, raw: &RawExecutor) -> Kubernetes {
    let image = match &raw.image {
        Some(i) if !i.get_ref().trim().is_empty() => i.get_ref().clone(),
        _ => {
            let at = raw.kind.as_ref().map(|k| k.span());
            let msg = "executor \"kubernetes\" needs `image`: one that holds git, the agent's CLI and baton (see docs/kubernetes.md)".to_string();
            ck.at(at, None, msg);
            String::new()
        }
    };
    let mut resources = BTreeMap::new();
    for (key, val) in [("cpu", &raw.cpu), ("memory", &raw.memory)] {
        if let Some(v) = val {
            if !is_quantity(v.get_ref()) {
                let msg = format!(
                    "executor.{key} {:?} is not a Kubernetes quantity (e.g. \"2\", \"500m\", \"4Gi\")",
                    v.get_ref()
                );
                ck.at(Some(v.span()), None, msg);
            }
            resources.insert(key.to_string(), v.get_ref().clone());
        }
    }
    let mut mounts = Vec::new();
    for m in raw.mounts.iter().flat_map(|m| m.get_ref().iter()) {
        match Mount::parse(m) {
            Ok(mount) => mounts.push(mount),
            Err(why) => {
                let at = raw.mounts.as_ref().map(|m| m.span());
                ck.at(at, None, format!("executor.mounts {m:?}: {why}"));
            }
        }
    }
    let grace = check_grace(ck, raw);
    let git_listen = raw
        .git_listen
        .as_ref()
        .map(|l| l.get_ref().clone())
        .unwrap_or_else(|| "127.0.0.1:0".into());
    if git_listen.parse::<std::net::SocketAddr>().is_err() {
        let at = raw.git_listen.as_ref().map(|l| l.span());
        let msg =
            format!("executor.git_listen {git_listen:?} is not an address like \"0.0.0.0:7430\"");
        ck.at(at, None, msg);
    }
    let warm = check_warm(ck, raw);
    Kubernetes {
        namespace: raw.namespace.clone().unwrap_or_else(|| "default".into()),
        image,
        baton: raw.baton.clone().unwrap_or_else(|| "baton".into()),
        resources,
        service_account: raw.service_account.clone(),
        node_selector: raw.node_selector.clone().unwrap_or_default(),
        env_from: raw.env_from.clone().unwrap_or_default(),
        mounts,
        host_network: raw.host_network.unwrap_or(false),
        grace,
        git_listen,
        git_host: raw.git_host.clone(),
        remote: raw.remote.clone(),
        kubeconfig: raw.kubeconfig.clone(),
        context: raw.context.clone(),
        warm,
        reuse: check_reuse(ck, raw, warm),
    }
}

/// A profile's `executor`, given the plan's settings.
pub(super) fn profile_executor(
    ck: &mut Checker,
    settings: &ExecutorSettings,
    field: Option<&toml::Spanned<String>>,
    subject: &Option<String>,
) -> Executor {
    let Some(f) = field else {
        return settings.default.clone();
    };
    match (f.get_ref().as_str(), &settings.remote) {
        ("local", _) => Executor::Local,
        (name, Some(r)) if r.is_named(name) => Executor::Remote(r.clone()),
        ("kubernetes" | "k8s", _) => {
            let msg = "executor \"kubernetes\" needs the cluster described in [executor] (at least `image`)".to_string();
            ck.at(Some(f.span()), subject.clone(), msg);
            Executor::Local
        }
        ("ssh", _) => {
            let msg = "executor \"ssh\" needs the hosts listed in [executor] (`hosts`)".to_string();
            ck.at(Some(f.span()), subject.clone(), msg);
            Executor::Local
        }
        (other, _) => {
            let msg =
                format!("executor must be \"local\", \"kubernetes\" or \"ssh\", not {other:?}");
            ck.at(Some(f.span()), subject.clone(), msg);
            Executor::Local
        }
    }
}

pub(super) mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// `2`, `0.5`, `500m`, `4Gi`, `1e3`: what Kubernetes takes for cpu and memory.
fn is_quantity(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    let known = [
        "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    !digits.is_empty() && digits.parse::<f64>().is_ok_and(|n| n >= 0.0) && known.contains(&suffix)
}

#[cfg(test)]
mod tests {
    use super::is_quantity;

    #[test]
    fn mounts_are_read_only_unless_they_say_rw() {
        use super::Mount;
        let m = Mount::parse("/opt/tools").unwrap();
        assert_eq!(
            (m.host.as_str(), m.pod.as_str(), m.writable),
            ("/opt/tools", "/opt/tools", false)
        );
        let m = Mount::parse("/srv/git:/git:rw").unwrap();
        assert_eq!(
            (m.host.as_str(), m.pod.as_str(), m.writable),
            ("/srv/git", "/git", true)
        );
        assert!(Mount::parse("opt").is_err());
        assert!(Mount::parse("/a:/b:rx").is_err());
        assert!(Mount::parse("/a:/b:rw:x").is_err());
    }

    #[test]
    fn quantities_kubernetes_takes_and_some_it_does_not() {
        for ok in ["2", "0.5", "500m", "4Gi", "128Mi", "1G"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "two", "4GB", "-1", "m"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
