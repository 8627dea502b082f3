//! Talking to a `baton serve` of the same repository: it leaves its address
//! in .git/baton/serve.json; the local user's token is the key.

use anyhow::{anyhow, bail, Context};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

pub struct Server {
    pub url: String,
    /// This repository's API root: /api, or /api/repos/<name> on a server
    /// of several.
    api: String,
    token: String,
}

/// The server of this repository, if one is up and answers.
pub fn find(state_dir: &Path) -> Option<Server> {
    let text = std::fs::read_to_string(state_dir.join("serve.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let pid = v["pid"].as_i64()? as i32;
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return None;
    }
    let s = Server {
        url: v["url"].as_str()?.to_string(),
        api: v["api"].as_str().unwrap_or("/api").to_string(),
        token: baton_core::access::local_token().ok()?,
    };
    matches!(s.call("GET", "/api/health", None), Ok((200, _))).then_some(s)
}

impl Server {
    /// The dashboard's address, showing this repository.
    pub fn dashboard(&self) -> String {
        match self.api.strip_prefix("/api/repos/") {
            Some(name) => format!("{}/?repo={name}", self.url),
            None => format!("{}/", self.url),
        }
    }

    /// One request; returns the status and the body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(u16, String)> {
        // Paths are written as /api/...: this repository's API may be
        // elsewhere on a server of several.
        let path = match path.strip_prefix("/api") {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{}{rest}", self.api),
            _ => path.to_string(),
        };
        let hostport = self
            .url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("server URL {} is not http://", self.url))?;
        let mut stream = TcpStream::connect(hostport)
            .with_context(|| format!("connecting to baton serve at {}", self.url))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.token,
            body.len()
        );
        if method == "POST" {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str("\r\n");
        req.push_str(&body);
        stream.write_all(req.as_bytes())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw);
        let (head, rest) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| anyhow!("bad answer from baton serve"))?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad status line from baton serve"))?;
        let chunked = head.lines().any(|l| {
            l.to_ascii_lowercase().starts_with("transfer-encoding:")
                && l.to_ascii_lowercase().contains("chunked")
        });
        let body = if chunked {
            dechunk(rest)?
        } else {
            rest.to_string()
        };
        Ok((status, body))
    }

    /// A JSON call whose error answers become errors with the server's message.
    pub fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let (status, text) = self.call(method, path, body)?;
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        if status >= 400 {
            let msg = v["error"]
                .as_str()
                .or_else(|| v["message"].as_str())
                .unwrap_or(text.trim());
            bail!(crate::commands::usage(format!("baton serve: {msg}")));
        }
        Ok(v)
    }
}

fn dechunk(mut s: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = s
            .split_once("\r\n")
            .ok_or_else(|| anyhow!("bad chunked body"))?;
        let n = usize::from_str_radix(size.trim(), 16).map_err(|_| anyhow!("bad chunk size"))?;
        if n == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..n).ok_or_else(|| anyhow!("short chunk"))?);
        s = rest.get(n + 2..).unwrap_or("");
    }
}
