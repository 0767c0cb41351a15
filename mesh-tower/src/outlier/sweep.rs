//! A50's ejection sweep, as plain code over a slice of endpoints so tests
//! can drive it without a task or a clock.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use mesh_core::resource::cluster::{
    FailurePercentageEjection, OutlierDetection, SuccessRateEjection,
};
use rand::Rng;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use super::EndpointOutlier;
use super::endpoint::{PENDING_5XX, PENDING_GATEWAY};

/// One endpoint's results over the last interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Successful attempts.
    pub successes: u64,
    /// Failed attempts.
    pub failures: u64,
}

impl Counts {
    fn volume(&self) -> u64 {
        self.successes + self.failures
    }
}

/// Indices of the endpoints whose success rate is below
/// `mean - stdev × stdev_factor / 1000` over those with at least
/// `request_volume` requests; none when fewer than `minimum_hosts` have.
pub fn success_rate_outliers(counts: &[Counts], cfg: &SuccessRateEjection) -> Vec<usize> {
    let volume = u64::from(cfg.request_volume);
    let rates: Vec<(usize, f64)> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| c.volume() >= volume && c.volume() > 0)
        .map(|(i, c)| (i, c.successes as f64 / c.volume() as f64))
        .collect();
    if rates.is_empty() || rates.len() < cfg.minimum_hosts as usize {
        return Vec::new();
    }
    let n = rates.len() as f64;
    let mean = rates.iter().map(|(_, r)| r).sum::<f64>() / n;
    let variance = rates.iter().map(|(_, r)| (r - mean).powi(2)).sum::<f64>() / n;
    let threshold = mean - variance.sqrt() * (f64::from(cfg.stdev_factor) / 1000.0);
    rates
        .into_iter()
        .filter(|&(_, r)| r < threshold)
        .map(|(i, _)| i)
        .collect()
}

/// Indices of the endpoints with at least `request_volume` requests whose
/// failure percentage is at or above `threshold`; none when the cluster
/// has fewer than `minimum_hosts` endpoints.
pub fn failure_percentage_outliers(
    counts: &[Counts],
    cfg: &FailurePercentageEjection,
) -> Vec<usize> {
    if counts.len() < cfg.minimum_hosts as usize {
        return Vec::new();
    }
    let volume = u64::from(cfg.request_volume);
    counts
        .iter()
        .enumerate()
        .filter(|(_, c)| c.volume() >= volume && c.volume() > 0)
        .filter(|(_, c)| c.failures * 100 >= u64::from(cfg.threshold) * c.volume())
        .map(|(i, _)| i)
        .collect()
}

/// Whether one more of `total` endpoints may be ejected with `ejected`
/// out: never past `max_percent`, but always at least one (A50, Envoy).
fn may_eject(ejected: usize, total: usize, max_percent: u32) -> bool {
    ejected == 0 || (ejected + 1) * 100 <= max_percent as usize * total
}

#[derive(Debug)]
struct Host<E> {
    endpoint: Weak<E>,
    ejected_at: Option<Instant>,
    multiplier: u32,
}

/// The detector's per-endpoint ejection state and its RNG.
#[derive(Debug)]
pub struct Sweeper<E> {
    hosts: HashMap<usize, Host<E>>,
    rng: SmallRng,
}

fn od<E: AsRef<EndpointOutlier>>(e: &Arc<E>) -> &EndpointOutlier {
    (**e).as_ref()
}

fn key<E>(e: &Arc<E>) -> usize {
    Arc::as_ptr(e) as usize
}

impl<E: AsRef<EndpointOutlier>> Sweeper<E> {
    /// A sweeper drawing enforcement chances from `rng`.
    pub fn new(rng: SmallRng) -> Self {
        Sweeper {
            hosts: HashMap::new(),
            rng,
        }
    }

    /// Tracks exactly `endpoints`: new ones start fresh, gone ones are
    /// forgotten.
    fn sync(&mut self, endpoints: &[Arc<E>]) {
        if self.hosts.len() == endpoints.len()
            && endpoints.iter().all(|e| self.hosts.contains_key(&key(e)))
        {
            return;
        }
        let mut hosts = HashMap::with_capacity(endpoints.len());
        for e in endpoints {
            let host = match self.hosts.remove(&key(e)) {
                Some(h)
                    if h.endpoint
                        .upgrade()
                        .is_some_and(|live| Arc::ptr_eq(&live, e)) =>
                {
                    h
                }
                _ => Host {
                    endpoint: Arc::downgrade(e),
                    ejected_at: od(e).is_ejected().then(Instant::now),
                    multiplier: 0,
                },
            };
            hosts.insert(key(e), host);
        }
        self.hosts = hosts;
    }

