//! Virtual host domain patterns and the index that picks a virtual host for
//! an authority.
//!
//! The search order is Envoy's and gRPC's (A28): an exact domain first, then
//! suffix wildcards (`*.foo.com`, longest first), then prefix wildcards
//! (`foo.*`, longest first), then `*`. Matching ignores ASCII case. A
//! wildcard stands for at least one character. Among equally specific
//! patterns the first one listed (virtual host order, then domain order)
//! wins, as in gRPC.
//!
//! The lookup allocates nothing: servers run it per request.

use std::collections::HashMap;

use super::VirtualHost;

/// How a domain pattern matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DomainKind {
    /// `foo.com`.
    Exact,
    /// `*.foo.com`: the host ends with the text after `*`.
    Suffix,
    /// `foo.*`: the host starts with the text before `*`.
    Prefix,
    /// `*`: any host.
    Any,
}

/// Classifies a domain pattern; the error says what is wrong with it.
pub(super) fn classify(domain: &str) -> Result<DomainKind, &'static str> {
    if domain.is_empty() {
        return Err("empty domain");
    }
    match domain.bytes().filter(|&b| b == b'*').count() {
        0 => Ok(DomainKind::Exact),
        _ if domain == "*" => Ok(DomainKind::Any),
        1 if domain.starts_with('*') => Ok(DomainKind::Suffix),
        1 if domain.ends_with('*') => Ok(DomainKind::Prefix),
        _ => Err("a wildcard `*` may appear once, as the first or the last character"),
    }
}

/// Hosts up to this length are lower-cased on the stack for the exact-match
/// lookup; longer ones fall back to a scan (DNS names stop at 253 bytes).
const STACK_HOST: usize = 256;

/// A precomputed lookup from authority to virtual host index.
#[derive(Debug, Clone, Default)]
pub(super) struct DomainIndex {
    /// Lower-cased exact domains → first virtual host listing them.
    exact: HashMap<Box<[u8]>, usize>,
    /// Lower-cased text after `*`, longest first.
    suffixes: Vec<(Box<[u8]>, usize)>,
    /// Lower-cased text before `*`, longest first.
    prefixes: Vec<(Box<[u8]>, usize)>,
    /// The first virtual host with `*`.
    any: Option<usize>,
}

impl DomainIndex {
    /// Indexes the domains of `vhosts`; invalid patterns (which validation
    /// rejects) are left out.
    pub(super) fn new(vhosts: &[VirtualHost]) -> Self {
        let mut index = DomainIndex::default();
        for (i, vhost) in vhosts.iter().enumerate() {
            for domain in &vhost.domains {
                let lower = domain.to_ascii_lowercase().into_bytes();
                match classify(domain) {
                    Ok(DomainKind::Exact) => {
                        index.exact.entry(lower.into_boxed_slice()).or_insert(i);
                    }
                    Ok(DomainKind::Suffix) => index.suffixes.push((lower[1..].into(), i)),
                    Ok(DomainKind::Prefix) => {
                        index.prefixes.push((lower[..lower.len() - 1].into(), i));
                    }
                    Ok(DomainKind::Any) => {
                        index.any.get_or_insert(i);
                    }
                    Err(_) => {}
                }
            }
        }
        // Stable sorts: the first listed wins among equal lengths.
        index.suffixes.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        index.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        index
    }

    /// The index of the virtual host for `authority`, if any matches.
    pub(super) fn find(&self, authority: &str) -> Option<usize> {
        let host = authority.as_bytes();
        if let Some(i) = self.find_exact(host) {
            return Some(i);
        }
        // A wildcard matches at least one character, hence `>`.
        let suffix = self.suffixes.iter().find(|(s, _)| {
            host.len() > s.len() && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
        });
        if let Some((_, i)) = suffix {
            return Some(*i);
        }
        let prefix = self
            .prefixes
            .iter()
            .find(|(p, _)| host.len() > p.len() && host[..p.len()].eq_ignore_ascii_case(p));
        if let Some((_, i)) = prefix {
            return Some(*i);
        }
        self.any
    }

    fn find_exact(&self, host: &[u8]) -> Option<usize> {
        if self.exact.is_empty() {
            return None;
        }
        if host.len() <= STACK_HOST {
            let mut buf = [0u8; STACK_HOST];
            let lower = &mut buf[..host.len()];
            lower.copy_from_slice(host);
            lower.make_ascii_lowercase();
            return self.exact.get(&*lower).copied();
        }
        self.exact
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(host))
            .map(|(_, i)| *i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vhost(name: &str, domains: &[&str]) -> VirtualHost {
        VirtualHost {
            name: name.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            routes: Vec::new(),
            retry_policy: None,
            typed_per_filter_config: Default::default(),
        }
    }

    #[test]
    fn classifies_patterns() {
        assert_eq!(classify("foo.com"), Ok(DomainKind::Exact));
        assert_eq!(classify("*.foo.com"), Ok(DomainKind::Suffix));
        assert_eq!(classify("foo.*"), Ok(DomainKind::Prefix));
        assert_eq!(classify("*"), Ok(DomainKind::Any));
        assert!(classify("").is_err());
        assert!(classify("foo.*.com").is_err());
        assert!(classify("*foo*").is_err());
        assert!(classify("**").is_err());
    }

    #[test]
    fn precedence_exact_suffix_prefix_any() {
        let vhosts = [
            vhost("any", &["*"]),
            vhost("prefix", &["foo.*"]),
            vhost("long-prefix", &["foo.bar.*"]),
            vhost("suffix", &["*.com"]),
            vhost("long-suffix", &["*.bar.com"]),
            vhost("exact", &["Foo.Bar.Com"]),
        ];
        let index = DomainIndex::new(&vhosts);
        let pick = |a: &str| index.find(a).map(|i| vhosts[i].name.as_str());
        assert_eq!(pick("foo.bar.com"), Some("exact"));
        assert_eq!(pick("FOO.BAR.COM"), Some("exact"), "case-insensitive");
        assert_eq!(pick("x.bar.com"), Some("long-suffix"));
        assert_eq!(pick("x.com"), Some("suffix"), "suffix beats prefix");
        assert_eq!(pick("foo.bar.org"), Some("long-prefix"));
        assert_eq!(pick("FOO.org"), Some("prefix"));
        assert_eq!(pick("elsewhere"), Some("any"));
        // The wildcard must stand for at least one character.
        assert_eq!(pick(".bar.com"), Some("suffix"));
        assert_eq!(pick("foo."), Some("any"));
    }

    #[test]
    fn first_listed_wins_ties() {
        let vhosts = [
            vhost("a", &["*.example.com", "dup"]),
            vhost("b", &["*.example.com", "DUP", "*"]),
            vhost("c", &["*"]),
        ];
        let index = DomainIndex::new(&vhosts);
        assert_eq!(index.find("x.example.com"), Some(0));
        assert_eq!(index.find("dup"), Some(0));
        assert_eq!(index.find("other"), Some(1));
    }

    #[test]
    fn no_match_without_wildcard() {
        let vhosts = [vhost("a", &["a.com"])];
        let index = DomainIndex::new(&vhosts);
        assert_eq!(index.find("b.com"), None);
    }

    #[test]
    fn long_hosts_fall_back_to_a_scan() {
        let long = format!("{}.com", "a".repeat(300));
        let vhosts = [vhost("long", &[&long])];
        let index = DomainIndex::new(&vhosts);
        assert_eq!(index.find(&long.to_ascii_uppercase()), Some(0));
    }
}
