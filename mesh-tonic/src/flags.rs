//! gflags-style command-line flags, as every gRPC language's interop apps
//! accept them: `--flag=value` always works (booleans included:
//! `--secure_mode=true`), `--flag value` works for valued flags, a bare
//! `--flag` sets a boolean and `--noflag` clears it; one leading dash is as
//! good as two. Unknown flags are warned about on stderr and skipped, since
//! a test harness may pass flags an app does not know.
//!
//! This module parses and type-checks; it does not print help on its own
//! (a caller shows [`Flags::usage`] for [`FlagError::Help`]) nor read the
//! environment.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

/// An error in the command line, naming the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// `--help` was given.
    #[error("help requested")]
    Help,
    /// A valued flag without a value.
    #[error("flag --{0} needs a value (--{0}=VALUE)")]
    MissingValue(String),
    /// A value that does not parse as the flag's type.
    #[error("flag --{flag}: invalid value {value:?}: {reason}")]
    InvalidValue {
        /// The flag.
        flag: String,
        /// The value given.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
}

#[derive(Debug, Clone)]
struct Spec {
    boolean: bool,
    default: String,
    help: String,
}

/// The flags an app declares, with defaults and help.
#[derive(Debug, Clone)]
pub struct Flags {
    program: String,
    specs: BTreeMap<String, Spec>,
}

/// A parsed command line: every declared flag has a value (given or default).
#[derive(Debug, Clone)]
pub struct Parsed {
    values: BTreeMap<String, String>,
    /// Arguments that were not flags, in order.
    pub positional: Vec<String>,
    /// Unknown flags seen (already warned about).
    pub unknown: Vec<String>,
}

impl Flags {
    /// No flags yet; `program` names the app in warnings and usage.
    pub fn new(program: impl Into<String>) -> Self {
        Flags {
            program: program.into(),
            specs: BTreeMap::new(),
        }
    }

    /// Declares a flag taking a value.
    pub fn value(mut self, name: &str, default: impl Into<String>, help: &str) -> Self {
        let spec = Spec {
            boolean: false,
            default: default.into(),
            help: help.into(),
        };
        self.specs.insert(name.into(), spec);
        self
    }

    /// Declares a boolean flag.
    pub fn boolean(mut self, name: &str, default: bool, help: &str) -> Self {
        let spec = Spec {
            boolean: true,
            default: default.to_string(),
            help: help.into(),
        };
        self.specs.insert(name.into(), spec);
        self
    }

    /// One line per flag: name, default and help.
    pub fn usage(&self) -> String {
        let mut out = format!("Usage: {} [--flag=value ...]\n", self.program);
        for (name, s) in &self.specs {
            let _ = writeln!(out, "  --{name}  {} (default: {:?})", s.help, s.default);
        }
        out
    }

    /// Parses arguments (without the program name). Unknown flags are
    /// reported on stderr and skipped.
    pub fn parse<I, A>(&self, args: I) -> Result<Parsed, FlagError>
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        let parsed = self.parse_quiet(args)?;
        for u in &parsed.unknown {
            eprintln!("{}: warning: ignoring unknown flag {u}", self.program);
        }
        Ok(parsed)
    }

    /// [`Self::parse`] without the warnings.
    pub fn parse_quiet<I, A>(&self, args: I) -> Result<Parsed, FlagError>
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        let mut values: BTreeMap<String, String> = self
            .specs
            .iter()
            .map(|(n, s)| (n.clone(), s.default.clone()))
            .collect();
        let mut positional = Vec::new();
        let mut unknown = Vec::new();
        let mut args = args.into_iter().map(Into::into).peekable();
        while let Some(arg) = args.next() {
            if arg == "--" {
                positional.extend(args.by_ref());
                break;
            }
            let Some(body) = arg
                .strip_prefix("--")
                .or_else(|| arg.strip_prefix('-'))
                .filter(|b| !b.is_empty())
            else {
                positional.push(arg);
                continue;
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (body, None),
            };
            if name == "help" || name == "h" {
                return Err(FlagError::Help);
            }
            if let Some(spec) = self.specs.get(name) {
                let value = if spec.boolean {
                    let v = inline.unwrap_or_else(|| "true".into());
                    parse_bool(name, &v)?.to_string()
                } else {
                    match inline {
                        Some(v) => v,
                        // A valued flag takes the next argument, whatever it is
                        // (`--metadata -x` is legal in gflags too).
                        None => args
                            .next()
                            .ok_or_else(|| FlagError::MissingValue(name.into()))?,
                    }
                };
                values.insert(name.into(), value);
                continue;
            }
            // gflags' `--noflag` for a boolean.
            if inline.is_none()
                && let Some(base) = name.strip_prefix("no")
                && self.specs.get(base).is_some_and(|s| s.boolean)
            {
                values.insert(base.into(), "false".into());
                continue;
            }
            unknown.push(arg);
        }
        Ok(Parsed {
            values,
            positional,
            unknown,
        })
    }
}

