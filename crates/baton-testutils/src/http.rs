//! A minimal HTTP/1.1 server on tokio: just enough for the agent CLIs'
//! HTTP clients (Node's undici, Rust's reqwest, Python's httpx/requests)
//! and baton's own (the GitHub stand-in).
//! Hand-written instead of axum/hyper to keep the build small: requests
//! with Content-Length or chunked bodies, keep-alive, whole responses with
//! Content-Length (an SSE stream is sent in one piece, which every client
//! parses the same as a trickle).

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};

/// Headers larger than this are refused: no CLI sends anything near it.
const MAX_HEAD: usize = 256 * 1024;
/// Bodies larger than this are refused (conversation histories stay far below).
const MAX_BODY: usize = 64 * 1024 * 1024;

pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// A `retry-after` header, in seconds.
    pub retry_after: Option<u32>,
    /// More headers (`link`, `location`, rate-limit figures).
    pub headers: Vec<(String, String)>,
}

impl Response {
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
            retry_after: None,
            headers: Vec::new(),
        }
    }

    pub fn sse(body: String) -> Response {
        Response {
            status: 200,
            content_type: "text/event-stream",
            body: body.into_bytes(),
            retry_after: None,
            headers: Vec::new(),
        }
    }
}

/// What the handler wants done with a request.
pub(crate) enum Outcome {
    Respond(Response),
    /// Keep the connection open and never answer.
    Hang,
}

/// Serves one connection until the peer closes it or a request hangs.
pub(crate) async fn serve_connection<S, F, Fut>(stream: S, handler: F)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Fn(Request) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    loop {
        let request = match read_request(&mut reader, &mut write).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(msg) => {
                let body = serde_json::json!({"error": {"message": msg, "type": "bad_request"}});
                let _ = write_response(&mut write, &Response::json(400, &body), true).await;
                return;
            }
        };
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let head_only = request.method == "HEAD";
        match handler(request).await {
            Outcome::Respond(mut resp) => {
                if head_only {
                    // A HEAD answer has no body; sending one would corrupt
                    // the next response on this connection.
                    resp.body.clear();
                }
                if write_response(&mut write, &resp, close).await.is_err() || close {
                    return;
                }
            }
            Outcome::Hang => {
                // Holding `write` keeps the socket open; the task is dropped
                // when the server's runtime shuts down.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Reads one request; `Ok(None)` on a clean end of stream between requests.
async fn read_request<R, W>(reader: &mut R, write: &mut W) -> Result<Option<Request>, String>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut head_len = 0;
    let mut request_line = String::new();
    // Tolerate blank lines before a request (allowed by RFC 9112).
    while request_line.trim().is_empty() {
        request_line.clear();
        let n = read_line(reader, &mut request_line, &mut head_len).await?;
        if n == 0 {
            return Ok(None);
        }
    }
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(format!("malformed request line {request_line:?}"));
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if read_line(reader, &mut line, &mut head_len).await? == 0 {
            return Err("connection closed inside the request head".into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed header line {line:?}"));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut request = Request {
        method: method.to_string(),
        path,
        query,
        headers,
        body: Vec::new(),
    };
    if request
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        write
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
    }
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        request.body = read_chunked(reader, &mut head_len).await?;
    } else if let Some(len) = request.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad content-length {len:?}"))?;
        if len > MAX_BODY {
            return Err(format!("body of {len} bytes is too large"));
        }
        let mut body = vec![0; len];
        reader
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("reading body: {e}"))?;
        request.body = body;
    }
    Ok(Some(request))
}

async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut String,
    total: &mut usize,
) -> Result<usize, String> {
    let mut bytes = Vec::new();
    let n = reader
        .read_until(b'\n', &mut bytes)
        .await
        .map_err(|e| format!("reading request: {e}"))?;
    *total += n;
    if *total > MAX_HEAD {
        return Err("request head too large".into());
    }
    line.push_str(&String::from_utf8_lossy(&bytes));
    Ok(n)
}

async fn read_chunked<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    head_len: &mut usize,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        // Chunk-size lines are small; count them against the head limit.
        *head_len = 0;
        if read_line(reader, &mut size_line, head_len).await? == 0 {
            return Err("connection closed inside a chunked body".into());
        }
        let size_hex = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        if size == 0 {
            // Trailers, then the final blank line.
            loop {
                let mut trailer = String::new();
                let n = read_line(reader, &mut trailer, head_len).await?;
                if n == 0 || trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err("chunked body too large".into());
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .await
            .map_err(|e| format!("reading chunk: {e}"))?;
        let mut crlf = String::new();
        read_line(reader, &mut crlf, head_len).await?;
    }
}

async fn write_response<W: AsyncWrite + Unpin>(
    write: &mut W,
    resp: &Response,
    close: bool,
) -> std::io::Result<()> {
    let mut retry = resp
        .retry_after
        .map(|s| format!("retry-after: {s}\r\n"))
        .unwrap_or_default();
    for (k, v) in &resp.headers {
        retry.push_str(&format!("{k}: {v}\r\n"));
    }
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-cache\r\n{retry}connection: {}\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len(),
        if close { "close" } else { "keep-alive" },
    );
    write.write_all(head.as_bytes()).await?;
    write.write_all(&resp.body).await?;
    write.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "Status",
    }
}

/// A stand-in server on 127.0.0.1 with a runtime of its own on a thread:
/// each request goes to `handle`; it stops when dropped.
pub(crate) struct StandIn {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StandIn {
    pub fn start(handle: impl Fn(Request) -> Outcome + Send + Sync + 'static) -> StandIn {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = std::sync::Arc::new(handle);
        let thread = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let handle = handle.clone();
                            tokio::spawn(serve_connection(stream, move |req| {
                                let out = handle(req);
                                async move { out }
                            }));
                        }
                    }
                }
            });
            rt.shutdown_background();
        });
        StandIn {
            url,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