    fn ejected(&self) -> usize {
        self.hosts
            .values()
            .filter(|h| h.ejected_at.is_some())
            .count()
    }

    /// Ejects `e` with probability `percent`, if `max_ejection_percent`
    /// allows; returns whether it did.
    fn try_eject(
        &mut self,
        e: &Arc<E>,
        cfg: &OutlierDetection,
        percent: u32,
        now: Instant,
    ) -> bool {
        let total = self.hosts.len();
        let ejected = self.ejected();
        let Some(host) = self.hosts.get(&key(e)) else {
            return false;
        };
        if host.ejected_at.is_some() || !may_eject(ejected, total, cfg.max_ejection_percent) {
            return false;
        }
        if self.rng.random_range(0..100) >= percent {
            return false;
        }
        let host = self.hosts.get_mut(&key(e)).expect("present above");
        host.ejected_at = Some(now);
        host.multiplier += 1;
        od(e).set_ejected(true);
        true
    }

    /// Ejects endpoints that reached a consecutive-failure threshold since
    /// last asked (Envoy ejects them at once, not at the next sweep).
    pub fn consecutive(&mut self, cfg: &OutlierDetection, now: Instant, endpoints: &[Arc<E>]) {
        self.sync(endpoints);
        for e in endpoints {
            let pending = od(e).take_pending();
            let mut percent = 0;
            if pending & PENDING_5XX != 0
                && let Some(c) = cfg.consecutive_5xx
            {
                percent = percent.max(c.enforcement_percentage);
            }
            if pending & PENDING_GATEWAY != 0
                && let Some(c) = cfg.consecutive_gateway_failure
            {
                percent = percent.max(c.enforcement_percentage);
            }
            if percent > 0 {
                self.try_eject(e, cfg, percent, now);
            }
        }
    }

    /// One interval's sweep (A50): consecutive-failure ejections, swap the
    /// counts, success rate, failure percentage, then un-eject endpoints
    /// whose time is up and lower the multiplier of those that stayed in.
    pub fn sweep(&mut self, cfg: &OutlierDetection, now: Instant, endpoints: &[Arc<E>]) {
        self.consecutive(cfg, now, endpoints);
        let counts: Vec<Counts> = endpoints
            .iter()
            .map(|e| {
                let (successes, failures) = od(e).take_counts();
                Counts {
                    successes,
                    failures,
                }
            })
            .collect();
        if let Some(sr) = &cfg.success_rate {
            for i in success_rate_outliers(&counts, sr) {
                if !self.may_continue(cfg) {
                    break;
                }
                self.try_eject(&endpoints[i], cfg, sr.enforcement_percentage, now);
            }
        }
        if let Some(fp) = &cfg.failure_percentage {
            for i in failure_percentage_outliers(&counts, fp) {
                if !self.may_continue(cfg) {
                    break;
                }
                self.try_eject(&endpoints[i], cfg, fp.enforcement_percentage, now);
            }
        }
        for e in endpoints {
            let Some(host) = self.hosts.get_mut(&key(e)) else {
                continue;
            };
            match host.ejected_at {
                None => host.multiplier = host.multiplier.saturating_sub(1),
                Some(at) => {
                    if now >= at + ejection_time(cfg, host.multiplier) {
                        host.ejected_at = None;
                        od(e).set_ejected(false);
                    }
                }
            }
        }
    }

    fn may_continue(&self, cfg: &OutlierDetection) -> bool {
        may_eject(self.ejected(), self.hosts.len(), cfg.max_ejection_percent)
    }

    /// The current ejection multiplier of `e` (for tests and metrics).
    pub fn multiplier(&self, e: &Arc<E>) -> Option<u32> {
        self.hosts.get(&key(e)).map(|h| h.multiplier)
    }

    /// When `e` was ejected, if it is.
    pub fn ejected_at(&self, e: &Arc<E>) -> Option<Instant> {
        self.hosts.get(&key(e)).and_then(|h| h.ejected_at)
    }

    /// Un-ejects everything and forgets all state (config removed).
    pub fn reset(&mut self, endpoints: &[Arc<E>]) {
        for e in endpoints {
            od(e).set_ejected(false);
        }
        self.hosts.clear();
    }
}

/// The time an endpoint ejected `multiplier` times stays out: base ×
/// multiplier, capped by `max(base, max_ejection_time)` (A50).
pub fn ejection_time(cfg: &OutlierDetection, multiplier: u32) -> Duration {
    cfg.base_ejection_time
        .saturating_mul(multiplier)
        .min(cfg.effective_max_ejection_time())
}
