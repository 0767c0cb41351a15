//! The counters and limits of one {cluster, EDS service name}, and the
//! process-wide registry that shares them.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use mesh_core::resource::cluster::CircuitBreakers;

/// Which limit a counter enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `max_requests`: active requests (attempts).
    Requests,
    /// `max_pending_requests`: requests waiting for a connection.
    Pending,
    /// `max_retries` (or the retry budget): active retries.
    Retries,
    /// `max_connections`: open connections.
    Connections,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::Requests,
        Kind::Pending,
        Kind::Retries,
        Kind::Connections,
    ];

    /// The config field's name, as messages show it.
    pub fn field(self) -> &'static str {
        match self {
            Kind::Requests => "max_requests",
            Kind::Pending => "max_pending_requests",
            Kind::Retries => "max_retries",
            Kind::Connections => "max_connections",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Envoy's `retry_budget`: concurrent retries capped at `percent` of the
/// active requests, but never below `min_concurrency`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    /// Share of active requests that may be retries, in percent.
    pub percent: f64,
    /// Retries always allowed at once, whatever the share.
    pub min_concurrency: u32,
}

impl Default for RetryBudget {
    /// Envoy's defaults: 20%, at least 3.
    fn default() -> Self {
        RetryBudget {
            percent: 20.0,
            min_concurrency: 3,
        }
    }
}

/// A limit was reached: the request fails at once with UNAVAILABLE and is
/// not retried. Its `source()` is the `tonic::Status` callers see.
#[derive(Debug)]
pub struct Overflow {
    kind: Kind,
    status: tonic::Status,
}

impl Overflow {
    fn new(kind: Kind, limit: u64, cluster: &str) -> Self {
        let status = tonic::Status::unavailable(format!(
            "circuit breaker {}={limit} reached for cluster {cluster}",
            kind.field()
        ));
        Overflow { kind, status }
    }

    /// The limit that overflowed.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The UNAVAILABLE status.
    pub fn status(&self) -> &tonic::Status {
        &self.status
    }
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status.message())
    }
}

impl std::error::Error for Overflow {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.status)
    }
}

/// The process-wide counters of one {cluster, EDS service name} (A32).
#[derive(Debug)]
pub struct Breaker {
    cluster: Arc<str>,
    eds_service_name: Arc<str>,
    /// Limits per [`Kind`]; `u32::MAX` for no limit.
    limits: [AtomicU32; 4],
    /// Whether `max_retries` was set; when not, the budget applies.
    budget: AtomicU32,
    active: [AtomicU64; 4],
    overflows: [AtomicU64; 4],
}

/// Sentinel in `budget`: `max_retries` is set explicitly, no budget.
const NO_BUDGET: u32 = u32::MAX;

