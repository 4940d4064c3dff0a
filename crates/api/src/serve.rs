//! The accept loop: HTTP/1.1 over hyper with a timer, so that a client
//! that opens a connection and sends nothing, or half a request, is cut
//! off at the header timeout, and with caps on open connections (in all
//! and per client), so that the API cannot take the file descriptors the
//! camera and the store need. With TLS, the handshake happens inside the
//! same limits: under the caps, and within the header timeout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use edgesort_tls::{Fingerprint, ServerTls};
use edgesort_types::config::ApiConfig;
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth_limit::ClientKey;

/// How long a stop waits for calls in progress before it drops them.
const DRAIN: Duration = Duration::from_secs(10);

/// What the API's connections may take from the box: `[api]`'s limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A connection without a whole request head this long after it opened
    /// or after its last answer is closed.
    pub header_timeout: Duration,
    /// Connections open at once, at most.
    pub max_connections: usize,
    /// Connections open at once from one client, at most.
    pub max_connections_per_address: usize,
}

impl From<&ApiConfig> for Limits {
    fn from(api: &ApiConfig) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(api.header_timeout_s),
            max_connections: api.max_connections as usize,
            max_connections_per_address: api.max_connections_per_address as usize,
        }
    }
}

/// The first byte of every TLS handshake (a handshake record); a plain
/// HTTP request starts with a letter.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What a plain HTTP request to the HTTPS port is answered: a browser
/// shows it, where a TLS alert would show as a broken page.
const HTTPS_ONLY: &str = "This is the edgesort API over HTTPS: call it with https:// instead\n";

/// The certificate a connection was served, as the handlers see it:
/// `/status` reports its fingerprint, so that a client can pin it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Served(pub(crate) Option<Fingerprint>);

/// Serves `router` on `listener` within `limits`, over TLS with `tls`'s
/// certificate where given (plain HTTP otherwise), until `shutdown`
/// completes; then answers the calls in progress (for a few seconds at
/// most) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = tls.map(|tls| (TlsAcceptor::from(tls.server_config()), tls.fingerprint()));
    let total = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = Arc::new(PerClient::default());
    let (stop, stopped) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or the peer gave up before
                    // the accept: wait a little instead of spinning.
                    tracing::warn!(%error, "accepting an API connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Beyond a cap the connection is closed at once (dropped), never
        // queued.
        let Ok(permit) = total.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "API connection refused: too many open");
            continue;
        };
        let Some(slot) = per_client.take(peer, limits.max_connections_per_address) else {
            tracing::debug!(%peer, "API connection refused: too many from this client");
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            tls.clone(),
            router.clone(),
            limits.header_timeout,
            stopped.clone(),
            (permit, slot),
        ));
    }
    let _ = stop.send(true);
    // Every connection holds one permit until it ends.
    let everyone = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN, total.acquire_many(everyone)).await;
    Ok(())
}

/// One client connection, until it closes, times out or the server stops.
/// With `tls`, its handshake must be done within `header_timeout` too: a
/// client that opens a connection and never says hello holds a place under
/// the caps no longer than one that never sends a request.
/// `_held` are its places under the caps, given back when it ends.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<(TlsAcceptor, Fingerprint)>,
    router: Router,
    header_timeout: Duration,
    mut stopped: watch::Receiver<bool>,
    _held: (OwnedSemaphorePermit, ClientSlot),
) {
    let Some((acceptor, fingerprint)) = tls else {
        let served = Served(None);
        return http(
            TokioIo::new(stream),
            peer,
            served,
            router,
            header_timeout,
            stopped,
        )
        .await;
    };
    let handshake = async move {
        let mut first = [0u8; 1];
        if stream.peek(&mut first).await? == 1 && first[0] != TLS_HANDSHAKE_RECORD {
            // Plain HTTP: say where the API is, and nothing else. What was
            // sent (a request head, whole in one read as a rule) is read
            // first: closing with unread data would reset the connection,
            // and the client could lose the answer.
            let mut head = [0u8; 8192];
            let _ = stream.try_read(&mut head);
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{HTTPS_ONLY}",
                HTTPS_ONLY.len()
            );
            write_all(&stream, answer.as_bytes()).await?;
            return Ok(None);
        }
        acceptor.accept(stream).await.map(Some)
    };
    let handshake = tokio::select! {
        done = tokio::time::timeout(header_timeout, handshake) => done,
        _ = stopped.changed() => return,
    };
    match handshake {
        Ok(Ok(Some(stream))) => {
            let served = Served(Some(fingerprint));
            http(
                TokioIo::new(stream),
                peer,
                served,
                router,
                header_timeout,
                stopped,
            )
            .await;
        }
        Ok(Ok(None)) => tracing::debug!(%peer, "plain HTTP to the HTTPS API answered 400"),
        Ok(Err(error)) => tracing::debug!(%peer, %error, "API TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "API TLS handshake not done in time"),
    }
}

/// Writes `bytes` whole to `stream`, a few hundred of them: tokio's
/// `AsyncWriteExt` is not worth a feature for this.
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// HTTP/1.1 on an open (and, with TLS, handshaken) connection.
async fn http<Io: Read + Write + Unpin + Send + 'static>(
    io: Io,
    peer: SocketAddr,
    served: Served,
    router: Router,
    header_timeout: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let service = router.map_request(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(served);
        request
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connection = builder.serve_connection(io, TowerToHyperService::new(service));
    let mut connection = std::pin::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        _ = stopped.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = ended {
        tracing::debug!(%peer, %error, "API connection ended");
    }
}

/// Open connections per client.
#[derive(Default)]
struct PerClient(Mutex<HashMap<ClientKey, usize>>);

/// One open connection's place in its client's count.
struct ClientSlot {
    clients: Arc<PerClient>,
    client: ClientKey,
}

impl PerClient {
    fn take(self: &Arc<Self>, peer: SocketAddr, cap: usize) -> Option<ClientSlot> {
        let client = ClientKey::from(peer.ip());
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(client).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: self.clone(),
            client,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.clients.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}
