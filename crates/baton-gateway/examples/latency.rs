//! What the gateway adds to a streamed answer, without an interpreter's
//! noise on either side: an upstream of plain threads that streams an
//! Anthropic Messages answer (EVENTS events, DELTA_MS apart, Nagle off as
//! a provider's server has it), a client of plain threads that asks it
//! straight and through the gateway, alternating, and the gateway itself
//! as baton runs it. Prints the added time to the first byte and to the
//! end, per pair and as two distributions. Run by `bench/gateway.sh`.
//!
//!     cargo run --release -p baton-gateway --example latency
//!     REQUESTS=1000 DELTA_MS=0 cargo run --release -p baton-gateway --example latency

use baton_core::gateway::{Credential, GatewaySettings, Grantee, Provider, Upstream};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn var(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Reads one request (head and `content-length` body); false at the end
/// of the connection.
fn read_request(s: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).is_ok()
}

fn chunk(s: &mut TcpStream, data: &str) -> std::io::Result<()> {
    s.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
}

fn event(kind: &str, data: &str) -> String {
    format!("event: {kind}\ndata: {data}\n\n")
}

/// Answers every request on `s` with a streamed answer.
fn serve(mut s: TcpStream, events: u64, delta: Duration) {
    let _ = s.set_nodelay(true);
    while read_request(&mut s) {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        let start = r#"{"type":"message_start","message":{"model":"bench-model","usage":{"input_tokens":100,"output_tokens":1}}}"#;
        let delta_event = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}"#;
        let mut w = || -> std::io::Result<()> {
            s.write_all(head.as_bytes())?;
            chunk(&mut s, &event("message_start", start))?;
            for _ in 0..events {
                std::thread::sleep(delta);
                chunk(&mut s, &event("content_block_delta", delta_event))?;
            }
            let end = r#"{"type":"message_delta","usage":{"output_tokens":200}}"#;
            chunk(&mut s, &event("message_delta", end))?;
            chunk(&mut s, &event("message_stop", r#"{"type":"message_stop"}"#))?;
            s.write_all(b"0\r\n\r\n")
        };
        if w().is_err() {
            return;
        }
    }
}

/// One request on a fresh connection: (first byte of the body, end), in ms.
fn timed(addr: &str, path: &str, key: &str) -> (f64, f64) {
    let body = r#"{"model":"bench-model","stream":true,"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    let _ = s.set_nodelay(true);
    s.write_all(req.as_bytes()).expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    let mut first = None;
    loop {
        let n = s.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if first.is_none() {
            if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                if got.len() > at + 4 {
                    first = Some(t0.elapsed());
                }
            }
        }
        if got.ends_with(b"0\r\n\r\n") {
            break;
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(first.unwrap_or_else(|| t0.elapsed())), ms(t0.elapsed()))
}

fn pct(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((q * v.len() as f64) as usize).min(v.len() - 1)]
}

fn main() {
    let (requests, events) = (var("REQUESTS", 300), var("EVENTS", 20));
    let delta = Duration::from_micros(var("DELTA_US", var("DELTA_MS", 2) * 1000));
    let upstream = TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
    let up = upstream.local_addr().expect("its address").to_string();
    std::thread::spawn(move || {
        for s in upstream.incoming().flatten() {
            std::thread::spawn(move || serve(s, events, delta));
        }
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut settings = GatewaySettings::default();
    let url = format!("http://{up}");
    settings
        .providers
        .insert(Provider::Anthropic, Upstream { url });
    let gw = rt
        .block_on(baton_gateway::start(settings))
        .expect("the gateway starts");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    rt.spawn(async move { while rx.recv().await.is_some() {} });
    let who = Grantee {
        label: "bench/t/1".into(),
        provider: Provider::Anthropic,
        credential: Credential {
            key: "sk-bench".into(),
            bearer: false,
        },
        account: "bench".into(),
        upstream: None,
    };
    let token = gw.grant(who, tx);
    let gw_addr = gw.url().trim_start_matches("http://").to_string();
    let (mut through, mut straight) = (Vec::new(), Vec::new());
    for _ in 0..requests {
        through.push(timed(&gw_addr, "/anthropic/v1/messages", &token));
        straight.push(timed(&up, "/v1/messages", "sk-bench"));
    }
    println!(
        "added by the gateway, {requests} streamed requests ({events} events {:.1} ms apart), client and upstream in Rust:",
        delta.as_secs_f64() * 1000.0
    );
    for (name, pick) in [("first byte", 0), ("whole answer", 1)] {
        let at = |t: &(f64, f64)| if pick == 0 { t.0 } else { t.1 };
        let g: Vec<f64> = through.iter().map(at).collect();
        let d: Vec<f64> = straight.iter().map(at).collect();
        let diff: Vec<f64> = g.iter().zip(&d).map(|(a, b)| a - b).collect();
        println!(
            "  {name}: per pair p50 {:.3} ms, p99 {:.3} ms; through p50 {:.3} / p99 {:.3} ms, straight p50 {:.3} / p99 {:.3} ms",
            pct(&diff, 0.5),
            pct(&diff, 0.99),
            pct(&g, 0.5),
            pct(&g, 0.99),
            pct(&d, 0.5),
            pct(&d, 0.99)
        );
    }
}
