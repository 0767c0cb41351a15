//! The interop client's settings: its gflags-style command line
//! ([`ClientConfig::flags`]), validated into a [`ClientConfig`], and the
//! part XdsUpdateClientConfigureService may change at run time
//! ([`RpcConfig`]).
//!
//! Parsing only: nothing here sends RPCs or serves anything.

use std::time::Duration;

use mesh_core::bootstrap::Bootstrap;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};

use crate::flags::{FlagError, Flags, Parsed};

/// The name the client reports itself by in warnings and usage.
pub const PROGRAM: &str = "xds-interop-client";

/// The two RPCs the client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RpcType {
    /// `grpc.testing.TestService/EmptyCall`.
    EmptyCall,
    /// `grpc.testing.TestService/UnaryCall`.
    UnaryCall,
}

impl RpcType {
    /// The method name, as `--rpc` and `rpcs_by_method` spell it.
    pub fn method(self) -> &'static str {
        match self {
            RpcType::EmptyCall => "EmptyCall",
            RpcType::UnaryCall => "UnaryCall",
        }
    }

    /// The key of `stats_per_method` (`EMPTY_CALL`, `UNARY_CALL`).
    pub fn stats_key(self) -> &'static str {
        match self {
            RpcType::EmptyCall => "EMPTY_CALL",
            RpcType::UnaryCall => "UNARY_CALL",
        }
    }

    /// Parses a method name (`EmptyCall`, `UnaryCall`, or the stats keys).
    pub fn parse(s: &str) -> Option<RpcType> {
        match s.trim() {
            "EmptyCall" | "EMPTY_CALL" => Some(RpcType::EmptyCall),
            "UnaryCall" | "UNARY_CALL" => Some(RpcType::UnaryCall),
            _ => None,
        }
    }

    /// From ClientConfigureRequest's enum value.
    pub fn from_proto(v: i32) -> Option<RpcType> {
        match v {
            0 => Some(RpcType::EmptyCall),
            1 => Some(RpcType::UnaryCall),
            _ => None,
        }
    }
}

/// One metadata entry attached to every RPC of a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcMetadata {
    /// The RPC it applies to.
    pub rpc: RpcType,
    /// The (lower-case) header name.
    pub key: AsciiMetadataKey,
    /// The value.
    pub value: AsciiMetadataValue,
}

impl RpcMetadata {
    /// Validates one entry; the error names what is wrong.
    pub fn new(rpc: RpcType, key: &str, value: &str) -> Result<RpcMetadata, String> {
        let key = AsciiMetadataKey::from_bytes(key.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("metadata key {key:?} is not a valid ASCII header name"))?;
        let value = AsciiMetadataValue::try_from(value)
            .map_err(|_| format!("metadata value {value:?} is not a valid header value"))?;
        Ok(RpcMetadata { rpc, key, value })
    }
}

/// What the RPC loop sends; replaced whole by XdsUpdateClientConfigureService.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcConfig {
    /// The RPCs sent on every tick, one of each.
    pub types: Vec<RpcType>,
    /// Metadata per RPC type.
    pub metadata: Vec<RpcMetadata>,
    /// The deadline of each RPC.
    pub timeout: Duration,
}

/// The client's settings, from flags or built directly (tests, embedding).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `--server`: the `xds:` target.
    pub server: String,
    /// `--stats_port`: where the stats and admin services listen (0 picks
    /// a free port).
    pub stats_port: u16,
    /// `--qps`: RPC ticks per second, spread round-robin over the channels;
    /// each tick sends one RPC of every configured type.
    pub qps: u32,
    /// `--num_channels`: how many channels (each its own connections).
    pub num_channels: usize,
    /// `--rpc`, `--metadata`, `--rpc_timeout_sec`.
    pub rpc: RpcConfig,
    /// `--secure_mode`: xDS credentials (TLS from the clusters'
    /// `UpstreamTlsContext`s, plaintext fallback); `false`: insecure
    /// credentials (plaintext, TLS contexts ignored).
    pub secure_mode: bool,
    /// `--print_response`: print every response on stdout.
    pub print_response: bool,
    /// `--fail_on_failed_rpc`: exit non-zero when an RPC fails after one
    /// has succeeded.
    pub fail_on_failed_rpc: bool,
    /// `--request_payload_size`: UnaryCall request payload bytes.
    pub request_payload_size: usize,
    /// `--response_payload_size`: UnaryCall response payload bytes.
    pub response_payload_size: usize,
    /// The bootstrap; `None` reads the environment's.
    pub bootstrap: Option<Bootstrap>,
    /// Seeds the channels' random choices (reproducible tests).
    pub seed: Option<u64>,
}

