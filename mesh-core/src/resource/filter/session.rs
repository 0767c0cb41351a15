//! Stateful session affinity
//! (`envoy.extensions.filters.http.stateful_session.v3.StatefulSession`,
//! A55) and its per-route override.
//!
//! Only cookie-based session state
//! (`envoy.extensions.http.stateful_session.cookie.v3.CookieBasedSessionState`)
//! is supported; other session state types are NACKed, as A55 says. istiod
//! sends this filter first and not optional on some services, so it must be
//! accepted. Cookie `attributes` are ignored; `stat_prefix` and
//! `status_on_strict_destination_not_found` too.

use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::http::stateful_session::v3 as wire;
use envoy_types::pb::envoy::extensions::http::stateful_session::cookie::v3 as cookie;

use super::{decode_any, type_name};
use crate::resource::FieldError;
use crate::resource::common::duration;

const COOKIE_STATE: &str =
    "envoy.extensions.http.stateful_session.cookie.v3.CookieBasedSessionState";

/// A validated `StatefulSession`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatefulSession {
    /// The session cookie; `None` when `session_state` is unset, which
    /// leaves sessions off.
    pub cookie: Option<SessionCookie>,
    /// `strict`: fail requests whose session host is gone instead of picking
    /// another one.
    pub strict: bool,
}

/// The cookie carrying the session's host (A55).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCookie {
    /// Cookie name (non-empty).
    pub name: String,
    /// Cookie path (`/` when unset); requests outside it are passed through.
    pub path: String,
    /// Cookie TTL, set on the cookie but not enforced (0 when unset).
    pub ttl: Duration,
}

/// A validated `StatefulSessionPerRoute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatefulSessionPerRoute {
    /// Sessions are off for this virtual host / route.
    Disabled,
    /// This config replaces the top-level one.
    Override(StatefulSession),
}

impl StatefulSession {
    /// Validates a wire config found at `field`.
    pub fn from_wire(s: &wire::StatefulSession, field: &str) -> Result<Self, FieldError> {
        let cookie = match &s.session_state {
            None => None,
            Some(state) => {
                let f = format!("{field}.session_state.typed_config");
                let any = state
                    .typed_config
                    .as_ref()
                    .ok_or_else(|| FieldError::new(f.as_str(), "no typed_config"))?;
                if type_name(&any.type_url) != COOKIE_STATE {
                    return Err(FieldError::new(
                        f,
                        format!(
                            "unsupported session state {}: only CookieBasedSessionState is supported",
                            any.type_url
                        ),
                    ));
                }
                let c: cookie::CookieBasedSessionState = decode_any(any, &f)?;
                Some(SessionCookie::from_wire(c, &format!("{f}.cookie"))?)
            }
        };
        Ok(StatefulSession {
            cookie,
            strict: s.strict,
        })
    }
}

impl SessionCookie {
    fn from_wire(c: cookie::CookieBasedSessionState, field: &str) -> Result<Self, FieldError> {
        let c = c
            .cookie
            .ok_or_else(|| FieldError::new(field, "no cookie configured"))?;
        if c.name.is_empty() {
            return Err(FieldError::new(
                format!("{field}.name"),
                "cookie name must not be empty",
            ));
        }
        let ttl = match &c.ttl {
            Some(d) => duration(d, &format!("{field}.ttl"))?,
            None => Duration::ZERO,
        };
        let path = if c.path.is_empty() {
            "/".to_owned()
        } else {
            c.path
        };
        Ok(SessionCookie {
            name: c.name,
            path,
            ttl,
        })
    }
}

