//! Validated xDS resources.
//!
//! Each resource type has a domain type built by `TryFrom` from its wire type
//! (from `envoy-types`), with an error that names the resource and the field
//! path that failed. Nothing here talks to the network or keeps state: the
//! ADS client decodes with [`decode`] and the watchers consume the results.
//!
//! Validation follows gRPC's rules (the gRFCs and `grpc_xds_features.md`),
//! widened where Envoy users rely on more (STATIC clusters, RANDOM).

// Control planes (istiod among them) still send deprecated fields; we read them.
#![allow(deprecated)]

pub mod cluster;
pub mod common;
pub mod endpoint;
pub mod filter;
pub mod listener;
pub mod matcher;
pub mod route;
pub mod tls;

use std::fmt;

use envoy_types::pb::google::protobuf::Any;
use prost::Message;

pub use self::cluster::{Cluster, ClusterError};
pub use self::endpoint::{ClusterLoadAssignment, EndpointsError};
pub use self::listener::{Listener, ListenerError};
pub use self::route::{RouteConfig, RouteConfigError};

/// A validation failure inside one resource: the field path that failed
/// (`virtual_hosts[0].routes[2].match.safe_regex.regex`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// Dotted field path from the resource's root, with `[i]` for list items.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    /// An error at `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Prefixes the field path with `parent` (`parent.field`), so nested
    /// validators can report paths relative to themselves.
    #[must_use]
    pub fn at(mut self, parent: impl fmt::Display) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_string()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// Prefixes a nested result's error path; `r.at_field("routes[3]")`.
pub(crate) trait AtField<T> {
    fn at_field(self, parent: impl fmt::Display) -> Result<T, FieldError>;
}

impl<T> AtField<T> for Result<T, FieldError> {
    fn at_field(self, parent: impl fmt::Display) -> Result<T, FieldError> {
        self.map_err(|e| e.at(parent))
    }
}

/// Declares a resource's error type: the resource name and a [`FieldError`].
macro_rules! resource_error {
    ($(#[$m:meta])* $name:ident, $kind:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error("{kind} \"{name}\": {error}", kind = $kind)]
        pub struct $name {
            /// The resource's name, as the wire resource carried it.
            pub name: String,
            /// Which field failed, and why.
            #[source]
            pub error: $crate::resource::FieldError,
        }

        impl $name {
            /// The error for resource `name`.
            pub fn new(name: impl Into<String>, error: $crate::resource::FieldError) -> Self {
                Self { name: name.into(), error }
            }
        }
    };
}
pub(crate) use resource_error;

/// The four resource types of the LDS → RDS → CDS → EDS cascade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// `envoy.config.listener.v3.Listener` (LDS).
    Listener,
    /// `envoy.config.route.v3.RouteConfiguration` (RDS).
    RouteConfiguration,
    /// `envoy.config.cluster.v3.Cluster` (CDS).
    Cluster,
    /// `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
    ClusterLoadAssignment,
}

impl ResourceType {
    /// Every type, in cascade order.
    pub const ALL: [ResourceType; 4] = [
        ResourceType::Listener,
        ResourceType::RouteConfiguration,
        ResourceType::Cluster,
        ResourceType::ClusterLoadAssignment,
    ];

    /// The `type.googleapis.com/...` URL.
    pub const fn type_url(self) -> &'static str {
        match self {
            ResourceType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceType::RouteConfiguration => {
                "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
            }
            ResourceType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceType::ClusterLoadAssignment => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
        }
    }

    /// The type for a type URL, if it is one of ours.
    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// Whether a state-of-the-world response carries every resource of this
    /// type, so that an absent one has been deleted (LDS and CDS).
    pub const fn is_complete_state(self) -> bool {
        matches!(self, ResourceType::Listener | ResourceType::Cluster)
    }

    /// The resource's message name, for errors: `Listener`,
    /// `RouteConfiguration`, `Cluster`, `ClusterLoadAssignment`.
    pub const fn message_name(self) -> &'static str {
        match self {
            ResourceType::Listener => "Listener",
            ResourceType::RouteConfiguration => "RouteConfiguration",
            ResourceType::Cluster => "Cluster",
            ResourceType::ClusterLoadAssignment => "ClusterLoadAssignment",
        }
    }

    /// A short name for logs: `LDS`, `RDS`, `CDS`, `EDS`.
    pub const fn short_name(self) -> &'static str {
        match self {
            ResourceType::Listener => "LDS",
            ResourceType::RouteConfiguration => "RDS",
            ResourceType::Cluster => "CDS",
            ResourceType::ClusterLoadAssignment => "EDS",
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

/// A validated resource type.
pub trait Resource: Sized + Send + Sync + fmt::Debug + 'static {
    /// Which of the four types this is.
    const TYPE: ResourceType;
    /// The wire (protobuf) type.
    type Wire: Message + Default;
    /// The name the wire resource carries.
    fn wire_name(wire: &Self::Wire) -> &str;
    /// Validates a decoded wire resource.
    fn validate(wire: Self::Wire) -> Result<Self, FieldError>;
}

