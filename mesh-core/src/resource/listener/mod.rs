//! Listener (LDS): client API listeners with an HTTP connection manager, and
//! server listeners (A36) with filter chains.
//!
//! A Listener with an `api_listener` is a client listener (A27); one without
//! is a server listener (A36, see [`server`]). Both carry
//! [`HttpConnectionManager`]s, validated here: routes from RDS over ADS (or
//! `self`) or inline, the HTTP filters (A39, in [`super::filter`]), and
//! `common_http_protocol_options.max_stream_duration` (A31). Everything else
//! in the HCM (codecs, timeouts, tracing, access logs, ...) is ignored, as
//! gRPC ignores it. Nothing here subscribes to anything: the watchers read
//! [`Listener::route_names`].

pub mod cidr;
pub mod server;

mod select;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::listener::v3 as wire;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::google::protobuf::Any;

use super::common::opt_duration;
use super::filter::{
    FilterConfig, FilterSide, HttpFilter, decode_any, parse_http_filters, type_name,
};
use super::route::RouteConfig;
use super::{AtField, FieldError, Resource, ResourceType, resource_error};

pub use self::cidr::CidrRange;
pub use self::server::{FilterChain, FilterChainMatch, ServerListener, SourceType};

resource_error!(
    /// A Listener that failed validation.
    ListenerError,
    "Listener"
);

/// The proto name of the HCM.
pub(crate) const HCM_TYPE: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// A validated Listener.
#[derive(Debug, Clone)]
pub struct Listener {
    /// The resource name.
    pub name: String,
    /// Client (api_listener) or server (filter chains).
    pub kind: ListenerKind,
}

/// The two shapes a proxyless client consumes.
// Listeners are built once per LDS update, so the size gap between the
// variants costs nothing worth a Box in the public shape.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ListenerKind {
    /// A client listener: `api_listener` carrying an HCM.
    Client(HttpConnectionManager),
    /// A server listener (A36): address and filter chains.
    Server(ServerListener),
}

/// The HTTP connection manager: where routes come from, and the filters.
#[derive(Debug, Clone)]
pub struct HttpConnectionManager {
    /// RDS or inline routes.
    pub route: RouteSource,
    /// The HTTP filters in order, router last. Optional filters of unknown
    /// types are kept as [`FilterConfig::Ignored`]; see
    /// [`HttpConnectionManager::active_filters`].
    pub http_filters: Vec<HttpFilter>,
    /// `common_http_protocol_options.max_stream_duration` (`None` = no
    /// limit, which `0s` also means).
    pub max_stream_duration: Option<Duration>,
}

/// Where an HCM's routes come from.
#[derive(Debug, Clone)]
pub enum RouteSource {
    /// A RouteConfiguration fetched by name over ADS.
    Rds(String),
    /// Routes carried in the listener.
    Inline(Arc<RouteConfig>),
}

impl HttpConnectionManager {
    /// The RDS name to subscribe to, if routes are not inline.
    pub fn rds_name(&self) -> Option<&str> {
        match &self.route {
            RouteSource::Rds(name) => Some(name),
            RouteSource::Inline(_) => None,
        }
    }

    /// The filters the data plane runs (skips ignored optional ones).
    pub fn active_filters(&self) -> impl Iterator<Item = &HttpFilter> {
        self.http_filters.iter().filter(|f| f.is_active())
    }

    /// Validates an `Any` that must hold an HCM, found at `field`, against
    /// the filter registry of `side`.
    pub(crate) fn from_any(any: &Any, field: &str, side: FilterSide) -> Result<Self, FieldError> {
        if type_name(&any.type_url) != HCM_TYPE {
            return Err(FieldError::new(
                field,
                format!(
                    "unsupported type {}: expected an HttpConnectionManager",
                    any.type_url
                ),
            ));
        }
        let h: hcm::HttpConnectionManager = decode_any(any, field)?;
        Self::from_wire(h, side).at_field(field)
    }

