//! The ADS stream worker: one task per [`XdsClient`](super::XdsClient) that
//! owns the subscriptions and the cache, keeps a state-of-the-world stream
//! to the server, and answers every response with an ACK or a NACK.
//!
//! It does no validation itself (that is [`crate::resource`]) and publishes
//! per-resource updates only; the cascade into snapshots is [`crate::watch`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::backoff::{Backoff, BackoffConfig};
use super::resource_state::{ResourceEntry, ResourceStatus, WatcherSlot};
use super::status::{ClientStatus, ResourceStatusEntry};
use super::type_state::{DataErrorPolicy, TypeState};
use crate::resource::ResourceType;

/// Makes a channel to the xDS server (one attempt).
pub(crate) type Connector =
    Arc<dyn Fn() -> BoxFuture<'static, Result<tonic::transport::Channel, String>> + Send + Sync>;

/// Requests from client handles to the worker.
#[derive(Debug)]
pub(crate) enum Command {
    Subscribe {
        kind: ResourceType,
        name: String,
        slot: WatcherSlot,
    },
    Unsubscribe {
        kind: ResourceType,
        name: String,
        id: u64,
    },
    Status(oneshot::Sender<ClientStatus>),
}

/// Tunables, mostly for tests.
#[derive(Debug, Clone)]
pub struct AdsOptions {
    /// The does-not-exist timer (15 s by default, as gRPC).
    pub resource_timeout: Duration,
    /// Reconnect backoff.
    pub backoff: BackoffConfig,
    /// Data-error handling from the server's features.
    pub policy: DataErrorPolicy,
    /// With `resource_timer_is_transient_error`: the timer reports TIMEOUT.
    pub timer_is_transient: bool,
    /// The bootstrap's certificate provider instance names: TLS contexts
    /// naming others are rejected (A29). `None` skips the check.
    pub certificate_providers: Option<Arc<BTreeSet<String>>>,
}

impl Default for AdsOptions {
    fn default() -> Self {
        AdsOptions {
            resource_timeout: Duration::from_secs(15),
            backoff: BackoffConfig::default(),
            policy: DataErrorPolicy::default(),
            timer_is_transient: false,
            certificate_providers: None,
        }
    }
}

pub(crate) struct AdsWorker {
    node: Node,
    server: String,
    connector: Connector,
    options: AdsOptions,
    types: BTreeMap<ResourceType, TypeState>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// The open stream's request sender; `None` while disconnected.
    stream: Option<mpsc::UnboundedSender<DiscoveryRequest>>,
}

enum StreamEnd {
    /// The client is gone: stop.
    Shutdown,
    /// The stream broke; `responded` says whether it delivered anything.
    Broken { responded: bool, reason: String },
}

impl AdsWorker {
    pub fn new(
        node: Node,
        server: String,
        connector: Connector,
        options: AdsOptions,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        AdsWorker {
            node,
            server,
            connector,
            options,
            types: ResourceType::ALL
                .into_iter()
                .map(|t| (t, TypeState::new(t)))
                .collect(),
            commands,
            stream: None,
        }
    }

    pub async fn run(mut self) {
        let mut backoff = Backoff::new(self.options.backoff);
        loop {
            let end = match (self.connector)().await {
                Ok(channel) => self.run_stream(channel).await,
                Err(reason) => StreamEnd::Broken {
                    responded: false,
                    reason,
                },
            };
            self.stream = None;
            for ts in self.types.values_mut() {
                for e in ts.resources.values_mut() {
                    e.timer = None;
                }
            }
            let delay = match end {
                StreamEnd::Shutdown => return,
                StreamEnd::Broken { responded, reason } => {
                    if responded {
                        backoff.reset();
                    }
                    let d = if responded {
                        Duration::ZERO
                    } else {
                        backoff.next_delay()
                    };
                    tracing::warn!(server = %self.server, "ADS stream ended: {reason}; reconnecting in {d:?}");
                    d
                }
            };
            // Keep serving subscriptions and status queries while waiting.
            let wake = sleep(delay);
            tokio::pin!(wake);
            loop {
                tokio::select! {
                    _ = &mut wake => break,
                    cmd = self.commands.recv() => match cmd {
                        Some(cmd) => {
                            self.handle_command(cmd);
                        }
                        None => return,
                    },
                }
            }
        }
    }

