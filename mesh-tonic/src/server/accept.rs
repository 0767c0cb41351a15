//! The accept loop: follows the serving mode, picks a filter chain per
//! connection, terminates TLS for chains with a `DownstreamTlsContext`
//! (in the connection's task, so a slow handshake never stalls accepting),
//! spawns connections, drains them on Listener changes and on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use mesh_core::watch::{ServerConfig, ServerWatch};
use mesh_tower::tls::ProviderRegistry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::Service;

use super::connection::{self, Drain};
use super::mode::{Mode, ModeCallback};
use super::routing::{ChainIndex, Conn, InboundHook, XdsRouting};
use super::tls::{Acceptors, handshake};
use super::{BoxError, ServingMode};
use crate::admin::channelz::{self, ServerEntry, TrackedService};

/// How long to pause after an accept error (out of file descriptors, ...).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Everything the loop needs besides the service.
pub(crate) struct AcceptLoop {
    pub(crate) listener: TcpListener,
    pub(crate) listening: SocketAddr,
    pub(crate) listener_name: String,
    pub(crate) watch: ServerWatch,
    pub(crate) grace: Duration,
    pub(crate) on_mode: Option<ModeCallback>,
    pub(crate) hook: Option<Arc<dyn InboundHook>>,
    /// Where TLS chains get their certificates.
    pub(crate) tls_registry: Arc<ProviderRegistry>,
    /// The bound on each TLS handshake.
    pub(crate) handshake_timeout: Duration,
    /// The server's channelz entry (its connections register under it).
    pub(crate) channelz: Arc<ServerEntry>,
}

/// The loop's mutable state.
struct State {
    mode: Mode,
    /// The config connections read RDS updates from.
    live: Arc<ArcSwapOption<ServerConfig>>,
    /// Bumped to drain every connection accepted before.
    generation: u64,
    drain: watch::Sender<u64>,
    /// TLS acceptors of the current Listener's chains.
    acceptors: Acceptors,
    handshake_timeout: Duration,
    channelz: Arc<ServerEntry>,
}

