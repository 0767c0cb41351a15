//! String and header matchers (Envoy's `StringMatcher`, `RegexMatcher` and
//! route `HeaderMatcher`), validated once and cheap to evaluate.
//!
//! Regexes are RE2-syntax full matches, as gRPC and Envoy evaluate them.
//! Matching follows gRPC (A28, A63): a header whose name ends in `-bin` never
//! matches, several values of one header are joined with `,`, and a missing
//! header fails every matcher except `present_match` (which `invert_match`
//! then inverts like the others).

use std::borrow::Cow;

use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::r#type::matcher::v3 as wire;
use http::HeaderMap;

use super::FieldError;

/// A compiled RE2-style regex that must match the whole input.
#[derive(Debug, Clone)]
pub struct FullRegex {
    source: String,
    re: regex::Regex,
}

impl FullRegex {
    /// Compiles `pattern` as a full match.
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        let re = regex::Regex::new(&format!("^(?:{pattern})$"))?;
        Ok(FullRegex {
            source: pattern.to_owned(),
            re,
        })
    }

    /// From an Envoy `RegexMatcher` (the engine field is ignored: RE2 is the
    /// only one).
    pub fn from_wire(m: &wire::RegexMatcher, field: &str) -> Result<Self, FieldError> {
        Self::new(&m.regex)
            .map_err(|e| FieldError::new(format!("{field}.regex"), format!("invalid regex: {e}")))
    }

    /// Whether the whole of `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl PartialEq for FullRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// Envoy's `StringMatcher`.
#[derive(Debug, Clone, PartialEq)]
pub enum StringMatcher {
    /// Equal to the string.
    Exact {
        /// Pattern (lower-cased when `ignore_case`).
        value: String,
        /// ASCII case-insensitive.
        ignore_case: bool,
    },
    /// Starts with the string.
    Prefix {
        /// Pattern (lower-cased when `ignore_case`).
        value: String,
        /// ASCII case-insensitive.
        ignore_case: bool,
    },
    /// Ends with the string.
    Suffix {
        /// Pattern (lower-cased when `ignore_case`).
        value: String,
        /// ASCII case-insensitive.
        ignore_case: bool,
    },
    /// Contains the string.
    Contains {
        /// Pattern (lower-cased when `ignore_case`).
        value: String,
        /// ASCII case-insensitive.
        ignore_case: bool,
    },
    /// Matches the regex in full (`ignore_case` does not apply).
    Regex(FullRegex),
}

impl StringMatcher {
    /// An exact, case-sensitive matcher.
    pub fn exact(value: impl Into<String>) -> Self {
        StringMatcher::Exact {
            value: value.into(),
            ignore_case: false,
        }
    }

    /// Validates a wire `StringMatcher` found at `field`.
    pub fn from_wire(m: &wire::StringMatcher, field: &str) -> Result<Self, FieldError> {
        use wire::string_matcher::MatchPattern as P;
        let ic = m.ignore_case;
        let norm = |s: &str| {
            if ic {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            }
        };
        Ok(match &m.match_pattern {
            None => return Err(FieldError::new(field, "no match_pattern set")),
            Some(P::Exact(s)) => StringMatcher::Exact {
                value: norm(s),
                ignore_case: ic,
            },
            Some(P::Prefix(s)) => StringMatcher::Prefix {
                value: norm(s),
                ignore_case: ic,
            },
            Some(P::Suffix(s)) => StringMatcher::Suffix {
                value: norm(s),
                ignore_case: ic,
            },
            Some(P::Contains(s)) => StringMatcher::Contains {
                value: norm(s),
                ignore_case: ic,
            },
            Some(P::SafeRegex(r)) => {
                StringMatcher::Regex(FullRegex::from_wire(r, &format!("{field}.safe_regex"))?)
            }
            Some(P::Custom(_)) => {
                return Err(FieldError::new(
                    format!("{field}.custom"),
                    "custom string matchers are not supported",
                ));
            }
        })
    }

    /// Whether `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        match self {
            StringMatcher::Exact { value, ignore_case } => {
                if *ignore_case {
                    s.eq_ignore_ascii_case(value)
                } else {
                    s == value
                }
            }
            StringMatcher::Prefix { value, ignore_case } => {
                if *ignore_case {
                    s.len() >= value.len()
                        && s.as_bytes()[..value.len()].eq_ignore_ascii_case(value.as_bytes())
                } else {
                    s.starts_with(value.as_str())
                }
            }
            StringMatcher::Suffix { value, ignore_case } => {
                if *ignore_case {
                    s.len() >= value.len()
                        && s.as_bytes()[s.len() - value.len()..]
                            .eq_ignore_ascii_case(value.as_bytes())
                } else {
                    s.ends_with(value.as_str())
                }
            }
            StringMatcher::Contains { value, ignore_case } => {
                if *ignore_case {
                    s.to_ascii_lowercase().contains(value.as_str())
                } else {
                    s.contains(value.as_str())
                }
            }
            StringMatcher::Regex(re) => re.is_match(s),
        }
    }
}

