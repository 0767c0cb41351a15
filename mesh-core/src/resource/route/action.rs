//! Route actions: where a matched RPC goes (a cluster or weighted clusters),
//! with its hash policy, retry policy and timeouts.
//!
//! gRPC (A28) keeps a route whose action is a redirect, a direct response or
//! a filter action, and fails the RPCs that match it; mesh keeps those as
//! [`RouteAction::Unsupported`]. Routes gRPC ignores altogether (a
//! `cluster_header`, an inline or optional cluster specifier plugin, no
//! cluster specifier) are dropped by the parent virtual host.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3 as wire;
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;

use super::super::common::opt_duration;
use super::super::filter::FilterConfig;
use super::super::{AtField, FieldError};
use super::filter_overrides;
use super::retry::RetryPolicy;

/// What a route does with the RPCs it matches.
#[derive(Debug, Clone)]
pub enum RouteAction {
    /// Send them to a cluster.
    Forward(ForwardAction),
    /// Server side (A36): let the server's own handlers serve them.
    NonForwarding,
    /// An action gRPC does not implement (redirect, direct response, filter
    /// action, none): matching RPCs fail with UNAVAILABLE. Says which.
    Unsupported(String),
}

/// Where a forwarding route sends RPCs, and how.
#[derive(Debug, Clone)]
pub struct ForwardAction {
    /// The cluster, or clusters by weight.
    pub cluster: ClusterTarget,
    /// Ring-hash inputs (A42), in order.
    pub hash_policy: Vec<HashPolicy>,
    /// The route's retry policy, or else its virtual host's (A44).
    pub retry_policy: Option<RetryPolicy>,
    /// `max_stream_duration.max_stream_duration`; `None` when unset.
    pub max_stream_duration: Option<DurationCap>,
    /// `max_stream_duration.grpc_timeout_header_max`; `None` when unset.
    pub grpc_timeout_header_max: Option<DurationCap>,
    /// Envoy's `timeout` (gRPC ignores it, A31). `None` when unset or zero;
    /// Envoy's 15 s default is never assumed.
    pub timeout: Option<Duration>,
}

impl ForwardAction {
    /// The cap A31 puts on an RPC's deadline (`None`: no cap), given the
    /// HCM's `common_http_options.max_stream_duration` (`None`: no limit).
    /// `grpc_timeout_header_max` wins over `max_stream_duration`, which wins
    /// over the HCM's; zero means no cap.
    pub fn deadline_cap(&self, hcm_max_stream_duration: Option<Duration>) -> Option<Duration> {
        match self.grpc_timeout_header_max.or(self.max_stream_duration) {
            Some(cap) => cap.limit(),
            None => hcm_max_stream_duration.filter(|d| !d.is_zero()),
        }
    }
}

/// A duration limit where zero on the wire means "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationCap {
    /// Explicitly unlimited (a zero duration on the wire).
    Unlimited,
    /// At most this long.
    Max(Duration),
}

impl DurationCap {
    /// Zero is [`DurationCap::Unlimited`].
    pub fn from_duration(d: Duration) -> Self {
        if d.is_zero() {
            DurationCap::Unlimited
        } else {
            DurationCap::Max(d)
        }
    }

    /// The limit, `None` when unlimited.
    pub fn limit(self) -> Option<Duration> {
        match self {
            DurationCap::Unlimited => None,
            DurationCap::Max(d) => Some(d),
        }
    }
}

/// The cluster(s) a forwarding route targets.
#[derive(Debug, Clone)]
pub enum ClusterTarget {
    /// One named cluster.
    Cluster(String),
    /// Clusters picked by weight, once per RPC.
    Weighted(WeightedClusters),
}

/// One cluster of a weighted split.
#[derive(Debug, Clone)]
pub struct ClusterWeight {
    /// The cluster name.
    pub name: String,
    /// Its weight (positive: zero-weight entries are dropped, as in gRPC).
    pub weight: u32,
    /// Filter overrides for RPCs sent to this cluster (they win over the
    /// route's and the virtual host's, A39).
    pub typed_per_filter_config: BTreeMap<String, FilterConfig>,
}

/// A weighted split; the weights' sum is what counts (`total_weight` is
/// deprecated and ignored).
#[derive(Debug, Clone)]
pub struct WeightedClusters {
    clusters: Vec<ClusterWeight>,
    /// `ends[i]`: sum of the weights of clusters `0..=i`.
    ends: Vec<u32>,
}

