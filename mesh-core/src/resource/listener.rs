//! Listener (LDS): client API listeners with an HTTP connection manager, and
//! server listeners (A36). STUB: being filled in.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::listener::v3 as wire;

use super::filter::HttpFilter;
use super::route::RouteConfig;
use super::{FieldError, Resource, ResourceType, resource_error};

resource_error!(
    /// A Listener that failed validation.
    ListenerError,
    "Listener"
);

/// A validated Listener.
#[derive(Debug, Clone)]
pub struct Listener {
    /// The resource name.
    pub name: String,
    /// Client (api_listener) or server (filter chains).
    pub kind: ListenerKind,
}

/// The two shapes a proxyless client consumes.
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
    /// The HTTP filters, router last.
    pub http_filters: Vec<HttpFilter>,
    /// `common_http_options.max_stream_duration` (`None` = no limit).
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

/// A server listener (A36). STUB.
#[derive(Debug, Clone, Default)]
pub struct ServerListener {}

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
    fn try_from(l: wire::Listener) -> Result<Self, Self::Error> {
        Err(ListenerError::new(l.name, FieldError::new("", "not implemented")))
    }
}
