//! Connections to xDS servers: TCP or Unix-domain sockets, plaintext or TLS,
//! with HTTP/2 keepalive so a dead server is noticed while idle.
//!
//! Channels are pooled per server: every [`XdsClient`](super::XdsClient)
//! talking to the same server (same URI, credentials and features) opens its
//! ADS stream on the same HTTP/2 connection, as gRPC shares xDS channels
//! between its per-target clients (A71).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::ads::Connector;
use crate::bootstrap::{ChannelCreds, ServerTarget, XdsServer};

/// Keepalive on the ADS connection: pings every 30 s (idle too), dead after
/// 10 s without an answer.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

static POOL: Mutex<Option<HashMap<XdsServer, Pooled>>> = Mutex::new(None);

/// A pooled channel and a sign of life of the runtime its background
/// tasks run on: a channel whose runtime has shut down never works again
/// (a process may run several runtimes one after another, as tests do).
struct Pooled {
    channel: Channel,
    runtime: Weak<()>,
}

/// A connector for `server`: hands out the pooled channel, building it on
/// first use. The channel reconnects by itself; a failed connection shows
/// up as a failed stream, which the ADS worker backs off from.
pub(crate) fn connector(server: XdsServer) -> Connector {
    Arc::new(move || {
        let server = server.clone();
        Box::pin(async move { pooled_channel(&server) })
    })
}

fn pooled_channel(server: &XdsServer) -> Result<Channel, String> {
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let pool = pool.get_or_insert_with(HashMap::new);
    pool.retain(|_, p| p.runtime.strong_count() > 0);
    if let Some(p) = pool.get(server) {
        return Ok(p.channel.clone());
    }
    let ch = channel(server)?;
    pool.insert(
        server.clone(),
        Pooled {
            channel: ch.clone(),
            runtime: runtime_alive(),
        },
    );
    Ok(ch)
}

/// A `Weak` that dies with the current runtime: a task that never ends
/// holds its only strong reference, and a runtime drops its tasks when it
/// shuts down.
fn runtime_alive() -> Weak<()> {
    let alive = Arc::new(());
    let weak = Arc::downgrade(&alive);
    tokio::spawn(async move {
        let _alive = alive;
        std::future::pending::<()>().await;
    });
    weak
}

fn channel(server: &XdsServer) -> Result<Channel, String> {
    let tls = match server.channel_creds() {
        ChannelCreds::Insecure => None,
        ChannelCreds::Tls(creds) => {
            let mut cfg = ClientTlsConfig::new();
            let read = |p: &std::path::Path| {
                std::fs::read(p)
                    .map_err(|e| format!("xDS server TLS: cannot read {}: {e}", p.display()))
            };
            match &creds.ca_certificate_file {
                Some(ca) => cfg = cfg.ca_certificate(Certificate::from_pem(read(ca)?)),
                None => {
                    return Err(format!(
                        "xDS server {}: tls channel_creds without ca_certificate_file (system roots are not supported)",
                        server.server_uri()
                    ));
                }
            }
            if let (Some(c), Some(k)) = (&creds.certificate_file, &creds.private_key_file) {
                cfg = cfg.identity(Identity::from_pem(read(c)?, read(k)?));
            }
            if let ServerTarget::Tcp { host, .. } = server.target() {
                cfg = cfg.domain_name(host.clone());
            }
            Some(cfg)
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let uri = match server.target() {
        ServerTarget::Tcp { host, port } if host.contains(':') => {
            format!("{scheme}://[{host}]:{port}")
        }
        ServerTarget::Tcp { host, port } => format!("{scheme}://{host}:{port}"),
        // The authority is unused for Unix sockets but must parse.
        ServerTarget::Unix(_) => format!("{scheme}://localhost"),
    };
    let mut ep = Endpoint::from_shared(uri.clone())
        .map_err(|e| format!("invalid xDS server address {uri}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        ep = ep
            .tls_config(tls)
            .map_err(|e| format!("xDS server TLS config: {e}"))?;
    }
    Ok(match server.target() {
        ServerTarget::Tcp { .. } => ep.connect_lazy(),
        ServerTarget::Unix(path) => {
            let path = path.clone();
            ep.connect_with_connector_lazy(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
        }
    })
}
