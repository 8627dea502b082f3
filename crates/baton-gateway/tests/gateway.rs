//! The gateway between a client speaking each provider's API and the
//! scripted model server as the provider: the key travels only upstream,
//! usage is told per request, tokens are checked, refused and forgotten,
//! and a provider's limit is told at once.

use baton_core::gateway::{
    Credential, Gateway, GatewaySettings, Grantee, Provider, Upstream, Wire, WireUsage,
};
use baton_testutils::model_server::{
    Api, ModelServer, Outage, Scripts, Step, INPUT_TOKENS, OUTPUT_TOKENS,
};
use std::io::{Read, Write};
use std::sync::Arc;
use tokio::sync::mpsc::unbounded_channel;

const KEY: &str = "sk-real-key-only-baton-holds";

fn who(label: &str, provider: Provider) -> Grantee {
    Grantee {
        label: label.into(),
        provider,
        credential: key(),
        account: "acct".into(),
        upstream: None,
    }
}

fn key() -> Credential {
    Credential {
        key: KEY.into(),
        bearer: false,
    }
}

async fn gateway(server: &ModelServer) -> Arc<dyn Gateway> {
    let mut settings = GatewaySettings::default();
    for p in Provider::ALL {
        settings
            .providers
            .insert(*p, Upstream { url: server.url() });
    }
    baton_gateway::start(settings).await.unwrap()
}

/// One HTTP/1.1 request; (status, body).
async fn call(url: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let host = url.trim_start_matches("http://").to_string();
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(&host).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    })
    .await
    .unwrap()
}

