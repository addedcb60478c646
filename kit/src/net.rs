//! Listen addresses as the upstream flags write them (`:9090`, `127.0.0.1:9090`, `[::1]:9090`).
//!
//! `:PORT` means every interface. It binds `[::]:PORT`, which on Linux also accepts IPv4
//! (dual stack), so a pod on an IPv6-only, IPv4-only or dual-stack network is reachable; on a
//! host without IPv6 it falls back to `0.0.0.0:PORT`.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use tokio::net::TcpListener;

/// Where a server listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindAddress {
    /// `:PORT`: every interface, IPv6 and IPv4.
    AnyInterface(u16),
    /// One address, e.g. `127.0.0.1:0` in tests.
    Exact(SocketAddr),
}

impl BindAddress {
    /// Binds the address (see the module docs for `:PORT`).
    pub async fn listen(&self) -> std::io::Result<TcpListener> {
        match *self {
            Self::Exact(address) => TcpListener::bind(address).await,
            Self::AnyInterface(port) => {
                match TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)).await {
                    Ok(listener) => Ok(listener),
                    // No IPv6 on this host (EAFNOSUPPORT, EADDRNOTAVAIL): IPv4 alone.
                    Err(e) if e.kind() != std::io::ErrorKind::AddrInUse => {
                        tracing::debug!(port, error = %e, "no IPv6 listener; using IPv4 only");
                        TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}

impl FromStr for BindAddress {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let invalid = |why: String| {
            format!("{value:?} is not an address like :9090, 127.0.0.1:9090 or [::1]:9090 ({why})")
        };
        match value.strip_prefix(':') {
            Some(port) => port
                .parse()
                .map(Self::AnyInterface)
                .map_err(|e| invalid(format!("{e}"))),
            None => value
                .parse()
                .map(Self::Exact)
                .map_err(|e| invalid(format!("{e}"))),
        }
    }
}

impl fmt::Display for BindAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AnyInterface(port) => write!(f, ":{port}"),
            Self::Exact(address) => write!(f, "{address}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_forms_parse() {
        assert_eq!(":9090".parse(), Ok(BindAddress::AnyInterface(9090)));
        assert_eq!(
            "127.0.0.1:0".parse(),
            Ok(BindAddress::Exact(([127, 0, 0, 1], 0).into()))
        );
        assert_eq!(
            "[::1]:8090".parse::<BindAddress>().map(|a| a.to_string()),
            Ok("[::1]:8090".to_owned())
        );
        for bad in ["nine", ":ninety", "9090", ":70000"] {
            let error = bad.parse::<BindAddress>().unwrap_err();
            assert!(
                error.starts_with(&format!("{bad:?} is not an address")),
                "{error}"
            );
        }
    }

    #[tokio::test]
    async fn any_interface_answers_on_ipv4_and_ipv6() {
        let listener = BindAddress::AnyInterface(0).listen().await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        if listener.local_addr().unwrap().is_ipv6() {
            tokio::net::TcpStream::connect((Ipv6Addr::LOCALHOST, port))
                .await
                .unwrap();
        }
    }
}
