//! One attempt's container, drawn once and started for each command (the
//! agent, each gate): `podman run` (or `docker run`) arguments that bind
//! the desk at its own path and nothing of the host but what is named,
//! with the profile's limits and network, labelled with the run.

use super::Engine;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// A host path seen inside at the same place (or at `inside`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub host: PathBuf,
    pub inside: PathBuf,
    pub writable: bool,
}

/// What every container of one sandbox is made of.
#[derive(Debug, Default)]
pub struct Cell {
    pub program: String,
    pub image: String,
    /// Each command's container is named this, then a number.
    pub name: String,
    /// `key=value` each.
    pub labels: Vec<String>,
    pub workdir: PathBuf,
    pub binds: Vec<Bind>,
    /// Directories that are empty and private inside (a home whose CLI
    /// state alone is bound in).
    pub tmpfs: Vec<PathBuf>,
    /// Variables passed by name: their values stay off the command line.
    pub env_names: Vec<OsString>,
    /// Variables of the container itself (`containerEnv`).
    pub env: Vec<(String, String)>,
    pub network_off: bool,
    pub memory: Option<u64>,
    pub pids: Option<u32>,
    pub cpus: Option<f64>,
    pub user: Option<String>,
    /// `--userns` (rootless Podman with a user of the image: `keep-id`).
    pub userns: Option<String>,
    /// The engine client's own settings where the attempt's differ (its
    /// HOME, XDG_*: where a rootless engine keeps its images): set back to
    /// baton's (Some) or unset (None) for the client; the container gets
    /// the attempt's through `env`.
    pub client_env: Vec<(OsString, Option<OsString>)>,
    /// (port on 127.0.0.1 of the host, port inside)
    pub publish: Vec<(u16, u16)>,
    /// Run before the command, in the same container (`postStartCommand`).
    pub before: Vec<String>,
    /// Words the command runs under (the network bridge), ending in `--`.
    pub prefix: Vec<OsString>,
    pub ulimits: Vec<String>,
    started: AtomicU32,
    names: Mutex<Vec<String>>,
}

impl Cell {
    pub fn new(engine: &Engine, image: String, name: String) -> Cell {
        Cell {
            program: engine.program.clone(),
            image,
            name,
            ulimits: super::runtime::ulimits(),
            ..Cell::default()
        }
    }

    /// `program args` in a new container of this cell.
    pub fn command(&self, program: OsString, args: Vec<OsString>) -> (OsString, Vec<OsString>) {
        let n = self.started.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{n}", self.name);
        if let Ok(mut names) = self.names.lock() {
            names.push(name.clone());
        }
        let mut a = self.run_args(&name);
        if !self.before.is_empty() {
            // One command a line: a comment or a `&` in one ends only it.
            let script = format!("set -e\n{}\nexec \"$@\"", self.before.join("\n"));
            a.extend(["sh".into(), "-c".into(), script.into(), "sh".into()]);
        }
        a.extend(self.prefix.iter().cloned());
        a.push(program);
        a.extend(args);
        if self.client_env.is_empty() {
            return (self.program.clone().into(), a);
        }
        // `env`'s options (`-u`) come before its assignments.
        let mut env: Vec<OsString> = Vec::new();
        for (k, v) in &self.client_env {
            if v.is_none() {
                env.extend(["-u".into(), k.clone()]);
            }
        }
        for (k, v) in &self.client_env {
            if let Some(v) = v {
                let mut kv = k.clone();
                kv.push("=");
                kv.push(v);
                env.push(kv);
            }
        }
        env.push(self.program.clone().into());
        env.extend(a);
        ("env".into(), env)
    }

    /// Every container this cell started (to remove what a kill left).
    pub fn names(&self) -> Vec<String> {
        self.names.lock().map(|n| n.clone()).unwrap_or_default()
    }

