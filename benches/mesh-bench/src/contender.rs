//! The client stacks the bench compares, and how each names itself on the
//! command line, in JSON and in the tables.

use std::fmt;
use std::str::FromStr;

/// One client stack under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Contender {
    /// A bare tonic `Channel` to the first backend.
    Tonic,
    /// tonic's `Channel::balance_list` over the three backends.
    BalanceList,
    /// `mesh_tonic::Channel` (`xds:///`) over the one-endpoint cluster.
    Mesh1,
    /// `mesh_tonic::Channel` (`xds:///`) over the three-endpoint cluster.
    Mesh3,
    /// tonic-xds's `XdsChannelGrpc` over the one-endpoint cluster.
    TonicXds1,
    /// tonic-xds's `XdsChannelGrpc` over the three-endpoint cluster.
    TonicXds3,
    /// A bare tonic `Channel` to HAProxy, which balances over the three
    /// backends (h2c on both sides): the sidecar stand-in.
    Haproxy,
    /// A bare tonic `Channel` with rustls TLS and a client certificate to
    /// one TLS backend: the floor of the mTLS rows.
    TonicTls,
    /// `mesh_tonic::Channel` over the one-endpoint ISTIO_MUTUAL cluster.
    Mesh1Mtls,
    /// `mesh_tonic::Channel` over the three-endpoint ISTIO_MUTUAL cluster.
    Mesh3Mtls,
}

impl Contender {
    /// Every contender, in table order.
    pub const ALL: [Contender; 10] = [
        Contender::Tonic,
        Contender::BalanceList,
        Contender::Mesh1,
        Contender::Mesh3,
        Contender::TonicXds1,
        Contender::TonicXds3,
        Contender::Haproxy,
        Contender::TonicTls,
        Contender::Mesh1Mtls,
        Contender::Mesh3Mtls,
    ];

    /// The short name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Contender::Tonic => "tonic",
            Contender::BalanceList => "balance_list",
            Contender::Mesh1 => "mesh-1ep",
            Contender::Mesh3 => "mesh-3ep",
            Contender::TonicXds1 => "tonic-xds-1ep",
            Contender::TonicXds3 => "tonic-xds-3ep",
            Contender::Haproxy => "haproxy",
            Contender::TonicTls => "tonic-tls",
            Contender::Mesh1Mtls => "mesh-1ep-mtls",
            Contender::Mesh3Mtls => "mesh-3ep-mtls",
        }
    }

    /// A longer description for the tables.
    pub fn describe(self) -> &'static str {
        match self {
            Contender::Tonic => "bare tonic `Channel`, 1 backend",
            Contender::BalanceList => "tonic `balance_list`, 3 backends",
            Contender::Mesh1 => "mesh `xds:///`, 1-endpoint cluster",
            Contender::Mesh3 => "mesh `xds:///`, 3-endpoint cluster",
            Contender::TonicXds1 => "tonic-xds, 1-endpoint cluster",
            Contender::TonicXds3 => "tonic-xds, 3-endpoint cluster",
            Contender::Haproxy => "tonic → HAProxy (h2c) → 3 backends",
            Contender::TonicTls => "bare tonic `Channel`, mTLS, 1 backend",
            Contender::Mesh1Mtls => "mesh `xds:///`, mTLS, 1-endpoint cluster",
            Contender::Mesh3Mtls => "mesh `xds:///`, mTLS, 3-endpoint cluster",
        }
    }

    /// Whether the contender needs the control plane.
    pub fn needs_control_plane(self) -> bool {
        matches!(
            self,
            Contender::Mesh1
                | Contender::Mesh3
                | Contender::TonicXds1
                | Contender::TonicXds3
                | Contender::Mesh1Mtls
                | Contender::Mesh3Mtls
        )
    }

    /// Whether the contender talks TLS (and so needs the bench
    /// certificates and the TLS backends).
    pub fn is_tls(self) -> bool {
        matches!(
            self,
            Contender::TonicTls | Contender::Mesh1Mtls | Contender::Mesh3Mtls
        )
    }

    /// Whether the contender needs the HAProxy child process.
    pub fn needs_haproxy(self) -> bool {
        self == Contender::Haproxy
    }
}

impl fmt::Display for Contender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A contender name that is not one of [`Contender::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown contender \"{0}\" (expected one of {names})", names = all_names())]
pub struct UnknownContender(String);

fn all_names() -> String {
    Contender::ALL.map(Contender::name).join(", ")
}

impl FromStr for Contender {
    type Err = UnknownContender;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Contender::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownContender(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Contender::ALL {
            assert_eq!(c.name().parse::<Contender>().unwrap(), c);
        }
        let err = "envoy".parse::<Contender>().unwrap_err().to_string();
        assert!(
            err.contains("\"envoy\"") && err.contains("mesh-3ep-mtls"),
            "{err}"
        );
    }

    #[test]
    fn only_the_tls_rows_need_certificates() {
        let tls: Vec<_> = Contender::ALL.into_iter().filter(|c| c.is_tls()).collect();
        assert_eq!(
            tls,
            [
                Contender::TonicTls,
                Contender::Mesh1Mtls,
                Contender::Mesh3Mtls
            ]
        );
        assert!(!Contender::TonicTls.needs_control_plane());
        assert!(Contender::TonicXds3.needs_control_plane());
    }
}
