//! `baton doctor`'s part for SSH hosts: each is reached, works in its
//! directory, has git, and has (or can be given) a baton.

use crate::host::{own_hash, probe, runs_on};
use crate::ssh::Target;
use baton_core::executor::Checks;
use baton_core::plan::Ssh;

pub async fn check(ssh: &Ssh) -> Checks {
    let mut out = Vec::new();
    for h in &ssh.hosts {
        let t = match Target::new(ssh, h, "doctor") {
            Ok(t) => t,
            Err(e) => {
                out.push((false, format!("{}: {e:#}", h.name)));
                continue;
            }
        };
        let own = own_hash().map(|(_, hash)| format!("./bin/baton-{}", &hash[..16]));
        let wanted = ssh
            .baton
            .clone()
            .or(own.ok())
            .unwrap_or_else(|| "baton".into());
        let p = match probe(&t, &wanted).await {
            Ok(p) => p,
            Err(e) => {
                out.push((false, format!("{}: cannot be reached: {e:#}", h.name)));
                continue;
            }
        };
        let slots = format!("{} slot(s)", h.slots);
        out.push((
            true,
            format!(
                "{}: reached ({}), {slots}, works in {}",
                h.name, p.system, p.base
            ),
        ));
        match &p.git {
            Some(g) => out.push((true, format!("{}: {g}", h.name))),
            None => out.push((false, format!("{}: no git on its PATH", h.name))),
        }
        out.push(match (&ssh.baton, &p.baton) {
            (Some(b), None) => (false, format!("{}: executor.baton {b:?} is not there", h.name)),
            (_, Some(b)) => (true, format!("{}: baton at {b}", h.name)),
            (None, None) if runs_on(&p.system) => {
                (true, format!("{}: this baton will be copied there on first use", h.name))
            }
            (None, None) => (
                false,
                format!("{}: this baton does not run on {}: install one there and name it in executor.baton", h.name, p.system),
            ),
        });
    }
    out
}