    /// Validates a wire HCM; error paths are relative to the HCM.
    pub(crate) fn from_wire(
        h: hcm::HttpConnectionManager,
        side: FilterSide,
    ) -> Result<Self, FieldError> {
        use hcm::http_connection_manager::RouteSpecifier;
        let route = match h.route_specifier {
            Some(RouteSpecifier::Rds(rds)) => {
                match rds.config_source.and_then(|c| c.config_source_specifier) {
                    Some(ConfigSourceSpecifier::Ads(_) | ConfigSourceSpecifier::Self_(_)) => {}
                    _ => {
                        return Err(FieldError::new(
                            "rds.config_source",
                            "RDS config_source must be ads or self",
                        ));
                    }
                }
                if rds.route_config_name.is_empty() {
                    return Err(FieldError::new(
                        "rds.route_config_name",
                        "empty route_config_name",
                    ));
                }
                RouteSource::Rds(rds.route_config_name)
            }
            Some(RouteSpecifier::RouteConfig(rc)) => RouteSource::Inline(Arc::new(
                RouteConfig::try_from(rc).map_err(|e| e.error.at("route_config"))?,
            )),
            Some(RouteSpecifier::ScopedRoutes(_)) => {
                return Err(FieldError::new(
                    "scoped_routes",
                    "scoped routes are not supported",
                ));
            }
            None => {
                return Err(FieldError::new(
                    "route_specifier",
                    "neither rds nor route_config is set",
                ));
            }
        };
        let http_filters = parse_http_filters(&h.http_filters, side)?;
        // A41: our RBAC treats remote_ip as the peer address, which is only
        // right when no forwarded-for hops are trusted.
        let has_rbac = http_filters
            .iter()
            .any(|f| matches!(f.config, FilterConfig::Rbac(_)));
        if has_rbac && h.xff_num_trusted_hops != 0 {
            return Err(FieldError::new(
                "xff_num_trusted_hops",
                "must be 0 when an RBAC filter is configured",
            ));
        }
        if has_rbac && !h.original_ip_detection_extensions.is_empty() {
            return Err(FieldError::new(
                "original_ip_detection_extensions",
                "must be empty when an RBAC filter is configured",
            ));
        }
        let max_stream_duration = opt_duration(
            h.common_http_protocol_options
                .as_ref()
                .and_then(|o| o.max_stream_duration.as_ref()),
            "common_http_protocol_options.max_stream_duration",
        )?
        .filter(|d| !d.is_zero());
        Ok(HttpConnectionManager {
            route,
            http_filters,
            max_stream_duration,
        })
    }
}

impl Listener {
    /// Every RDS name this listener's HCMs reference (client HCM, or every
    /// server filter chain's HCM, default chain included).
    pub fn route_names(&self) -> BTreeSet<&str> {
        match &self.kind {
            ListenerKind::Client(h) => h.rds_name().into_iter().collect(),
            ListenerKind::Server(s) => s.chains().filter_map(|c| c.hcm.rds_name()).collect(),
        }
    }

    /// The client HCM, if this is a client listener.
    pub fn client(&self) -> Option<&HttpConnectionManager> {
        match &self.kind {
            ListenerKind::Client(h) => Some(h),
            ListenerKind::Server(_) => None,
        }
    }

    /// The server side, if this is a server listener.
    pub fn server(&self) -> Option<&ServerListener> {
        match &self.kind {
            ListenerKind::Server(s) => Some(s),
            ListenerKind::Client(_) => None,
        }
    }
}

impl Resource for Listener {
    const TYPE: ResourceType = ResourceType::Listener;
    type Wire = wire::Listener;
    fn wire_name(wire: &Self::Wire) -> &str {
        &wire.name
    }
    fn validate(wire: Self::Wire) -> Result<Self, FieldError> {
        Listener::try_from(wire).map_err(|e| e.error)
    }
}

impl TryFrom<wire::Listener> for Listener {
    type Error = ListenerError;
    fn try_from(mut l: wire::Listener) -> Result<Self, Self::Error> {
        let name = std::mem::take(&mut l.name);
        let kind = match l.api_listener.take() {
            Some(api) => client_kind(api),
            None => ServerListener::from_wire(l).map(ListenerKind::Server),
        };
        match kind {
            Ok(kind) => Ok(Listener { name, kind }),
            Err(e) => Err(ListenerError::new(name, e)),
        }
    }
}

fn client_kind(api: wire::ApiListener) -> Result<ListenerKind, FieldError> {
    const FIELD: &str = "api_listener.api_listener";
    let any = api
        .api_listener
        .ok_or_else(|| FieldError::new(FIELD, "no HttpConnectionManager"))?;
    HttpConnectionManager::from_any(&any, FIELD, FilterSide::Client).map(ListenerKind::Client)
}
