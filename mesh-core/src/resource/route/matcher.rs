//! Route matching (A28): the path specifier, header matchers and the
//! runtime fraction of a `RouteMatch`.
//!
//! Matching is per request and allocates nothing beyond what
//! [`HeaderMatcher::matches`] needs for a repeated header. Fields gRPC does
//! not implement (`grpc`, `tls_context`, `cookies`, `dynamic_metadata`,
//! `filter_state`) are ignored, as gRPC ignores them; a route with
//! `query_parameters` never matches (gRPC skips such routes).

use envoy_types::pb::envoy::config::route::v3 as wire;
use http::HeaderMap;

use super::super::FieldError;
use super::super::common::Fraction;
use super::super::matcher::{FullRegex, HeaderMatcher};

/// How a route matches the request path (`/package.Service/Method`).
#[derive(Debug, Clone, PartialEq)]
pub enum PathMatch {
    /// The path starts with this prefix (`""` and `"/"` match everything).
    Prefix(String),
    /// The path equals this.
    Path(String),
    /// The whole path matches the regex (case-sensitive whatever
    /// `case_sensitive` says, as in gRPC and Envoy).
    Regex(FullRegex),
}

/// A validated `RouteMatch`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    /// The path specifier.
    pub path: PathMatch,
    /// Whether `Prefix`/`Path` compare case-sensitively (default `true`).
    pub case_sensitive: bool,
    /// Every matcher must match.
    pub headers: Vec<HeaderMatcher>,
    /// The share of requests matched (`runtime_fraction.default_value`;
    /// the runtime key is ignored). `None` matches all.
    pub runtime_fraction: Option<Fraction>,
    /// The route had `query_parameters` matchers: gRPC has no query
    /// string, so the route never matches.
    pub has_query_parameters: bool,
}

