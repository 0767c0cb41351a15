//! Insecure channel credentials (`--secure_mode=false`): a channel that
//! ignores the clusters' `UpstreamTlsContext`s and always connects in
//! plaintext, as a gRPC channel built with insecure credentials does even
//! when the control plane sends TLS contexts.
//!
//! [`Channel`](crate::Channel)'s own builder always applies TLS contexts
//! (xDS credentials); this module builds the same stack by hand over a
//! discovery fed with the target's snapshots minus their TLS contexts.
//!
//! Not here: anything TLS (the secure path is the ordinary channel).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::bootstrap::Bootstrap;
use mesh_core::watch::{ClientConfig, ConfigState, watch_target};
use mesh_core::xds::XdsClient;
use mesh_tower::discovery::{Discovery, DiscoveryOptions};
use mesh_tower::stack::ClientStack;

use crate::Channel;
use crate::channel::Target;
use crate::error::{Error, ErrorKind};

/// Connects an insecure channel to `target`, waiting up to `timeout` for the
/// first config. Returns the channel and the future that keeps feeding it
/// config updates: the channel follows the control plane only while that
/// future is polled (the caller runs it for the channel's lifetime).
pub(crate) async fn connect(
    target: &str,
    bootstrap: &Bootstrap,
    seed: Option<u64>,
    timeout: Duration,
) -> Result<(Channel, impl Future<Output = ()> + Send + 'static), Error> {
    let target = Target::parse(target)?;
    let listener = bootstrap
        .client_listener_name(target.authority.as_deref(), &target.name)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidTarget,
                format!("target {target}: its authority is not in the bootstrap's authorities"),
            )
        })?;
    // The same process-wide client the secure channels (and CSDS) use.
    let servers = bootstrap.servers_for(&listener).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidTarget,
            format!("Listener {listener:?}: its authority is not in the bootstrap"),
        )
    })?;
    let client = if servers == bootstrap.xds_servers.as_slice() {
        XdsClient::shared(bootstrap, &target.full)
    } else {
        let mut b = bootstrap.clone();
        b.xds_servers = servers.to_vec();
        XdsClient::shared(&b, &target.full)
    };
    let mut watch = watch_target(&client, &listener, &target.name);
    if let Err(e) = watch.first(timeout).await {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!("target {target}: {}", e.reason),
        ));
    }
    let discovery = Discovery::manual(DiscoveryOptions {
        seed,
        ..Default::default()
    });
    let mut rx = watch.receiver();
    let first = rx.borrow_and_update().clone();
    discovery.apply(without_tls(first)).await;
    let mut stack = ClientStack::builder();
    if let Some(seed) = seed {
        stack = stack.seed(seed);
    }
    let stack = stack.build(discovery.clone());
    let channel = Channel::from_stack(&stack, &target.name)?;
    let follow = async move {
        let _watch = watch;
        while rx.changed().await.is_ok() {
            let state = rx.borrow_and_update().clone();
            discovery.apply(without_tls(state)).await;
        }
    };
    Ok((channel, follow))
}

/// `state` with every cluster's TLS context removed.
fn without_tls(state: ConfigState) -> ConfigState {
    state.map(|r| r.map(|config| Arc::new(strip(&config))))
}

fn strip(config: &ClientConfig) -> ClientConfig {
    let mut config = config.clone();
    for resolved in config.clusters.values_mut().flatten() {
        if resolved.cluster.tls.is_some() {
            let mut cluster = (*resolved.cluster).clone();
            cluster.tls = None;
            resolved.cluster = Arc::new(cluster);
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_absent_states_pass_through() {
        assert!(without_tls(None).is_none());
        let err = mesh_core::watch::ConfigError {
            reason: "no listener".into(),
        };
        let out = without_tls(Some(Err(err.clone())));
        assert_eq!(out.unwrap().unwrap_err(), err);
    }
}
