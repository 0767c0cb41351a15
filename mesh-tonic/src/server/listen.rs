//! Where an xDS-enabled server listens, and the address that names its
//! Listener resource (A36: `%s` in the template is the listening address,
//! `0.0.0.0:PORT`, `[::]:PORT` or the exact address bound).

use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::error::Error;

/// What [`super::XdsServer::serve`] listens on.
#[derive(Debug)]
pub enum Listen {
    /// Bind this address (port 0 picks a free port).
    Addr(SocketAddr),
    /// Use a bound tokio listener.
    Tokio(TcpListener),
    /// Use a bound std listener (it is switched to non-blocking).
    Std(std::net::TcpListener),
}

impl From<SocketAddr> for Listen {
    fn from(addr: SocketAddr) -> Self {
        Listen::Addr(addr)
    }
}

impl From<TcpListener> for Listen {
    fn from(listener: TcpListener) -> Self {
        Listen::Tokio(listener)
    }
}

impl From<std::net::TcpListener> for Listen {
    fn from(listener: std::net::TcpListener) -> Self {
        Listen::Std(listener)
    }
}

impl Listen {
    /// The bound listener and its address (the port resolved).
    pub(crate) async fn bind(self) -> Result<(TcpListener, SocketAddr), Error> {
        let listener = match self {
            Listen::Addr(a) => TcpListener::bind(a)
                .await
                .map_err(|e| Error::io(format!("cannot listen on {a}"), e))?,
            Listen::Tokio(l) => l,
            Listen::Std(l) => {
                l.set_nonblocking(true)
                    .map_err(|e| Error::io("cannot make the listener non-blocking", e))?;
                TcpListener::from_std(l)
                    .map_err(|e| Error::io("cannot register the listener", e))?
            }
        };
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("cannot read the listening address", e))?;
        Ok((listener, addr))
    }
}

/// The `%s` of the server listener template for a listening address:
/// `0.0.0.0:8080`, `[::]:8080`, `127.0.0.1:8080` (IPv6 in brackets).
pub(crate) fn listening_name(addr: SocketAddr) -> String {
    // Scope ids and flow info are not part of the name.
    SocketAddr::new(addr.ip(), addr.port()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_use_brackets_for_ipv6() {
        let n = |s: &str| listening_name(s.parse().unwrap());
        assert_eq!(n("0.0.0.0:8080"), "0.0.0.0:8080");
        assert_eq!(n("[::]:8080"), "[::]:8080");
        assert_eq!(n("[fe80::1%2]:80"), "[fe80::1]:80");
    }
}
