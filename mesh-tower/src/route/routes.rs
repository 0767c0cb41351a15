//! [`Routes`]: the live route table every route service reads, swapped
//! atomically when a new snapshot compiles.
//!
//! Readers take no lock: one `ArcSwap` load per request. Only before the
//! first config arrives do `poll_ready` callers park a waker (behind a
//! mutex, on that cold path only).

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use arc_swap::{ArcSwap, Guard};
use mesh_core::watch::{ClientConfig, ConfigState};

use super::table::{ClusterLookup, HostSelection, RouteTable};

/// What the route services currently route by.
#[derive(Debug)]
pub enum RouteState {
    /// No config yet: requests wait in `poll_ready`.
    Pending,
    /// The target has no usable config: requests fail UNAVAILABLE with
    /// this reason.
    Failed(Box<str>),
    /// A compiled table.
    Ready(RouteTable),
}

/// The shared, atomically swapped route table of one channel (or one
/// server). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Routes {
    pub(super) shared: Arc<Shared>,
}

#[derive(Debug)]
pub(super) struct Shared {
    selection: HostSelection,
    state: ArcSwap<RouteState>,
    wakers: Mutex<Vec<Waker>>,
}

impl Routes {
    /// Empty routes ([`RouteState::Pending`]) choosing the virtual host as
    /// `selection` says.
    pub fn new(selection: HostSelection) -> Self {
        Routes {
            shared: Arc::new(Shared {
                selection,
                state: ArcSwap::from_pointee(RouteState::Pending),
                wakers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// How these routes choose the virtual host.
    pub fn selection(&self) -> HostSelection {
        self.shared.selection
    }

    /// The current state (lock-free).
    pub fn load(&self) -> Guard<Arc<RouteState>> {
        self.shared.state.load()
    }

    /// Compiles `config` against `clusters` and publishes it. Requests in
    /// flight keep the table they started with.
    pub fn update(&self, config: &Arc<ClientConfig>, clusters: &impl ClusterLookup) {
        let current = self.load();
        let previous = match &**current {
            RouteState::Ready(table) => Some(table),
            _ => None,
        };
        let table = RouteTable::compile(config, self.shared.selection, clusters, previous);
        drop(current);
        self.store(RouteState::Ready(table));
    }

    /// Publishes a watch state: a config compiles, an error fails requests,
    /// `None` (nothing resolved yet) changes nothing.
    pub fn apply(&self, state: &ConfigState, clusters: &impl ClusterLookup) {
        match state {
            Some(Ok(config)) => self.update(config, clusters),
            Some(Err(e)) => self.store(RouteState::Failed(e.reason.clone().into())),
            None => {}
        }
    }

    /// Publishes `state` and wakes services waiting for a first config.
    pub fn store(&self, state: RouteState) {
        self.shared.state.store(Arc::new(state));
        let wakers =
            std::mem::take(&mut *self.shared.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Ready once the routes are no longer pending.
    pub(super) fn poll_config(&self, cx: &mut Context<'_>) -> Poll<()> {
        if !matches!(**self.load(), RouteState::Pending) {
            return Poll::Ready(());
        }
        let mut wakers = self.shared.wakers.lock().unwrap_or_else(|e| e.into_inner());
        // Re-check under the lock: `store` swaps first, then drains.
        if !matches!(**self.load(), RouteState::Pending) {
            return Poll::Ready(());
        }
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
