//! A raw-resource ADS server for tests: resources are set as raw `Any`s per
//! type URL and pushed to every stream that asked for that type; every
//! request is recorded; streams can be dropped on demand.
//!
//! It does not validate, filter by name (unless asked) or track ACKs: it
//! serves exactly what a test sets, so tests can feed clients anything a
//! control plane might send, good or bad.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use futures::Stream;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{TcpListenerStream, UnboundedReceiverStream};
use tonic::{Request, Response, Status, Streaming};

/// A request the server received, with the stream it came on.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Which stream (1 for the first connection, and so on).
    pub stream: u64,
    /// The request.
    pub request: DiscoveryRequest,
}

#[derive(Default)]
struct State {
    /// Per type URL: version counter and the resources.
    resources: HashMap<String, (u64, Vec<Any>)>,
    requests: Vec<RecordedRequest>,
    streams: HashMap<u64, StreamState>,
    next_stream: u64,
    next_nonce: u64,
    filter_by_name: bool,
}

struct StreamState {
    tx: mpsc::UnboundedSender<Result<DiscoveryResponse, Status>>,
    /// Per type URL: the names last requested.
    subscribed: HashMap<String, Vec<String>>,
}

/// The server. Dropping it stops serving.
pub struct TestAdsServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _shutdown: oneshot::Sender<()>,
}

impl std::fmt::Debug for TestAdsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestAdsServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl TestAdsServer {
    /// Starts serving on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        Self::start_on(listener).await
    }

    /// Starts serving on `listener` (a fixed port, to restart on it).
    pub async fn start_on(listener: tokio::net::TcpListener) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let svc = AggregatedDiscoveryServiceServer::new(Ads {
            state: state.clone(),
        })
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = rx.await;
                })
                .await;
        });
        TestAdsServer {
            addr,
            state,
            _shutdown: tx,
        }
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Only send resources whose names a stream subscribed to (off by
    /// default: everything set is sent, which tests unrequested resources).
    pub fn set_filter_by_name(&self, on: bool) {
        self.state.lock().unwrap().filter_by_name = on;
    }

    /// Replaces the resources of `type_url`, bumps its version, and pushes
    /// them to every stream subscribed to the type.
    pub fn set_resources(&self, type_url: &str, resources: Vec<Any>) {
        let mut st = self.state.lock().unwrap();
        let entry = st.resources.entry(type_url.to_owned()).or_default();
        entry.0 += 1;
        entry.1 = resources;
        let ids: Vec<u64> = st.streams.keys().copied().collect();
        for id in ids {
            if st.streams[&id].subscribed.contains_key(type_url) {
                push(&mut st, id, type_url);
            }
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests of one type URL received so far.
    pub fn requests_for(&self, type_url: &str) -> Vec<DiscoveryRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.request.type_url == type_url)
            .map(|r| r.request)
            .collect()
    }

    /// Polls (every 10 ms, up to `timeout`) until a recorded request
    /// satisfies `pred`; returns it.
    pub async fn wait_for_request(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&RecordedRequest) -> bool,
    ) -> Option<RecordedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(r) = self.requests().into_iter().find(|r| pred(r)) {
                return Some(r);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Ends every open stream with UNAVAILABLE (the client should reconnect).
    pub fn drop_streams(&self) {
        let mut st = self.state.lock().unwrap();
        for (_, s) in st.streams.drain() {
            let _ =
                s.tx.send(Err(Status::unavailable("test server dropped the stream")));
        }
    }

    /// How many streams are open.
    pub fn open_streams(&self) -> usize {
        let mut st = self.state.lock().unwrap();
        st.streams.retain(|_, s| !s.tx.is_closed());
        st.streams.len()
    }
}

fn push(st: &mut State, stream: u64, type_url: &str) {
    let Some((version, resources)) = st.resources.get(type_url).cloned() else {
        return;
    };
    st.next_nonce += 1;
    let nonce = st.next_nonce.to_string();
    let filter = st.filter_by_name;
    let Some(s) = st.streams.get(&stream) else {
        return;
    };
    let resources = if filter {
        let names = &s.subscribed[type_url];
        resources
            .into_iter()
            .filter(|a| {
                names
                    .iter()
                    .any(|n| raw_name(a).as_deref() == Some(n.as_str()))
            })
            .collect()
    } else {
        resources
    };
    let _ = s.tx.send(Ok(DiscoveryResponse {
        version_info: version.to_string(),
        resources,
        type_url: type_url.to_owned(),
        nonce,
        ..Default::default()
    }));
}

/// The name of a raw resource: field 1 of Listener, RouteConfiguration,
/// Cluster and ClusterLoadAssignment alike.
fn raw_name(any: &Any) -> Option<String> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Named {
        #[prost(string, tag = "1")]
        name: String,
    }
    <Named as prost::Message>::decode(any.value.as_slice())
        .ok()
        .map(|n| n.name)
}

struct Ads {
    state: Arc<Mutex<State>>,
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaStream = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = ResponseStream;
    type DeltaAggregatedResourcesStream = DeltaStream;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        let id = {
            let mut st = self.state.lock().unwrap();
            st.next_stream += 1;
            let id = st.next_stream;
            st.streams.insert(
                id,
                StreamState {
                    tx,
                    subscribed: HashMap::new(),
                },
            );
            id
        };
        let state = self.state.clone();
        tokio::spawn(async move {
            while let Ok(Some(req)) = incoming.message().await {
                let mut st = state.lock().unwrap();
                st.requests.push(RecordedRequest {
                    stream: id,
                    request: req.clone(),
                });
                let Some(s) = st.streams.get_mut(&id) else {
                    break; // Dropped by the test.
                };
                let prev = s
                    .subscribed
                    .insert(req.type_url.clone(), req.resource_names.clone());
                // Answer a new subscription or a changed name list; an ACK
                // or NACK of the same names gets no answer.
                if prev.as_ref() != Some(&req.resource_names) || req.response_nonce.is_empty() {
                    push(&mut st, id, &req.type_url);
                }
            }
            state.lock().unwrap().streams.remove(&id);
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "the test ADS server speaks state of the world only",
        ))
    }
}
