//! Subject alternative names: reading them from a certificate and checking
//! them against `match_subject_alt_names` (gRPC A29).
//!
//! Every SAN kind gRPC checks takes part: URI (where SPIFFE IDs live), DNS,
//! IP address (in its textual form) and email. One SAN matching one
//! matcher is enough; an empty matcher list accepts any certificate. As in
//! gRPC Go and Java, an `exact` matcher compared with a DNS SAN is a DNS
//! name comparison: case-insensitive, trailing dot ignored, and a SAN
//! `*.example.com` matches exactly one leading label.

use std::fmt;
use std::net::IpAddr;

use mesh_core::resource::matcher::StringMatcher;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// The SANs of one certificate, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sans {
    /// URI SANs (SPIFFE IDs among them).
    pub uri: Vec<String>,
    /// DNS SANs.
    pub dns: Vec<String>,
    /// IP address SANs.
    pub ip: Vec<IpAddr>,
    /// Email (rfc822Name) SANs.
    pub email: Vec<String>,
}

impl Sans {
    /// The SANs of a parsed certificate; entries that do not parse are
    /// skipped (they can match nothing).
    pub fn of(cert: &X509Certificate<'_>) -> Sans {
        let mut sans = Sans::default();
        let Ok(Some(ext)) = cert.subject_alternative_name() else {
            return sans;
        };
        for name in &ext.value.general_names {
            match name {
                GeneralName::URI(u) => sans.uri.push((*u).to_owned()),
                GeneralName::DNSName(d) => sans.dns.push((*d).to_owned()),
                GeneralName::RFC822Name(e) => sans.email.push((*e).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        sans.ip.push(ip);
                    }
                }
                _ => {}
            }
        }
        sans
    }

    /// Whether any SAN matches any of `matchers` (true when `matchers` is
    /// empty).
    pub fn match_any(&self, matchers: &[StringMatcher]) -> bool {
        matchers.is_empty() || matchers.iter().any(|m| self.matches(m))
    }

    /// Checks [`match_any`](Self::match_any), with an error naming the SANs
    /// seen and the ones expected.
    pub fn check(&self, matchers: &[StringMatcher]) -> Result<(), SanMismatch> {
        if self.match_any(matchers) {
            Ok(())
        } else {
            Err(SanMismatch {
                sans: self.all(),
                expected: matchers.iter().map(describe).collect(),
            })
        }
    }

    fn matches(&self, m: &StringMatcher) -> bool {
        let dns = |san: &String| match m {
            StringMatcher::Exact { value, .. } => dns_match(value, san),
            _ => m.matches(san),
        };
        self.uri.iter().any(|s| m.matches(s))
            || self.dns.iter().any(dns)
            || self.ip.iter().any(|ip| m.matches(&ip.to_string()))
            || self.email.iter().any(|s| m.matches(s))
    }

    /// Every SAN as text: URIs, DNS names, IPs, emails.
    pub fn all(&self) -> Vec<String> {
        self.uri
            .iter()
            .chain(&self.dns)
            .cloned()
            .chain(self.ip.iter().map(IpAddr::to_string))
            .chain(self.email.iter().cloned())
            .collect()
    }
}

/// A peer certificate whose SANs match none of `match_subject_alt_names`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanMismatch {
    sans: Vec<String>,
    expected: Vec<String>,
}

impl fmt::Display for SanMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer certificate SANs [{}] match none of [{}]",
            self.sans.join(", "),
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for SanMismatch {}

/// A matcher as the mismatch error shows it: `exact spiffe://...`.
pub fn describe(m: &StringMatcher) -> String {
    let (kind, value, ignore_case) = match m {
        StringMatcher::Exact { value, ignore_case } => ("exact", value.as_str(), *ignore_case),
        StringMatcher::Prefix { value, ignore_case } => ("prefix", value.as_str(), *ignore_case),
        StringMatcher::Suffix { value, ignore_case } => ("suffix", value.as_str(), *ignore_case),
        StringMatcher::Contains { value, ignore_case } => {
            ("contains", value.as_str(), *ignore_case)
        }
        StringMatcher::Regex(re) => ("regex", re.as_str(), false),
    };
    if ignore_case {
        format!("{kind} {value} (ignore case)")
    } else {
        format!("{kind} {value}")
    }
}

/// DNS name comparison of an exact matcher's `host` with a DNS SAN that may
/// be a wildcard (`*` alone as the left-most label, matching exactly one
/// non-empty label), as gRPC Go's `dnsMatch` does.
fn dns_match(host: &str, san: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let san = san.strip_suffix('.').unwrap_or(san).to_ascii_lowercase();
    if !san.contains('*') {
        return host == san;
    }
    let Some(base) = san.strip_prefix("*.") else {
        return false;
    };
    if base.is_empty() || base.contains('*') {
        return false;
    }
    match host.strip_suffix(base).and_then(|h| h.strip_suffix('.')) {
        Some(label) => !label.is_empty() && !label.contains('.'),
        None => false,
    }
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
