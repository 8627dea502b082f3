//! A remote agent's input while it runs: the lines its follower hears (a
//! message, a steer; already in the agent's own words) wait at the git
//! door (`/git/<token>/baton-input`), and the attempt over there asks for
//! them there (a long poll over the same tunnel or address it fetches
//! through) and hands each to the agent's stdin as a steer.

use crate::engine::messages::WorkerCmd;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedSender;

/// `http://host:port/path` as (host:port, /path); None for anything else.
pub(super) fn split(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    Some((
        authority.to_string(),
        path.trim_end_matches('/').to_string(),
    ))
}

/// A GET of `path` at `authority` (plain HTTP, baton's own doors): the
/// status and the body.
pub(super) async fn get(authority: &str, path: &str) -> Result<(u16, String), String> {
    let mut s = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    let read = tokio::time::timeout(Duration::from_secs(60), s.read_to_string(&mut text)).await;
    read.map_err(|_| "no answer".to_string())?
        .map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    Ok((status.ok_or("no HTTP status")?, body.to_string()))
}

/// What the door answers: the lines after the first `after` of its
/// `epoch` (a door opened again by a resumed baton starts a new one).
#[derive(serde::Deserialize)]
struct Answer {
    epoch: String,
    lines: Vec<String>,
}

/// One long poll: the lines after the first `after`.
async fn ask(authority: &str, path: &str, after: usize) -> Result<Answer, String> {
    match get(authority, &format!("{path}/baton-input?after={after}")).await? {
        (200, body) => serde_json::from_str(&body).map_err(|e| e.to_string()),
        (code, _) => Err(format!("status {code}")),
    }
}

/// Asks the door at `git_url` for the agent's input until this process
/// ends, each line a steer on `cmds`. None: the URL is not one it can ask
/// (a remote both sides reach, not baton's door).
pub(super) fn follow(git_url: &str, cmds: UnboundedSender<WorkerCmd>) -> Option<()> {
    let (authority, path) = split(git_url)?;
    tokio::spawn(async move {
        let (mut seen, mut epoch) = (0, String::new());
        // Until its attempt is over (a warm pod goes on to another).
        while !cmds.is_closed() {
            match ask(&authority, &path, seen).await {
                // Another door (a resumed baton's): its lines from the first.
                Ok(a) if !epoch.is_empty() && a.epoch != epoch => {
                    (seen, epoch) = (0, a.epoch);
                }
                Ok(a) => {
                    epoch = a.epoch;
                    for said in a.lines {
                        seen += 1;
                        // A message, not a steer: one that comes when the
                        // agent takes no more input is dropped, and never
                        // ends what runs (the agent, or a gate after it).
                        let m = WorkerCmd::Message { id: 0, said };
                        if cmds.send(m).is_err() {
                            return;
                        }
                    }
                }
                // baton away (it died, `resume` serves the door again).
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    });
    Some(())
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn only_a_plain_http_door_is_asked() {
        assert_eq!(
            split("http://127.0.0.1:4100/git/tok"),
            Some(("127.0.0.1:4100".into(), "/git/tok".into()))
        );
        assert_eq!(split("https://git.example.com/r.git"), None);
        assert_eq!(split("/srv/git/r.git"), None);
    }
}
