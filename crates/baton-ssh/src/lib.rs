//! baton's SSH executor, on this machine: its [`DRIVER`], which the binary
//! registers. The engine places each attempt on a host with a free slot
//! (its profile's `host_labels`); `baton __follow <request>` then makes the
//! host ready (a baton binary of this build, copied on first use), offers
//! the repository through a git door here that the host reaches by a
//! reverse tunnel on its own loopback (nothing else is opened there), and
//! runs `baton __host-attempt` there, which starts the attempt (fetch,
//! agent, commit, gates, push: [`baton_core::executor::pod`]) in a session
//! of its own and prints its output. A stop asks the attempt to end; a
//! baton killed outright leaves it running, and `baton resume` adopts it.
//! [`sweep`] removes a run's leftovers from every host; [`doctor::check`]
//! is `baton doctor`'s part.

pub mod doctor;
mod follow;
mod host;
mod ssh;

use anyhow::{anyhow, Context};
use baton_core::executor::follower::Parent;
use baton_core::executor::{Door, Driver, FollowRequest, PodEnd};
use baton_core::plan::{Remote, Ssh};
use ssh::{quote, Target};
use std::path::Path;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// The SSH executor, for the binary's list of drivers.
pub const DRIVER: Driver = Driver {
    kind: "ssh",
    follow: |request, req| {
        Box::pin(async move { attempt(request, req).await.map_err(|e| format!("{e:#}")) })
    },
    sweep: |remote, run| {
        Box::pin(async move {
            let ssh = settings(remote).map_err(|e| e.to_string())?;
            sweep(ssh, run).await.map_err(|e| format!("{e:#}"))
        })
    },
    keep_warm: None,
    doctor: |remote| {
        Box::pin(async move {
            match settings(remote) {
                Ok(ssh) => doctor::check(ssh).await,
                Err(e) => vec![(false, e.to_string())],
            }
        })
    },
};

fn settings(remote: &Remote) -> anyhow::Result<&Ssh> {
    match remote {
        Remote::Ssh(s) => Ok(s),
        other => Err(anyhow!("not an SSH executor: {}", other.kind())),
    }
}

/// The attempt ends here without reaching its host: said, and its end
/// written so the engine words it (and places the next attempt elsewhere).
fn give_up(req: &FollowRequest, why: String, unreachable: bool) -> anyhow::Result<i32> {
    eprintln!("baton: {why}");
    let end = PodEnd {
        error: Some(why),
        unreachable,
        ..Default::default()
    };
    std::fs::write(&req.end_file, serde_json::to_string(&end)?)
        .with_context(|| format!("cannot write {}", req.end_file.display()))?;
    Ok(1)
}

