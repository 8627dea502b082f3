//! Inside a sandbox whose network is an allow-list: the agent's parent. It
//! serves an HTTP proxy on 127.0.0.1 (`HTTPS_PROXY` and friends point
//! there) and, for each allowed address on this machine's loopback, listens
//! on that same address, so an agent that calls `http://127.0.0.1:PORT`
//! reaches it as it would outside; every connection goes over a Unix
//! socket to baton's proxy, which decides. Then it runs the agent and
//! answers its exit status.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};

/// What the bridge is told on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub socket: PathBuf,
    /// Loopback ports passed through as they are.
    pub forwards: Vec<u16>,
    /// No proxy: the agent keeps its own network, and only the forwards
    /// go through baton (a container's own services).
    pub direct: bool,
}

/// The port the proxy listens on inside: 3128, or the next one no forward takes.
pub fn proxy_port(forwards: &[u16]) -> u16 {
    (3128..u16::MAX)
        .find(|p| !forwards.contains(p))
        .unwrap_or(3128)
}

/// The loopback ports of an allow-list ("127.0.0.1:8080", "localhost:8080").
pub fn loopback_ports(list: &[String]) -> Vec<u16> {
    list.iter()
        .filter_map(|h| h.rsplit_once(':'))
        .filter(|(host, _)| matches!(*host, "127.0.0.1" | "localhost"))
        .filter_map(|(_, port)| port.parse().ok())
        .collect()
}

/// The bridge's own arguments (before `--` and the agent's command).
pub fn args(plan: &Plan) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["--socket".into(), plan.socket.clone().into()];
    for p in &plan.forwards {
        a.push("--forward".into());
        a.push(p.to_string().into());
    }
    if plan.direct {
        a.push("--direct".into());
    }
    a
}

/// The words that run a command under the bridge: baton's hidden
/// `__sandbox-bridge` and its plan (the command follows after a `--`).
pub fn prefix(baton: &str, plan: &Plan) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![baton.into(), "__sandbox-bridge".into()];
    a.extend(args(plan));
    a
}

/// Serves the bridge and runs `program args` under it; its exit status.
pub async fn run(plan: Plan, program: OsString, args: Vec<OsString>) -> std::io::Result<i32> {
    let port = proxy_port(&plan.forwards);
    if !plan.direct {
        let proxy = TcpListener::bind(("127.0.0.1", port)).await?;
        let socket = plan.socket.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = proxy.accept().await {
                let socket = socket.clone();
                tokio::spawn(async move { pass(conn, &socket, None).await });
            }
        });
    }
    for p in &plan.forwards {
        let listener = TcpListener::bind(("127.0.0.1", *p)).await?;
        let (socket, p) = (plan.socket.clone(), *p);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let socket = socket.clone();
                tokio::spawn(async move { pass(conn, &socket, Some(p)).await });
            }
        });
    }
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    if plan.direct {
        let status = cmd.spawn()?.wait().await?;
        return Ok(status.code().unwrap_or(128 + status_signal(&status)));
    }
    for k in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env(k, &url);
    }
    // Loopback goes straight to the forwards above (they reach the proxy too).
    for k in ["NO_PROXY", "no_proxy"] {
        cmd.env(k, "localhost,127.0.0.1,::1");
    }
    let status = cmd.spawn()?.wait().await?;
    Ok(status.code().unwrap_or(128 + status_signal(&status)))
}

fn status_signal(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.signal().unwrap_or(1)
}

/// One connection handed to baton's proxy: as it is (a proxy request), or,
/// for a forwarded loopback port, as a tunnel to that port.
async fn pass(mut conn: TcpStream, socket: &Path, port: Option<u16>) {
    let Ok(mut up) = UnixStream::connect(socket).await else {
        return;
    };
    if let Some(p) = port {
        let ask = format!("CONNECT 127.0.0.1:{p} HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n\r\n");
        if up.write_all(ask.as_bytes()).await.is_err() {
            return;
        }
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match up.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
            if head.len() > 16 * 1024 {
                return;
            }
        }
        if !head.starts_with(b"HTTP/1.1 200") {
            return;
        }
    }
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_entries_are_forwarded_and_the_proxy_port_avoids_them() {
        let list = vec![
            "127.0.0.1:3128".to_string(),
            "localhost:8080".to_string(),
            "api.example.com:443".to_string(),
        ];
        let ports = loopback_ports(&list);
        assert_eq!(ports, [3128, 8080]);
        assert_eq!(proxy_port(&ports), 3129);
        assert_eq!(proxy_port(&[]), 3128);
    }
}
