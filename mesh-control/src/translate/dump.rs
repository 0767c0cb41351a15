//! The generated xDS as JSON, for `mesh-control dump` and for eyes.
//!
//! prost types implement no serde, but they all implement `Debug` in one
//! regular shape; this module reads that shape back into JSON, decodes the
//! `Any`s nested inside (HCM, filters, TLS contexts) the same way, writes
//! durations as `"1.5s"` and wrapper values as plain values, and leaves out
//! defaults (None, 0, false, empty) as proto3 JSON does. Field names are
//! the proto's (snake case); oneofs show as `{"Variant": value}`.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::http::{
    fault::v3::HttpFault, rbac::v3::Rbac, router::v3::Router,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, UpstreamTlsContext,
};
use prost::Message;
use serde_json::{Map, Value, json};

use crate::snapshot::XdsSnapshot;

/// The snapshot as JSON: `{"version", "resources": {"LDS": {name: …}, …},
/// "inbound": {"ip:port": listener}}`.
pub fn dump_json(snapshot: &XdsSnapshot) -> Value {
    let mut resources = Map::new();
    for (kind, by_name) in &snapshot.resources {
        let rendered: Map<String, Value> = by_name
            .iter()
            .map(|(name, r)| (name.clone(), render_any(&r.any.type_url, &r.any.value)))
            .collect();
        resources.insert(kind.short_name().to_owned(), Value::Object(rendered));
    }
    let inbound: Map<String, Value> = snapshot
        .inbound
        .iter()
        .map(|((ip, port), l)| {
            let addr = std::net::SocketAddr::new(*ip, *port).to_string();
            (addr, debug_json(&format!("{:?}", l.listener)))
        })
        .collect();
    json!({
        "version": snapshot.version,
        "resources": resources,
        "inbound": inbound,
    })
}

/// Decodes an `Any` of a type we generate and renders it; other types show
/// their type URL and size.
pub fn render_any(type_url: &str, bytes: &[u8]) -> Value {
    fn dbg<M: Message + Default + std::fmt::Debug>(bytes: &[u8]) -> Option<String> {
        M::decode(bytes).ok().map(|m| format!("{m:?}"))
    }
    let name = type_url.rsplit('/').next().unwrap_or(type_url);
    let text = match name {
        "envoy.config.listener.v3.Listener" => dbg::<Listener>(bytes),
        "envoy.config.route.v3.RouteConfiguration" => dbg::<RouteConfiguration>(bytes),
        "envoy.config.cluster.v3.Cluster" => dbg::<Cluster>(bytes),
        "envoy.config.endpoint.v3.ClusterLoadAssignment" => dbg::<ClusterLoadAssignment>(bytes),
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" => {
            dbg::<HttpConnectionManager>(bytes)
        }
        "envoy.extensions.filters.http.router.v3.Router" => dbg::<Router>(bytes),
        "envoy.extensions.filters.http.fault.v3.HTTPFault" => dbg::<HttpFault>(bytes),
        "envoy.extensions.filters.http.rbac.v3.RBAC" => dbg::<Rbac>(bytes),
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext" => {
            dbg::<UpstreamTlsContext>(bytes)
        }
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext" => {
            dbg::<DownstreamTlsContext>(bytes)
        }
        _ => None,
    };
    let mut v = match text {
        Some(t) => debug_json(&t),
        None => json!({ "bytes": bytes.len() }),
    };
    match &mut v {
        Value::Object(m) => {
            m.insert("@type".into(), Value::String(type_url.to_owned()));
            v
        }
        other => json!({ "@type": type_url, "value": other.take() }),
    }
}