impl WeightedClusters {
    /// A split over `clusters` (zero weights dropped); `None` when nothing
    /// positive is left or the sum overflows `u32`.
    pub fn new(clusters: Vec<ClusterWeight>) -> Option<Self> {
        let clusters: Vec<_> = clusters.into_iter().filter(|c| c.weight > 0).collect();
        let mut ends = Vec::with_capacity(clusters.len());
        let mut sum = 0u32;
        for c in &clusters {
            sum = sum.checked_add(c.weight)?;
            ends.push(sum);
        }
        (sum > 0).then_some(WeightedClusters { clusters, ends })
    }

    fn from_wire(w: wire::WeightedCluster) -> Result<Self, FieldError> {
        if w.clusters.is_empty() {
            return Err(FieldError::new("", "no clusters"));
        }
        let mut clusters = Vec::with_capacity(w.clusters.len());
        let mut sum = 0u64;
        for (i, c) in w.clusters.into_iter().enumerate() {
            let at = format!("clusters[{i}]");
            let typed_per_filter_config =
                filter_overrides(&c.typed_per_filter_config).at_field(&at)?;
            if c.name.is_empty() {
                let reason = if c.cluster_header.is_empty() {
                    "empty cluster name"
                } else {
                    "cluster_header is not supported; name a cluster"
                };
                return Err(FieldError::new("name", reason).at(&at));
            }
            let weight = c
                .weight
                .ok_or_else(|| FieldError::new("weight", "missing").at(&at))?
                .value;
            sum += u64::from(weight);
            clusters.push(ClusterWeight {
                name: c.name,
                weight,
                typed_per_filter_config,
            });
        }
        if sum == 0 {
            return Err(FieldError::new("", "the weights sum to 0"));
        }
        if sum > u64::from(u32::MAX) {
            return Err(FieldError::new(
                "",
                format!("the weights sum to {sum}, above the uint32 maximum"),
            ));
        }
        Ok(Self::new(clusters).expect("sum checked above"))
    }

    /// The clusters with a positive weight, in wire order.
    pub fn clusters(&self) -> &[ClusterWeight] {
        &self.clusters
    }

    /// The sum of the weights (positive).
    pub fn total(&self) -> u32 {
        *self.ends.last().expect("never empty")
    }

    /// The cluster for `draw`, which should be uniform in `0..total()`
    /// (larger draws pick the last cluster). Binary search, no allocation.
    pub fn pick(&self, draw: u32) -> &ClusterWeight {
        let i = self.ends.partition_point(|&end| end <= draw);
        &self.clusters[i.min(self.clusters.len() - 1)]
    }
}

/// One ring-hash input (A42).
#[derive(Debug, Clone)]
pub struct HashPolicy {
    /// What is hashed.
    pub kind: HashPolicyKind,
    /// Stop at this policy when a hash has been computed so far.
    pub terminal: bool,
}

/// The input a [`HashPolicy`] hashes.
#[derive(Debug, Clone)]
pub enum HashPolicyKind {
    /// A request header's value (several values joined with `,`).
    Header {
        /// Lower-case header name.
        name: String,
        /// A rewrite applied to the value before hashing.
        regex_rewrite: Option<RegexRewrite>,
    },
    /// `filter_state` key `io.grpc.channel_id`: a per-channel id.
    ChannelId,
    /// A policy gRPC does not implement (`cookie`, `connection_properties`,
    /// `query_parameter`, another `filter_state` key): it yields no hash,
    /// but its `terminal` flag still ends the list once a hash exists, as in
    /// Envoy. Names the kind.
    Unsupported(&'static str),
}

/// `RegexMatchAndSubstitute`: replaces every match of `pattern`.
#[derive(Debug, Clone)]
pub struct RegexRewrite {
    pattern: regex::Regex,
    /// The substitution in `regex` crate syntax (`${1}`, `$$`).
    replacement: String,
    /// The substitution as configured (RE2 syntax, `\1`).
    substitution: String,
}

impl RegexRewrite {
    /// Compiles `pattern` (RE2 syntax, matched anywhere) and checks
    /// `substitution` (`\0`..`\9` name groups, `\\` is a backslash).
    pub fn new(pattern: &str, substitution: &str) -> Result<Self, FieldError> {
        if pattern.is_empty() {
            return Err(FieldError::new("pattern.regex", "empty regex"));
        }
        let pattern = regex::Regex::new(pattern)
            .map_err(|e| FieldError::new("pattern.regex", format!("invalid regex: {e}")))?;
        let mut replacement = String::with_capacity(substitution.len() + 8);
        let mut chars = substitution.chars();
        while let Some(c) = chars.next() {
            match c {
                '$' => replacement.push_str("$$"),
                '\\' => match chars.next() {
                    Some('\\') => replacement.push('\\'),
                    Some(d @ '0'..='9') => {
                        let group = d as usize - '0' as usize;
                        if group >= pattern.captures_len() {
                            return Err(FieldError::new(
                                "substitution",
                                format!("\\{group} names a group the pattern does not have"),
                            ));
                        }
                        replacement.push_str(&format!("${{{group}}}"));
                    }
                    _ => {
                        return Err(FieldError::new(
                            "substitution",
                            "a backslash must be followed by a digit or a backslash",
                        ));
                    }
                },
                c => replacement.push(c),
            }
        }
        Ok(RegexRewrite {
            pattern,
            replacement,
            substitution: substitution.to_owned(),
        })
    }

