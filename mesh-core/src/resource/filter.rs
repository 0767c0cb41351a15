//! HTTP filters (A39) and their typed configs. STUB: being filled in.

use envoy_types::pb::google::protobuf::Any;

use super::FieldError;

/// One validated HTTP filter of an HCM.
#[derive(Debug, Clone)]
pub struct HttpFilter {
    /// The filter's instance name.
    pub name: String,
    /// Its validated config.
    pub config: FilterConfig,
}

/// A known filter's validated config (top-level or per-route override).
#[derive(Debug, Clone)]
pub enum FilterConfig {
    /// `envoy.extensions.filters.http.router.v3.Router`.
    Router,
    /// An optional filter we do not know: skipped.
    Ignored {
        /// Its type URL.
        type_url: String,
    },
}

/// Validates a `typed_per_filter_config` entry (on a virtual host, route or
/// cluster weight) found at `field`. `Ok(None)` means an optional override
/// of an unknown type, which is ignored.
pub fn parse_filter_override(any: &Any, field: &str) -> Result<Option<FilterConfig>, FieldError> {
    Err(FieldError::new(field, format!("unsupported filter override {}", any.type_url)))
}