/// Reads prost `Debug` text into JSON (see the module docs).
pub fn debug_json(text: &str) -> Value {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.value().unwrap_or_else(|| Value::String(text.to_owned()))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

fn is_default(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn ident(&mut self) -> &str {
        self.ws();
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
        {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or("")
    }

    fn value(&mut self) -> Option<Value> {
        self.ws();
        match *self.s.get(self.i)? {
            b'"' => self.string().map(Value::String),
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                while !self.eat(b']') {
                    items.push(self.value()?);
                    self.eat(b',');
                }
                Some(Value::Array(items))
            }
            b'{' => {
                // A map: `{"key": value, …}`.
                self.i += 1;
                let mut m = Map::new();
                while !self.eat(b'}') {
                    let k = match self.value()? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    self.eat(b':');
                    let v = self.value()?;
                    m.insert(k, v);
                    self.eat(b',');
                }
                Some(Value::Object(m))
            }
            c if c == b'-' || c.is_ascii_digit() => self.number(),
            _ => self.named(),
        }
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric()
                || matches!(self.s[self.i], b'.' | b'-' | b'+'))
        {
            self.i += 1;
        }
        let t = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        if let Ok(n) = t.parse::<i64>() {
            return Some(json!(n));
        }
        if let Ok(n) = t.parse::<u64>() {
            return Some(json!(n));
        }
        let f: f64 = t.parse().ok()?;
        Some(serde_json::Number::from_f64(f).map_or(Value::String(t.into()), Value::Number))
    }

    /// `None`, `Some(x)`, `true`, `Name { fields }`, `Variant(x)`, `Unit`.
    fn named(&mut self) -> Option<Value> {
        let name = self.ident().to_owned();
        if name.is_empty() {
            return None;
        }
        match name.as_str() {
            "None" => return Some(Value::Null),
            "true" => return Some(Value::Bool(true)),
            "false" => return Some(Value::Bool(false)),
            "inf" | "NaN" => return Some(Value::String(name)),
            _ => {}
        }
        if self.eat(b'(') {
            let mut items = Vec::new();
            while !self.eat(b')') {
                items.push(self.value()?);
                self.eat(b',');
            }
            let inner = if items.len() == 1 {
                items.pop()?
            } else {
                Value::Array(items)
            };
            return Some(if name == "Some" {
                inner
            } else {
                json!({ name: inner })
            });
        }
        if self.eat(b'{') {
            let mut m = Map::new();
            while !self.eat(b'}') {
                let field = self.ident().to_owned();
                if field.is_empty() || !self.eat(b':') {
                    return None;
                }
                let v = self.value()?;
                if !is_default(&v) {
                    m.insert(field, v);
                }
                self.eat(b',');
            }
            return Some(simplify(&name, m));
        }
        Some(Value::String(name))
    }

    fn string(&mut self) -> Option<String> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            let c = *self.s.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return Some(out),
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    match e {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'0' => out.push('\0'),
                        b'u' => {
                            // \u{XXXX}
                            let end = self.s[self.i..].iter().position(|&b| b == b'}')? + self.i;
                            let hex = std::str::from_utf8(&self.s[self.i + 1..end]).ok()?;
                            out.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
                            self.i = end + 1;
                        }
                        other => out.push(other as char),
                    }
                }
                _ => {
                    // Copy one UTF-8 character whole.
                    let start = self.i - 1;
                    let len = match c {
                        0xF0..=0xFF => 4,
                        0xE0..=0xEF => 3,
                        0xC0..=0xDF => 2,
                        _ => 1,
                    };
                    let end = (start + len).min(self.s.len());
                    out.push_str(std::str::from_utf8(&self.s[start..end]).ok()?);
                    self.i = end;
                }
            }
        }
    }
}

/// Durations as `"1.5s"`, wrapper messages as their value, `Any`s decoded.
fn simplify(name: &str, mut m: Map<String, Value>) -> Value {
    match name {
        "Duration" => {
            let secs = m.get("seconds").and_then(Value::as_i64).unwrap_or(0);
            let nanos = m.get("nanos").and_then(Value::as_i64).unwrap_or(0);
            let d = secs as f64 + nanos as f64 / 1e9;
            Value::String(format!("{d}s"))
        }
        "UInt32Value" | "UInt64Value" | "Int32Value" | "Int64Value" | "BoolValue"
        | "DoubleValue" | "FloatValue" | "StringValue" => m.remove("value").unwrap_or(json!(0)),
        // google.protobuf.Struct / Value: the plain JSON they stand for.
        "Struct" => m.remove("fields").unwrap_or(json!({})),
        "Value" => match m.remove("kind") {
            Some(Value::Object(k)) if k.len() == 1 => {
                k.into_iter().next().map(|(_, v)| v).unwrap_or(Value::Null)
            }
            Some(other) => other,
            None => Value::Null,
        },
        "Any" => {
            let url = m
                .get("type_url")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let bytes: Vec<u8> = m
                .get("value")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|b| b.as_u64().map(|b| b as u8))
                        .collect()
                })
                .unwrap_or_default();
            render_any(&url, &bytes)
        }
        _ => Value::Object(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_text_reads_back_as_json() {
        let v = debug_json(
            "Thing { name: \"a\\\"b\\u{e9}\", n: 0, on: true, d: Some(Duration { seconds: 1, nanos: 500000000 }), \
             w: Some(UInt32Value { value: 7 }), k: Some(Prefix(\"/\")), m: {\"x\": 1}, l: [1, 2], e: Healthy, f: -1.5 }",
        );
        assert_eq!(
            v,
            json!({"name": "a\"b\u{e9}", "on": true, "d": "1.5s", "w": 7,
                   "k": {"Prefix": "/"}, "m": {"x": 1}, "l": [1, 2], "e": "Healthy", "f": -1.5})
        );
    }

    #[test]
    fn nested_any_is_decoded() {
        use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
        let any = crate::translate::wire::any(&Router::default());
        let v = render_any(&any.type_url, &any.value);
        assert_eq!(v["@type"], any.type_url);
        let unknown = render_any("type.googleapis.com/x.Y", &[1, 2, 3]);
        assert_eq!(unknown["bytes"], 3);
    }
}
