//! The TLS connector of one cluster, from its `UpstreamTlsContext` and the
//! options' certificate provider registry. Built when a cluster first
//! appears with a context and again only when the context changes; the
//! providers it names stay started while the connector lives. Also the
//! process-wide registry per bootstrap ([`shared_tls_registry`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

use mesh_core::bootstrap::{Bootstrap, CertificateProviderConfig};
use mesh_core::resource::Cluster;
use mesh_core::resource::cluster::UpstreamProtocol;
use mesh_core::resource::tls::UpstreamTlsContext;

use super::DiscoveryOptions;
use crate::endpoint::Connector;
use crate::tls::{ProviderRegistry, TlsConnector};

/// A cluster's TLS connector and what it was built from.
#[derive(Clone)]
pub(super) struct ClusterTls {
    context: UpstreamTlsContext,
    /// Its connections speak HTTP/1.1 (ALPN `http/1.1`), else HTTP/2.
    http1: bool,
    pub(super) connector: Arc<dyn Connector>,
}

/// The TLS connector `cfg` needs: `None` for a plaintext cluster, `prev`'s
/// when its context is unchanged, else a new one. The error is the reason
/// the cluster cannot serve.
pub(super) fn cluster_tls(
    options: &DiscoveryOptions,
    cfg: &Cluster,
    prev: Option<&ClusterTls>,
) -> Result<Option<ClusterTls>, String> {
    let Some(context) = cfg.tls.as_ref().filter(|_| !options.ignore_tls) else {
        return Ok(None);
    };
    // ALPN offers the protocol the connections will speak: the cluster's
    // for the HTTP client, always HTTP/2 for gRPC channels.
    let http1 = options.connection.http_from_cluster
        && cfg.upstream_http.protocol == UpstreamProtocol::Http1;
    if let Some(prev) = prev.filter(|p| p.context == *context && p.http1 == http1) {
        return Ok(Some(prev.clone()));
    }
    let registry = options.tls_registry.as_ref().ok_or_else(|| {
        "the cluster has an UpstreamTlsContext, but no certificate provider registry is \
         configured (DiscoveryOptions::tls_registry)"
            .to_owned()
    })?;
    let connector = TlsConnector::from_context(context, registry)
        .map_err(|e| format!("TLS: {e}"))?
        .with_inner(options.plain_connector(cfg));
    let connector = if http1 {
        connector.with_alpn(vec![b"http/1.1".to_vec()])
    } else {
        connector
    };
    Ok(Some(ClusterTls {
        context: context.clone(),
        http1,
        connector: Arc::new(connector),
    }))
}

/// The process-wide certificate provider registry over `bootstrap`'s
/// `certificate_providers`: every caller with the same provider configs
/// (the channels and the xDS-enabled server of one process, normally) gets
/// the same registry, so each provider instance runs once. The registry
/// lives while any caller holds it; the next call after that starts a new
/// one.
pub fn shared_tls_registry(bootstrap: &Bootstrap) -> Arc<ProviderRegistry> {
    type Configs = BTreeMap<String, CertificateProviderConfig>;
    static SHARED: Mutex<Vec<(Configs, Weak<ProviderRegistry>)>> = Mutex::new(Vec::new());
    let configs = &bootstrap.certificate_providers;
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    shared.retain(|(_, w)| w.strong_count() > 0);
    if let Some(r) = shared
        .iter()
        .find(|(c, _)| c == configs)
        .and_then(|(_, w)| w.upgrade())
    {
        return r;
    }
    let registry = Arc::new(ProviderRegistry::from_bootstrap(bootstrap));
    shared.push((configs.clone(), Arc::downgrade(&registry)));
    registry
}
