use mesh_core::resource::matcher::{FullRegex, StringMatcher};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;
use crate::tls::testing::TestCa;

const ECHO: &str = "spiffe://cluster.local/ns/default/sa/echo";

fn sans_of(names: &[&str]) -> Sans {
    let leaf = TestCa::new("ca").leaf(names);
    let (_, cert) = X509Certificate::from_der(&leaf.der).unwrap();
    Sans::of(&cert)
}

fn m(kind: &str, v: &str) -> StringMatcher {
    let value = v.to_owned();
    match kind {
        "exact" => StringMatcher::Exact {
            value,
            ignore_case: false,
        },
        "exact-ic" => StringMatcher::Exact {
            value: v.to_ascii_lowercase(),
            ignore_case: true,
        },
        "prefix" => StringMatcher::Prefix {
            value,
            ignore_case: false,
        },
        "suffix" => StringMatcher::Suffix {
            value,
            ignore_case: false,
        },
        "contains" => StringMatcher::Contains {
            value,
            ignore_case: false,
        },
        "regex" => StringMatcher::Regex(FullRegex::new(v).unwrap()),
        _ => unreachable!(),
    }
}

#[test]
fn reads_every_san_kind_from_a_certificate() {
    let sans = sans_of(&[
        ECHO,
        "echo.default.svc",
        "10.1.2.3",
        "::1",
        "ops@example.com",
    ]);
    assert_eq!(sans.uri, [ECHO]);
    assert_eq!(sans.dns, ["echo.default.svc"]);
    assert_eq!(
        sans.ip,
        [
            "10.1.2.3".parse::<IpAddr>().unwrap(),
            "::1".parse().unwrap()
        ]
    );
    assert_eq!(sans.email, ["ops@example.com"]);
}

#[test]
fn every_matcher_kind_against_uri_sans() {
    let sans = sans_of(&[ECHO]);
    for (kind, pattern, want) in [
        ("exact", ECHO, true),
        ("exact", "spiffe://cluster.local/ns/default/sa/ech", false),
        (
            "exact-ic",
            "SPIFFE://cluster.local/ns/default/sa/ECHO",
            true,
        ),
        ("prefix", "spiffe://cluster.local/ns/default/", true),
        ("prefix", "spiffe://other.local/", false),
        ("suffix", "/sa/echo", true),
        ("suffix", "/sa/other", false),
        ("contains", "/ns/default/", true),
        ("contains", "/ns/prod/", false),
        ("regex", r"spiffe://cluster\.local/ns/[^/]+/sa/echo", true),
        // Regexes match the whole SAN.
        ("regex", "ns/default", false),
    ] {
        assert_eq!(
            sans.match_any(&[m(kind, pattern)]),
            want,
            "{kind} {pattern}"
        );
    }
}

#[test]
fn dns_sans_use_dns_rules_for_exact_matchers() {
    let sans = sans_of(&["*.echo.svc", "Api.Example.com"]);
    for (kind, pattern, want) in [
        ("exact", "a.echo.svc", true),
        ("exact", "a.b.echo.svc", false),
        ("exact", "echo.svc", false),
        ("exact", "api.example.com.", true),
        ("exact", "API.EXAMPLE.COM", true),
        // Other kinds compare the SAN as a plain string.
        ("prefix", "*.echo", true),
        ("suffix", ".example.com", false),
        ("suffix", ".Example.com", true),
    ] {
        assert_eq!(
            sans.match_any(&[m(kind, pattern)]),
            want,
            "{kind} {pattern}"
        );
    }
    assert!(dns_match("x.a.b", "*.a.b"));
    assert!(!dns_match("x.a.b", "x*.a.b"));
    assert!(!dns_match("x.a.b", "*.*.b"));
    assert!(!dns_match(".a.b", "*.a.b"));
}

#[test]
fn ip_and_email_sans_match_as_text() {
    let sans = sans_of(&["10.1.2.3", "2001:db8::1", "ops@example.com"]);
    assert!(sans.match_any(&[m("exact", "10.1.2.3")]));
    assert!(sans.match_any(&[m("prefix", "10.1.")]));
    assert!(sans.match_any(&[m("exact", "2001:db8::1")]));
    assert!(sans.match_any(&[m("suffix", "@example.com")]));
    assert!(!sans.match_any(&[m("exact", "10.1.2.4")]));
}

#[test]
fn one_match_is_enough_and_no_matchers_accept_anything() {
    let sans = sans_of(&[ECHO, "echo.svc"]);
    assert!(sans.match_any(&[]));
    assert!(sans.match_any(&[m("exact", "nope"), m("exact", "echo.svc")]));
    assert!(Sans::default().match_any(&[]));
    assert!(!Sans::default().match_any(&[m("prefix", "")]));
}

#[test]
fn a_mismatch_names_the_sans_seen_and_expected() {
    let sans = sans_of(&["spiffe://cluster.local/ns/default/sa/other"]);
    let err = sans
        .check(&[m("exact", ECHO), m("exact-ic", "X"), m("regex", "a.*")])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "peer certificate SANs [spiffe://cluster.local/ns/default/sa/other] match none of \
         [exact spiffe://cluster.local/ns/default/sa/echo, exact x (ignore case), regex a.*]"
    );
}
