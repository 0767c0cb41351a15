//! The per-cluster detector task.

use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use mesh_core::resource::cluster::OutlierDetection;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{EndpointOutlier, Sweeper};

/// One cluster's outlier detection: a task that sweeps every `interval`
/// and ejects at once on consecutive failures. Dropping it stops the task
/// (and so does the cluster going away); endpoints it ejected stay as they
/// are, so drop the endpoints with it or call [`OutlierDetector::update`]
/// first.
#[derive(Debug)]
pub struct OutlierDetector {
    config: Arc<ArcSwap<OutlierDetection>>,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl OutlierDetector {
    /// Starts detection over the endpoints `endpoints(owner)` lists at each
    /// pass; the task ends once `owner` is gone. Enforcement chances come
    /// from entropy.
    pub fn spawn<T, E, F>(config: OutlierDetection, owner: Weak<T>, endpoints: F) -> Self
    where
        T: Send + Sync + 'static,
        E: AsRef<EndpointOutlier> + Send + Sync + 'static,
        F: Fn(&T) -> Arc<[Arc<E>]> + Send + 'static,
    {
        Self::spawn_with_rng(config, owner, endpoints, SmallRng::from_os_rng())
    }

    /// [`OutlierDetector::spawn`] with a given RNG (seed it for tests).
    pub fn spawn_with_rng<T, E, F>(
        config: OutlierDetection,
        owner: Weak<T>,
        endpoints: F,
        rng: SmallRng,
    ) -> Self
    where
        T: Send + Sync + 'static,
        E: AsRef<EndpointOutlier> + Send + Sync + 'static,
        F: Fn(&T) -> Arc<[Arc<E>]> + Send + 'static,
    {
        let config = Arc::new(ArcSwap::from_pointee(config));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run(
            config.clone(),
            wake.clone(),
            owner,
            endpoints,
            Sweeper::new(rng),
        ));
        OutlierDetector { config, wake, task }
    }

    /// Takes a new config; the next sweep comes `interval` after the last
    /// one started (A50).
    pub fn update(&self, config: OutlierDetection) {
        self.config.store(Arc::new(config));
        self.wake.notify_one();
    }

    /// The config in use.
    pub fn config(&self) -> Arc<OutlierDetection> {
        self.config.load_full()
    }
}

impl Drop for OutlierDetector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run<T, E, F>(
    config: Arc<ArcSwap<OutlierDetection>>,
    wake: Arc<Notify>,
    owner: Weak<T>,
    endpoints: F,
    mut sweeper: Sweeper<E>,
) where
    E: AsRef<EndpointOutlier>,
    F: Fn(&T) -> Arc<[Arc<E>]>,
{
    let mut last_sweep = Instant::now();
    let mut list: Arc<[Arc<E>]> = match owner.upgrade() {
        Some(o) => endpoints(&o),
        None => return,
    };
    attach(&list, &config.load(), &wake);
    loop {
        let cfg = config.load_full();
        let next = last_sweep + cfg.interval;
        let swept = tokio::select! {
            _ = tokio::time::sleep_until(next) => true,
            _ = wake.notified() => false,
        };
        let Some(o) = owner.upgrade() else {
            break;
        };
        list = endpoints(&o);
        drop(o);
        let cfg = config.load_full();
        let now = Instant::now();
        if swept {
            last_sweep = now;
            sweeper.sweep(&cfg, now, &list);
        } else {
            sweeper.consecutive(&cfg, now, &list);
        }
        attach(&list, &cfg, &wake);
    }
    for e in list.iter() {
        (**e).as_ref().detach();
    }
}

/// Tells each endpoint its consecutive thresholds and whom to wake.
fn attach<E: AsRef<EndpointOutlier>>(list: &[Arc<E>], cfg: &OutlierDetection, wake: &Arc<Notify>) {
    let c5xx = cfg.consecutive_5xx.map_or(0, |c| c.threshold.max(1));
    let gw = cfg
        .consecutive_gateway_failure
        .map_or(0, |c| c.threshold.max(1));
    for e in list {
        (**e).as_ref().attach(wake, c5xx, gw);
    }
}
