//! The ring-hash request hash from a route's `hash_policy` (A42).
//!
//! Each policy yields a hash or nothing: a header's value (all values
//! joined with `,`, after the optional `regex_rewrite`) hashed with XXH64
//! seed 0, or the channel id as is. Hashes combine as gRPC combines them:
//! the hash so far rotated left by one bit, XOR the new one (so duplicate
//! policies do not cancel out). A `terminal` policy stops the list once a
//! hash exists. `-bin` headers are never hashed. No hash at all leaves the
//! choice to the balancer (gRPC then picks a random one).

use http::HeaderMap;
use mesh_core::resource::matcher::joined_value;
use mesh_core::resource::route::{HashPolicy, HashPolicyKind, RegexRewrite};
use xxhash_rust::xxh64::xxh64;

/// The request hash for `policies`, or `None` when none applied.
pub fn request_hash(policies: &[HashPolicy], headers: &HeaderMap, channel_id: u64) -> Option<u64> {
    let mut hash: Option<u64> = None;
    for policy in policies {
        let new = match &policy.kind {
            HashPolicyKind::Header {
                name,
                regex_rewrite,
            } => header_hash(headers, name, regex_rewrite.as_ref()),
            HashPolicyKind::ChannelId => Some(channel_id),
            HashPolicyKind::Unsupported(_) => None,
        };
        if let Some(new) = new {
            hash = Some(match hash {
                Some(old) => old.rotate_left(1) ^ new,
                None => new,
            });
        }
        if policy.terminal && hash.is_some() {
            break;
        }
    }
    hash
}

fn header_hash(headers: &HeaderMap, name: &str, rewrite: Option<&RegexRewrite>) -> Option<u64> {
    if name.ends_with("-bin") {
        return None;
    }
    let value = joined_value(headers, name)?;
    Some(match rewrite {
        Some(r) => xxh64(r.apply(&value).as_bytes(), 0),
        None => xxh64(value.as_bytes(), 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, terminal: bool) -> HashPolicy {
        HashPolicy {
            kind: HashPolicyKind::Header {
                name: name.into(),
                regex_rewrite: None,
            },
            terminal,
        }
    }

    fn channel(terminal: bool) -> HashPolicy {
        HashPolicy {
            kind: HashPolicyKind::ChannelId,
            terminal,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn header_value_hashed_with_xxh64_seed_zero() {
        let h = headers(&[("x-user", "alice")]);
        assert_eq!(
            request_hash(&[header("x-user", false)], &h, 9),
            Some(xxh64(b"alice", 0))
        );
        // Missing header: no hash.
        assert_eq!(request_hash(&[header("x-other", false)], &h, 9), None);
        // Several values are joined with a comma.
        let h = headers(&[("x-user", "a"), ("x-user", "b")]);
        assert_eq!(
            request_hash(&[header("x-user", false)], &h, 9),
            Some(xxh64(b"a,b", 0))
        );
    }

    #[test]
    fn binary_headers_are_not_hashed() {
        let h = headers(&[("x-id-bin", "AAEC")]);
        assert_eq!(request_hash(&[header("x-id-bin", false)], &h, 1), None);
    }

    #[test]
    fn regex_rewrite_applies_before_hashing() {
        let policy = HashPolicy {
            kind: HashPolicyKind::Header {
                name: "x-session".into(),
                regex_rewrite: Some(RegexRewrite::new("^user-(\\w+)-\\d+$", "\\1").unwrap()),
            },
            terminal: false,
        };
        let a = request_hash(
            std::slice::from_ref(&policy),
            &headers(&[("x-session", "user-bob-1")]),
            0,
        );
        let b = request_hash(&[policy], &headers(&[("x-session", "user-bob-2")]), 0);
        assert_eq!(a, Some(xxh64(b"bob", 0)));
        assert_eq!(a, b, "rewritten values hash alike");
    }

    #[test]
    fn channel_id_is_used_as_is() {
        assert_eq!(
            request_hash(&[channel(false)], &HeaderMap::new(), 42),
            Some(42)
        );
    }

    #[test]
    fn policies_combine_by_rotate_and_xor() {
        let h = headers(&[("x-a", "1"), ("x-b", "2")]);
        let (a, b) = (xxh64(b"1", 0), xxh64(b"2", 0));
        let got = request_hash(&[header("x-a", false), header("x-b", false)], &h, 0);
        assert_eq!(got, Some(a.rotate_left(1) ^ b));
        // Duplicates do not cancel out.
        let dup = request_hash(&[header("x-a", false), header("x-a", false)], &h, 0);
        assert_eq!(dup, Some(a.rotate_left(1) ^ a));
        assert_ne!(dup, Some(0));
    }

    #[test]
    fn terminal_stops_only_once_a_hash_exists() {
        let h = headers(&[("x-b", "2")]);
        let b = xxh64(b"2", 0);
        // x-a is missing: its terminal flag does not stop the list.
        let got = request_hash(
            &[header("x-a", true), header("x-b", true), channel(false)],
            &h,
            7,
        );
        assert_eq!(got, Some(b), "stopped after x-b");
        let got = request_hash(&[header("x-b", false), channel(false)], &h, 7);
        assert_eq!(got, Some(b.rotate_left(1) ^ 7));
        // An unsupported terminal policy still ends the list once a hash exists.
        let unsupported = HashPolicy {
            kind: HashPolicyKind::Unsupported("cookie"),
            terminal: true,
        };
        let got = request_hash(&[header("x-b", false), unsupported, channel(false)], &h, 7);
        assert_eq!(got, Some(b));
    }
}
