//! Parsing `xds:` targets (gRFC A27, A47): `xds:///name`, `xds://authority/name`
//! and `xds:name`.

use std::fmt;

use http::uri::Authority;

use crate::error::{Error, ErrorKind};

/// A parsed `xds:` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The target as given, the key of its shared xDS client (A71).
    pub full: String,
    /// The federation authority (`xds://authority/name`), if any.
    pub authority: Option<String>,
    /// The name: the Listener template's `%s` and the `:authority` sent.
    pub name: String,
}

impl Target {
    /// Parses `target`, which must be an `xds:` URI whose name is a valid
    /// HTTP authority (`host` or `host:port`).
    pub fn parse(target: &str) -> Result<Target, Error> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::InvalidTarget,
                format!("invalid target {target:?}: {why}"),
            )
        };
        let rest = target
            .strip_prefix("xds:")
            .ok_or_else(|| invalid("mesh channels need an xds: target (xds:///name)"))?;
        let (authority, name) = match rest.strip_prefix("//") {
            Some(rest) => {
                let (authority, name) = rest
                    .split_once('/')
                    .ok_or_else(|| invalid("expected xds://[authority]/name"))?;
                let authority = (!authority.is_empty()).then(|| authority.to_owned());
                (authority, name)
            }
            None => (None, rest),
        };
        if name.is_empty() {
            return Err(invalid("the name is empty"));
        }
        let has_port = |a: &Authority| {
            a.as_str()
                .rsplit_once(':')
                .is_some_and(|(_, p)| !p.ends_with(']'))
        };
        match name.parse::<Authority>() {
            Ok(a) if !has_port(&a) || a.port_u16().is_some() => {}
            _ => return Err(invalid("the name must be host or host:port")),
        }
        Ok(Target {
            full: target.to_owned(),
            authority,
            name: name.to_owned(),
        })
    }

    /// The name as the `:authority` every request carries.
    pub fn http_authority(&self) -> Authority {
        self.name
            .parse()
            .expect("checked to be a valid authority by parse")
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        let t = Target::parse("xds:///echo:7070").unwrap();
        assert_eq!((t.authority, t.name.as_str()), (None, "echo:7070"));
        let t = Target::parse("xds://ctrl.example/echo.ns:7070").unwrap();
        assert_eq!(t.authority.as_deref(), Some("ctrl.example"));
        assert_eq!(t.name, "echo.ns:7070");
        assert_eq!(t.http_authority().as_str(), "echo.ns:7070");
        let t = Target::parse("xds:///[::1]:7070").unwrap();
        assert_eq!(t.name, "[::1]:7070");
        let t = Target::parse("xds:echo").unwrap();
        assert_eq!((t.authority, t.name.as_str()), (None, "echo"));
    }

    #[test]
    fn rejects_what_is_not_an_xds_target() {
        for bad in [
            "dns:///echo:7070",
            "echo:7070",
            "xds:///",
            "xds://ctrl",
            "xds:///a/b",
            "xds:///echo:port",
        ] {
            let e = Target::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidTarget, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
