//! Walking a parsed YAML document (as a `serde_json::Value`) against the
//! fields a kind knows, with the field path always at hand.
//!
//! Every getter records problems in the shared [`Findings`] instead of
//! returning early, so one pass reports every invalid value and every
//! unknown field of a document. Nothing here knows Istio's kinds: the
//! per-kind parsers say which fields exist.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

/// Problems found while walking one document.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Paths of fields no parser knows.
    pub unknown: Vec<String>,
    /// Field paths of recognized fields that are ignored, with why.
    pub ignored: Vec<(String, String)>,
    /// Invalid values: field path and reason.
    pub errors: Vec<(String, String)>,
}

impl Findings {
    /// Records an invalid value at `path`.
    pub fn error(&mut self, path: &str, reason: impl Into<String>) {
        self.errors.push((path.to_owned(), reason.into()));
    }
}

/// A mapping whose keys were checked against the known fields.
#[derive(Debug, Clone)]
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

impl<'a> Obj<'a> {
    /// Checks that `value` is a mapping (null counts as empty) and records
    /// every key outside `known` as unknown. `None` (and an error) if it is
    /// something else.
    pub fn new(value: &'a Value, path: &str, known: &[&str], f: &mut Findings) -> Option<Self> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        let map = match value {
            Value::Object(m) => m,
            Value::Null => EMPTY.get_or_init(Map::new),
            other => {
                f.error(path, format!("must be a mapping, not {}", type_name(other)));
                return None;
            }
        };
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                f.unknown.push(join(path, key));
            }
        }
        Some(Obj {
            map,
            path: path.to_owned(),
        })
    }

    /// The path of field `key`.
    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The path of this mapping.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Field `key`, if present and not null.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Whether field `key` is present and not null.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Records that `key`, if set, is a known field this implementation ignores.
    pub fn ignore(&self, key: &str, why: &str, f: &mut Findings) {
        if self.has(key) {
            f.ignored.push((self.path_of(key), why.to_owned()));
        }
    }

    /// Sub-mapping `key` with its known fields.
    pub fn obj(&self, key: &str, known: &[&str], f: &mut Findings) -> Option<Obj<'a>> {
        let v = self.get(key)?;
        Obj::new(v, &self.path_of(key), known, f)
    }

    /// A string field.
    pub fn str(&self, key: &str, f: &mut Findings) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            // YAML turns `version: 1` into a number; labels and names mean text.
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                f.error(
                    &self.path_of(key),
                    format!("must be a string, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A required string field (an error when missing or empty).
    pub fn req_str(&self, key: &str, f: &mut Findings) -> Option<String> {
        match self.str(key, f) {
            Some(s) if !s.is_empty() => Some(s),
            Some(_) => {
                f.error(&self.path_of(key), "must not be empty");
                None
            }
            None if self.has(key) => None,
            None => {
                f.error(&self.path_of(key), "is required");
                None
            }
        }
    }

    /// An unsigned integer field no larger than `max`.
    pub fn uint(&self, key: &str, max: u64, f: &mut Findings) -> Option<u64> {
        let v = self.get(key)?;
        let path = self.path_of(key);
        let n = match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n <= max => Some(n),
            _ => {
                f.error(&path, format!("must be an integer between 0 and {max}"));
                None
            }
        }
    }

    /// A floating point field.
    pub fn float(&self, key: &str, f: &mut Findings) -> Option<f64> {
        match self.get(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) if s.trim().parse::<f64>().is_ok() => s.trim().parse().ok(),
            other => {
                f.error(
                    &self.path_of(key),
                    format!("must be a number, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A protobuf-style duration field (`1.5s`, `100ms`, `2m`, `1h`).
    pub fn duration(&self, key: &str, f: &mut Findings) -> Option<Duration> {
        let s = self.str(key, f)?;
        match parse_duration(&s) {
            Ok(d) => Some(d),
            Err(reason) => {
                f.error(&self.path_of(key), reason);
                None
            }
        }
    }

    /// A list field: each item's node (an error if not a list).
    pub fn list(&self, key: &str, f: &mut Findings) -> Vec<(String, &'a Value)> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let path = self.path_of(key);
        match v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{path}[{i}]"), v))
                .collect(),
            other => {
                f.error(&path, format!("must be a list, not {}", type_name(other)));
                Vec::new()
            }
        }
    }

    /// A list of strings.
    pub fn str_list(&self, key: &str, f: &mut Findings) -> Vec<String> {
        self.list(key, f)
            .into_iter()
            .filter_map(|(path, v)| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                other => {
                    f.error(&path, format!("must be a string, not {}", type_name(other)));
                    None
                }
            })
            .collect()
    }

    /// A string-to-string mapping (labels, annotations, selectors).
    pub fn str_map(&self, key: &str, f: &mut Findings) -> BTreeMap<String, String> {
        let Some(v) = self.get(key) else {
            return BTreeMap::new();
        };
        let path = self.path_of(key);
        let Value::Object(m) = v else {
            f.error(&path, format!("must be a mapping, not {}", type_name(v)));
            return BTreeMap::new();
        };
        m.iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k.clone(), s.clone())),
                Value::Number(n) => Some((k.clone(), n.to_string())),
                Value::Bool(b) => Some((k.clone(), b.to_string())),
                other => {
                    f.error(
                        &join(&path, k),
                        format!("must be a string, not {}", type_name(other)),
                    );
                    None
                }
            })
            .collect()
    }

    /// The entries of a mapping field whose values are themselves walked.
    pub fn entries(&self, key: &str, f: &mut Findings) -> Vec<(String, String, &'a Value)> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let path = self.path_of(key);
        let Value::Object(m) = v else {
            f.error(&path, format!("must be a mapping, not {}", type_name(v)));
            return Vec::new();
        };
        m.iter()
            .map(|(k, v)| (k.clone(), join(&path, k), v))
            .collect()
    }

    /// An enum-like string field that must be one of `allowed`.
    pub fn one_of(&self, key: &str, allowed: &[&str], f: &mut Findings) -> Option<String> {
        let s = self.str(key, f)?;
        if allowed.contains(&s.as_str()) {
            Some(s)
        } else {
            f.error(
                &self.path_of(key),
                format!("\"{s}\" is not one of {}", allowed.join(", ")),
            );
            None
        }
    }
}

/// Parses a protobuf JSON duration (`1.5s`) or a Go-style one (`100ms`,
/// `2m30s`, `1h`), as Istio's YAML accepts both.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("\"{s}\" is not a duration (use e.g. \"1.5s\", \"100ms\")");
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    if !total.is_finite() || total > 315_576_000_000.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("2m30s").unwrap(), Duration::from_secs(150));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "s", "10", "1.5x", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_and_type_errors_are_recorded_with_paths() {
        let v: Value = serde_json::json!({"a": "x", "b": 1, "zzz": true});
        let mut f = Findings::default();
        let o = Obj::new(&v, "spec", &["a", "b"], &mut f).unwrap();
        assert_eq!(f.unknown, vec!["spec.zzz"]);
        assert_eq!(o.uint("b", 10, &mut f), Some(1));
        assert_eq!(o.uint("a", 10, &mut f), None);
        assert_eq!(f.errors[0].0, "spec.a");
        assert!(o.list("a", &mut f).is_empty());
        assert_eq!(f.errors[1].0, "spec.a");
    }
}