/// Why one resource in a response could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The `Any` carried another type URL.
    #[error("resource type {found:?} in a {expected} response")]
    WrongType {
        /// The response's type.
        expected: ResourceType,
        /// What the `Any` said.
        found: String,
    },
    /// The bytes are not a valid protobuf of the type.
    #[error("{kind}: cannot decode protobuf: {reason}")]
    Protobuf {
        /// The resource type.
        kind: ResourceType,
        /// prost's message.
        reason: String,
    },
    /// The resource decoded but failed validation.
    #[error("{kind} resource \"{name}\": {error}")]
    Invalid {
        /// The resource type.
        kind: ResourceType,
        /// The resource's name.
        name: String,
        /// Which field, and why.
        error: FieldError,
    },
}

impl DecodeError {
    /// The resource name, when the bytes decoded far enough to know it.
    pub fn resource_name(&self) -> Option<&str> {
        match self {
            DecodeError::Invalid { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// Decodes and validates one resource from an `Any`, returning its name too.
///
/// Envoy wraps resources in `envoy.service.discovery.v3.Resource` in some
/// responses; that wrapper is unwrapped here.
pub fn decode<R: Resource>(any: &Any) -> Result<(String, R), DecodeError> {
    let any = unwrap_resource_wrapper(any)?;
    let any = any.as_ref();
    if any.type_url != R::TYPE.type_url() {
        return Err(DecodeError::WrongType {
            expected: R::TYPE,
            found: any.type_url.clone(),
        });
    }
    let wire = R::Wire::decode(any.value.as_slice()).map_err(|e| DecodeError::Protobuf {
        kind: R::TYPE,
        reason: e.to_string(),
    })?;
    let name = R::wire_name(&wire).to_owned();
    match R::validate(wire) {
        Ok(r) => Ok((name, r)),
        Err(error) => Err(DecodeError::Invalid {
            kind: R::TYPE,
            name,
            error,
        }),
    }
}

const RESOURCE_WRAPPER: &str = "type.googleapis.com/envoy.service.discovery.v3.Resource";

fn unwrap_resource_wrapper(any: &Any) -> Result<std::borrow::Cow<'_, Any>, DecodeError> {
    if any.type_url != RESOURCE_WRAPPER {
        return Ok(std::borrow::Cow::Borrowed(any));
    }
    let wrapper =
        envoy_types::pb::envoy::service::discovery::v3::Resource::decode(any.value.as_slice())
            .map_err(|e| DecodeError::Protobuf {
                kind: ResourceType::Listener,
                reason: format!("envoy.service.discovery.v3.Resource wrapper: {e}"),
            })?;
    Ok(std::borrow::Cow::Owned(
        wrapper.resource.unwrap_or_default(),
    ))
}

/// Packs a wire message into an `Any` with its type URL (for tests and
/// control planes).
pub fn to_any<M: Message>(type_url: &str, msg: &M) -> Any {
    Any {
        type_url: type_url.to_owned(),
        value: msg.encode_to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_error_paths_nest() {
        let e = FieldError::new("regex", "invalid")
            .at("safe_regex")
            .at("routes[2]");
        assert_eq!(e.to_string(), "routes[2].safe_regex.regex: invalid");
        let e = FieldError::new("[3]", "dup").at("http_filters");
        assert_eq!(e.field, "http_filters[3]");
    }

    #[test]
    fn type_urls_round_trip() {
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::from_type_url(t.type_url()), Some(t));
        }
        assert!(ResourceType::Listener.is_complete_state());
        assert!(!ResourceType::ClusterLoadAssignment.is_complete_state());
    }
}
