//! A network namespace of its own for a test's stand-in machine (as root,
//! with `ip` from iproute2): a veth pair joins it to this one, each end
//! with an address of a /30 of its own. Its loopback is its own, so what
//! runs there reaches this machine's loopback (baton's doors, the model
//! server) only through what the test gives it: an SSH tunnel.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Netns {
    name: String,
    /// This side's end of the pair.
    outer: String,
    /// Its address inside, where this machine reaches it.
    pub addr: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Netns {
    /// A new one; None where none can be made (not root, no `ip`, no
    /// veth): the caller's machine then shares this one's network.
    pub fn make() -> Option<Netns> {
        // SAFETY: getuid(2) cannot fail.
        if unsafe { libc::getuid() } != 0 {
            return None;
        }
        let (pid, n) = (
            std::process::id() as usize,
            NEXT.fetch_add(1, Ordering::SeqCst),
        );
        // A /30 per namespace, apart from every other test process's.
        let base = ((pid * 16 + n % 16) % (1 << 22)) * 4;
        let net = format!("10.{}.{}", (base >> 16) & 0xff, (base >> 8) & 0xff);
        let (outside, inside) = (
            format!("{net}.{}", (base & 0xff) + 1),
            format!("{net}.{}", (base & 0xff) + 2),
        );
        // Interface names are 15 bytes at most.
        let (outer, inner) = (format!("bo{pid:x}x{n:x}"), format!("bi{pid:x}x{n:x}"));
        let ns = Netns {
            name: format!("baton-test-{pid}-{n}"),
            outer,
            addr: inside.clone(),
        };
        let (name, outer) = (ns.name.as_str(), ns.outer.as_str());
        let (out_cidr, in_cidr) = (format!("{outside}/30"), format!("{inside}/30"));
        let steps: [&[&str]; 8] = [
            &["netns", "add", name],
            &["link", "add", outer, "type", "veth", "peer", "name", &inner],
            &["link", "set", &inner, "netns", name],
            &["addr", "add", &out_cidr, "dev", outer],
            &["link", "set", outer, "up"],
            &["-n", name, "addr", "add", &in_cidr, "dev", &inner],
            &["-n", name, "link", "set", &inner, "up"],
            &["-n", name, "link", "set", "lo", "up"],
        ];
        for step in steps {
            if !ip(step) {
                eprintln!("no network namespace for a test host (`ip {}` failed): it shares this machine's", step.join(" "));
                return None;
            }
        }
        Some(ns)
    }

    /// `program`, to be run inside.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        ip(&["link", "del", &self.outer]);
        ip(&["netns", "del", &self.name]);
    }
}
