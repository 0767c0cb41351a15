//! Small value types shared by several resources: durations, fractions,
//! localities, metadata.

use std::collections::BTreeMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent::DenominatorType};
use envoy_types::pb::google::protobuf;

use super::FieldError;

/// Converts a protobuf duration, rejecting negative or out-of-range values.
pub fn duration(d: &protobuf::Duration, field: &str) -> Result<Duration, FieldError> {
    if d.seconds < 0 || d.nanos < 0 {
        return Err(FieldError::new(field, "negative duration"));
    }
    if d.nanos >= 1_000_000_000 {
        return Err(FieldError::new(field, "nanos must be below 1e9"));
    }
    // protobuf.Duration allows up to 315,576,000,000 s (10,000 years).
    if d.seconds > 315_576_000_000 {
        return Err(FieldError::new(field, "duration out of range"));
    }
    Ok(Duration::new(d.seconds as u64, d.nanos as u32))
}

/// Converts an optional duration field.
pub fn opt_duration(
    d: Option<&protobuf::Duration>,
    field: &str,
) -> Result<Option<Duration>, FieldError> {
    d.map(|d| duration(d, field)).transpose()
}

/// A fraction as parts per million, the finest denominator xDS has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fraction {
    per_million: u32,
}

impl Fraction {
    /// Always.
    pub const ALWAYS: Fraction = Fraction {
        per_million: 1_000_000,
    };
    /// Never.
    pub const NEVER: Fraction = Fraction { per_million: 0 };

    /// A fraction of `per_million` parts, capped at one million.
    pub const fn per_million(per_million: u32) -> Self {
        Fraction {
            per_million: if per_million > 1_000_000 {
                1_000_000
            } else {
                per_million
            },
        }
    }

    /// `numerator / denominator`, capped at 100% as Envoy caps it.
    pub fn from_ratio(numerator: u32, denominator: u32) -> Self {
        if denominator == 0 {
            return Self::NEVER;
        }
        let pm = (u64::from(numerator) * 1_000_000 / u64::from(denominator)).min(1_000_000);
        Self::per_million(pm as u32)
    }

    /// Parts per million.
    pub const fn as_per_million(self) -> u32 {
        self.per_million
    }

    /// Whether a uniform draw in `0..1_000_000` falls inside the fraction.
    pub const fn contains(self, draw: u32) -> bool {
        draw < self.per_million
    }

    /// From Envoy's `FractionalPercent` (HUNDRED, TEN_THOUSAND, MILLION).
    pub fn from_fractional_percent(p: &FractionalPercent, field: &str) -> Result<Self, FieldError> {
        let denominator = match DenominatorType::try_from(p.denominator) {
            Ok(DenominatorType::Hundred) => 100,
            Ok(DenominatorType::TenThousand) => 10_000,
            Ok(DenominatorType::Million) => 1_000_000,
            Err(_) => {
                return Err(FieldError::new(
                    format!("{field}.denominator"),
                    format!("unknown denominator {}", p.denominator),
                ));
            }
        };
        Ok(Self::from_ratio(p.numerator, denominator))
    }
}

/// Where an endpoint or a node runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Locality {
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Sub-zone.
    pub sub_zone: String,
}

impl From<&core::Locality> for Locality {
    fn from(l: &core::Locality) -> Self {
        Locality {
            region: l.region.clone(),
            zone: l.zone.clone(),
            sub_zone: l.sub_zone.clone(),
        }
    }
}

impl std::fmt::Display for Locality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.region, self.zone, self.sub_zone)
    }
}

/// `filter_metadata`: filter name → JSON object, converted from
/// `google.protobuf.Struct`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// Per-filter values (`istio`, `envoy.transport_socket_match`, ...).
    pub filter_metadata: BTreeMap<String, serde_json::Value>,
}

impl Metadata {
    /// A string at `filter_metadata[filter][key]`, if there is one.
    pub fn string(&self, filter: &str, key: &str) -> Option<&str> {
        self.filter_metadata.get(filter)?.get(key)?.as_str()
    }
}

impl From<&core::Metadata> for Metadata {
    fn from(m: &core::Metadata) -> Self {
        Metadata {
            filter_metadata: m
                .filter_metadata
                .iter()
                .map(|(k, v)| (k.clone(), struct_to_json(v)))
                .collect(),
        }
    }
}

impl From<core::Metadata> for Metadata {
    fn from(m: core::Metadata) -> Self {
        Metadata {
            filter_metadata: m
                .filter_metadata
                .into_iter()
                .map(|(k, v)| (k, struct_into_json(v)))
                .collect(),
        }
    }
}

/// Converts a protobuf `Struct` to JSON, moving its strings.
pub fn struct_into_json(s: protobuf::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .into_iter()
            .map(|(k, v)| (k, value_into_json(v)))
            .collect(),
    )
}

/// Converts a protobuf `Value` to JSON, moving its strings.
pub fn value_into_json(v: protobuf::Value) -> serde_json::Value {
    use protobuf::value::Kind;
    match v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::StructValue(s)) => struct_into_json(s),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.into_iter().map(value_into_json).collect())
        }
    }
}

/// Converts a protobuf `Struct` to JSON.
pub fn struct_to_json(s: &protobuf::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

/// Converts a protobuf `Value` to JSON.
pub fn value_to_json(v: &protobuf::Value) -> serde_json::Value {
    use protobuf::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(value_to_json).collect())
        }
    }
}

/// Converts JSON to a protobuf `Struct` (non-objects become an empty one).
pub fn json_to_struct(v: &serde_json::Value) -> protobuf::Struct {
    match v {
        serde_json::Value::Object(m) => protobuf::Struct {
            fields: m
                .iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect(),
        },
        _ => protobuf::Struct::default(),
    }
}

/// Converts JSON to a protobuf `Value`.
pub fn json_to_value(v: &serde_json::Value) -> protobuf::Value {
    use protobuf::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(protobuf::ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(_) => Kind::StructValue(json_to_struct(v)),
    };
    protobuf::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_reject_negative() {
        let d = protobuf::Duration {
            seconds: -1,
            nanos: 0,
        };
        assert_eq!(duration(&d, "timeout").unwrap_err().field, "timeout");
        let d = protobuf::Duration {
            seconds: 1,
            nanos: 5,
        };
        assert_eq!(duration(&d, "t").unwrap(), Duration::new(1, 5));
    }

    #[test]
    fn fractions_every_denominator() {
        for (den, n, pm) in [
            (0, 25, 250_000),
            (1, 25, 2_500),
            (2, 25, 25),
            (0, 250, 1_000_000),
        ] {
            let p = FractionalPercent {
                numerator: n,
                denominator: den,
            };
            assert_eq!(
                Fraction::from_fractional_percent(&p, "p")
                    .unwrap()
                    .as_per_million(),
                pm
            );
        }
        let bad = FractionalPercent {
            numerator: 1,
            denominator: 7,
        };
        assert_eq!(
            Fraction::from_fractional_percent(&bad, "p")
                .unwrap_err()
                .field,
            "p.denominator"
        );
    }

    #[test]
    fn metadata_round_trips_through_struct() {
        let json = serde_json::json!({"workload": "echo-v1;default;echo;v1;Kubernetes", "n": 1.0});
        let s = json_to_struct(&json);
        assert_eq!(struct_to_json(&s), json);
    }
}
