//! From a target to a running client stack: bootstrap, shared xDS client
//! (A71), the Listener name from the bootstrap's template (A47), the
//! watch, the first config (bounded), discovery and mesh-tower's stack.
//! Shared by [`Channel`](super::Channel) and the HTTP client.

use std::sync::Arc;
use std::time::Duration;

use mesh_core::bootstrap::Bootstrap;
use mesh_core::watch::watch_target;
use mesh_core::xds::XdsClient;
use mesh_tower::discovery::{Discovery, DiscoveryOptions};
use mesh_tower::stack::ClientStack;
use mesh_tower::tls::ProviderRegistry;

use super::target::Target;
use crate::error::{Error, ErrorKind};

/// How long a new client waits for its first xDS config by default.
///
/// Longer than the xDS resource-does-not-exist timer (15 s, A27), so a
/// control plane that never sends the Listener is reported as the
/// specific "does not exist" error rather than a bare timeout; short
/// enough that a misconfigured client fails while someone is watching.
pub const DEFAULT_CONFIG_TIMEOUT: Duration = Duration::from_secs(20);

/// What both client kinds are built from.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub bootstrap: Option<Bootstrap>,
    pub config_timeout: Duration,
    pub discovery: DiscoveryOptions,
    pub seed: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bootstrap: None,
            config_timeout: DEFAULT_CONFIG_TIMEOUT,
            discovery: DiscoveryOptions::default(),
            seed: None,
        }
    }
}

impl Settings {
    /// The configured bootstrap, else the one in the environment
    /// (`GRPC_XDS_BOOTSTRAP`, `GRPC_XDS_BOOTSTRAP_CONFIG`).
    pub fn bootstrap(&self) -> Result<Bootstrap, Error> {
        match &self.bootstrap {
            Some(b) => Ok(b.clone()),
            None => Bootstrap::from_env()
                .map_err(|e| Error::new(ErrorKind::Bootstrap, format!("xDS bootstrap: {e}"))),
        }
    }

    /// Resolves `target` and builds its stack, waiting up to the config
    /// timeout for the first config.
    pub async fn stack(
        &self,
        bootstrap: &Bootstrap,
        target: &Target,
        per_request_host: bool,
    ) -> Result<ClientStack, Error> {
        Ok(self.build(bootstrap, target, per_request_host).await?.stack)
    }

    /// [`stack`](Self::stack), with the discovery runtime and certificate
    /// providers under it (what channelz reports).
    pub async fn build(
        &self,
        bootstrap: &Bootstrap,
        target: &Target,
        per_request_host: bool,
    ) -> Result<Built, Error> {
        let listener = bootstrap
            .client_listener_name(target.authority.as_deref(), &target.name)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidTarget,
                    format!(
                        "target {target}: authority {:?} is not in the bootstrap's authorities",
                        target.authority.as_deref().unwrap_or_default()
                    ),
                )
            })?;
        let client = xds_client(bootstrap, &target.full, &listener)?;
        let mut watch = watch_target(&client, &listener, &target.name);
        if let Err(e) = watch.first(self.config_timeout).await {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("target {target}: {}", e.reason),
            ));
        }
        let mut discovery = self.discovery.clone();
        if discovery.seed.is_none() {
            discovery.seed = self.seed;
        }
        // Clusters with TLS contexts use the bootstrap's certificate
        // providers, shared by every channel and server of the process.
        if !discovery.ignore_tls {
            discovery
                .tls_registry
                .get_or_insert_with(|| mesh_tower::discovery::shared_tls_registry(bootstrap));
        }
        let tls_registry = discovery.tls_registry.clone();
        let discovery = Discovery::from_watch(watch, discovery).await;
        let mut builder = ClientStack::builder();
        if per_request_host {
            builder = builder.per_request_host();
        }
        if let Some(seed) = self.seed {
            builder = builder.seed(seed);
        }
        Ok(Built {
            stack: builder.build(discovery.clone()),
            discovery,
            tls_registry,
        })
    }
}

/// A built client stack and what it runs on.
pub(crate) struct Built {
    pub stack: ClientStack,
    pub discovery: Discovery,
    pub tls_registry: Option<Arc<ProviderRegistry>>,
}

/// The shared xDS client of `key`, talking to the servers that serve
/// `listener` (an `xdstp:` name's authority may list its own, A47).
fn xds_client(bootstrap: &Bootstrap, key: &str, listener: &str) -> Result<XdsClient, Error> {
    let servers = bootstrap.servers_for(listener).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidTarget,
            format!("Listener {listener:?}: its authority is not in the bootstrap"),
        )
    })?;
    if servers == bootstrap.xds_servers.as_slice() {
        Ok(XdsClient::shared(bootstrap, key))
    } else {
        let mut b = bootstrap.clone();
        b.xds_servers = servers.to_vec();
        Ok(XdsClient::shared(&b, key))
    }
}
