//! Who is calling: the SPIFFE ID in a verified client certificate, or the
//! identity a bootstrap token stands for. Nothing here signs anything.

use std::collections::HashMap;

use rustls_pki_types::CertificateDer;
use tonic::Status;
use tonic::metadata::MetadataMap;

use super::super::identity::SpiffeId;
use super::super::x509;

/// Bootstrap tokens: `authorization: Bearer <token>` → identity.
#[derive(Clone, Default)]
pub struct Tokens {
    by_token: HashMap<String, SpiffeId>,
}

impl std::fmt::Debug for Tokens {
    // Tokens are secrets: print how many, not what.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("count", &self.by_token.len())
            .finish()
    }
}

impl Tokens {
    /// Adds a token standing for `id`.
    pub fn insert(&mut self, token: impl Into<String>, id: SpiffeId) {
        self.by_token.insert(token.into(), id);
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// The identity `token` stands for. Compares against every token in
    /// constant time per byte, so response timing does not reveal prefixes.
    fn lookup(&self, token: &str) -> Option<&SpiffeId> {
        let mut found = None;
        for (t, id) in &self.by_token {
            if ct_eq(t.as_bytes(), token.as_bytes()) {
                found = Some(id);
            }
        }
        found
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How the caller proved its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// Its current (CA-issued) client certificate over mTLS.
    ClientCert,
    /// A bootstrap token.
    Token,
}

/// The caller's identity: the client certificate's SPIFFE ID when the TLS
/// handshake verified one against the CA's root (tonic only exposes
/// verified peer certificates), else the bearer token's identity.
pub(crate) fn authenticate(
    peer_certs: Option<&[CertificateDer<'static>]>,
    metadata: &MetadataMap,
    tokens: &Tokens,
    trust_domain: &str,
) -> Result<(SpiffeId, Via), Status> {
    let mut cert_problem = None;
    if let Some(leaf) = peer_certs.and_then(|c| c.first()) {
        match x509::spiffe_id_of(leaf.as_ref(), trust_domain) {
            Ok(id) => return Ok((id, Via::ClientCert)),
            Err(e) => cert_problem = Some(e.to_string()),
        }
    }
    match metadata.get("authorization") {
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| Status::unauthenticated("authorization header is not ASCII"))?;
            let token = v
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim())
                .ok_or_else(|| {
                    Status::unauthenticated("authorization header: expected `Bearer <token>`")
                })?;
            tokens
                .lookup(token)
                .cloned()
                .map(|id| (id, Via::Token))
                .ok_or_else(|| Status::unauthenticated("unknown bearer token"))
        }
        None => Err(Status::unauthenticated(match cert_problem {
            Some(p) => format!(
                "client certificate has no usable identity ({p}) and no bearer token was sent"
            ),
            None => "no client certificate and no bearer token".to_owned(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::Authority;

    fn tokens() -> Tokens {
        let mut t = Tokens::default();
        t.insert("tok-a", "spiffe://cluster.local/ns/a/sa/x".parse().unwrap());
        t
    }

    fn md(auth: Option<&str>) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Some(a) = auth {
            m.insert("authorization", a.parse().unwrap());
        }
        m
    }

    #[test]
    fn bearer_token_maps_to_identity() {
        let (id, via) =
            authenticate(None, &md(Some("Bearer tok-a")), &tokens(), "cluster.local").unwrap();
        assert_eq!(id.uri(), "spiffe://cluster.local/ns/a/sa/x");
        assert_eq!(via, Via::Token);
        let (_, via) =
            authenticate(None, &md(Some("bearer  tok-a")), &tokens(), "cluster.local").unwrap();
        assert_eq!(via, Via::Token);
    }

    #[test]
    fn bad_or_missing_credentials_are_unauthenticated() {
        for auth in [
            None,
            Some("Bearer nope"),
            Some("Basic tok-a"),
            Some("tok-a"),
        ] {
            let err = authenticate(None, &md(auth), &tokens(), "cluster.local").unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{auth:?}");
        }
    }

    #[test]
    fn client_cert_wins_over_token() {
        let ca = Authority::generate("cluster.local").unwrap();
        let issued = ca.issue("b", "y").unwrap();
        let certs = x509::certs_from_pem("leaf", &issued.chain_pem).unwrap();
        let (id, via) = authenticate(
            Some(&certs),
            &md(Some("Bearer tok-a")),
            &tokens(),
            "cluster.local",
        )
        .unwrap();
        assert_eq!(id.uri(), "spiffe://cluster.local/ns/b/sa/y");
        assert_eq!(via, Via::ClientCert);
    }

    #[test]
    fn cert_without_spiffe_id_falls_back_to_token() {
        let ca = Authority::generate("cluster.local").unwrap();
        let serving = ca.issue_server(&["localhost"]).unwrap();
        let certs = x509::certs_from_pem("leaf", &serving.chain_pem).unwrap();
        let err = authenticate(Some(&certs), &md(None), &tokens(), "cluster.local").unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(err.message().contains("no spiffe://"), "{}", err.message());
        let (id, _) = authenticate(
            Some(&certs),
            &md(Some("Bearer tok-a")),
            &tokens(),
            "cluster.local",
        )
        .unwrap();
        assert_eq!(id.namespace(), "a");
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