fn parse_bool(flag: &str, v: &str) -> Result<bool, FlagError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Ok(true),
        "false" | "f" | "no" | "n" | "0" => Ok(false),
        _ => Err(FlagError::InvalidValue {
            flag: flag.into(),
            value: v.into(),
            reason: "expected true or false".into(),
        }),
    }
}

impl Parsed {
    /// The raw value of a declared flag (its default when not given).
    ///
    /// Panics if `name` was not declared: that is a bug in the app.
    pub fn str(&self, name: &str) -> &str {
        self.values
            .get(name)
            .unwrap_or_else(|| panic!("flag --{name} was not declared"))
    }

    /// A declared boolean flag.
    pub fn bool(&self, name: &str) -> bool {
        self.str(name) == "true"
    }

    /// A declared flag parsed as `T`.
    pub fn get<T>(&self, name: &str) -> Result<T, FlagError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let v = self.str(name);
        v.trim()
            .parse()
            .map_err(|e: T::Err| FlagError::InvalidValue {
                flag: name.into(),
                value: v.into(),
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Flags {
        Flags::new("app")
            .value("port", "8080", "port")
            .value("server_id", "rust", "id")
            .boolean("secure_mode", false, "xDS creds")
            .boolean("print_response", true, "print")
    }

    fn parse(args: &[&str]) -> Result<Parsed, FlagError> {
        flags().parse_quiet(args.iter().copied())
    }

    #[test]
    fn defaults_apply_when_not_given() {
        let p = parse(&[]).unwrap();
        assert_eq!(p.get::<u16>("port").unwrap(), 8080);
        assert_eq!(p.str("server_id"), "rust");
        assert!(!p.bool("secure_mode"));
        assert!(p.bool("print_response"));
    }

    #[test]
    fn equals_and_space_forms() {
        let p = parse(&["--port=50051", "--server_id", "a b", "-secure_mode=true"]).unwrap();
        assert_eq!(p.get::<u16>("port").unwrap(), 50051);
        assert_eq!(p.str("server_id"), "a b");
        assert!(p.bool("secure_mode"));
        // Empty values are values.
        assert_eq!(parse(&["--server_id="]).unwrap().str("server_id"), "");
    }

    #[test]
    fn booleans_bare_explicit_and_negated() {
        assert!(parse(&["--secure_mode"]).unwrap().bool("secure_mode"));
        assert!(!parse(&["--secure_mode=false"]).unwrap().bool("secure_mode"));
        assert!(parse(&["--secure_mode=True"]).unwrap().bool("secure_mode"));
        assert!(
            !parse(&["--noprint_response"])
                .unwrap()
                .bool("print_response")
        );
        // A bare boolean does not eat the next argument.
        let p = parse(&["--secure_mode", "false"]).unwrap();
        assert!(p.bool("secure_mode"));
        assert_eq!(p.positional, ["false"]);
        // The last occurrence wins.
        let p = parse(&["--secure_mode", "--secure_mode=0"]).unwrap();
        assert!(!p.bool("secure_mode"));
    }

    #[test]
    fn unknown_flags_are_collected_not_fatal() {
        let p = parse(&["--qps=10", "--port=1", "--nosuch", "--"]).unwrap();
        assert_eq!(p.unknown, ["--qps=10", "--nosuch"]);
        assert_eq!(p.get::<u16>("port").unwrap(), 1);
        // `--no` + a valued flag is unknown, not a negation.
        assert_eq!(parse(&["--noport"]).unwrap().unknown, ["--noport"]);
        let p = parse(&["--", "--port=2"]).unwrap();
        assert_eq!(p.positional, ["--port=2"]);
        assert_eq!(p.str("port"), "8080");
    }

    #[test]
    fn errors_name_the_flag() {
        assert_eq!(
            parse(&["--port"]).unwrap_err(),
            FlagError::MissingValue("port".into())
        );
        let e = parse(&["--secure_mode=maybe"]).unwrap_err().to_string();
        assert_eq!(
            e,
            "flag --secure_mode: invalid value \"maybe\": expected true or false"
        );
        let e = parse(&["--port=http"]).unwrap().get::<u16>("port");
        assert!(
            e.unwrap_err()
                .to_string()
                .starts_with("flag --port: invalid value \"http\"")
        );
        assert_eq!(parse(&["--help"]).unwrap_err(), FlagError::Help);
        assert!(
            flags()
                .usage()
                .contains("--secure_mode  xDS creds (default: \"false\")")
        );
    }
}