/// What a [`HeaderMatcher`] checks of the header's value.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderMatch {
    /// The value as a string.
    String(StringMatcher),
    /// The value parsed as an integer lies in `[start, end)`.
    Range {
        /// Inclusive start.
        start: i64,
        /// Exclusive end.
        end: i64,
    },
    /// The header is present (`true`) or absent (`false`).
    Present(bool),
}

/// A route or RBAC header matcher.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderMatcher {
    /// Header name, lower-case (may be a pseudo-header such as `:method`).
    pub name: String,
    /// The check.
    pub matcher: HeaderMatch,
    /// Inverts the result.
    pub invert: bool,
    /// A missing header is matched as the empty string.
    pub treat_missing_as_empty: bool,
}

impl HeaderMatcher {
    /// Validates a wire `HeaderMatcher` found at `field`.
    pub fn from_wire(m: &route::HeaderMatcher, field: &str) -> Result<Self, FieldError> {
        use route::header_matcher::HeaderMatchSpecifier as S;
        if m.name.is_empty() {
            return Err(FieldError::new(
                format!("{field}.name"),
                "empty header name",
            ));
        }
        let exact = |value: &str| {
            HeaderMatch::String(StringMatcher::Exact {
                value: value.to_owned(),
                ignore_case: false,
            })
        };
        let matcher = match &m.header_match_specifier {
            None => HeaderMatch::Present(true),
            Some(S::ExactMatch(v)) => exact(v),
            Some(S::PrefixMatch(v)) => HeaderMatch::String(StringMatcher::Prefix {
                value: v.clone(),
                ignore_case: false,
            }),
            Some(S::SuffixMatch(v)) => HeaderMatch::String(StringMatcher::Suffix {
                value: v.clone(),
                ignore_case: false,
            }),
            Some(S::ContainsMatch(v)) => HeaderMatch::String(StringMatcher::Contains {
                value: v.clone(),
                ignore_case: false,
            }),
            Some(S::SafeRegexMatch(r)) => HeaderMatch::String(StringMatcher::Regex(
                FullRegex::from_wire(r, &format!("{field}.safe_regex_match"))?,
            )),
            Some(S::RangeMatch(r)) => {
                if r.start > r.end {
                    return Err(FieldError::new(
                        format!("{field}.range_match"),
                        format!("start {} is greater than end {}", r.start, r.end),
                    ));
                }
                HeaderMatch::Range {
                    start: r.start,
                    end: r.end,
                }
            }
            Some(S::PresentMatch(p)) => HeaderMatch::Present(*p),
            Some(S::StringMatch(s)) => HeaderMatch::String(StringMatcher::from_wire(
                s,
                &format!("{field}.string_match"),
            )?),
        };
        Ok(HeaderMatcher {
            name: m.name.to_ascii_lowercase(),
            matcher,
            invert: m.invert_match,
            treat_missing_as_empty: m.treat_missing_header_as_empty,
        })
    }

    /// Matches against request headers. Pseudo-headers are not in a
    /// `HeaderMap`: callers that need them use [`Self::matches_value`].
    pub fn matches(&self, headers: &HeaderMap) -> bool {
        if self.name.ends_with("-bin") {
            return false;
        }
        self.matches_value(joined_value(headers, &self.name).as_deref())
    }

    /// Matches a header value already looked up (`None` when absent).
    pub fn matches_value(&self, value: Option<&str>) -> bool {
        let value = match value {
            Some(v) => v,
            None if self.treat_missing_as_empty => "",
            None => {
                return match self.matcher {
                    HeaderMatch::Present(p) => p == self.invert,
                    _ => false,
                };
            }
        };
        let hit = match &self.matcher {
            HeaderMatch::String(m) => m.matches(value),
            HeaderMatch::Range { start, end } => {
                value.parse::<i64>().is_ok_and(|v| *start <= v && v < *end)
            }
            HeaderMatch::Present(p) => *p,
        };
        hit != self.invert
    }
}