impl StatefulSessionPerRoute {
    /// Validates a wire per-route config found at `field`.
    pub fn from_wire(p: &wire::StatefulSessionPerRoute, field: &str) -> Result<Self, FieldError> {
        use wire::stateful_session_per_route::Override;
        match &p.r#override {
            Some(Override::Disabled(true)) => Ok(StatefulSessionPerRoute::Disabled),
            Some(Override::Disabled(false)) => Err(FieldError::new(
                format!("{field}.disabled"),
                "disabled, when set, must be true",
            )),
            Some(Override::StatefulSession(s)) => Ok(StatefulSessionPerRoute::Override(
                StatefulSession::from_wire(s, &format!("{field}.stateful_session"))?,
            )),
            None => Err(FieldError::new(
                field,
                "neither disabled nor stateful_session is set",
            )),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::resource::to_any;
    use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
    use envoy_types::pb::envoy::r#type::http::v3::Cookie;
    use envoy_types::pb::google::protobuf;

    /// An A55-shaped config with cookie `name`.
    pub(crate) fn session(name: &str) -> wire::StatefulSession {
        let state = cookie::CookieBasedSessionState {
            cookie: Some(Cookie {
                name: name.into(),
                ttl: Some(protobuf::Duration {
                    seconds: 120,
                    nanos: 0,
                }),
                path: "/Package1.Service2/Method3".into(),
                attributes: vec![],
            }),
        };
        wire::StatefulSession {
            session_state: Some(TypedExtensionConfig {
                name: "envoy.http.stateful_session.cookie".into(),
                typed_config: Some(to_any(
                    &format!("type.googleapis.com/{COOKIE_STATE}"),
                    &state,
                )),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn cookie_session() {
        let s = StatefulSession::from_wire(&session("global-session-cookie"), "c").unwrap();
        assert_eq!(
            s.cookie,
            Some(SessionCookie {
                name: "global-session-cookie".into(),
                path: "/Package1.Service2/Method3".into(),
                ttl: Duration::from_secs(120)
            })
        );
        let off = StatefulSession::from_wire(&wire::StatefulSession::default(), "c").unwrap();
        assert_eq!(off.cookie, None);
    }

    #[test]
    fn empty_cookie_name_rejected() {
        let e = StatefulSession::from_wire(&session(""), "c").unwrap_err();
        assert_eq!(e.field, "c.session_state.typed_config.cookie.name");
    }

    #[test]
    fn defaults_path_and_ttl() {
        let mut s = session("x");
        let state = cookie::CookieBasedSessionState {
            cookie: Some(Cookie {
                name: "x".into(),
                ..Default::default()
            }),
        };
        s.session_state.as_mut().unwrap().typed_config = Some(to_any(
            &format!("type.googleapis.com/{COOKIE_STATE}"),
            &state,
        ));
        let c = StatefulSession::from_wire(&s, "c").unwrap().cookie.unwrap();
        assert_eq!(c.path, "/");
        assert_eq!(c.ttl, Duration::ZERO);
    }

    #[test]
    fn other_session_state_rejected() {
        let mut s = session("x");
        s.session_state.as_mut().unwrap().typed_config = Some(to_any(
            "type.googleapis.com/envoy.extensions.http.stateful_session.header.v3.HeaderBasedSessionState",
            &protobuf::Empty {},
        ));
        let e = StatefulSession::from_wire(&s, "c").unwrap_err();
        assert_eq!(e.field, "c.session_state.typed_config");
        assert!(e.reason.contains("HeaderBasedSessionState"), "{e}");
    }

    #[test]
    fn per_route_disabled_or_override() {
        use wire::stateful_session_per_route::Override;
        let p = |o| wire::StatefulSessionPerRoute { r#override: o };
        assert_eq!(
            StatefulSessionPerRoute::from_wire(&p(Some(Override::Disabled(true))), "r").unwrap(),
            StatefulSessionPerRoute::Disabled
        );
        let o = StatefulSessionPerRoute::from_wire(
            &p(Some(Override::StatefulSession(session("y")))),
            "r",
        )
        .unwrap();
        assert!(
            matches!(o, StatefulSessionPerRoute::Override(s) if s.cookie.as_ref().unwrap().name == "y")
        );
        let e = StatefulSessionPerRoute::from_wire(
            &p(Some(Override::StatefulSession(session("")))),
            "r",
        )
        .unwrap_err();
        assert_eq!(
            e.field,
            "r.stateful_session.session_state.typed_config.cookie.name"
        );
        assert_eq!(
            StatefulSessionPerRoute::from_wire(&p(None), "r")
                .unwrap_err()
                .field,
            "r"
        );
        assert_eq!(
            StatefulSessionPerRoute::from_wire(&p(Some(Override::Disabled(false))), "r")
                .unwrap_err()
                .field,
            "r.disabled"
        );
    }
}
