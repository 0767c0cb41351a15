//! The TLS connector of one cluster, from its `UpstreamTlsContext` and the
//! options' certificate provider registry. Built when a cluster first
//! appears with a context and again only when the context changes; the
//! providers it names stay started while the connector lives.

use std::sync::Arc;

use mesh_core::resource::Cluster;
use mesh_core::resource::tls::UpstreamTlsContext;

use super::DiscoveryOptions;
use crate::endpoint::Connector;
use crate::tls::TlsConnector;

/// A cluster's TLS connector and the context it was built from.
#[derive(Clone)]
pub(super) struct ClusterTls {
    context: UpstreamTlsContext,
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
    let Some(context) = &cfg.tls else {
        return Ok(None);
    };
    if let Some(prev) = prev.filter(|p| p.context == *context) {
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
    Ok(Some(ClusterTls {
        context: context.clone(),
        connector: Arc::new(connector),
    }))
}