impl AcceptLoop {
    /// Runs until `shutdown` resolves, then drains (at most the grace
    /// period) and returns.
    pub(crate) async fn run<S, B>(self, service: S, shutdown: impl Future<Output = ()>)
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let AcceptLoop {
            listener,
            listening,
            listener_name,
            watch,
            grace,
            on_mode,
            hook,
            tls_registry,
            handshake_timeout,
            channelz,
        } = self;
        let mut state = State {
            mode: Mode::NotServing(format!("waiting for Listener \"{listener_name}\"")),
            live: Arc::new(ArcSwapOption::empty()),
            generation: 0,
            drain: watch::channel(0).0,
            acceptors: Acceptors::new(tls_registry),
            handshake_timeout,
            channelz,
        };
        tracing::info!(%listening, listener = %listener_name, "xDS-enabled server started (not serving until its Listener arrives)");
        let mut rx = watch.receiver();
        let mut watch_open = true;
        let mut tasks = JoinSet::new();
        let initial = rx.borrow_and_update().clone();
        if let Some(next) = Mode::from_state(&initial, &listener_name, listening) {
            state.transition(next, on_mode.as_ref());
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                changed = rx.changed(), if watch_open => {
                    if changed.is_err() {
                        watch_open = false;
                        continue;
                    }
                    let current = rx.borrow_and_update().clone();
                    if let Some(next) = Mode::from_state(&current, &listener_name, listening) {
                        state.transition(next, on_mode.as_ref());
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((io, peer)) => {
                        if let Some(task) = state.connection(io, peer, &service, &hook, grace) {
                            tasks.spawn(task);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        drop(listener);
        tracing::info!(
            connections = tasks.len(),
            ?grace,
            "shutting down: draining connections"
        );
        state.drain.send_replace(u64::MAX);
        // Each connection bounds its own drain by `grace`; the margin covers
        // scheduling only.
        let drained = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace + Duration::from_secs(1), drained)
            .await
            .is_err()
        {
            tasks.shutdown().await;
        }
        drop(watch);
    }
}

impl State {
    fn transition(&mut self, next: Mode, on_mode: Option<&ModeCallback>) {
        let report = self.mode.reportable_change(&next);
        let same_listener = matches!((&self.mode, &next),
            (Mode::Serving(old), Mode::Serving(new)) if Arc::ptr_eq(&old.listener, &new.listener));
        if !same_listener {
            let config = match &next {
                Mode::Serving(c) => Some(&**c),
                Mode::NotServing(_) => None,
            };
            self.acceptors.retain_used(config);
        }
        match &next {
            // Only routes changed (RDS): open connections pick them up.
            Mode::Serving(new) if same_listener => self.live.store(Some(new.clone())),
            _ => {
                let config = match &next {
                    Mode::Serving(c) => Some(c.clone()),
                    Mode::NotServing(_) => None,
                };
                self.live.store(config);
                self.generation += 1;
                self.drain.send_replace(self.generation);
            }
        }
        if report {
            match &next {
                Mode::Serving(_) => tracing::info!("serving"),
                Mode::NotServing(reason) => tracing::warn!(%reason, "not serving"),
            }
            if let Some(cb) = on_mode {
                let reason = match &next {
                    Mode::Serving(_) => None,
                    Mode::NotServing(r) => Some(r.clone()),
                };
                cb(next.kind(), reason);
            }
        } else if !same_listener && next.kind() == ServingMode::Serving {
            tracing::info!("Listener updated: draining connections of the previous one");
        }
        self.mode = next;
    }

    /// The task serving a new connection, or `None` when it is closed at once.
    fn connection<S, B>(
        &mut self,
        io: TcpStream,
        peer: SocketAddr,
        service: &S,
        hook: &Option<Arc<dyn InboundHook>>,
        grace: Duration,
    ) -> Option<impl Future<Output = ()> + Send + 'static>
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let config = match &self.mode {
            Mode::Serving(c) => c,
            Mode::NotServing(reason) => {
                tracing::debug!(%peer, %reason, "not serving: connection closed");
                return None;
            }
        };
        let local = match io.local_addr() {
            Ok(a) => a,
            Err(error) => {
                tracing::debug!(%peer, %error, "cannot read the local address: connection closed");
                return None;
            }
        };
        let server = config.server();
        let Some(chain) = server.select_chain(local, peer) else {
            tracing::debug!(%peer, %local, "no filter chain matches: connection closed");
            return None;
        };
        let acceptor = match &chain.tls {
            None => None,
            Some(ctx) => match self.acceptors.get(ctx) {
                Ok(a) => Some((a, self.acceptors.identity(ctx))),
                Err(error) => {
                    tracing::debug!(%peer, chain = %chain.name, %error, "cannot terminate TLS: connection closed");
                    return None;
                }
            },
        };
        let index = server
            .filter_chains
            .iter()
            .position(|c| std::ptr::eq(c, chain))
            .map_or(ChainIndex::Default, ChainIndex::Listed);
        let _ = io.set_nodelay(true);
        let config = config.clone();
        let live = self.live.clone();
        let hook = hook.clone();
        let service = service.clone();
        let drain = Drain {
            rx: self.drain.subscribe(),
            generation: self.generation,
        };
        let timeout = self.handshake_timeout;
        let server = Arc::clone(&self.channelz);
        Some(async move {
            let Some((acceptor, identity)) = acceptor else {
                let conn = Conn::new(config, index, live, hook, local, peer, None);
                let socket = channelz::register_server_socket(&server, local, peer, None);
                let service = TrackedService::new(XdsRouting::new(service, Arc::new(conn)), socket);
                return connection::serve(io, service, drain, grace).await;
            };
            match handshake(&acceptor, io, timeout, identity.as_ref()).await {
                Ok((stream, tls)) => {
                    let security = Some(tls.security.clone());
                    let conn = Conn::new(config, index, live, hook, local, peer, Some(tls));
                    let socket = channelz::register_server_socket(&server, local, peer, security);
                    let service =
                        TrackedService::new(XdsRouting::new(service, Arc::new(conn)), socket);
                    connection::serve(stream, service, drain, grace).await;
                }
                Err(error) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed: connection closed")
                }
            }
        })
    }
}
