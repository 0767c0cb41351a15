//! The HTTP version a cluster's endpoints speak, from Envoy's upstream
//! protocol options: `typed_extension_protocol_options
//! ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]`, or the
//! deprecated Cluster fields (`http_protocol_options`,
//! `http2_protocol_options`, `protocol_selection`,
//! `max_requests_per_connection`). With neither, Envoy speaks HTTP/1.1.
//!
//! Proxyless gRPC ignores all of this (gRPC is always HTTP/2); mesh's gRPC
//! channels do too. Only mesh's plain-HTTP client follows it.
//!
//! Validated here: the extension's type, that it decodes, that a protocol
//! is chosen, that HTTP/3 is not asked for, and that the typed options and
//! the deprecated fields are not both set (Envoy rejects that too). The
//! HTTP/1.1 and HTTP/2 option messages themselves (header casing, window
//! sizes, keepalive) are accepted and ignored.

use envoy_types::pb::envoy::config::cluster::v3 as wire;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as ext;
use prost::Message;

use super::FieldError;

/// The extension name (and message type) of the typed protocol options.
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Which HTTP version requests to a cluster's endpoints use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (`explicit_http_config.http_protocol_options`, or nothing
    /// set: Envoy's default).
    #[default]
    Http1,
    /// HTTP/2 (`explicit_http_config.http2_protocol_options`, or the
    /// deprecated `http2_protocol_options`).
    Http2,
    /// The downstream request's version: HTTP/2 requests go out as HTTP/2,
    /// others as HTTP/1.1 (`use_downstream_protocol_config` with
    /// `http2_protocol_options`; without them it is [`Http1`](Self::Http1)).
    UseDownstream,
    /// `auto_config`: ALPN decides over TLS, HTTP/1.1 over plaintext
    /// (without `http2_protocol_options` it is [`Http1`](Self::Http1)).
    Auto,
}

/// A cluster's upstream HTTP settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UpstreamHttpOptions {
    /// The HTTP version.
    pub protocol: UpstreamProtocol,
    /// Requests one connection carries before it is closed
    /// (`common_http_protocol_options.max_requests_per_connection`, or the
    /// deprecated Cluster field); `None` (or 0 on the wire) is no limit.
    pub max_requests_per_connection: Option<u32>,
}

impl UpstreamHttpOptions {
    /// HTTP/2 with no per-connection limit: what gRPC speaks.
    pub const HTTP2: UpstreamHttpOptions = UpstreamHttpOptions {
        protocol: UpstreamProtocol::Http2,
        max_requests_per_connection: None,
    };
}

/// The options of `c`, from the typed extension or the deprecated fields.
pub(super) fn from_cluster(c: &wire::Cluster) -> Result<UpstreamHttpOptions, FieldError> {
    let legacy = legacy_fields(c);
    match c
        .typed_extension_protocol_options
        .get(HTTP_PROTOCOL_OPTIONS)
    {
        Some(any) => {
            let field = format!("typed_extension_protocol_options[{HTTP_PROTOCOL_OPTIONS:?}]");
            if let Some(old) = legacy {
                return Err(FieldError::new(
                    field,
                    format!("cannot be set together with the deprecated Cluster field {old}"),
                ));
            }
            typed(any).map_err(|e| e.at(field))
        }
        None => Ok(deprecated(c)),
    }
}

/// The first deprecated protocol field set on `c`, if any.
fn legacy_fields(c: &wire::Cluster) -> Option<&'static str> {
    if c.http2_protocol_options.is_some() {
        Some("http2_protocol_options")
    } else if c.http_protocol_options.is_some() {
        Some("http_protocol_options")
    } else if c.common_http_protocol_options.is_some() {
        Some("common_http_protocol_options")
    } else if c.upstream_http_protocol_options.is_some() {
        Some("upstream_http_protocol_options")
    } else if c.max_requests_per_connection.is_some() {
        Some("max_requests_per_connection")
    } else if c.protocol_selection != 0 {
        Some("protocol_selection")
    } else {
        None
    }
}

fn deprecated(c: &wire::Cluster) -> UpstreamHttpOptions {
    use wire::cluster::ClusterProtocolSelection as Selection;
    let h2 = c.http2_protocol_options.is_some();
    let downstream = c.protocol_selection == Selection::UseDownstreamProtocol as i32;
    let protocol = match (h2, downstream) {
        (true, true) => UpstreamProtocol::UseDownstream,
        (true, false) => UpstreamProtocol::Http2,
        (false, _) => UpstreamProtocol::Http1,
    };
    let max = c
        .max_requests_per_connection
        .as_ref()
        .map(|v| v.value)
        .or_else(|| common_max(c.common_http_protocol_options.as_ref()));
    UpstreamHttpOptions {
        protocol,
        max_requests_per_connection: max.filter(|n| *n > 0),
    }
}