    fn from_wire(r: &RegexMatchAndSubstitute) -> Result<Self, FieldError> {
        let pattern = r
            .pattern
            .as_ref()
            .ok_or_else(|| FieldError::new("pattern", "missing"))?;
        Self::new(&pattern.regex, &r.substitution)
    }

    /// Rewrites `input` (borrowed when nothing matched).
    pub fn apply<'a>(&self, input: &'a str) -> Cow<'a, str> {
        self.pattern.replace_all(input, self.replacement.as_str())
    }

    /// The pattern as configured.
    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    /// The substitution as configured.
    pub fn substitution(&self) -> &str {
        &self.substitution
    }
}

impl HashPolicy {
    fn from_wire(h: wire::route_action::HashPolicy) -> Result<Option<Self>, FieldError> {
        use wire::route_action::hash_policy::PolicySpecifier as S;
        let kind = match h.policy_specifier {
            None => return Ok(None),
            Some(S::Header(header)) => {
                if header.header_name.is_empty() {
                    return Err(FieldError::new("header.header_name", "empty header name"));
                }
                let regex_rewrite = header
                    .regex_rewrite
                    .as_ref()
                    .map(RegexRewrite::from_wire)
                    .transpose()
                    .at_field("header.regex_rewrite")?;
                HashPolicyKind::Header {
                    name: header.header_name.to_ascii_lowercase(),
                    regex_rewrite,
                }
            }
            Some(S::FilterState(f)) if f.key == "io.grpc.channel_id" => HashPolicyKind::ChannelId,
            Some(S::FilterState(_)) => HashPolicyKind::Unsupported("filter_state"),
            Some(S::Cookie(_)) => HashPolicyKind::Unsupported("cookie"),
            Some(S::ConnectionProperties(_)) => {
                HashPolicyKind::Unsupported("connection_properties")
            }
            Some(S::QueryParameter(_)) => HashPolicyKind::Unsupported("query_parameter"),
        };
        Ok(Some(HashPolicy {
            kind,
            terminal: h.terminal,
        }))
    }
}

