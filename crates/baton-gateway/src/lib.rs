//! baton's model gateway (see `baton_core::gateway`): one listener per run
//! that agents reach as their provider, each with its attempt's token as
//! its key. A request is checked against the token, forwarded over HTTP(S)
//! to the provider the plan names with the key only baton holds, and its
//! answer streamed back as it comes while its usage is read; the attempt
//! is told what each request used, and whether the provider limited it.

mod account;
mod forward;
mod quickack;
mod route;
mod tokens;
mod usage;

use baton_core::gateway::{Boxed, Gateway, GatewayKind, GatewaySettings, Grantee, Started, Wire};
use forward::Gate;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// What the binary plugs into the engine.
pub const KIND: GatewayKind = GatewayKind { start: boxed_start };

fn boxed_start(settings: GatewaySettings) -> Boxed<Started> {
    Box::pin(start(settings))
}

/// A run's gateway, listening; it stops listening when dropped.
pub struct Running {
    gate: Arc<Gate>,
    url: String,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Binds `settings.listen` and serves.
pub async fn start(settings: GatewaySettings) -> Started {
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .map_err(|e| {
            format!(
                "the model gateway cannot listen on {}: {e}",
                settings.listen
            )
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("the model gateway's address: {e}"))?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(30)));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("the model gateway cannot read the system's certificate roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(quickack::QuickAckConnector(http));
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https);
    let gate = Arc::new(Gate {
        tokens: tokens::Tokens::default(),
        providers: settings.providers,
        limits: settings.accounts,
        log_bodies: settings.log_bodies,
        accounts: Default::default(),
        client,
    });
    let accept = tokio::spawn(serve(listener, gate.clone()));
    // Listening on every address, it is reached here on loopback.
    let shown = match addr.ip().is_unspecified() {
        true => std::net::SocketAddr::from(([127, 0, 0, 1], addr.port())),
        false => addr,
    };
    Ok(Arc::new(Running {
        gate,
        url: format!("http://{shown}"),
        accept,
    }))
}

async fn serve(listener: tokio::net::TcpListener, gate: Arc<Gate>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors, say: wait a little rather than spin.
                tracing::warn!("gateway: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let gate = gate.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|req| {
                let gate = gate.clone();
                async move { forward::handle(&gate, req).await }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!("gateway: connection: {e}");
            }
        });
    }
}

impl Gateway for Running {
    fn url(&self) -> String {
        self.url.clone()
    }

    fn grant(&self, who: Grantee, sink: UnboundedSender<Wire>) -> String {
        let token = format!("baton-gw-{}", baton_core::access::new_token());
        let account = self.gate.account(who.provider, &who.account);
        let grant = tokens::Grant {
            label: who.label,
            provider: who.provider,
            credential: who.credential,
            upstream: who.upstream,
            account,
            in_flight: Arc::new(tokio::sync::Semaphore::new(tokens::MAX_IN_FLIGHT)),
            sink,
            refused: None,
        };
        self.gate.tokens.add(token.clone(), grant);
        token
    }

    fn refuse(&self, token: &str, why: &str) {
        self.gate.tokens.refuse(token, why);
    }

    fn revoke(&self, token: &str) {
        self.gate.tokens.remove(token);
    }

    fn honour(&self, token: &str, earlier: &str) {
        self.gate.tokens.alias(token, earlier);
    }
}