impl ClientConfig {
    /// Defaults as the flags have them, for `server`.
    pub fn new(server: impl Into<String>) -> ClientConfig {
        ClientConfig {
            server: server.into(),
            stats_port: 8081,
            qps: 1,
            num_channels: 1,
            rpc: RpcConfig {
                types: vec![RpcType::UnaryCall],
                metadata: Vec::new(),
                timeout: Duration::from_secs(20),
            },
            secure_mode: false,
            print_response: false,
            fail_on_failed_rpc: false,
            request_payload_size: 0,
            response_payload_size: 0,
            bootstrap: None,
            seed: None,
        }
    }

    /// The flags the client accepts, with defaults and help.
    pub fn flags() -> Flags {
        Flags::new(PROGRAM)
            .value(
                "server",
                "localhost:8080",
                "target to send RPCs to (xds:///NAME)",
            )
            .value("stats_port", "8081", "port of the stats and admin services")
            .value(
                "qps",
                "1",
                "RPCs per second (each tick sends every --rpc type)",
            )
            .value("num_channels", "1", "channels to spread RPCs over")
            .value(
                "rpc",
                "UnaryCall",
                "RPCs to send: UnaryCall, EmptyCall or both, comma-separated",
            )
            .value(
                "metadata",
                "",
                "METHOD:KEY:VALUE,... attached to RPCs of METHOD",
            )
            .value("rpc_timeout_sec", "20", "deadline of each RPC in seconds")
            .boolean(
                "secure_mode",
                false,
                "use xDS credentials (plaintext fallback)",
            )
            .boolean("print_response", false, "print each response")
            .boolean(
                "fail_on_failed_rpc",
                false,
                "exit non-zero if an RPC fails after one succeeded",
            )
            .boolean(
                "fail_on_failed_rpcs",
                false,
                "alias of --fail_on_failed_rpc",
            )
            .value(
                "request_payload_size",
                "0",
                "UnaryCall request payload bytes",
            )
            .value(
                "response_payload_size",
                "0",
                "UnaryCall response payload bytes",
            )
    }

    /// Parses a command line (without the program name); unknown flags are
    /// warned about on stderr and ignored.
    pub fn from_args<I, A>(args: I) -> Result<ClientConfig, FlagError>
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        ClientConfig::from_parsed(&Self::flags().parse(args)?)
    }

    /// Validates parsed flags.
    pub fn from_parsed(p: &Parsed) -> Result<ClientConfig, FlagError> {
        let invalid = |flag: &str, reason: String| FlagError::InvalidValue {
            flag: flag.into(),
            value: p.str(flag).into(),
            reason,
        };
        let qps: u32 = p.get("qps")?;
        if qps == 0 {
            return Err(invalid("qps", "must be at least 1".into()));
        }
        let num_channels: usize = p.get("num_channels")?;
        if num_channels == 0 {
            return Err(invalid("num_channels", "must be at least 1".into()));
        }
        let types = parse_types(p.str("rpc")).map_err(|e| invalid("rpc", e))?;
        let metadata = parse_metadata(p.str("metadata")).map_err(|e| invalid("metadata", e))?;
        let timeout_sec: u64 = p.get("rpc_timeout_sec")?;
        if timeout_sec == 0 {
            return Err(invalid("rpc_timeout_sec", "must be at least 1".into()));
        }
        Ok(ClientConfig {
            server: p.str("server").to_owned(),
            stats_port: p.get("stats_port")?,
            qps,
            num_channels,
            rpc: RpcConfig {
                types,
                metadata,
                timeout: Duration::from_secs(timeout_sec),
            },
            secure_mode: p.bool("secure_mode"),
            print_response: p.bool("print_response"),
            fail_on_failed_rpc: p.bool("fail_on_failed_rpc") || p.bool("fail_on_failed_rpcs"),
            request_payload_size: p.get("request_payload_size")?,
            response_payload_size: p.get("response_payload_size")?,
            bootstrap: None,
            seed: None,
        })
    }
}

