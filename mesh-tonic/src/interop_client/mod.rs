//! The gRPC xDS interop test client (`doc/xds-test-descriptions.md`,
//! "Client"), built on [`Channel`](crate::Channel): the
//! `xds-interop-client` binary is a thin wrapper, and tests run it
//! in-process with [`start`].
//!
//! It sends RPCs to `--server` (an `xds:` target) at `--qps` ticks per
//! second, round-robin over `--num_channels` channels, one RPC of every
//! `--rpc` type per tick, recording per RPC its status and its peer (the
//! `hostname` the backend answered with). The stats port serves
//! LoadBalancerStatsService, XdsUpdateClientConfigureService, CSDS over
//! the channels' shared xDS client, and channelz.
//!
//! Credentials: with `--secure_mode=true`, xDS credentials: a cluster
//! with an `UpstreamTlsContext` is reached over TLS with the certificates
//! of the bootstrap's `certificate_providers` (one registry shared by every
//! channel), a cluster without one in plaintext (the fallback). With
//! `--secure_mode=false`, insecure credentials: plaintext, the TLS
//! contexts ignored (`ChannelBuilder::insecure`), as gRPC clients do.

pub mod config;
mod rpc;
mod service;
pub mod stats;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use mesh_core::testing::proto::grpc_testing::load_balancer_stats_service_server::LoadBalancerStatsServiceServer;
use mesh_core::testing::proto::grpc_testing::xds_update_client_configure_service_server::XdsUpdateClientConfigureServiceServer;
use mesh_core::xds::XdsClient;
use tokio::sync::{OnceCell, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

pub use self::config::{ClientConfig, RpcConfig, RpcMetadata, RpcType};
use self::rpc::Shared;
use self::service::Control;
use self::stats::Stats;
use crate::admin::Csds;

/// Why the client could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No usable bootstrap.
    #[error("xDS bootstrap: {0}")]
    Bootstrap(String),
    /// The stats port could not be bound.
    #[error("cannot listen on stats port {port}: {source}")]
    Bind {
        /// The port.
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running interop client. Dropping it stops the RPCs and the stats
/// server.
#[derive(Debug)]
pub struct RunningClient {
    stats_addr: SocketAddr,
    shared: Arc<Shared>,
    failure: watch::Receiver<Option<String>>,
    tasks: Vec<JoinHandle<()>>,
    _stop: oneshot::Sender<()>,
}

impl RunningClient {
    /// Where the stats and admin services listen (all interfaces).
    pub fn stats_addr(&self) -> SocketAddr {
        self.stats_addr
    }

    /// The statistics recorded so far.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Resolves with the first RPC failure after a success when
    /// `fail_on_failed_rpc` is set; never otherwise.
    pub async fn failed(&mut self) -> String {
        match self.failure.wait_for(Option::is_some).await {
            Ok(f) => f.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for RunningClient {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts the client: binds the stats port, serves the control services,
/// connects the channels in the background and starts sending.
pub async fn start(config: ClientConfig) -> Result<RunningClient, StartError> {
    let bootstrap = match config.bootstrap.clone() {
        Some(b) => b,
        None => mesh_core::bootstrap::Bootstrap::from_env()
            .map_err(|e| StartError::Bootstrap(e.to_string()))?,
    };
    let credentials = if config.secure_mode {
        // One provider instance per bootstrap entry for the whole process.
        rpc::Credentials::Xds(mesh_tower::discovery::shared_tls_registry(&bootstrap))
    } else {
        rpc::Credentials::Insecure
    };
    let (failure_tx, failure) = watch::channel(None);
    let shared = Arc::new(Shared {
        stats: Stats::new(),
        rpc: ArcSwap::from_pointee(config.rpc.clone()),
        print_response: config.print_response,
        fail_on_failed_rpc: config.fail_on_failed_rpc,
        request_payload_size: config.request_payload_size,
        response_payload_size: config.response_payload_size,
        succeeded: AtomicBool::new(false),
        failure: failure_tx,
    });

    let listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.stats_port));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| StartError::Bind {
            port: config.stats_port,
            source,
        })?;
    let stats_addr = listener.local_addr().map_err(|source| StartError::Bind {
        port: config.stats_port,
        source,
    })?;
    let control = Control {
        shared: Arc::clone(&shared),
        default_timeout: config.rpc.timeout,
    };
    // The channels' process-wide xDS client (keyed by the target, A71).
    let csds = Csds::new().client(
        config.server.clone(),
        XdsClient::shared(&bootstrap, &config.server),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(LoadBalancerStatsServiceServer::new(control.clone()))
        .add_service(XdsUpdateClientConfigureServiceServer::new(control))
        .add_service(csds.into_service())
        .add_service(crate::admin::Channelz::new().into_service())
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
            let _ = stopped.await;
        });
    let mut tasks = vec![tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "stats server failed");
        }
    })];

    let slots: Vec<rpc::Slot> = (0..config.num_channels)
        .map(|_| Arc::new(OnceCell::new()))
        .collect();
    for slot in &slots {
        tasks.push(tokio::spawn(rpc::connect(
            Arc::clone(slot),
            config.server.clone(),
            bootstrap.clone(),
            config.seed,
            credentials.clone(),
        )));
    }
    tasks.push(tokio::spawn(rpc::run(
        Arc::clone(&shared),
        slots,
        config.qps,
    )));
    Ok(RunningClient {
        stats_addr,
        shared,
        failure,
        tasks,
        _stop: stop,
    })
}
