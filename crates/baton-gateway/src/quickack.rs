//! Upstream connections that acknowledge what they read at once. The
//! gateway keeps its connections to a provider open between requests, and
//! a kept connection leaves Linux's quick-ack start and delays its ACKs
//! (up to 40 ms). An upstream that writes a stream in small pieces with
//! Nagle's algorithm on (a proxy of a company's, a plain Python server)
//! then holds each piece until the ACK of the one before: measured, 42 ms
//! more to the first byte of every answer. Asking for quick ACKs after
//! every read keeps the stream as fast as on a fresh connection.

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::net::TcpStream;

/// [`HttpConnector`], its connections [`QuickAck`].
#[derive(Clone)]
pub struct QuickAckConnector(pub HttpConnector);

/// A connection to an upstream that acknowledges at once.
pub struct QuickAck(TokioIo<TcpStream>);

type Connecting = Pin<Box<dyn Future<Output = Result<QuickAck, ConnectError>> + Send>>;
type ConnectError = <HttpConnector as tower_service::Service<Uri>>::Error;

impl tower_service::Service<Uri> for QuickAckConnector {
    type Response = QuickAck;
    type Error = ConnectError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map(QuickAck) })
    }
}

impl Read for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.0).poll_read(cx, buf);
        if polled.is_ready() {
            // Not a lasting setting: the kernel leaves quick-ack mode again
            // as it sees fit, so it is asked for after every read.
            #[cfg(target_os = "linux")]
            let _ = socket2::SockRef::from(self.0.inner()).set_tcp_quickack(true);
        }
        polled
    }
}

impl Write for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

impl Connection for QuickAck {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}