/// `UnaryCall,EmptyCall` → types, in order, without repeats.
pub fn parse_types(s: &str) -> Result<Vec<RpcType>, String> {
    let mut types = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let t = RpcType::parse(part)
            .ok_or_else(|| format!("unknown RPC {part:?}: expected UnaryCall or EmptyCall"))?;
        if !types.contains(&t) {
            types.push(t);
        }
    }
    if types.is_empty() {
        return Err("no RPC type given".into());
    }
    Ok(types)
}

/// `METHOD:KEY:VALUE,...` → entries (the value may contain `:`).
pub fn parse_metadata(s: &str) -> Result<Vec<RpcMetadata>, String> {
    let mut out = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut parts = entry.splitn(3, ':');
        let (Some(method), Some(key), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("entry {entry:?}: expected METHOD:KEY:VALUE"));
        };
        let rpc = RpcType::parse(method).ok_or_else(|| {
            format!("entry {entry:?}: unknown method {method:?} (UnaryCall or EmptyCall)")
        })?;
        out.push(RpcMetadata::new(rpc, key, value).map_err(|e| format!("entry {entry:?}: {e}"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_into_a_config() {
        let c = ClientConfig::from_args([
            "--server=xds:///echo:7070",
            "--stats_port=9000",
            "--qps=100",
            "--num_channels=3",
            "--rpc=EmptyCall, UnaryCall",
            "--metadata=EmptyCall:xds_md:empty_ytpme,UnaryCall:rpc-behavior:sleep-1",
            "--rpc_timeout_sec=3",
            "--fail_on_failed_rpcs=true",
            "--secure_mode=false",
            "--unknown_flag=1",
        ])
        .unwrap();
        assert_eq!(c.server, "xds:///echo:7070");
        assert_eq!((c.stats_port, c.qps, c.num_channels), (9000, 100, 3));
        assert_eq!(c.rpc.types, [RpcType::EmptyCall, RpcType::UnaryCall]);
        assert_eq!(c.rpc.metadata.len(), 2);
        assert_eq!(c.rpc.metadata[1].rpc, RpcType::UnaryCall);
        assert_eq!(c.rpc.metadata[1].key.as_str(), "rpc-behavior");
        assert_eq!(c.rpc.metadata[1].value, "sleep-1");
        assert_eq!(c.rpc.timeout, Duration::from_secs(3));
        assert!(c.fail_on_failed_rpc);
        assert!(!c.secure_mode);
    }

    #[test]
    fn defaults() {
        let c = ClientConfig::from_args(Vec::<String>::new()).unwrap();
        assert_eq!(c.rpc.types, [RpcType::UnaryCall]);
        assert_eq!(c.rpc.timeout, Duration::from_secs(20));
        assert!(!c.fail_on_failed_rpc);
        assert_eq!(c.qps, 1);
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e = ClientConfig::from_args(["--rpc=StreamingCall"]).unwrap_err();
        assert!(
            e.to_string().starts_with("flag --rpc: invalid value"),
            "{e}"
        );
        let e = ClientConfig::from_args(["--metadata=UnaryCall:novalue"]).unwrap_err();
        assert!(e.to_string().contains("METHOD:KEY:VALUE"), "{e}");
        let e = ClientConfig::from_args(["--qps=0"]).unwrap_err();
        assert!(e.to_string().starts_with("flag --qps"), "{e}");
        let e = ClientConfig::from_args(["--metadata=UnaryCall:bad key:v"]).unwrap_err();
        assert!(e.to_string().contains("header name"), "{e}");
    }

    #[test]
    fn metadata_values_may_contain_colons() {
        let m = parse_metadata("UnaryCall:k:a:b").unwrap();
        assert_eq!(m[0].value, "a:b");
    }
}
