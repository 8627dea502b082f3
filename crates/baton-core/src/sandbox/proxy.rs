//! The proxy of a sandbox whose network is an allow-list. The agent has no
//! network of its own; inside, a bridge hands each of its connections to
//! this proxy over a Unix socket, and the proxy connects to the host only
//! when the profile lists it. Every connection is reported (allowed or not).

use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};

/// The longest request head the proxy reads.
const MAX_HEAD: usize = 16 * 1024;

/// A connection the proxy was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub host: String,
    pub allowed: bool,
}

/// The target of a proxy request head: `CONNECT host:port` or an
/// absolute-form `GET http://host[:port]/...`.
pub fn target(head: &str) -> Option<String> {
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    let (method, uri) = (parts.next()?, parts.next()?);
    if method.eq_ignore_ascii_case("CONNECT") {
        return uri.contains(':').then(|| uri.to_ascii_lowercase());
    }
    let rest = uri.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let host = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Some(host.to_ascii_lowercase())
}

/// Whether `host` ("name:port") is on the list (`localhost` and 127.0.0.1
/// name the same place).
pub fn allowed(list: &[String], host: &str) -> bool {
    let norm = |h: &str| h.replace("localhost:", "127.0.0.1:");
    list.iter().any(|a| norm(a) == norm(host))
}

/// Serves the proxy on `socket` until dropped; each request goes to `seen`.
pub struct Proxy {
    pub socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.socket);
        // Its directory too, when it was the socket's own (empty now).
        if let Some(dir) = self.socket.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Proxy {
    pub fn start(
        socket: &Path,
        list: Vec<String>,
        seen: tokio::sync::mpsc::UnboundedSender<Asked>,
    ) -> std::io::Result<Proxy> {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket)?;
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (list, seen) = (list.clone(), seen.clone());
                tokio::spawn(async move { serve(conn, &list, &seen).await });
            }
        });
        Ok(Proxy {
            socket: socket.to_path_buf(),
            task,
        })
    }
}

async fn serve(
    mut conn: UnixStream,
    list: &[String],
    seen: &tokio::sync::mpsc::UnboundedSender<Asked>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > MAX_HEAD {
            let _ = conn
                .write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n")
                .await;
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let Some(host) = target(&text) else {
        let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\nbaton's proxy takes CONNECT host:port or an absolute http:// URL\n").await;
        return;
    };
    let ok = allowed(list, &host);
    let _ = seen.send(Asked {
        host: host.clone(),
        allowed: ok,
    });
    if !ok {
        let body = format!("baton: {host} is not in this profile's network allow-list\n");
        let reply = format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = conn.write_all(reply.as_bytes()).await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(&host).await else {
        let _ = conn
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n")
            .await;
        return;
    };
    if text.starts_with("CONNECT") || text.starts_with("connect") {
        if conn
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        // Bytes after the head belong to the tunnel.
        let end = head
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(head.len(), |p| p + 4);
        if upstream.write_all(&head[end..]).await.is_err() {
            return;
        }
    } else if upstream.write_all(&head).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_of_a_request_is_its_host_and_port() {
        assert_eq!(
            target("CONNECT API.example.com:443 HTTP/1.1\r\n\r\n").as_deref(),
            Some("api.example.com:443")
        );
        assert_eq!(
            target("GET http://127.0.0.1:8080/v1 HTTP/1.1\r\n").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            target("GET http://example.com/x HTTP/1.1\r\n").as_deref(),
            Some("example.com:80")
        );
        assert_eq!(target("GET /x HTTP/1.1\r\n"), None);
        assert_eq!(target("CONNECT example.com HTTP/1.1\r\n"), None);
    }

    #[test]
    fn only_listed_hosts_are_allowed() {
        let list = vec![
            "127.0.0.1:9000".to_string(),
            "api.example.com:443".to_string(),
        ];
        assert!(allowed(&list, "localhost:9000"));
        assert!(allowed(&list, "api.example.com:443"));
        assert!(!allowed(&list, "api.example.com:80"));
        assert!(!allowed(&list, "evil.example.com:443"));
    }
}
