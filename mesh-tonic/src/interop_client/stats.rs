//! What the interop client records about its RPCs: per-method accumulated
//! counts (started, and completed per status code) and the watchers of
//! GetClientStats, each collecting the outcomes of a block of consecutive
//! RPCs by the order they were *sent* (the spec's rule: a backend that
//! answers slowly must not drop out of a block).
//!
//! Recording only: the gRPC services that expose it are in `service`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_core::testing::proto::grpc_testing::load_balancer_accumulated_stats_response::MethodStats;
use mesh_core::testing::proto::grpc_testing::load_balancer_stats_response::{
    MetadataEntry, RpcMetadata,
};
use mesh_core::testing::proto::grpc_testing::{
    LoadBalancerAccumulatedStatsResponse, LoadBalancerStatsResponse,
};
use tokio::sync::Notify;
use tonic::Code;

use super::config::RpcType;

/// How one RPC ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Its status code (`Ok` on success).
    pub code: Code,
    /// The backend that answered (the `hostname` header or response
    /// field), when the RPC succeeded and it was sent.
    pub peer: Option<String>,
    /// Every response header and trailer, for `metadata_keys`; `type` is
    /// INITIAL or TRAILING.
    pub metadata: Vec<MetadataEntry>,
}

/// The process's RPC statistics. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Stats {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    watchers: Vec<Arc<Watcher>>,
    methods: BTreeMap<RpcType, Counts>,
}

#[derive(Debug, Default, Clone)]
struct Counts {
    started: i32,
    results: BTreeMap<i32, i32>,
}

/// A started RPC: its place in the send order and the watchers waiting for
/// its outcome.
#[derive(Debug)]
pub struct Ticket {
    rpc: RpcType,
    watchers: Vec<Arc<Watcher>>,
}

impl Stats {
    /// Empty statistics.
    pub fn new() -> Stats {
        Stats::default()
    }

    /// Records that an RPC of `rpc` is being sent.
    pub fn start(&self, rpc: RpcType) -> Ticket {
        let mut st = lock(&self.state);
        let id = st.next_id;
        st.next_id += 1;
        st.methods.entry(rpc).or_default().started += 1;
        let watchers = st
            .watchers
            .iter()
            .filter(|w| w.start <= id && id < w.end)
            .cloned()
            .collect();
        Ticket { rpc, watchers }
    }

    /// Records how the RPC of `ticket` ended.
    pub fn finish(&self, ticket: Ticket, outcome: &Outcome) {
        {
            let mut st = lock(&self.state);
            let counts = st.methods.entry(ticket.rpc).or_default();
            *counts.results.entry(outcome.code as i32).or_default() += 1;
        }
        for w in &ticket.watchers {
            w.record(ticket.rpc, outcome);
        }
    }

    /// Starts collecting the next `num_rpcs` RPCs sent, reporting the
    /// response headers and trailers named in `metadata_keys` (case
    /// insensitive; `*` means all).
    pub fn watch(&self, num_rpcs: u64, metadata_keys: &[String]) -> Arc<Watcher> {
        let mut st = lock(&self.state);
        let start = st.next_id;
        let watcher = Arc::new(Watcher {
            start,
            end: start + num_rpcs,
            keys: metadata_keys
                .iter()
                .map(|k| k.to_ascii_lowercase())
                .collect(),
            state: Mutex::new(WatcherState {
                remaining: num_rpcs,
                response: LoadBalancerStatsResponse::default(),
            }),
            done: Notify::new(),
        });
        st.watchers.push(Arc::clone(&watcher));
        watcher
    }

