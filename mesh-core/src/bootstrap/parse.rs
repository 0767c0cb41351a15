//! Small helpers for walking bootstrap JSON with precise key paths.
//!
//! Every helper reports errors relative to the object it reads (`server_uri:
//! missing`); callers prefix the parent's path with `.at(..)`. A JSON `null`
//! counts as absent, as in most gRPC implementations.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::resource::FieldError;

/// A JSON object.
pub(super) type Obj = Map<String, Value>;

/// The JSON type of a value, for messages (`found number`).
pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `v` as an object; the error has an empty field (the caller's path).
pub(super) fn as_object(v: &Value) -> Result<&Obj, FieldError> {
    v.as_object().ok_or_else(|| {
        FieldError::new("", format!("must be a JSON object, found {}", type_name(v)))
    })
}

fn present<'a>(o: &'a Obj, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

/// An optional string.
pub(super) fn opt_str<'a>(o: &'a Obj, key: &str) -> Result<Option<&'a str>, FieldError> {
    match present(o, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(FieldError::new(
            key,
            format!("must be a string, found {}", type_name(v)),
        )),
    }
}

/// A required string.
pub(super) fn req_str<'a>(o: &'a Obj, key: &str) -> Result<&'a str, FieldError> {
    opt_str(o, key)?.ok_or_else(|| FieldError::new(key, "missing"))
}

/// An optional, non-empty file path.
pub(super) fn opt_path(o: &Obj, key: &str) -> Result<Option<PathBuf>, FieldError> {
    match opt_str(o, key)? {
        None => Ok(None),
        Some("") => Err(FieldError::new(key, "must not be empty")),
        Some(s) => Ok(Some(PathBuf::from(s))),
    }
}

/// An optional object.
pub(super) fn opt_obj<'a>(o: &'a Obj, key: &str) -> Result<Option<&'a Obj>, FieldError> {
    match present(o, key) {
        None => Ok(None),
        Some(v) => as_object(v).map(Some).map_err(|e| e.at(key)),
    }
}

/// An optional array.
pub(super) fn opt_array<'a>(o: &'a Obj, key: &str) -> Result<Option<&'a [Value]>, FieldError> {
    match present(o, key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(v) => Err(FieldError::new(
            key,
            format!("must be an array, found {}", type_name(v)),
        )),
    }
}

/// An optional protobuf-JSON duration (`"600s"`, `"1.5s"`), which must be
/// positive.
pub(super) fn opt_duration(o: &Obj, key: &str) -> Result<Option<Duration>, FieldError> {
    match opt_str(o, key)? {
        None => Ok(None),
        Some(s) => parse_duration(s)
            .map(Some)
            .map_err(|r| FieldError::new(key, r)),
    }
}

/// The path segment for map key `key` under `parent`: `parent.key` for
/// plain keys, `parent["x.y"]` for keys with dots or other punctuation.
pub(super) fn key_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        format!("{parent}.{key}")
    } else {
        format!("{parent}[{key:?}]")
    }
}

const MAX_SECONDS: u64 = 315_576_000_000;

/// Parses the JSON form of `google.protobuf.Duration`: decimal seconds with
/// up to nine fractional digits and an `s` suffix. Negative and zero
/// durations are rejected: every bootstrap duration is an interval.
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like \"600s\" or \"1.5s\"");
    let num = s.strip_suffix('s').ok_or_else(bad)?;
    if num.starts_with('-') {
        return Err(format!("{s:?} is negative"));
    }
    let (secs, frac) = match num.split_once('.') {
        Some((a, b)) => (a, b),
        None => (num, ""),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if secs.is_empty() || !digits(secs) || !digits(frac) || (num.contains('.') && frac.is_empty()) {
        return Err(bad());
    }
    if frac.len() > 9 {
        return Err(format!("{s:?} has more than nine fractional digits"));
    }
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    if secs > MAX_SECONDS {
        return Err(format!("{s:?} is out of range"));
    }
    let nanos = if frac.is_empty() {
        0
    } else {
        frac.parse::<u32>().map_err(|_| bad())? * 10u32.pow(9 - frac.len() as u32)
    };
    let d = Duration::new(secs, nanos);
    if d.is_zero() {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(d)
}

/// Formats a duration in protobuf JSON (`"600s"`, `"1.500s"`), with 0, 3, 6
/// or 9 fractional digits as protobuf's own encoders do.
pub(super) fn format_duration(d: Duration) -> String {
    let (s, n) = (d.as_secs(), d.subsec_nanos());
    if n == 0 {
        format!("{s}s")
    } else if n % 1_000_000 == 0 {
        format!("{s}.{:03}s", n / 1_000_000)
    } else if n % 1_000 == 0 {
        format!("{s}.{:06}s", n / 1_000)
    } else {
        format!("{s}.{n:09}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_parse_protobuf_json() {
        assert_eq!(parse_duration("600s"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.000000001s"), Ok(Duration::from_nanos(1)));
        for bad in [
            "600", "1m", "s", "1.s", ".5s", "1.2.3s", "-1s", "0s", "0.0s", "1e3s", " 1s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
        assert!(
            parse_duration("1.0000000001s")
                .unwrap_err()
                .contains("nine")
        );
        assert!(
            parse_duration("315576000001s")
                .unwrap_err()
                .contains("range")
        );
    }

    #[test]
    fn durations_format_round_trip() {
        for d in [
            Duration::from_secs(900),
            Duration::from_millis(1500),
            Duration::from_micros(1_000_001),
            Duration::from_nanos(1_000_000_001),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.500s");
    }

    #[test]
    fn type_errors_name_the_key() {
        let o = json!({"a": 1, "b": "x", "c": [], "n": null, "e": ""});
        let o = o.as_object().unwrap();
        assert_eq!(
            opt_str(o, "a").unwrap_err().to_string(),
            "a: must be a string, found number"
        );
        assert_eq!(req_str(o, "z").unwrap_err().to_string(), "z: missing");
        assert_eq!(req_str(o, "n").unwrap_err().to_string(), "n: missing");
        assert_eq!(
            opt_obj(o, "c").unwrap_err().to_string(),
            "c: must be a JSON object, found array"
        );
        assert_eq!(
            opt_array(o, "b").unwrap_err().to_string(),
            "b: must be an array, found string"
        );
        assert_eq!(
            opt_path(o, "e").unwrap_err().to_string(),
            "e: must not be empty"
        );
    }

    #[test]
    fn map_keys_with_dots_are_quoted() {
        assert_eq!(
            key_path("certificate_providers", "default"),
            "certificate_providers.default"
        );
        assert_eq!(
            key_path("authorities", "xds.example.com"),
            "authorities[\"xds.example.com\"]"
        );
        assert_eq!(key_path("authorities", ""), "authorities[\"\"]");
    }
}