    fn run_args(&self, name: &str) -> Vec<OsString> {
        let mut a: Vec<String> = vec![
            "run".into(),
            "--rm".into(),
            "--interactive".into(),
            "--init".into(),
            format!("--name={name}"),
            "--security-opt=no-new-privileges".into(),
        ];
        a.extend(self.labels.iter().map(|l| format!("--label={l}")));
        a.extend(self.ulimits.iter().cloned());
        if self.network_off {
            a.push("--network=none".into());
        }
        for (host, inside) in &self.publish {
            a.push(format!("--publish=127.0.0.1:{host}:{inside}"));
        }
        if let Some(m) = self.memory {
            // No swap beyond it: the limit is the memory it gets.
            a.extend([format!("--memory={m}b"), format!("--memory-swap={m}b")]);
        }
        if let Some(p) = self.pids {
            a.push(format!("--pids-limit={p}"));
        }
        if let Some(c) = self.cpus {
            a.push(format!("--cpus={c}"));
        }
        if let Some(u) = &self.user {
            a.push(format!("--user={u}"));
        }
        if let Some(u) = &self.userns {
            a.push(format!("--userns={u}"));
        }
        // Programs run from them (a test binary under $TMPDIR): not noexec.
        a.push("--tmpfs=/tmp:rw,exec,mode=1777".into());
        for t in &self.tmpfs {
            a.push(format!("--tmpfs={}:rw,exec", t.display()));
        }
        for b in &self.binds {
            let mode = if b.writable { "rw" } else { "ro" };
            a.push(format!(
                "--volume={}:{}:{mode}",
                b.host.display(),
                b.inside.display()
            ));
        }
        a.push("--env=TMPDIR=/tmp".into());
        for (k, v) in &self.env {
            a.push(format!("--env={k}={v}"));
        }
        let mut out: Vec<OsString> = a.into_iter().map(OsString::from).collect();
        for k in &self.env_names {
            let mut flag = OsString::from("--env=");
            flag.push(k);
            out.push(flag);
        }
        let mut wd = OsString::from("--workdir=");
        wd.push(&self.workdir);
        out.push(wd);
        out.push(self.image.clone().into());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(a: &[OsString]) -> String {
        a.iter()
            .map(|s| s.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn a_command_runs_in_a_fresh_labelled_container_of_the_image() {
        let engine = Engine {
            program: "podman".into(),
            version: "podman 4".into(),
            rootless: false,
        };
        let mut c = Cell::new(&engine, "img:1".into(), "baton-r1-t-1".into());
        c.labels = vec!["baton.run=r1".into()];
        c.workdir = "/w/t".into();
        c.binds = vec![Bind {
            host: "/w/t".into(),
            inside: "/w/t".into(),
            writable: true,
        }];
        c.env_names = vec!["ANTHROPIC_API_KEY".into()];
        c.network_off = true;
        c.memory = Some(64 << 20);
        c.before = vec!["make up".into()];
        let (prog, args) = c.command("claude".into(), vec!["-p".into()]);
        let a = text(&args);
        assert_eq!(prog, "podman");
        assert!(
            a.starts_with("run --rm --interactive --init --name=baton-r1-t-1-0 "),
            "{a}"
        );
        for part in [
            "--label=baton.run=r1",
            "--network=none",
            "--memory=67108864b --memory-swap=67108864b",
            "--volume=/w/t:/w/t:rw",
            "--env=ANTHROPIC_API_KEY --workdir=/w/t img:1 sh -c set -e\nmake up\nexec \"$@\" sh claude -p",
        ] {
            assert!(a.contains(part), "{part}: {a}");
        }
        // The key's value never is on the command line.
        assert!(!a.contains("ANTHROPIC_API_KEY="), "{a}");
        let (_, again) = c.command("sh".into(), vec![]);
        assert!(text(&again).contains("--name=baton-r1-t-1-1"));
        assert_eq!(c.names(), ["baton-r1-t-1-0", "baton-r1-t-1-1"]);
        // The engine's client keeps baton's HOME; the container gets the attempt's.
        c.client_env = vec![
            ("HOME".into(), Some("/root".into())),
            ("XDG_DATA_HOME".into(), None),
        ];
        let (prog, args) = c.command("sh".into(), vec![]);
        assert_eq!(prog, "env");
        assert!(
            text(&args).starts_with("-u XDG_DATA_HOME HOME=/root podman run "),
            "{}",
            text(&args)
        );
    }
}