/// `baton __follow` for an attempt on an SSH host: its exit status.
pub async fn attempt(request: &Path, mut req: FollowRequest) -> anyhow::Result<i32> {
    let parent = Parent::now();
    // From the start: a stop that comes while the host is made ready is
    // heard once the attempt runs, not lost.
    let mut term = signal(SignalKind::terminate())?;
    let ssh = settings(&req.executor)?.clone();
    let name = req
        .host
        .clone()
        .context("the engine placed this attempt on no host")?;
    let host = ssh
        .host(&name)
        .with_context(|| format!("no host {name:?} in [executor] hosts"))?;
    let t = Target::new(&ssh, host, &req.pod.run)?;
    let ready = match host::ready(&t, ssh.baton.as_deref()).await {
        Ok(r) => r,
        Err(e) => return give_up(&req, format!("{e:#}"), true),
    };
    // A door already in the request: this attempt was followed before, by
    // a baton that died (`resume` took it up again, under its own number);
    // it runs on there, in its own directory.
    let earlier_door = req.door.take();
    let adopted = earlier_door.is_some();
    let (run, task, n) = (&req.pod.run, &req.pod.task, req.pod.attempt);
    let dir = format!("{}/runs/{run}/{task}-{n}", ready.base);
    let earlier_gateway = earlier_door.as_ref().and_then(|d| d.gateway.clone());
    let input = std::sync::Arc::new(baton_server::git_door::Input::default());
    let heard = input.clone();
    baton_core::executor::follower::hear_input(move |line| heard.push(line));
    let (mut door, _serving) = match open_door(&t, &req, earlier_door, input).await {
        Ok(d) => d,
        Err(e) => return give_up(&req, format!("{e:#}"), false),
    };
    let _relaying = match gateway_tunnel(&t, &mut req, earlier_gateway).await {
        Ok((g, relaying)) => {
            door.gateway = g;
            relaying
        }
        Err(e) => {
            cancel(&t, door.remote_port.unwrap_or_default(), &door.addr).await;
            return give_up(&req, format!("{e:#}"), false);
        }
    };
    let port = door.remote_port.unwrap_or_default();
    req.pod.git_url = format!("http://127.0.0.1:{port}/git/{}", door.token);
    req.pod.relocate(Path::new(&format!("{dir}/root")));
    if adopted {
        eprintln!("baton: following attempt {n} on {name}, left running by an earlier baton");
    }
    req.door = Some(door.clone());
    // Written back with the door, so a later baton serves the same one.
    std::fs::write(request, serde_json::to_string_pretty(&req)?)
        .with_context(|| format!("cannot write {}", request.display()))?;
    let mut there = There {
        baton: ready.baton.clone(),
        dir: dir.clone(),
        cache: format!("{}/setup", ready.base),
    };
    let mut followed = follow_there(&t, &req, &there, parent, &mut term).await?;
    if followed.end.is_none() && followed.status == Some(host::MISSING) && followed.lines == 0 {
        // The baton an earlier attempt found there is gone: the host is
        // made ready again (a copy), once.
        host::forget(&t);
        match host::ready(&t, ssh.baton.as_deref()).await {
            Ok(again) if again.base == ready.base => there.baton = again.baton,
            Ok(again) => {
                let why = format!("{name}'s working directory moved to {}", again.base);
                return give_up(&req, why, false);
            }
            Err(e) => return give_up(&req, format!("{e:#}"), true),
        }
        let stopped = followed.terminated;
        followed = follow_there(&t, &req, &there, parent, &mut term).await?;
        followed.terminated |= stopped;
    }
    if followed.parent_died {
        // baton died: the attempt goes on there, and `baton resume` adopts it.
        return Ok(143);
    }
    cancel(&t, port, &door.addr).await;
    if let Some((q, to)) = &door.gateway {
        cancel(&t, *q, to).await;
    }
    let end = match &followed.end {
        Some(end) => end.clone(),
        None => {
            let lost = followed.status == Some(255);
            let why = match lost {
                true => format!("lost the connection to {name}: {}", followed.said.trim()),
                false => format!(
                    "the attempt on {name} ended without saying how: {}",
                    followed.said.trim()
                ),
            };
            return give_up(&req, why, lost);
        }
    };
    if let Some(e) = &end.error {
        eprintln!("baton: on {name}: {e}");
    }
    std::fs::write(&req.end_file, serde_json::to_string(&end)?)
        .with_context(|| format!("cannot write {}", req.end_file.display()))?;
    if end.pushed {
        // Its work is here: nothing of it is left there (not waited for:
        // the run's sweep removes what is left).
        t.detach(&format!("rm -rf {}", quote(&dir)));
    }
    Ok(match (end.code, followed.terminated) {
        (Some(c), _) => c,
        (None, true) => 143,
        (None, false) => 1,
    })
}

/// Where the attempt is on its host.
struct There {
    /// baton there.
    baton: String,
    /// The attempt's directory.
    dir: String,
    /// The host's setup cache.
    cache: String,
}

/// How often a broken connection is made again before the attempt is
/// given up (a host that went away).
const RECONNECTS: u32 = 3;