    async fn run_stream(&mut self, channel: tonic::transport::Channel) -> StreamEnd {
        let (tx, rx) = mpsc::unbounded_channel();
        self.stream = Some(tx);
        // The first request of a stream carries the node; send one per type
        // that has subscriptions, with the versions we hold.
        let mut first = true;
        for kind in ResourceType::ALL {
            if !self.types[&kind].resources.is_empty() {
                self.send_request(kind, first, None);
                first = false;
            }
        }
        let mut client =
            AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(usize::MAX);
        let mut responses = match client
            .stream_aggregated_resources(UnboundedReceiverStream::new(rx))
            .await
        {
            Ok(r) => r.into_inner(),
            Err(status) => {
                return StreamEnd::Broken {
                    responded: false,
                    reason: format!("cannot open ADS stream: {status}"),
                };
            }
        };
        let mut node_sent = !first;
        let mut responded = false;
        loop {
            let next_timer = self.next_timer();
            tokio::select! {
                msg = responses.message() => match msg {
                    Ok(Some(resp)) => {
                        responded = true;
                        self.handle_response(resp);
                    }
                    Ok(None) => return StreamEnd::Broken { responded, reason: "server closed the stream".into() },
                    Err(status) => return StreamEnd::Broken { responded, reason: status.to_string() },
                },
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => {
                        let changed = self.handle_command(cmd);
                        if let Some(kind) = changed {
                            self.send_request(kind, !node_sent, None);
                            node_sent = true;
                        }
                    }
                    None => return StreamEnd::Shutdown,
                },
                _ = sleep_until(next_timer.unwrap_or_else(far_future)), if next_timer.is_some() => {
                    self.fire_timers();
                }
            }
        }
    }

    /// Applies a command; returns the type whose subscription set changed.
    fn handle_command(&mut self, cmd: Command) -> Option<ResourceType> {
        match cmd {
            Command::Subscribe { kind, name, slot } => {
                let ts = self.types.get_mut(&kind).expect("every type has a state");
                let is_new = !ts.resources.contains_key(&name);
                let entry = ts.resources.entry(name).or_insert_with(ResourceEntry::new);
                // A late subscriber starts from what is cached.
                let _ = slot.tx.send(entry.update.clone());
                if let Some(w) = &slot.wake {
                    w.notify_one();
                }
                entry.watchers.push(slot);
                is_new.then_some(kind)
            }
            Command::Unsubscribe { kind, name, id } => {
                let ts = self.types.get_mut(&kind).expect("every type has a state");
                let entry = ts.resources.get_mut(&name)?;
                entry.watchers.retain(|w| w.id != id);
                if entry.watchers.is_empty() {
                    ts.resources.remove(&name);
                    return Some(kind);
                }
                None
            }
            Command::Status(reply) => {
                let _ = reply.send(self.status());
                None
            }
        }
    }

    fn handle_response(&mut self, resp: DiscoveryResponse) {
        let Some(kind) = ResourceType::from_type_url(&resp.type_url) else {
            tracing::warn!(type_url = %resp.type_url, "ignoring a response of a type never requested");
            return;
        };
        let policy = self.options.policy;
        let providers = self.options.certificate_providers.as_deref();
        let ts = self.types.get_mut(&kind).expect("every type has a state");
        let version = resp.version_info.clone();
        let nack = ts.apply_response(resp, policy, providers);
        match &nack {
            Some(detail) => tracing::warn!(
                server = %self.server, %kind, %version,
                "NACK: {detail}"
            ),
            None => tracing::debug!(%kind, %version, "ACK"),
        }
        self.send_request(kind, false, nack);
    }

    /// Sends the current subscription of `kind` (an ACK when `nack` is
    /// `None` after a response, a NACK otherwise) and starts timers for
    /// resources not yet cached.
    fn send_request(&mut self, kind: ResourceType, with_node: bool, nack: Option<String>) {
        let Some(tx) = &self.stream else { return };
        let ts = self.types.get_mut(&kind).expect("every type has a state");
        let req = DiscoveryRequest {
            version_info: ts.version.clone(),
            node: with_node.then(|| self.node.clone()),
            resource_names: ts.names(),
            type_url: kind.type_url().to_owned(),
            response_nonce: ts.nonce.clone(),
            error_detail: nack.map(|message| RpcStatus {
                code: tonic::Code::InvalidArgument as i32,
                message,
                details: Vec::new(),
            }),
            ..Default::default()
        };
        if tx.send(req).is_err() {
            return;
        }
        let deadline = Instant::now() + self.options.resource_timeout;
        for e in ts.resources.values_mut() {
            if e.timer.is_none() && !e.is_cached() && e.status == ResourceStatus::Requested {
                e.timer = Some(deadline);
            }
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        self.types
            .values()
            .flat_map(|t| t.resources.values())
            .filter_map(|e| e.timer)
            .min()
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let transient = self.options.timer_is_transient;
        for ts in self.types.values_mut() {
            let due: Vec<String> = ts
                .resources
                .iter()
                .filter(|(_, e)| e.timer.is_some_and(|t| t <= now))
                .map(|(n, _)| n.clone())
                .collect();
            for name in due {
                tracing::warn!(kind = %ts.kind, %name, "resource not received in time");
                ts.expire(&name, transient);
            }
        }
    }

    fn status(&self) -> ClientStatus {
        let mut resources = Vec::new();
        for ts in self.types.values() {
            for (name, e) in &ts.resources {
                resources.push(ResourceStatusEntry {
                    kind: ts.kind,
                    name: name.clone(),
                    status: e.status,
                    version: e.version.clone(),
                    last_updated: e.last_updated,
                    error: e.failed.clone(),
                    ambient_error: e.update.ambient_error.clone(),
                    raw: e.raw.clone(),
                });
            }
        }
        ClientStatus {
            node: self.node.clone(),
            server: self.server.clone(),
            connected: self.stream.is_some(),
            versions: self
                .types
                .values()
                .map(|t| (t.kind, t.version.clone()))
                .collect(),
            resources,
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}
