//! stdin and stdout for `baton mcp`, with every request answered: a line
//! too long to be a request is not buffered, and instead of dropping it
//! without a word (what the MCP library does) the client gets an error for
//! its request's id, so it does not wait forever. Lines within the limit go
//! to the tools as they came; their answers and these errors reach stdout
//! whole, one line after another.

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// The longest request taken (the library's own limit is 16 MiB).
pub const MAX_REQUEST: usize = 8 * 1024 * 1024;

/// The ends the MCP service reads and writes, fed from and to `input` and
/// `output`; the copying runs until the input ends.
pub fn bounded<R, W>(input: R, output: W) -> (tokio::io::DuplexStream, tokio::io::DuplexStream)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (service_in, mut feed) = tokio::io::duplex(64 * 1024);
    let (service_out, answers) = tokio::io::duplex(64 * 1024);
    let (lines_tx, mut lines_rx) = mpsc::channel::<Vec<u8>>(16);
    let errors = lines_tx.clone();
    // The service's answers, line by line, to the one writer.
    tokio::spawn(async move {
        let mut answers = BufReader::new(answers);
        let mut line = Vec::new();
        while answers
            .read_until(b'\n', &mut line)
            .await
            .is_ok_and(|n| n > 0)
        {
            if lines_tx.send(std::mem::take(&mut line)).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut output = output;
        while let Some(line) = lines_rx.recv().await {
            if output.write_all(&line).await.is_err() || output.flush().await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut input = BufReader::new(input);
        loop {
            match read_line(&mut input).await {
                Line::Whole(bytes) => {
                    if feed.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                Line::TooLong { head, len } => {
                    if errors.send(too_long(&head, len)).await.is_err() {
                        break;
                    }
                }
                Line::End => break,
            }
        }
        // The service sees the end of its input.
        let _ = feed.shutdown().await;
    });
    (service_in, service_out)
}

enum Line {
    Whole(Vec<u8>),
    /// Over the limit: its first bytes (for its id) and how long it was.
    TooLong {
        head: Vec<u8>,
        len: usize,
    },
    End,
}

/// One line, never more than [`MAX_REQUEST`] of it held.
async fn read_line<R: AsyncRead + Unpin>(input: &mut BufReader<R>) -> Line {
    let mut line = Vec::new();
    let mut len = 0usize;
    let mut over = false;
    loop {
        let buf = match input.fill_buf().await {
            Ok(b) => b,
            Err(_) => return Line::End,
        };
        if buf.is_empty() {
            return match (line.is_empty(), over) {
                (true, false) => Line::End,
                (_, true) => Line::TooLong { head: line, len },
                (false, false) => Line::Whole(line),
            };
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        len += take;
        if !over {
            line.extend_from_slice(&buf[..take]);
            if line.len() > MAX_REQUEST {
                over = true;
                line.truncate(4096);
            }
        }
        input.consume(take);
        if done {
            return if over {
                Line::TooLong { head: line, len }
            } else {
                Line::Whole(line)
            };
        }
    }
}

/// The JSON-RPC error for a request too long to take, with its id when its
/// first bytes say it.
fn too_long(head: &[u8], len: usize) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let id = regex::Regex::new(r#""id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")"#)
        .ok()
        .and_then(|re| re.captures(&text))
        .and_then(|c| serde_json::from_str::<serde_json::Value>(&c[1]).ok())
        .unwrap_or(serde_json::Value::Null);
    let answer = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": -32600,
            "message": format!(
                "request too large: {:.1} MiB; baton takes at most {} MiB (put big text in a file of the repository and name it)",
                len as f64 / (1024.0 * 1024.0),
                MAX_REQUEST / (1024 * 1024)
            ),
        },
    });
    format!("{answer}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_line_over_the_limit_gets_an_error_with_its_id_and_the_next_goes_through() {
        let huge = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{{\"x\":\"{}\"}}}}\n",
            "a".repeat(MAX_REQUEST + 10)
        );
        let small = "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\"}\n";
        let input = format!("{huge}{small}");
        let (to_client, mut from_baton) = tokio::io::duplex(1024 * 1024);
        let (mut service_in, _service_out) =
            bounded(std::io::Cursor::new(input.into_bytes()), to_client);
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut service_in, &mut got)
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            small,
            "only the small line reaches the tools"
        );
        let mut answer = String::new();
        BufReader::new(&mut from_baton)
            .read_line(&mut answer)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["error"]["code"], -32600);
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("too large"),
            "{v}"
        );
    }
}