fn common_max(o: Option<&core::HttpProtocolOptions>) -> Option<u32> {
    o.and_then(|o| o.max_requests_per_connection.as_ref())
        .map(|v| v.value)
}

fn typed(any: &envoy_types::pb::google::protobuf::Any) -> Result<UpstreamHttpOptions, FieldError> {
    use ext::http_protocol_options::UpstreamProtocolOptions as P;
    use ext::http_protocol_options::explicit_http_config::ProtocolConfig as E;
    if any.type_url.rsplit('/').next() != Some(HTTP_PROTOCOL_OPTIONS) {
        return Err(FieldError::new(
            "type_url",
            format!("{:?} is not an {HTTP_PROTOCOL_OPTIONS}", any.type_url),
        ));
    }
    let opts = ext::HttpProtocolOptions::decode(any.value.as_slice())
        .map_err(|e| FieldError::new("", format!("cannot decode: {e}")))?;
    let http3 = || {
        Err(FieldError::new(
            "",
            "HTTP/3 upstreams are not supported (use HTTP/1.1 or HTTP/2)",
        ))
    };
    let protocol = match &opts.upstream_protocol_options {
        None => {
            return Err(FieldError::new(
                "upstream_protocol_options",
                "missing: set explicit_http_config, use_downstream_protocol_config or auto_config",
            ));
        }
        Some(P::ExplicitHttpConfig(e)) => match &e.protocol_config {
            Some(E::HttpProtocolOptions(_)) => UpstreamProtocol::Http1,
            Some(E::Http2ProtocolOptions(_)) => UpstreamProtocol::Http2,
            Some(E::Http3ProtocolOptions(_)) => {
                return http3()
                    .map_err(|e: FieldError| e.at("explicit_http_config.http3_protocol_options"));
            }
            None => {
                return Err(FieldError::new(
                    "explicit_http_config.protocol_config",
                    "missing: set http_protocol_options or http2_protocol_options",
                ));
            }
        },
        Some(P::UseDownstreamProtocolConfig(d)) => {
            if d.http3_protocol_options.is_some() {
                return http3().map_err(|e: FieldError| {
                    e.at("use_downstream_protocol_config.http3_protocol_options")
                });
            }
            if d.http2_protocol_options.is_some() {
                UpstreamProtocol::UseDownstream
            } else {
                UpstreamProtocol::Http1
            }
        }
        Some(P::AutoConfig(a)) => {
            if a.http3_protocol_options.is_some() {
                return http3().map_err(|e: FieldError| e.at("auto_config.http3_protocol_options"));
            }
            if a.http2_protocol_options.is_some() {
                UpstreamProtocol::Auto
            } else {
                UpstreamProtocol::Http1
            }
        }
    };
    Ok(UpstreamHttpOptions {
        protocol,
        max_requests_per_connection: common_max(opts.common_http_protocol_options.as_ref())
            .filter(|n| *n > 0),
    })
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::google::protobuf::{Any, UInt32Value};
    use ext::http_protocol_options::UpstreamProtocolOptions as P;
    use ext::http_protocol_options::explicit_http_config::ProtocolConfig as E;

    use super::*;
    use crate::resource::to_any;

    fn with(opts: ext::HttpProtocolOptions) -> wire::Cluster {
        with_any(to_any(
            &format!("type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}"),
            &opts,
        ))
    }

    fn with_any(any: Any) -> wire::Cluster {
        let mut c = wire::Cluster::default();
        c.typed_extension_protocol_options
            .insert(HTTP_PROTOCOL_OPTIONS.into(), any);
        c
    }

    fn explicit(p: E) -> ext::HttpProtocolOptions {
        ext::HttpProtocolOptions {
            upstream_protocol_options: Some(P::ExplicitHttpConfig(
                ext::http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(p),
                },
            )),
            ..Default::default()
        }
    }

    fn protocol(c: &wire::Cluster) -> UpstreamProtocol {
        from_cluster(c).unwrap().protocol
    }

    #[test]
    fn nothing_set_is_http1_as_envoy() {
        assert_eq!(
            from_cluster(&wire::Cluster::default()).unwrap(),
            UpstreamHttpOptions::default()
        );
        assert_eq!(
            UpstreamHttpOptions::default().protocol,
            UpstreamProtocol::Http1
        );
    }

    #[test]
    fn explicit_config_picks_the_version() {
        assert_eq!(
            protocol(&with(explicit(E::HttpProtocolOptions(Default::default())))),
            UpstreamProtocol::Http1
        );
        let mut h2 = explicit(E::Http2ProtocolOptions(Default::default()));
        h2.common_http_protocol_options = Some(core::HttpProtocolOptions {
            max_requests_per_connection: Some(UInt32Value { value: 100 }),
            ..Default::default()
        });
        assert_eq!(
            from_cluster(&with(h2)).unwrap(),
            UpstreamHttpOptions {
                protocol: UpstreamProtocol::Http2,
                max_requests_per_connection: Some(100),
            }
        );
    }

    #[test]
    fn downstream_and_auto_need_http2_options_to_use_http2() {
        use ext::http_protocol_options::{AutoHttpConfig, UseDownstreamHttpConfig};
        let down = |h2: bool| ext::HttpProtocolOptions {
            upstream_protocol_options: Some(P::UseDownstreamProtocolConfig(
                UseDownstreamHttpConfig {
                    http2_protocol_options: h2.then(Default::default),
                    ..Default::default()
                },
            )),
            ..Default::default()
        };
        assert_eq!(protocol(&with(down(true))), UpstreamProtocol::UseDownstream);
        assert_eq!(protocol(&with(down(false))), UpstreamProtocol::Http1);
        let auto = |h2: bool| ext::HttpProtocolOptions {
            upstream_protocol_options: Some(P::AutoConfig(AutoHttpConfig {
                http2_protocol_options: h2.then(Default::default),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(protocol(&with(auto(true))), UpstreamProtocol::Auto);
        assert_eq!(protocol(&with(auto(false))), UpstreamProtocol::Http1);
    }

    #[test]
    fn deprecated_fields_still_count() {
        use wire::cluster::ClusterProtocolSelection as Selection;
        let mut c = wire::Cluster {
            http2_protocol_options: Some(Default::default()),
            max_requests_per_connection: Some(UInt32Value { value: 0 }),
            ..Default::default()
        };
        assert_eq!(from_cluster(&c).unwrap(), UpstreamHttpOptions::HTTP2);
        c.protocol_selection = Selection::UseDownstreamProtocol as i32;
        assert_eq!(protocol(&c), UpstreamProtocol::UseDownstream);
        let c = wire::Cluster {
            http_protocol_options: Some(Default::default()),
            max_requests_per_connection: Some(UInt32Value { value: 1 }),
            ..Default::default()
        };
        assert_eq!(
            from_cluster(&c).unwrap(),
            UpstreamHttpOptions {
                protocol: UpstreamProtocol::Http1,
                max_requests_per_connection: Some(1),
            }
        );
    }

    #[test]
    fn malformed_options_are_nacked_with_the_field() {
        let field = format!("typed_extension_protocol_options[{HTTP_PROTOCOL_OPTIONS:?}]");
        let e = from_cluster(&with(ext::HttpProtocolOptions::default())).unwrap_err();
        assert_eq!(e.field, format!("{field}.upstream_protocol_options"));
        let e =
            from_cluster(&with(explicit(E::Http3ProtocolOptions(Default::default())))).unwrap_err();
        assert_eq!(
            e.field,
            format!("{field}.explicit_http_config.http3_protocol_options")
        );
        assert!(e.reason.contains("HTTP/3"), "{e:?}");
        let empty = ext::HttpProtocolOptions {
            upstream_protocol_options: Some(P::ExplicitHttpConfig(Default::default())),
            ..Default::default()
        };
        let e = from_cluster(&with(empty)).unwrap_err();
        assert_eq!(
            e.field,
            format!("{field}.explicit_http_config.protocol_config")
        );
        let e = from_cluster(&with_any(Any {
            type_url: format!("type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}"),
            value: vec![0xff, 0xff],
        }))
        .unwrap_err();
        assert_eq!(e.field, field);
        assert!(e.reason.contains("cannot decode"), "{e:?}");
        let e = from_cluster(&with_any(to_any(
            "type.googleapis.com/google.protobuf.Empty",
            &(),
        )))
        .unwrap_err();
        assert_eq!(e.field, format!("{field}.type_url"));
        let mut both = with(explicit(E::Http2ProtocolOptions(Default::default())));
        both.http2_protocol_options = Some(Default::default());
        let e = from_cluster(&both).unwrap_err();
        assert!(e.reason.contains("http2_protocol_options"), "{e:?}");
    }
}