impl ForwardAction {
    /// Validates a wire `RouteAction` (paths relative to it). `Ok(None)`:
    /// gRPC ignores the route (see the module docs). `optional_plugins`
    /// names the route configuration's optional cluster specifier plugins.
    pub(super) fn from_wire(
        ra: wire::RouteAction,
        optional_plugins: &BTreeSet<String>,
    ) -> Result<Option<Self>, FieldError> {
        use wire::route_action::ClusterSpecifier as C;
        let cluster = match ra.cluster_specifier {
            Some(C::Cluster(name)) if name.is_empty() => {
                return Err(FieldError::new("cluster", "empty cluster name"));
            }
            Some(C::Cluster(name)) => Some(ClusterTarget::Cluster(name)),
            Some(C::WeightedClusters(w)) => Some(ClusterTarget::Weighted(
                WeightedClusters::from_wire(w).at_field("weighted_clusters")?,
            )),
            Some(C::ClusterSpecifierPlugin(name)) => {
                let field = "cluster_specifier_plugin";
                if name.is_empty() {
                    return Err(FieldError::new(field, "empty plugin name"));
                }
                if !optional_plugins.contains(&name) {
                    return Err(FieldError::new(
                        field,
                        format!("unknown cluster specifier plugin \"{name}\""),
                    ));
                }
                None
            }
            Some(C::ClusterHeader(_) | C::InlineClusterSpecifierPlugin(_)) | None => None,
        };
        let mut hash_policy = Vec::with_capacity(ra.hash_policy.len());
        for (i, h) in ra.hash_policy.into_iter().enumerate() {
            hash_policy.extend(HashPolicy::from_wire(h).at_field(format!("hash_policy[{i}]"))?);
        }
        let retry_policy = ra
            .retry_policy
            .as_ref()
            .map(RetryPolicy::from_wire)
            .transpose()
            .at_field("retry_policy")?;
        let (mut max_stream_duration, mut grpc_timeout_header_max) = (None, None);
        if let Some(m) = &ra.max_stream_duration {
            let cap = |d, field| opt_duration(d, field).map(|d| d.map(DurationCap::from_duration));
            max_stream_duration = cap(
                m.max_stream_duration.as_ref(),
                "max_stream_duration.max_stream_duration",
            )?;
            grpc_timeout_header_max = cap(
                m.grpc_timeout_header_max.as_ref(),
                "max_stream_duration.grpc_timeout_header_max",
            )?;
        }
        let timeout = opt_duration(ra.timeout.as_ref(), "timeout")?.filter(|d| !d.is_zero());
        Ok(cluster.map(|cluster| ForwardAction {
            cluster,
            hash_policy,
            retry_policy,
            max_stream_duration,
            grpc_timeout_header_max,
            timeout,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cw(name: &str, weight: u32) -> ClusterWeight {
        ClusterWeight {
            name: name.into(),
            weight,
            typed_per_filter_config: BTreeMap::new(),
        }
    }

    #[test]
    fn pick_follows_weights_exactly() {
        let w =
            WeightedClusters::new(vec![cw("a", 1), cw("zero", 0), cw("b", 3), cw("c", 6)]).unwrap();
        assert_eq!(w.total(), 10);
        assert_eq!(w.clusters().len(), 3, "zero weights dropped");
        let mut counts = BTreeMap::new();
        for draw in 0..w.total() {
            *counts.entry(w.pick(draw).name.as_str()).or_insert(0) += 1;
        }
        assert_eq!(counts, BTreeMap::from([("a", 1), ("b", 3), ("c", 6)]));
        assert_eq!(w.pick(0).name, "a");
        assert_eq!(w.pick(1).name, "b");
        assert_eq!(w.pick(4).name, "c");
        assert_eq!(w.pick(u32::MAX).name, "c", "out-of-range draws clamp");
    }

    #[test]
    fn new_rejects_empty_and_overflow() {
        assert!(WeightedClusters::new(vec![cw("a", 0)]).is_none());
        assert!(WeightedClusters::new(vec![cw("a", u32::MAX), cw("b", 1)]).is_none());
        let full = WeightedClusters::new(vec![cw("a", u32::MAX - 1), cw("b", 1)]).unwrap();
        assert_eq!(full.total(), u32::MAX);
        assert_eq!(full.pick(u32::MAX - 1).name, "b");
        assert_eq!(full.pick(u32::MAX - 2).name, "a");
    }

    #[test]
    fn regex_rewrite_substitutes_every_match() {
        let r = RegexRewrite::new("^/(\\w+)/(\\w+)$", "\\2.\\1 $5 \\\\").unwrap();
        assert_eq!(r.apply("/svc/method"), "method.svc $5 \\");
        let r = RegexRewrite::new("a", "b").unwrap();
        assert_eq!(r.apply("banana"), "bbnbnb");
        assert!(matches!(r.apply("xyz"), Cow::Borrowed("xyz")));
    }

    #[test]
    fn regex_rewrite_validation() {
        assert_eq!(
            RegexRewrite::new("", "x").unwrap_err().field,
            "pattern.regex"
        );
        assert_eq!(
            RegexRewrite::new("(", "x").unwrap_err().field,
            "pattern.regex"
        );
        assert_eq!(
            RegexRewrite::new("(a)", "\\2").unwrap_err().field,
            "substitution"
        );
        assert_eq!(
            RegexRewrite::new("a", "\\q").unwrap_err().field,
            "substitution"
        );
        assert_eq!(
            RegexRewrite::new("a", "x\\").unwrap_err().field,
            "substitution"
        );
    }

    #[test]
    fn deadline_cap_follows_a31() {
        let s = Duration::from_secs;
        let action = |grpc: Option<DurationCap>, msd: Option<DurationCap>| ForwardAction {
            cluster: ClusterTarget::Cluster("c".into()),
            hash_policy: Vec::new(),
            retry_policy: None,
            max_stream_duration: msd,
            grpc_timeout_header_max: grpc,
            timeout: None,
        };
        let max = |n| Some(DurationCap::Max(s(n)));
        let unlimited = Some(DurationCap::Unlimited);
        assert_eq!(action(None, None).deadline_cap(None), None);
        assert_eq!(action(None, None).deadline_cap(Some(s(7))), Some(s(7)));
        assert_eq!(action(None, None).deadline_cap(Some(s(0))), None);
        assert_eq!(action(None, unlimited).deadline_cap(Some(s(7))), None);
        assert_eq!(action(None, max(10)).deadline_cap(Some(s(7))), Some(s(10)));
        assert_eq!(action(unlimited, max(10)).deadline_cap(Some(s(7))), None);
        assert_eq!(action(max(3), max(10)).deadline_cap(None), Some(s(3)));
    }
}
