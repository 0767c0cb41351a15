//! Listener resource names from the bootstrap's templates, and federation
//! authorities (A36, A47).

use serde_json::{Map, Value};

use super::XdsServer;
use super::parse;
use crate::resource::{AtField, FieldError};

/// One `authorities` entry (A47).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    /// The client Listener name template for `xds://<authority>/<target>`
    /// channels; starts with `xdstp://<authority>/`. Default:
    /// `xdstp://<authority>/envoy.config.listener.v3.Listener/%s`.
    pub client_listener_resource_name_template: String,
    /// The servers for this authority; empty means the top-level ones.
    pub xds_servers: Vec<XdsServer>,
}

impl Authority {
    /// An authority with the default template and the top-level servers.
    pub fn new(name: &str) -> Self {
        Authority {
            client_listener_resource_name_template: Self::default_template(name),
            xds_servers: Vec::new(),
        }
    }

    /// The default client listener template for authority `name`.
    pub fn default_template(name: &str) -> String {
        format!("xdstp://{name}/envoy.config.listener.v3.Listener/%s")
    }

    /// Parses the entry for authority `name`; errors are relative to it.
    pub(super) fn from_json(name: &str, v: &Value) -> Result<Self, FieldError> {
        let o = parse::as_object(v)?;
        let template = match parse::opt_str(o, "client_listener_resource_name_template")? {
            Some(t) => {
                let prefix = format!("xdstp://{name}/");
                if !t.starts_with(&prefix) {
                    return Err(FieldError::new(
                        "client_listener_resource_name_template",
                        format!("{t:?} must start with {prefix:?}"),
                    ));
                }
                t.to_owned()
            }
            None => Self::default_template(name),
        };
        let xds_servers = match parse::opt_array(o, "xds_servers")? {
            None => Vec::new(),
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, s)| XdsServer::from_json(s).at_field(format!("xds_servers[{i}]")))
                .collect::<Result<_, _>>()?,
        };
        Ok(Authority {
            client_listener_resource_name_template: template,
            xds_servers,
        })
    }

    /// The entry in gRPC's bootstrap format (defaults left out).
    pub(super) fn to_json(&self, name: &str) -> Value {
        let mut o = Map::new();
        if self.client_listener_resource_name_template != Self::default_template(name) {
            o.insert(
                "client_listener_resource_name_template".into(),
                self.client_listener_resource_name_template.clone().into(),
            );
        }
        if !self.xds_servers.is_empty() {
            o.insert(
                "xds_servers".into(),
                self.xds_servers.iter().map(XdsServer::to_json).collect(),
            );
        }
        Value::Object(o)
    }
}

/// Replaces every `%s` in `template` with `value`, percent-encoding `value`
/// when the template is an `xdstp:` name (A47).
pub(super) fn expand(template: &str, value: &str) -> String {
    if template.starts_with("xdstp:") {
        template.replace("%s", &percent_encode_path(value))
    } else {
        template.replace("%s", value)
    }
}

/// Percent-encodes everything RFC 3986 section 3.3 does not allow in a path
/// (unreserved, sub-delims, `:`, `@` and `/` stay as they are).
pub(super) fn percent_encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
            );
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The authority of an `xdstp://<authority>/...` name; `None` for old-style
/// names.
pub(super) fn xdstp_authority(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("xdstp://")?;
    Some(rest.split_once('/').map_or(rest, |(a, _)| a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percent_encoding_keeps_path_characters() {
        assert_eq!(
            percent_encode_path("server.example.com"),
            "server.example.com"
        );
        assert_eq!(
            percent_encode_path("a/b:c@d!$&'()*+,;=-._~"),
            "a/b:c@d!$&'()*+,;=-._~"
        );
        assert_eq!(percent_encode_path("[::1]:8080"), "%5B::1%5D:8080");
        assert_eq!(percent_encode_path("a b?c#d%e"), "a%20b%3Fc%23d%25e");
        assert_eq!(percent_encode_path("é"), "%C3%A9");
    }

    #[test]
    fn expand_encodes_only_xdstp_templates() {
        assert_eq!(expand("%s", "a b"), "a b");
        assert_eq!(expand("x/%s/%s", "q?"), "x/q?/q?");
        assert_eq!(
            expand("xdstp://auth/envoy.config.listener.v3.Listener/%s", "a b"),
            "xdstp://auth/envoy.config.listener.v3.Listener/a%20b"
        );
    }

    #[test]
    fn xdstp_authorities() {
        assert_eq!(xdstp_authority("xdstp://a.com/t/n"), Some("a.com"));
        assert_eq!(xdstp_authority("xdstp:///t/n"), Some(""));
        assert_eq!(xdstp_authority("xdstp://a.com"), Some("a.com"));
        assert_eq!(xdstp_authority("echo:7070"), None);
    }

    #[test]
    fn authority_must_be_an_object() {
        let e = Authority::from_json("a.com", &json!(1)).unwrap_err();
        assert_eq!(e.field, "");
        assert!(e.reason.starts_with("must be a JSON object"));
    }

    #[test]
    fn authority_template_defaults_and_prefix_rule() {
        let a = Authority::from_json("a.com", &json!({})).unwrap();
        assert_eq!(
            a.client_listener_resource_name_template,
            "xdstp://a.com/envoy.config.listener.v3.Listener/%s"
        );
        assert!(a.xds_servers.is_empty());
        assert_eq!(a.to_json("a.com"), json!({}));

        let ok = json!({"client_listener_resource_name_template": "xdstp://a.com/x/%s?p=1"});
        let a = Authority::from_json("a.com", &ok).unwrap();
        assert_eq!(a.to_json("a.com"), ok);

        for (v, want) in [
            (
                json!({"client_listener_resource_name_template": "xdstp://b.com/x/%s"}),
                "client_listener_resource_name_template: \"xdstp://b.com/x/%s\" must start with \"xdstp://a.com/\"",
            ),
            (
                json!({"client_listener_resource_name_template": "%s"}),
                "client_listener_resource_name_template: \"%s\" must start with",
            ),
            (
                json!({"client_listener_resource_name_template": 1}),
                "client_listener_resource_name_template: must be a string",
            ),
            (json!({"xds_servers": {}}), "xds_servers: must be an array"),
            (
                json!({"xds_servers": [{}]}),
                "xds_servers[0].server_uri: missing",
            ),
        ] {
            let e = Authority::from_json("a.com", &v).unwrap_err().to_string();
            assert!(e.starts_with(want), "{v}: got {e:?}");
        }
    }
}