/// Follows the attempt there to its end; a connection that breaks while it
/// runs is made again, and its output goes on where it broke off.
async fn follow_there(
    t: &Target,
    req: &FollowRequest,
    there: &There,
    parent: Parent,
    term: &mut Signal,
) -> anyhow::Result<follow::Followed> {
    let (mut seen, mut tries, mut stopped) = (0, 0, false);
    loop {
        let mut f = run_there(t, req, there, parent, term, seen).await?;
        stopped |= f.terminated;
        f.terminated = stopped;
        let broke = f.end.is_none() && f.status == Some(255) && !f.parent_died;
        if !broke || tries == RECONNECTS {
            f.lines += seen;
            return Ok(f);
        }
        tries += 1;
        seen += f.lines;
        eprintln!(
            "baton: the connection to {} broke; connecting again",
            t.host.name
        );
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        if t.master().await.is_err() {
            return Ok(f);
        }
    }
}

/// Runs `baton __host-attempt` there (the attempt on its stdin; its
/// output after the first `from` lines) and follows it.
async fn run_there(
    t: &Target,
    req: &FollowRequest,
    there: &There,
    parent: Parent,
    term: &mut Signal,
    from: u64,
) -> anyhow::Result<follow::Followed> {
    let mut child = t
        .command(&format!(
            "[ -x {baton} ] || exit {missing}; exec {baton} __host-attempt --from {from} --cache {} {}",
            quote(&there.cache),
            quote(&there.dir),
            baton = quote(&there.baton),
            missing = host::MISSING,
        ))
        // Not in the follower's group, which a stop or baton's death
        // signals: the stream goes on while the attempt commits and pushes.
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run ssh")?;
    let spec = serde_json::to_vec(&req.pod)?;
    if let Some(mut stdin) = child.stdin.take() {
        // An attempt that runs there already does not read it.
        let _ = stdin.write_all(&spec).await;
    }
    let whose = format!("host {}", t.host.name);
    let stop = || async {
        // In the shell, not through baton there (which may be gone).
        let pid = quote(&format!("{}/pid", there.dir));
        let script = format!("p=$(cat {pid} 2>/dev/null) && kill -TERM \"$p\"");
        if let Err(e) = t.run(&script).await {
            eprintln!(
                "baton: cannot ask the attempt on {} to stop: {e:#}",
                t.host.name
            );
        }
    };
    follow::follow(child, &whose, parent, term, stop).await
}

/// The git door the host reaches through its tunnel: the earlier one's
/// address, token and port again (an adopted attempt pushes there), else
/// new ones. The tunnel is a forward of the host's master connection.
async fn open_door(
    t: &Target,
    req: &FollowRequest,
    earlier: Option<Door>,
    input: std::sync::Arc<baton_server::git_door::Input>,
) -> anyhow::Result<(Door, tokio::task::JoinHandle<()>)> {
    let (addr, token, port) = match earlier {
        Some(d) => (d.addr, d.token, d.remote_port.unwrap_or(0)),
        None => ("127.0.0.1:0".to_string(), baton_server::new_token(), 0),
    };
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot offer the repository on {addr}"))?;
    let bound = listener.local_addr()?;
    let port = tunnel(t, port, &bound.to_string())
        .await
        .with_context(|| format!("cannot open the tunnel to {}", t.host.name))?;
    let door = baton_server::git_door::GitDoor {
        git_dir: req.git_dir.clone(),
        token: token.clone(),
        fetch: req.pod.branch.clone(),
        push_prefix: format!("refs/baton/{}/{}/", req.pod.run, req.pod.task),
        input,
    };
    let serving = tokio::spawn(async move {
        if let Err(e) = baton_server::git_door::serve(listener, door).await {
            eprintln!("baton: the git door closed: {e}");
        }
    });
    let door = Door {
        addr: bound.to_string(),
        token,
        remote_port: Some(port),
        gateway: None,
    };
    Ok((door, serving))
}