    /// Waits until `watcher` has every outcome or `timeout` passes, then
    /// stops it and returns what it collected.
    pub async fn collect(
        &self,
        watcher: Arc<Watcher>,
        timeout: Duration,
    ) -> LoadBalancerStatsResponse {
        let complete = async {
            loop {
                let notified = watcher.done.notified();
                if lock(&watcher.state).remaining == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(timeout, complete).await;
        lock(&self.state)
            .watchers
            .retain(|w| !Arc::ptr_eq(w, &watcher));
        lock(&watcher.state).response.clone()
    }

    /// The accumulated statistics since the client started.
    #[allow(deprecated)]
    pub fn accumulated(&self) -> LoadBalancerAccumulatedStatsResponse {
        let st = lock(&self.state);
        let mut out = LoadBalancerAccumulatedStatsResponse::default();
        for (rpc, counts) in &st.methods {
            let ok = counts.results.get(&(Code::Ok as i32)).copied().unwrap_or(0);
            let failed: i32 = counts.results.values().sum::<i32>() - ok;
            let method = rpc.method().to_owned();
            out.num_rpcs_started_by_method
                .insert(method.clone(), counts.started);
            out.num_rpcs_succeeded_by_method.insert(method.clone(), ok);
            out.num_rpcs_failed_by_method.insert(method, failed);
            out.stats_per_method.insert(
                rpc.stats_key().to_owned(),
                MethodStats {
                    rpcs_started: counts.started,
                    result: counts.results.clone().into_iter().collect(),
                },
            );
        }
        out
    }
}

/// One GetClientStats request's view: the RPCs with send order in
/// `start..end`.
#[derive(Debug)]
pub struct Watcher {
    start: u64,
    end: u64,
    keys: Vec<String>,
    state: Mutex<WatcherState>,
    done: Notify,
}

#[derive(Debug)]
struct WatcherState {
    remaining: u64,
    response: LoadBalancerStatsResponse,
}

impl Watcher {
    fn record(&self, rpc: RpcType, outcome: &Outcome) {
        let mut st = lock(&self.state);
        if st.remaining == 0 {
            return;
        }
        st.remaining -= 1;
        let r = &mut st.response;
        match outcome.peer.as_deref().filter(|_| outcome.code == Code::Ok) {
            Some(peer) => {
                *r.rpcs_by_peer.entry(peer.to_owned()).or_default() += 1;
                let by_method = r.rpcs_by_method.entry(rpc.method().to_owned()).or_default();
                *by_method.rpcs_by_peer.entry(peer.to_owned()).or_default() += 1;
                if !self.keys.is_empty() {
                    let wanted = outcome
                        .metadata
                        .iter()
                        .filter(|m| {
                            self.keys
                                .iter()
                                .any(|k| k == "*" || k.eq_ignore_ascii_case(&m.key))
                        })
                        .cloned()
                        .collect();
                    r.metadatas_by_peer
                        .entry(peer.to_owned())
                        .or_default()
                        .rpc_metadata
                        .push(RpcMetadata { metadata: wanted });
                }
            }
            None => r.num_failures += 1,
        }
        if st.remaining == 0 {
            self.done.notify_waiters();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(peer: &str) -> Outcome {
        Outcome {
            code: Code::Ok,
            peer: Some(peer.into()),
            metadata: vec![MetadataEntry {
                key: "hostname".into(),
                value: peer.into(),
                r#type: 1,
            }],
        }
    }

    fn failed(code: Code) -> Outcome {
        Outcome {
            code,
            peer: None,
            metadata: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_watcher_sees_the_next_rpcs_sent_in_send_order() {
        let stats = Stats::new();
        let before = stats.start(RpcType::UnaryCall);
        let w = stats.watch(3, &["Hostname".into()]);
        let a = stats.start(RpcType::UnaryCall);
        let b = stats.start(RpcType::EmptyCall);
        let c = stats.start(RpcType::UnaryCall);
        let after = stats.start(RpcType::UnaryCall);
        // Completion order does not matter; the RPC sent before the
        // request and the one after the block are not counted.
        stats.finish(after, &ok("x"));
        stats.finish(before, &ok("x"));
        stats.finish(c, &failed(Code::Unavailable));
        stats.finish(b, &ok("b1"));
        stats.finish(a, &ok("b2"));
        let r = stats.collect(w, Duration::from_secs(5)).await;
        assert_eq!(r.num_failures, 1);
        assert_eq!(r.rpcs_by_peer.len(), 2);
        assert_eq!(r.rpcs_by_peer["b1"], 1);
        assert_eq!(r.rpcs_by_method["EmptyCall"].rpcs_by_peer["b1"], 1);
        assert_eq!(r.rpcs_by_method["UnaryCall"].rpcs_by_peer["b2"], 1);
        assert_eq!(
            r.metadatas_by_peer["b2"].rpc_metadata[0].metadata[0].key,
            "hostname"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_watcher_returns_partial_results_at_its_timeout() {
        let stats = Stats::new();
        let w = stats.watch(10, &[]);
        let t = stats.start(RpcType::EmptyCall);
        stats.finish(t, &ok("b"));
        let r = stats.collect(w, Duration::from_secs(1)).await;
        assert_eq!(r.rpcs_by_peer["b"], 1);
        assert!(r.metadatas_by_peer.is_empty());
        // The watcher is gone: later RPCs do not reach it.
        assert!(stats.start(RpcType::EmptyCall).watchers.is_empty());
    }

    #[test]
    #[allow(deprecated)]
    fn accumulated_counts_started_and_results_per_method() {
        let stats = Stats::new();
        let a = stats.start(RpcType::UnaryCall);
        let b = stats.start(RpcType::UnaryCall);
        let _in_flight = stats.start(RpcType::UnaryCall);
        stats.finish(a, &ok("x"));
        stats.finish(b, &failed(Code::DeadlineExceeded));
        let r = stats.accumulated();
        let m = &r.stats_per_method["UNARY_CALL"];
        assert_eq!(m.rpcs_started, 3);
        assert_eq!(m.result[&0], 1);
        assert_eq!(m.result[&(Code::DeadlineExceeded as i32)], 1);
        assert_eq!(r.num_rpcs_started_by_method["UnaryCall"], 3);
        assert_eq!(r.num_rpcs_succeeded_by_method["UnaryCall"], 1);
        assert_eq!(r.num_rpcs_failed_by_method["UnaryCall"], 1);
        assert!(!r.stats_per_method.contains_key("EMPTY_CALL"));
    }
}