fn messages(stream: bool) -> String {
    serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
        // A model turn, not a side request: the agent's tools are offered.
        "tools": [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}]})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_reaches_its_provider_with_the_real_key_and_its_usage_is_told() {
    let server = ModelServer::start(Scripts::new().script("s", vec![Step::say("hello")]));
    let gw = gateway(&server).await;
    let (tx, mut rx) = unbounded_channel();
    let token = gw.grant(who("r/t/1", Provider::Anthropic), tx);
    for stream in [true, false] {
        let (status, body) = call(
            &gw.url(),
            "/anthropic/v1/messages",
            &[
                ("x-api-key", &token),
                ("anthropic-version", "2023-06-01"),
                ("accept-encoding", "gzip"),
            ],
            &messages(stream),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"model\":\"claude-sonnet-4-5\""), "{body}");
        let Some(Wire::Answered {
            provider,
            model,
            status,
            usage,
            ..
        }) = rx.recv().await
        else {
            panic!("no usage told");
        };
        assert_eq!((provider, status), (Provider::Anthropic, 200));
        assert_eq!(model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(
            usage,
            Some(WireUsage {
                input: INPUT_TOKENS,
                output: OUTPUT_TOKENS,
                ..WireUsage::default()
            }),
            "stream {stream}"
        );
    }
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    for r in &seen {
        assert_eq!(
            r.header("x-api-key"),
            Some(KEY),
            "the provider gets the key"
        );
        assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
        assert!(r
            .header("accept-encoding")
            .is_none_or(|e| !e.contains("gzip")));
        assert!(
            !format!("{:?}", r.headers).contains(&token),
            "the token stays here"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_and_gemini_requests_are_counted_the_same_way() {
    let server = ModelServer::start(Scripts::new());
    let gw = gateway(&server).await;
    let (tx, mut rx) = unbounded_channel();
    let openai = gw.grant(who("r/t/1", Provider::Openai), tx.clone());
    let body = serde_json::json!({"model": "gpt-5", "stream": true, "input": "hi"}).to_string();
    let (status, _) = call(
        &gw.url(),
        "/openai/v1/responses",
        &[("authorization", &format!("Bearer {openai}"))],
        &body,
    )
    .await;
    assert_eq!(status, 200);
    let Some(Wire::Answered { usage, .. }) = rx.recv().await else {
        panic!()
    };
    assert_eq!(
        usage.map(|u| (u.input, u.output)),
        Some((INPUT_TOKENS, OUTPUT_TOKENS))
    );
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );

    let gemini = gw.grant(who("r/t/2", Provider::Gemini), tx);
    let body =
        serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).to_string();
    let path = format!(
        "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key={gemini}"
    );
    let (status, _) = call(&gw.url(), &path, &[], &body).await;
    assert_eq!(status, 200);
    let Some(Wire::Answered { usage, model, .. }) = rx.recv().await else {
        panic!()
    };
    assert_eq!(
        usage.map(|u| (u.input, u.output)),
        Some((INPUT_TOKENS, OUTPUT_TOKENS))
    );
    assert_eq!(model.as_deref(), Some("gemini-2.5-flash"));
    let last = server.requests().pop().unwrap();
    assert_eq!(
        last.query, "alt=sse",
        "the token is not passed on in the query"
    );
    assert_eq!(last.header("x-goog-api-key"), Some(KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_an_unknown_one_a_refused_one_and_a_forgotten_one_reach_nothing() {
    let server = ModelServer::start(Scripts::new());
    let gw = gateway(&server).await;
    let (tx, mut rx) = unbounded_channel();
    let token = gw.grant(who("r/t/1", Provider::Anthropic), tx);
    let url = gw.url();
    let hi = messages(false);
    let (status, body) = call(&url, "/anthropic/v1/messages", &[], &hi).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("authentication_error"), "{body}");
    let (status, _) = call(
        &url,
        "/anthropic/v1/messages",
        &[("x-api-key", "baton-gw-guessed")],
        &hi,
    )
    .await;
    assert_eq!(status, 401);
    // A token is for its provider only.
    let (status, body) = call(
        &url,
        "/openai/v1/responses",
        &[("authorization", &format!("Bearer {token}"))],
        "{}",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Nowhere but the providers: no path leads elsewhere.
    let (status, _) = call(
        &url,
        "/anthropic/../v1/messages",
        &[("x-api-key", &token)],
        &hi,
    )
    .await;
    assert_eq!(status, 404);
    assert!(server.requests().is_empty(), "nothing was forwarded");

    gw.refuse(
        &token,
        "budget exceeded: the task spent $1.02 of its budget_usd $1.00",
    );
    let (status, body) = call(
        &url,
        "/anthropic/v1/messages",
        &[("x-api-key", &token)],
        &hi,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("permission_error") && body.contains("budget exceeded"),
        "{body}"
    );
    assert!(matches!(rx.recv().await, Some(Wire::Refused { .. })));
    gw.revoke(&token);
    let (status, _) = call(
        &url,
        "/anthropic/v1/messages",
        &[("x-api-key", &token)],
        &hi,
    )
    .await;
    assert_eq!(status, 401);
    assert!(server.requests().is_empty());
}

/// A Job an earlier baton left running holds its attempt's token: the
/// attempt that adopts it has it honoured too, refused and forgotten with
/// its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_attempts_token_is_honoured_with_the_adopting_ones_and_forgotten_with_it() {
    let server = ModelServer::start(Scripts::new());
    let gw = gateway(&server).await;
    let (tx, mut rx) = unbounded_channel();
    let token = gw.grant(who("r/t/2", Provider::Anthropic), tx);
    let earlier = "baton-gw-from-an-earlier-baton";
    let url = gw.url();
    let hi = messages(false);
    let status_of = |t: String| {
        let (url, hi) = (url.clone(), hi.clone());
        async move {
            call(&url, "/anthropic/v1/messages", &[("x-api-key", &t)], &hi)
                .await
                .0
        }
    };
    assert_eq!(status_of(earlier.into()).await, 401, "not yet honoured");
    gw.honour(&token, earlier);
    gw.honour("baton-gw-nobody", "baton-gw-other");
    assert_eq!(
        status_of("baton-gw-other".into()).await,
        401,
        "no such token"
    );
    assert_eq!(status_of(earlier.into()).await, 200);
    let told = rx.recv().await;
    assert!(
        matches!(told, Some(Wire::Answered { status: 200, .. })),
        "{told:?}"
    );
    gw.refuse(&token, "budget exceeded");
    assert_eq!(status_of(earlier.into()).await, 403, "refused with it");
    gw.revoke(&token);
    assert_eq!(status_of(earlier.into()).await, 401, "forgotten with it");
    assert_eq!(status_of(token.clone()).await, 401);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_limit_is_told_at_once_and_passed_on_as_it_was() {
    let server = ModelServer::start(Scripts::new().outage(Outage::rate_limit(Api::Anthropic, 7)));
    let gw = gateway(&server).await;
    let (tx, mut rx) = unbounded_channel();
    let token = gw.grant(who("r/t/1", Provider::Anthropic), tx);
    let (status, body) = call(
        &gw.url(),
        "/anthropic/v1/messages",
        &[("x-api-key", &token)],
        &messages(true),
    )
    .await;
    assert_eq!(status, 429);
    assert!(body.contains("rate_limit_error"), "{body}");
    let Some(Wire::Limited {
        status,
        retry_after,
        message,
        ..
    }) = rx.recv().await
    else {
        panic!()
    };
    assert_eq!((status, retry_after), (429, Some(7)));
    assert!(message.contains("Rate limit"), "{message}");
}

/// An upstream that takes `ms` to answer each request, and counts how many
/// it held at once at most.
struct Slow {
    url: String,
    most: Arc<std::sync::atomic::AtomicUsize>,
}

fn slow_upstream(ms: u64) -> Slow {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen = most.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (now, most) = (now.clone(), most.clone());
            std::thread::spawn(move || {
                let mut s = stream;
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let len: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                let _ = s.read_exact(&mut body);
                let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(at_once, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(ms));
                now.fetch_sub(1, Ordering::SeqCst);
                let answer = r#"{"type":"message","model":"m","usage":{"input_tokens":1,"output_tokens":1}}"#;
                let _ = write!(s, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}", answer.len());
            });
        }
    });
    Slow { url, most: seen }
}

/// A request with each token, all at once; their statuses, in order.
async fn at_once(url: &str, tokens: &[String]) -> Vec<u16> {
    let calls: Vec<_> = tokens
        .iter()
        .map(|token| {
            let (url, token) = (url.to_string(), token.clone());
            tokio::spawn(async move {
                let auth = [("x-api-key", token.as_str())];
                call(&url, "/anthropic/v1/messages", &auth, "{}").await.0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.unwrap());
    }
    statuses
}

async fn gateway_to(
    url: &str,
    accounts: &[(&str, baton_core::gateway::AccountLimits)],
) -> Arc<dyn Gateway> {
    let mut settings = GatewaySettings::default();
    settings
        .providers
        .insert(Provider::Anthropic, Upstream { url: url.into() });
    for (name, limits) in accounts {
        settings.accounts.insert(name.to_string(), *limits);
    }
    baton_gateway::start(settings).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_concurrency_holds_its_agents_requests_to_that_many_at_once() {
    let up = slow_upstream(300);
    let limits = baton_core::gateway::AccountLimits {
        concurrency: Some(1),
        ..Default::default()
    };
    let gw = gateway_to(&up.url, &[("acct", limits)]).await;
    let (tx, mut rx) = unbounded_channel();
    // Two agents of the account, three requests at once.
    let tokens = [
        gw.grant(who("r/a/1", Provider::Anthropic), tx.clone()),
        gw.grant(who("r/b/1", Provider::Anthropic), tx.clone()),
    ];
    let picked = [0, 1, 0].map(|i| tokens[i].clone());
    for status in at_once(&gw.url(), &picked).await {
        assert_eq!(status, 200);
    }
    assert_eq!(
        up.most.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "more than one at once"
    );
    drop(tx);
    let mut queued = 0;
    while let Ok(Some(w)) =
        tokio::time::timeout(std::time::Duration::from_millis(100), rx.recv()).await
    {
        queued += matches!(w, Wire::Queued { .. }) as usize;
    }
    assert!(queued >= 1, "the waiting agent was not told");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_has_at_most_sixteen_requests_in_flight() {
    let up = slow_upstream(500);
    let gw = gateway_to(&up.url, &[]).await;
    let (tx, _rx) = unbounded_channel();
    let token = gw.grant(who("r/a/1", Provider::Anthropic), tx);
    let mut statuses = at_once(&gw.url(), &vec![token; 17]).await;
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        16,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}