impl RouteMatch {
    /// A match on a path prefix, nothing else.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        RouteMatch {
            path: PathMatch::Prefix(prefix.into()),
            case_sensitive: true,
            headers: Vec::new(),
            runtime_fraction: None,
            has_query_parameters: false,
        }
    }

    /// Validates a wire `RouteMatch`; error paths are relative to it.
    pub fn from_wire(m: &wire::RouteMatch) -> Result<Self, FieldError> {
        use wire::route_match::PathSpecifier as P;
        let path = match &m.path_specifier {
            Some(P::Prefix(p)) => PathMatch::Prefix(p.clone()),
            Some(P::Path(p)) => PathMatch::Path(p.clone()),
            Some(P::SafeRegex(r)) => PathMatch::Regex(FullRegex::from_wire(r, "safe_regex")?),
            Some(P::ConnectMatcher(_)) => {
                return Err(FieldError::new(
                    "connect_matcher",
                    "CONNECT matching is not supported",
                ));
            }
            Some(P::PathSeparatedPrefix(_)) => {
                return Err(FieldError::new(
                    "path_separated_prefix",
                    "path_separated_prefix is not supported",
                ));
            }
            Some(P::PathMatchPolicy(_)) => {
                return Err(FieldError::new(
                    "path_match_policy",
                    "path match policy extensions are not supported",
                ));
            }
            None => {
                return Err(FieldError::new(
                    "",
                    "no path specifier: set one of prefix, path or safe_regex",
                ));
            }
        };
        let headers = m
            .headers
            .iter()
            .enumerate()
            .map(|(i, h)| HeaderMatcher::from_wire(h, &format!("headers[{i}]")))
            .collect::<Result<_, _>>()?;
        let runtime_fraction = m
            .runtime_fraction
            .as_ref()
            .and_then(|f| f.default_value.as_ref())
            .map(|p| Fraction::from_fractional_percent(p, "runtime_fraction.default_value"))
            .transpose()?;
        Ok(RouteMatch {
            path,
            case_sensitive: m.case_sensitive.as_ref().is_none_or(|b| b.value),
            headers,
            runtime_fraction,
            has_query_parameters: !m.query_parameters.is_empty(),
        })
    }

    /// Whether the path specifier matches `path`.
    pub fn matches_path(&self, path: &str) -> bool {
        match &self.path {
            PathMatch::Prefix(prefix) => {
                if self.case_sensitive {
                    path.starts_with(prefix.as_str())
                } else {
                    path.len() >= prefix.len()
                        && path.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
                }
            }
            PathMatch::Path(exact) => {
                if self.case_sensitive {
                    path == exact
                } else {
                    path.eq_ignore_ascii_case(exact)
                }
            }
            PathMatch::Regex(re) => re.is_match(path),
        }
    }

    /// Whether every header matcher matches.
    pub fn matches_headers(&self, headers: &HeaderMap) -> bool {
        self.headers.iter().all(|h| h.matches(headers))
    }

    /// The whole match, in gRPC's order: query parameters, path, headers,
    /// then the runtime fraction, which calls `draw` (uniform in
    /// `0..1_000_000`) only when the rest matched.
    pub fn matches(&self, path: &str, headers: &HeaderMap, draw: impl FnOnce() -> u32) -> bool {
        !self.has_query_parameters
            && self.matches_path(path)
            && self.matches_headers(headers)
            && self.runtime_fraction.is_none_or(|f| f.contains(draw()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
    use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;
    use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, Int64Range};
    use envoy_types::pb::google::protobuf::BoolValue;
    use wire::header_matcher::HeaderMatchSpecifier as H;
    use wire::route_match::PathSpecifier as P;

    fn wire_match(p: P) -> wire::RouteMatch {
        wire::RouteMatch {
            path_specifier: Some(p),
            ..Default::default()
        }
    }

    fn regex(r: &str) -> RegexMatcher {
        RegexMatcher {
            regex: r.into(),
            engine_type: None,
        }
    }

    #[test]
    fn prefix_and_path_case_sensitive_by_default() {
        let m = RouteMatch::from_wire(&wire_match(P::Prefix("/echo.Echo/".into()))).unwrap();
        assert!(m.case_sensitive);
        assert!(m.matches_path("/echo.Echo/Call"));
        assert!(!m.matches_path("/ECHO.echo/Call"));
        let m = RouteMatch::from_wire(&wire_match(P::Path("/echo.Echo/Call".into()))).unwrap();
        assert!(m.matches_path("/echo.Echo/Call"));
        assert!(!m.matches_path("/echo.Echo/CallX"));
        assert!(!m.matches_path("/echo.echo/call"));
    }

    #[test]
    fn case_insensitive_prefix_and_path() {
        let mut w = wire_match(P::Prefix("/Echo.EchoService/".into()));
        w.case_sensitive = Some(BoolValue { value: false });
        let m = RouteMatch::from_wire(&w).unwrap();
        assert!(!m.case_sensitive);
        assert!(m.matches_path("/echo.echoservice/Call"));
        assert!(m.matches_path("/ECHO.ECHOSERVICE/"));
        assert!(!m.matches_path("/echo.echo"), "shorter than the prefix");
        assert!(!m.matches_path("/other/"));
        let mut w = wire_match(P::Path("/Echo.EchoService/Call".into()));
        w.case_sensitive = Some(BoolValue { value: false });
        let m = RouteMatch::from_wire(&w).unwrap();
        assert!(m.matches_path("/echo.echoservice/CALL"));
        assert!(!m.matches_path("/echo.echoservice/CALLS"));
        // case_sensitive does not apply to regexes.
        let mut w = wire_match(P::SafeRegex(regex("/Echo\\..*")));
        w.case_sensitive = Some(BoolValue { value: false });
        let m = RouteMatch::from_wire(&w).unwrap();
        assert!(m.matches_path("/Echo.X/Y"));
        assert!(!m.matches_path("/echo.X/Y"));
    }

    #[test]
    fn missing_path_specifier_rejected() {
        let e = RouteMatch::from_wire(&wire::RouteMatch::default()).unwrap_err();
        assert_eq!(e.field, "");
    }

    #[test]
    fn unsupported_path_specifiers_rejected() {
        let e =
            RouteMatch::from_wire(&wire_match(P::ConnectMatcher(Default::default()))).unwrap_err();
        assert_eq!(e.field, "connect_matcher");
        let e =
            RouteMatch::from_wire(&wire_match(P::PathSeparatedPrefix("/a".into()))).unwrap_err();
        assert_eq!(e.field, "path_separated_prefix");
        let e =
            RouteMatch::from_wire(&wire_match(P::PathMatchPolicy(Default::default()))).unwrap_err();
        assert_eq!(e.field, "path_match_policy");
    }

    #[test]
    fn invalid_path_regex_rejected() {
        let e = RouteMatch::from_wire(&wire_match(P::SafeRegex(regex("(")))).unwrap_err();
        assert_eq!(e.field, "safe_regex.regex");
    }

    #[test]
    fn invalid_header_matcher_rejected() {
        let mut w = wire_match(P::Prefix("/".into()));
        w.headers = vec![
            wire::HeaderMatcher {
                name: "x-ok".into(),
                ..Default::default()
            },
            wire::HeaderMatcher {
                name: "x-n".into(),
                header_match_specifier: Some(H::RangeMatch(Int64Range { start: 9, end: 1 })),
                ..Default::default()
            },
        ];
        let e = RouteMatch::from_wire(&w).unwrap_err();
        assert_eq!(e.field, "headers[1].range_match");
    }

    #[test]
    fn bad_runtime_fraction_denominator_rejected() {
        let mut w = wire_match(P::Prefix("/".into()));
        w.runtime_fraction = Some(RuntimeFractionalPercent {
            default_value: Some(FractionalPercent {
                numerator: 1,
                denominator: 9,
            }),
            runtime_key: "ignored".into(),
        });
        let e = RouteMatch::from_wire(&w).unwrap_err();
        assert_eq!(e.field, "runtime_fraction.default_value.denominator");
    }

    #[test]
    fn runtime_fraction_and_headers_gate_the_match() {
        let mut w = wire_match(P::Prefix("/".into()));
        w.runtime_fraction = Some(RuntimeFractionalPercent {
            default_value: Some(FractionalPercent {
                numerator: 25,
                denominator: 0, // HUNDRED
            }),
            runtime_key: String::new(),
        });
        w.headers = vec![wire::HeaderMatcher {
            name: "x-user".into(),
            header_match_specifier: Some(H::ExactMatch("alice".into())),
            ..Default::default()
        }];
        let m = RouteMatch::from_wire(&w).unwrap();
        let mut h = HeaderMap::new();
        assert!(!m.matches("/a/b", &h, || unreachable!("headers fail first")));
        h.insert("x-user", "alice".parse().unwrap());
        assert!(m.matches("/a/b", &h, || 249_999));
        assert!(!m.matches("/a/b", &h, || 250_000));
    }

    #[test]
    fn query_parameters_never_match() {
        let mut w = wire_match(P::Prefix("/".into()));
        w.query_parameters = vec![wire::QueryParameterMatcher {
            name: "q".into(),
            ..Default::default()
        }];
        let m = RouteMatch::from_wire(&w).unwrap();
        assert!(m.has_query_parameters);
        assert!(m.matches_path("/a/b"));
        assert!(!m.matches("/a/b", &HeaderMap::new(), || 0));
    }
}
