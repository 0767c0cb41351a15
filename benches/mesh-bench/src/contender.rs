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
}

impl Contender {
    /// Every contender, in table order.
    pub const ALL: [Contender; 4] = [
        Contender::Tonic,
        Contender::BalanceList,
        Contender::Mesh1,
        Contender::Mesh3,
    ];

    /// The short name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Contender::Tonic => "tonic",
            Contender::BalanceList => "balance_list",
            Contender::Mesh1 => "mesh-1ep",
            Contender::Mesh3 => "mesh-3ep",
        }
    }

    /// A longer description for the tables.
    pub fn describe(self) -> &'static str {
        match self {
            Contender::Tonic => "bare tonic `Channel`, 1 backend",
            Contender::BalanceList => "tonic `balance_list`, 3 backends",
            Contender::Mesh1 => "mesh `xds:///`, 1-endpoint cluster",
            Contender::Mesh3 => "mesh `xds:///`, 3-endpoint cluster",
        }
    }

    /// Whether the contender needs the control plane.
    pub fn needs_control_plane(self) -> bool {
        matches!(self, Contender::Mesh1 | Contender::Mesh3)
    }
}

impl fmt::Display for Contender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A contender name that is not one of [`Contender::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown contender \"{0}\" (expected tonic, balance_list, mesh-1ep or mesh-3ep)")]
pub struct UnknownContender(String);

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
        assert!("envoy".parse::<Contender>().is_err());
    }
}