/// The model gateway (on this machine's loopback) through a tunnel of the
/// attempt's own, and the agent told the host's end of it. The tunnel leads
/// to a relay of the attempt's here, not to the gateway itself: a master
/// keeps one forward per target, so attempts that shared one would cut
/// each other off as they end. An adopted attempt (`earlier`: its port
/// there and its relay's address) gets both back, the relay now leading to
/// this baton's gateway.
async fn gateway_tunnel(
    t: &Target,
    req: &mut FollowRequest,
    earlier: Option<(u16, String)>,
) -> anyhow::Result<(Option<(u16, String)>, Option<tokio::task::JoinHandle<()>>)> {
    let Some(url) = req.gateway_url.clone() else {
        return Ok((None, None));
    };
    let port = url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .with_context(|| format!("the model gateway's address {url} has no port"))?;
    let (want, at) = match earlier {
        Some((q, relay)) => (q, relay),
        None => (0, "127.0.0.1:0".to_string()),
    };
    let listener = tokio::net::TcpListener::bind(&at)
        .await
        .with_context(|| format!("cannot relay to the model gateway on {at}"))?;
    let relay = listener.local_addr()?.to_string();
    let relaying = tokio::spawn(relay_to(listener, format!("127.0.0.1:{port}")));
    let q = tunnel(t, want, &relay).await.with_context(|| {
        format!(
            "cannot open the tunnel to the model gateway on {}",
            t.host.name
        )
    })?;
    let there = format!("http://127.0.0.1:{q}");
    req.pod.rewrite(|s| s.replace(&url, &there));
    Ok((Some((q, relay)), Some(relaying)))
}

/// Passes each connection `listener` takes on to `to`.
async fn relay_to(listener: tokio::net::TcpListener, to: String) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        let to = to.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(&to).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// Ends the tunnel from `port` there to `to` here (made with the port
/// picked, or asked for).
async fn cancel(t: &Target, port: u16, to: &str) {
    for listen in [0, port] {
        let forward = format!("127.0.0.1:{listen}:{to}");
        let _ = t.control("cancel", &["-R", &forward]).await;
    }
}

/// The port on the host's loopback that forwards to `to` here. The
/// master picks it the first time; an adopted attempt pushes to the one it
/// was told (`want`), which the master still forwards unless it ended since.
async fn tunnel(t: &Target, want: u16, to: &str) -> anyhow::Result<u16> {
    let picked = format!("127.0.0.1:0:{to}");
    let said = t.control("forward", &["-R", &picked]).await?;
    let port = said
        .trim()
        .parse::<u16>()
        .map_err(|_| anyhow!("ssh did not say which port it forwards: {said:?}"))?;
    if want == 0 || port == want {
        return Ok(port);
    }
    let _ = t.control("cancel", &["-R", &picked]).await;
    let same = format!("127.0.0.1:{want}:{to}");
    t.control("forward", &["-R", &same]).await?;
    Ok(want)
}

/// Ends whatever `run` left on every host (an attempt a crash left
/// running, a working directory) and the hosts' master connections.
/// Returns how many attempts were still running.
pub async fn sweep(ssh: &Ssh, run: &str) -> anyhow::Result<usize> {
    let mut ended = 0;
    let mut failed = Vec::new();
    for h in &ssh.hosts {
        let t = Target::new(ssh, h, run)?;
        // Each attempt is a session of its own: its whole group is ended,
        // given a moment to go, then killed, before its directory goes.
        let script = format!(
            "d={base}/runs/{run}; n=0; for p in \"$d\"/*/pid; do [ -f \"$p\" ] || continue; \
             kill -TERM -- -\"$(cat \"$p\")\" 2>/dev/null && n=$((n+1)); done; \
             if [ $n -gt 0 ]; then sleep 2; for p in \"$d\"/*/pid; do kill -KILL -- -\"$(cat \"$p\")\" 2>/dev/null; done; fi; \
             rm -rf \"$d\"; echo $n",
            base = host::base_expr(h.dir.as_deref()),
            run = quote(run),
        );
        match t.run(&script).await {
            Ok(n) => ended += n.trim().parse::<usize>().unwrap_or(0),
            Err(e) => failed.push(format!("{e:#}")),
        }
        let _ = t.control("exit", &[]).await;
        t.forget();
    }
    match failed.is_empty() {
        true => Ok(ended),
        false => Err(anyhow!("{}", failed.join("; "))),
    }
}
