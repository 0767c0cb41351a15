//! The interop client's RPC loop: ticks at `--qps`, round-robin over the
//! channels, sending one RPC of every configured type per tick, each in its
//! own task so slow or `keep-open` RPCs never hold the rate back; and the
//! channels' background connection (a channel not connected yet fails its
//! RPCs UNAVAILABLE, as gRPC's would without a config).
//!
//! Not here: what is recorded ([`super::stats`]) or served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use mesh_core::bootstrap::Bootstrap;
use mesh_core::testing::proto::grpc_testing::load_balancer_stats_response::{
    MetadataEntry, MetadataType,
};
use mesh_core::testing::proto::grpc_testing::test_service_client::TestServiceClient;
use mesh_core::testing::proto::grpc_testing::{Empty, Payload, PayloadType, SimpleRequest};
use mesh_tower::discovery::DiscoveryOptions;
use mesh_tower::tls::ProviderRegistry;
use tokio::sync::{OnceCell, watch};
use tokio::time::MissedTickBehavior;
use tonic::metadata::{KeyAndValueRef, MetadataMap};
use tonic::{Code, Request};

use super::config::{RpcConfig, RpcType};
use super::stats::{Outcome, Stats};
use crate::Channel;

/// The response header naming the backend.
const HOSTNAME: &str = "hostname";
/// How long to wait before retrying a channel that could not connect.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// What every RPC task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub stats: Stats,
    pub rpc: ArcSwap<RpcConfig>,
    pub print_response: bool,
    pub fail_on_failed_rpc: bool,
    pub request_payload_size: usize,
    pub response_payload_size: usize,
    /// Set once an RPC succeeded (a valid config arrived).
    pub succeeded: AtomicBool,
    /// The first failure after a success, when `fail_on_failed_rpc`.
    pub failure: watch::Sender<Option<String>>,
}

/// A channel that may not be connected yet.
pub(crate) type Slot = Arc<OnceCell<Channel>>;

/// How a channel treats the clusters' TLS contexts (`--secure_mode`).
#[derive(Clone)]
pub(crate) enum Credentials {
    /// xDS credentials: TLS where the cluster has an `UpstreamTlsContext`
    /// (certificates from the bootstrap's providers), plaintext otherwise.
    Xds(Arc<ProviderRegistry>),
    /// Insecure: plaintext, TLS contexts ignored.
    Insecure,
}

/// Connects `slot` in the background, retrying until it succeeds.
pub(crate) async fn connect(
    slot: Slot,
    target: String,
    bootstrap: Bootstrap,
    seed: Option<u64>,
    credentials: Credentials,
) {
    loop {
        let mut builder = Channel::builder(target.clone()).bootstrap(bootstrap.clone());
        builder = match &credentials {
            Credentials::Xds(registry) => builder.discovery_options(DiscoveryOptions {
                tls_registry: Some(Arc::clone(registry)),
                ..Default::default()
            }),
            Credentials::Insecure => builder.insecure(),
        };
        if let Some(seed) = seed {
            builder = builder.seed(seed);
        }
        match builder.connect().await {
            Ok(channel) => {
                let _ = slot.set(channel);
                return;
            }
            Err(e) => {
                tracing::warn!(%target, error = %e, "channel not ready; retrying");
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        }
    }
}

/// Sends RPCs at `qps` ticks per second over `slots`, forever.
pub(crate) async fn run(shared: Arc<Shared>, slots: Vec<Slot>, qps: u32) {
    let period = Duration::from_secs(1) / qps.max(1);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for i in 0usize.. {
        ticks.tick().await;
        let slot = &slots[i % slots.len()];
        let config = shared.rpc.load_full();
        for &rpc in &config.types {
            let (shared, slot, config) =
                (Arc::clone(&shared), Arc::clone(slot), Arc::clone(&config));
            tokio::spawn(async move { one_rpc(&shared, &slot, rpc, &config).await });
        }
    }
}

async fn one_rpc(shared: &Shared, slot: &Slot, rpc: RpcType, config: &RpcConfig) {
    let ticket = shared.stats.start(rpc);
    let outcome = match slot.get() {
        Some(channel) => call(shared, channel.clone(), rpc, config).await,
        None => Outcome {
            code: Code::Unavailable,
            peer: None,
            metadata: Vec::new(),
        },
    };
    if outcome.code == Code::Ok {
        shared.succeeded.store(true, Ordering::Relaxed);
    } else if shared.fail_on_failed_rpc && shared.succeeded.load(Ordering::Relaxed) {
        let why = format!("{} failed with {:?}", rpc.method(), outcome.code);
        shared.failure.send_if_modified(|f| {
            let first = f.is_none();
            if first {
                *f = Some(why);
            }
            first
        });
    }
    shared.stats.finish(ticket, &outcome);
}

async fn call(shared: &Shared, channel: Channel, rpc: RpcType, config: &RpcConfig) -> Outcome {
    let mut client = TestServiceClient::new(channel);
    let mut metadata = MetadataMap::new();
    for m in config.metadata.iter().filter(|m| m.rpc == rpc) {
        metadata.append(m.key.clone(), m.value.clone());
    }
    let result = match rpc {
        RpcType::EmptyCall => {
            let mut req = Request::new(Empty {});
            *req.metadata_mut() = metadata;
            req.set_timeout(config.timeout);
            client
                .empty_call(req)
                .await
                .map(|r| (r.metadata().clone(), None))
        }
        RpcType::UnaryCall => {
            let message = SimpleRequest {
                response_type: PayloadType::Compressable.into(),
                response_size: i32::try_from(shared.response_payload_size).unwrap_or(i32::MAX),
                payload: (shared.request_payload_size > 0).then(|| Payload {
                    r#type: PayloadType::Compressable.into(),
                    body: vec![0; shared.request_payload_size],
                }),
                fill_server_id: true,
                ..Default::default()
            };
            let mut req = Request::new(message);
            *req.metadata_mut() = metadata;
            req.set_timeout(config.timeout);
            client.unary_call(req).await.map(|r| {
                let (md, body, _) = r.into_parts();
                (md, Some(body))
            })
        }
    };
    match result {
        Ok((md, body)) => {
            let header = md.get(HOSTNAME).and_then(|v| v.to_str().ok());
            let peer = body
                .as_ref()
                .map(|b| b.hostname.as_str())
                .filter(|h| !h.is_empty())
                .or(header)
                .map(str::to_owned);
            if shared.print_response {
                let from = peer.as_deref().unwrap_or("<unknown>");
                match &body {
                    Some(b) => println!(
                        "{}: hostname {from}, server_id {}",
                        rpc.method(),
                        b.server_id
                    ),
                    None => println!("{}: hostname {from}", rpc.method()),
                }
            }
            Outcome {
                code: Code::Ok,
                peer,
                metadata: entries(&md, MetadataType::Initial),
            }
        }
        Err(status) => {
            if shared.print_response {
                println!("{} failed: {status}", rpc.method());
            }
            Outcome {
                code: status.code(),
                peer: None,
                metadata: entries(status.metadata(), MetadataType::Trailing),
            }
        }
    }
}

/// The ASCII entries of `md` (binary ones are skipped).
fn entries(md: &MetadataMap, kind: MetadataType) -> Vec<MetadataEntry> {
    md.iter()
        .filter_map(|e| match e {
            KeyAndValueRef::Ascii(k, v) => Some(MetadataEntry {
                key: k.as_str().to_owned(),
                value: v.to_str().unwrap_or_default().to_owned(),
                r#type: kind.into(),
            }),
            KeyAndValueRef::Binary(..) => None,
        })
        .collect()
}
