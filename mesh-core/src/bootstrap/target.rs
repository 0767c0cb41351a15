//! `server_uri` parsing: gRPC target URIs reduced to what mesh can dial.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// Where an xDS server listens, parsed from `server_uri`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerTarget {
    /// A host name or IP address and a port (IPv6 hosts without brackets).
    Tcp {
        /// Host name or IP literal.
        host: String,
        /// TCP port (443 when the URI names none, as gRPC's DNS resolver does).
        port: u16,
    },
    /// A Unix domain socket path (`unix:///etc/istio/proxy/XDS`).
    Unix(PathBuf),
}

/// gRPC's default port for targets that name none (the `https` port).
const DEFAULT_PORT: u16 = 443;

/// Parses a gRPC target URI into something mesh can dial. As in gRPC, a
/// string without a scheme mesh knows is read as `dns:///<string>`.
pub(super) fn parse_target(uri: &str) -> Result<ServerTarget, String> {
    if uri.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(rest) = uri.strip_prefix("unix:") {
        let path = match rest.strip_prefix("//") {
            Some(p) if p.starts_with('/') => p,
            Some(_) => {
                return Err(format!(
                    "{uri:?}: a unix URI is unix:///absolute/path or unix:path (no authority)"
                ));
            }
            None => rest,
        };
        if path.is_empty() {
            return Err(format!("{uri:?}: empty socket path"));
        }
        return Ok(ServerTarget::Unix(PathBuf::from(path)));
    }
    if let Some(rest) = uri.strip_prefix("dns:") {
        let host_port = match rest.strip_prefix("//") {
            Some(r) => match r.split_once('/') {
                Some(("", hp)) => hp,
                Some((auth, _)) => {
                    return Err(format!(
                        "{uri:?}: a DNS server authority ({auth:?}) is not supported; use dns:///host:port"
                    ));
                }
                None => return Err(format!("{uri:?}: expected dns:///host:port")),
            },
            None => rest,
        };
        return host_port_target(host_port).map_err(|r| format!("{uri:?}: {r}"));
    }
    for (scheme, v6) in [("ipv4:", false), ("ipv6:", true)] {
        if let Some(rest) = uri.strip_prefix(scheme) {
            if rest.contains(',') {
                return Err(format!("{uri:?}: address lists are not supported"));
            }
            let t = host_port_target(rest).map_err(|r| format!("{uri:?}: {r}"))?;
            let ServerTarget::Tcp { host, .. } = &t else {
                unreachable!("host_port_target returns Tcp")
            };
            let ok = if v6 {
                host.parse::<Ipv6Addr>().is_ok()
            } else {
                host.parse::<Ipv4Addr>().is_ok()
            };
            if !ok {
                return Err(format!("{uri:?}: {host:?} is not an {}", &scheme[..4]));
            }
            return Ok(t);
        }
    }
    if let Some((scheme, _)) = uri.split_once("://") {
        return Err(format!(
            "{uri:?}: unsupported scheme {scheme:?} (mesh dials dns:, unix:, ipv4: and ipv6: targets)"
        ));
    }
    host_port_target(uri).map_err(|r| format!("{uri:?}: {r}"))
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 literal.
fn host_port_target(s: &str) -> Result<ServerTarget, String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed '[' in host".to_owned())?;
        if h.parse::<Ipv6Addr>().is_err() {
            return Err(format!("{h:?} is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("unexpected {p:?} after ']'"))?,
            ),
        };
        (h, port)
    } else if s.matches(':').count() > 1 {
        // A bare IPv6 literal has no port.
        if s.parse::<Ipv6Addr>().is_err() {
            return Err("expected host:port (bracket IPv6 addresses: [::1]:port)".to_owned());
        }
        (s, None)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let valid_host = !host.is_empty()
        && (host.contains(':')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
    if !valid_host {
        return Err(format!("{host:?} is not a valid host"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("port {p:?} is not a number in 1-65535")),
        },
    };
    Ok(ServerTarget::Tcp {
        host: host.to_owned(),
        port,
    })
}

impl fmt::Display for ServerTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerTarget::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            ServerTarget::Tcp { host, port } => write!(f, "{host}:{port}"),
            ServerTarget::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> ServerTarget {
        ServerTarget::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn server_uri_forms() {
        let cases = [
            ("127.0.0.1:15010", tcp("127.0.0.1", 15010)),
            (
                "istiod.istio-system.svc:15012",
                tcp("istiod.istio-system.svc", 15012),
            ),
            ("xds.example.com", tcp("xds.example.com", 443)),
            (
                "dns:///xds.example.com:18000",
                tcp("xds.example.com", 18000),
            ),
            ("dns:xds.example.com:18000", tcp("xds.example.com", 18000)),
            ("[::1]:15010", tcp("::1", 15010)),
            ("[::1]", tcp("::1", 443)),
            ("::1", tcp("::1", 443)),
            ("dns:///[fe80::1]:80", tcp("fe80::1", 80)),
            ("ipv4:10.0.0.1:8080", tcp("10.0.0.1", 8080)),
            ("ipv6:[::1]:8080", tcp("::1", 8080)),
            (
                "unix:///etc/istio/proxy/XDS",
                ServerTarget::Unix("/etc/istio/proxy/XDS".into()),
            ),
            // What istio-agent writes: "unix:///" + "./etc/istio/proxy/XDS".
            (
                "unix:///./etc/istio/proxy/XDS",
                ServerTarget::Unix("/./etc/istio/proxy/XDS".into()),
            ),
            (
                "unix:relative/XDS",
                ServerTarget::Unix("relative/XDS".into()),
            ),
            ("unix:/abs/XDS", ServerTarget::Unix("/abs/XDS".into())),
        ];
        for (uri, want) in cases {
            assert_eq!(parse_target(uri), Ok(want), "{uri}");
        }
    }

    #[test]
    fn bad_server_uris_are_rejected() {
        for (uri, needle) in [
            ("", "empty"),
            ("host:0", "1-65535"),
            ("host:70000", "1-65535"),
            ("host:", "1-65535"),
            ("host:abc", "1-65535"),
            (":15010", "valid host"),
            ("https://xds.example.com", "unsupported scheme"),
            ("dns://8.8.8.8/xds.example.com:443", "DNS server authority"),
            ("unix://host/path", "no authority"),
            ("unix:", "empty socket path"),
            ("[::1:80", "unclosed"),
            ("[zz]:80", "IPv6"),
            ("1:2:3", "bracket"),
            ("ipv4:10.0.0.1:80,10.0.0.2:80", "lists"),
            ("ipv4:host:80", "ipv4"),
            ("ho st:80", "valid host"),
        ] {
            let e = parse_target(uri).unwrap_err();
            assert!(e.contains(needle), "{uri}: {e}");
        }
    }

    #[test]
    fn targets_display_dialable() {
        assert_eq!(tcp("::1", 80).to_string(), "[::1]:80");
        assert_eq!(tcp("a.b", 80).to_string(), "a.b:80");
        assert_eq!(ServerTarget::Unix("/x".into()).to_string(), "unix:/x");
    }
}