/// All values of a header joined with `,` (no allocation for one value);
/// `None` when absent or not valid UTF-8.
pub fn joined_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<Cow<'a, str>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?.to_str().ok()?;
    let Some(second) = values.next() else {
        return Some(Cow::Borrowed(first));
    };
    let mut joined = String::with_capacity(first.len() * 2 + 1);
    joined.push_str(first);
    for v in std::iter::once(second).chain(values) {
        joined.push(',');
        joined.push_str(v.to_str().ok()?);
    }
    Some(Cow::Owned(joined))
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::r#type::v3::Int64Range;
    use route::header_matcher::HeaderMatchSpecifier as S;
    use wire::string_matcher::MatchPattern as P;

    fn sm(p: P, ignore_case: bool) -> StringMatcher {
        StringMatcher::from_wire(
            &wire::StringMatcher {
                ignore_case,
                match_pattern: Some(p),
            },
            "m",
        )
        .unwrap()
    }

    fn hm(name: &str, s: S, invert: bool) -> HeaderMatcher {
        HeaderMatcher::from_wire(
            &route::HeaderMatcher {
                name: name.into(),
                invert_match: invert,
                header_match_specifier: Some(s),
                ..Default::default()
            },
            "headers[0]",
        )
        .unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn string_matchers() {
        assert!(sm(P::Exact("abc".into()), false).matches("abc"));
        assert!(!sm(P::Exact("abc".into()), false).matches("ABC"));
        assert!(sm(P::Exact("abc".into()), true).matches("ABC"));
        assert!(sm(P::Prefix("ab".into()), true).matches("ABc"));
        assert!(sm(P::Suffix("Bc".into()), true).matches("abC"));
        assert!(sm(P::Contains("B".into()), true).matches("abc"));
        assert!(!sm(P::Contains("x".into()), false).matches("abc"));
        let re = sm(
            P::SafeRegex(wire::RegexMatcher {
                regex: "a.c".into(),
                engine_type: None,
            }),
            false,
        );
        assert!(re.matches("abc"));
        assert!(!re.matches("abcd"), "regexes match the whole string");
    }

    #[test]
    fn invalid_regex_names_the_field() {
        let e = StringMatcher::from_wire(
            &wire::StringMatcher {
                ignore_case: false,
                match_pattern: Some(P::SafeRegex(wire::RegexMatcher {
                    regex: "(".into(),
                    engine_type: None,
                })),
            },
            "principal",
        )
        .unwrap_err();
        assert_eq!(e.field, "principal.safe_regex.regex");
        let e = StringMatcher::from_wire(&wire::StringMatcher::default(), "x").unwrap_err();
        assert_eq!(e.field, "x");
    }

    #[test]
    fn header_matchers_every_kind() {
        let h = headers(&[
            ("x-user", "alice"),
            ("x-n", "42"),
            ("x-multi", "a"),
            ("x-multi", "b"),
        ]);
        assert!(hm("x-user", S::ExactMatch("alice".into()), false).matches(&h));
        assert!(!hm("x-user", S::ExactMatch("alice".into()), true).matches(&h));
        assert!(hm("x-user", S::PrefixMatch("al".into()), false).matches(&h));
        assert!(hm("x-user", S::SuffixMatch("ce".into()), false).matches(&h));
        assert!(hm("x-user", S::ContainsMatch("lic".into()), false).matches(&h));
        let range = S::RangeMatch(Int64Range { start: 40, end: 43 });
        assert!(hm("x-n", range.clone(), false).matches(&h));
        assert!(!hm("x-user", range, false).matches(&h), "non-numbers miss");
        assert!(hm("x-user", S::PresentMatch(true), false).matches(&h));
        assert!(hm("x-none", S::PresentMatch(false), false).matches(&h));
        assert!(!hm("x-none", S::PresentMatch(true), false).matches(&h));
        assert!(hm("x-none", S::PresentMatch(true), true).matches(&h));
        assert!(hm("x-multi", S::ExactMatch("a,b".into()), false).matches(&h));
        let string_match = S::StringMatch(wire::StringMatcher {
            ignore_case: true,
            match_pattern: Some(P::Exact("ALICE".into())),
        });
        assert!(hm("X-User", string_match, false).matches(&h));
    }

    #[test]
    fn missing_headers_fail_even_inverted() {
        let h = headers(&[]);
        assert!(!hm("x-user", S::ExactMatch("alice".into()), false).matches(&h));
        assert!(!hm("x-user", S::ExactMatch("alice".into()), true).matches(&h));
    }

    #[test]
    fn bin_headers_never_match() {
        let h = headers(&[("x-data-bin", "AAAA")]);
        assert!(!hm("x-data-bin", S::PresentMatch(true), false).matches(&h));
    }

    #[test]
    fn inverted_range_rejected() {
        let e = HeaderMatcher::from_wire(
            &route::HeaderMatcher {
                name: "x".into(),
                header_match_specifier: Some(S::RangeMatch(Int64Range { start: 5, end: 1 })),
                ..Default::default()
            },
            "headers[1]",
        )
        .unwrap_err();
        assert_eq!(e.field, "headers[1].range_match");
    }
}