type Registry = Mutex<HashMap<(String, String), Weak<Breaker>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl Breaker {
    /// A breaker of its own (not shared through the registry), for a plain
    /// tower user or a test.
    pub fn new(
        cluster: impl Into<Arc<str>>,
        eds_service_name: impl Into<Arc<str>>,
        limits: &CircuitBreakers,
    ) -> Self {
        let b = Breaker {
            cluster: cluster.into(),
            eds_service_name: eds_service_name.into(),
            limits: Default::default(),
            budget: AtomicU32::new(NO_BUDGET),
            active: Default::default(),
            overflows: Default::default(),
        };
        b.update(limits);
        b
    }

    /// The breaker of {cluster, EDS service name}, shared by every channel
    /// in the process while any holds it (A32); created on first use. An
    /// existing breaker takes `limits` (the newest snapshot's).
    pub fn shared(cluster: &str, eds_service_name: &str, limits: &CircuitBreakers) -> Arc<Breaker> {
        let mut map = registry().lock().unwrap_or_else(|e| e.into_inner());
        let key = (cluster.to_owned(), eds_service_name.to_owned());
        if let Some(b) = map.get(&key).and_then(Weak::upgrade) {
            b.update(limits);
            return b;
        }
        // Drop entries whose breakers are gone, so the map stays small.
        map.retain(|_, w| w.strong_count() > 0);
        let b = Arc::new(Breaker::new(cluster, eds_service_name, limits));
        map.insert(key, Arc::downgrade(&b));
        b
    }

    /// Takes new limits; requests in flight keep their slots.
    pub fn update(&self, limits: &CircuitBreakers) {
        let set = |kind: Kind, v: u32| self.limits[kind.index()].store(v, Ordering::Relaxed);
        set(Kind::Requests, limits.max_requests);
        set(
            Kind::Pending,
            limits
                .max_pending_requests
                .unwrap_or(CircuitBreakers::DEFAULT_MAX_PENDING_REQUESTS),
        );
        set(
            Kind::Connections,
            limits
                .max_connections
                .unwrap_or(CircuitBreakers::DEFAULT_MAX_CONNECTIONS),
        );
        match limits.max_retries {
            Some(n) => {
                set(Kind::Retries, n);
                self.budget.store(NO_BUDGET, Ordering::Relaxed);
            }
            None => {
                let budget = RetryBudget::default();
                set(Kind::Retries, u32::MAX);
                self.set_budget_bits(budget);
            }
        }
    }

    /// Replaces the retry budget (`None`: only `max_retries` limits).
    pub fn set_retry_budget(&self, budget: Option<RetryBudget>) {
        match budget {
            Some(b) => self.set_budget_bits(b),
            None => self.budget.store(NO_BUDGET, Ordering::Relaxed),
        }
    }

    fn set_budget_bits(&self, b: RetryBudget) {
        // Packed: percent in hundredths (16 bits) and the minimum (16 bits).
        let percent = (b.percent.clamp(0.0, 100.0) * 100.0).round() as u32;
        let min = b.min_concurrency.min(0xffff);
        self.budget.store((percent << 16) | min, Ordering::Relaxed);
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The EDS service name the counters are shared under.
    pub fn eds_service_name(&self) -> &str {
        &self.eds_service_name
    }

    /// The current limit of `kind` (for retries under a budget: what the
    /// budget allows now).
    pub fn limit(&self, kind: Kind) -> u64 {
        if kind == Kind::Retries {
            let bits = self.budget.load(Ordering::Relaxed);
            if bits != NO_BUDGET {
                let percent = f64::from(bits >> 16) / 100.0;
                let min = u64::from(bits & 0xffff);
                let active = self.active(Kind::Requests) as f64;
                return ((active * percent / 100.0) as u64).max(min);
            }
        }
        u64::from(self.limits[kind.index()].load(Ordering::Relaxed))
    }

    /// How many of `kind` are active now.
    pub fn active(&self, kind: Kind) -> u64 {
        self.active[kind.index()].load(Ordering::Relaxed)
    }

    /// How many times `kind` overflowed since the breaker was made.
    pub fn overflows(&self, kind: Kind) -> u64 {
        self.overflows[kind.index()].load(Ordering::Relaxed)
    }

    /// Every kind's overflow count, for metrics.
    pub fn overflow_counts(&self) -> [(Kind, u64); 4] {
        Kind::ALL.map(|k| (k, self.overflows(k)))
    }

    /// Takes a slot of `kind`, or fails with [`Overflow`] (counted).
    pub fn try_acquire(self: &Arc<Self>, kind: Kind) -> Result<Guard, Overflow> {
        let limit = self.limit(kind);
        let active = &self.active[kind.index()];
        // fetch_add then check: one atomic op on the hot path; a loser
        // gives its slot back.
        let before = active.fetch_add(1, Ordering::AcqRel);
        if before >= limit {
            active.fetch_sub(1, Ordering::AcqRel);
            self.overflows[kind.index()].fetch_add(1, Ordering::Relaxed);
            return Err(Overflow::new(kind, limit, &self.cluster));
        }
        Ok(Guard {
            breaker: self.clone(),
            kind,
        })
    }

    /// A request slot (`max_requests`), held until the response body ends.
    pub fn try_request(self: &Arc<Self>) -> Result<Guard, Overflow> {
        self.try_acquire(Kind::Requests)
    }

    /// A pending-request slot (`max_pending_requests`), held while a
    /// request waits for a connection.
    pub fn try_pending(self: &Arc<Self>) -> Result<Guard, Overflow> {
        self.try_acquire(Kind::Pending)
    }

    /// A retry slot (`max_retries` or the budget), held while a retry runs.
    pub fn try_retry(self: &Arc<Self>) -> Result<Guard, Overflow> {
        self.try_acquire(Kind::Retries)
    }

    /// A connection slot (`max_connections`), held while it is open.
    pub fn try_connection(self: &Arc<Self>) -> Result<Guard, Overflow> {
        self.try_acquire(Kind::Connections)
    }
}

impl Default for Breaker {
    /// An unregistered breaker with default limits and no names.
    fn default() -> Self {
        Breaker::new("", "", &CircuitBreakers::default())
    }
}

/// One held slot; dropping it releases the slot.
#[derive(Debug)]
pub struct Guard {
    breaker: Arc<Breaker>,
    kind: Kind,
}

impl Guard {
    /// What the slot counts.
    pub fn kind(&self) -> Kind {
        self.kind
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.breaker.active[self.kind.index()].fetch_sub(1, Ordering::AcqRel);
    }
}
