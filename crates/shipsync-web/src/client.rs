//! Who a client is, for the per-client limits (connections, sign-in and
//! bearer-token attempts) and the log lines about them: the TCP peer's
//! address — unless the peer is a trusted reverse proxy
//! (`SHIPSYNC_TRUSTED_PROXIES`, [`TrustedProxies`]). Then the client is read
//! from `X-Forwarded-For`, walked from the right: each proxy appends the
//! address it was connected from, so the entries right of the first
//! untrusted address were written by trusted proxies, and that address is
//! the client (what is left of it, the client could have sent itself). A
//! missing or unparsable header leaves the peer as the client.
//!
//! From a peer that is not trusted no header is looked at
//! (`X-Forwarded-For`, `Forwarded`): anyone could send them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, request::Parts};
use ipnet::{IpNet, Ipv4Net};

use crate::AppState;

/// The address the limits count by: an IPv4 address as is (also when it
/// arrives IPv4-mapped on an IPv6 socket), an IPv6 address by its /64, the
/// block one subscriber usually holds whole.
pub fn key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, an IPv4 peer on a
/// dual-stack socket) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed
/// (`SHIPSYNC_TRUSTED_PROXIES`): IP addresses and CIDR blocks. Empty (the
/// default): none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Arc<[IpNet]>);

/// An entry of `SHIPSYNC_TRUSTED_PROXIES` that is neither an IP address nor
/// a CIDR block.
#[derive(Debug, thiserror::Error)]
#[error(
    "{entry:?} is not an IP address or a CIDR block: list addresses and blocks separated by commas, e.g. 127.0.0.1,10.0.0.0/8,fd00::/8"
)]
pub struct InvalidProxy {
    pub entry: String,
}

impl FromStr for TrustedProxies {
    type Err = InvalidProxy;

    /// A comma-separated list (blanks around entries and empty entries are
    /// ignored). A block's host bits are dropped (`10.1.2.3/8` is
    /// `10.0.0.0/8`).
    fn from_str(list: &str) -> Result<Self, InvalidProxy> {
        list.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|entry| {
                let net = IpNet::from_str(entry)
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .map_err(|_| InvalidProxy {
                        entry: entry.to_string(),
                    })?;
                Ok(unmapped(net.trunc()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|nets| Self(nets.into()))
    }
}

/// A block of IPv4-mapped IPv6 addresses as the IPv4 block it is, since
/// addresses are compared [`canonical`].
fn unmapped(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
            .addr()
            .to_ipv4_mapped()
            .and_then(|v4| Ipv4Net::new(v4, v6.prefix_len() - 96).ok())
            .map_or(net, IpNet::V4),
        other => other,
    }
}

impl std::fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, net) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

impl TrustedProxies {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address (not yet a [`key`]) of a request that came
    /// from `peer` with `headers`: see the module's documentation.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        self.forwarded_client(headers.get_all("x-forwarded-for").iter())
            .unwrap_or(peer)
    }

    /// The first untrusted address of `X-Forwarded-For` from the right
    /// (several header lines make one list, in order); when every address
    /// is trusted, the leftmost. None when the header is missing or an
    /// entry on the way is not an address.
    fn forwarded_client<'a>(
        &self,
        values: impl DoubleEndedIterator<Item = &'a HeaderValue>,
    ) -> Option<IpAddr> {
        let mut leftmost = None;
        for value in values.rev() {
            for entry in value.to_str().ok()?.rsplit(',') {
                let ip = forwarded_address(entry.trim())?;
                if !self.contains(ip) {
                    return Some(ip);
                }
                leftmost = Some(ip);
            }
        }
        leftmost
    }
}

/// An `X-Forwarded-For` entry: an address, or an address and port
/// (`203.0.113.7:4711`, `[2001:db8::7]:4711`) as some proxies write.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    IpAddr::from_str(entry)
        .or_else(|_| SocketAddr::from_str(entry).map(|s| s.ip()))
        .ok()
        .map(canonical)
}

/// The client of a request: the [`key`] of the peer address the server put
/// in its extensions, or of the address its trusted proxies forwarded
/// (unspecified when served without a peer address, e.g. in unit tests).
pub fn of(extensions: &axum::http::Extensions, headers: &HeaderMap, state: &AppState) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| key(state.config.trusted_proxies.client(c.0.ip(), headers)))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The client of a request, as an extractor ([`of`]).
pub struct Client(pub IpAddr);

impl axum::extract::FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Client(of(&parts.extensions, &parts.headers, state)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let k = |s: &str| key(s.parse().unwrap()).to_string();
        assert_eq!(k("127.0.0.2"), "127.0.0.2");
        assert_eq!(k("::ffff:10.1.2.3"), "10.1.2.3");
        assert_eq!(k("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(k("2001:db8:1:2:ffff::1"), "2001:db8:1:2::");
        assert_eq!(k("::1"), "::");
    }

    fn trusted(list: &str) -> TrustedProxies {
        list.parse().unwrap()
    }

    #[test]
    fn trusted_proxy_lists() {
        // (list, address, trusted?)
        let table = [
            ("", "127.0.0.1", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            (" 127.0.0.1 , 10.0.0.0/8 ,", "10.200.3.4", true),
            ("127.0.0.1,10.0.0.0/8", "11.0.0.1", false),
            ("10.1.2.3/8", "10.9.9.9", true),
            ("192.168.1.0/24", "192.168.1.255", true),
            ("192.168.1.0/24", "192.168.2.1", false),
            ("0.0.0.0/0", "203.0.113.7", true),
            ("fd00::/8", "fd12:3456::1", true),
            ("fd00::/8", "fe80::1", false),
            ("::1", "::1", true),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            // An IPv4 peer on a dual-stack socket, and mapped entries.
            ("127.0.0.1", "::ffff:127.0.0.1", true),
            ("::ffff:127.0.0.1", "127.0.0.1", true),
            ("::ffff:10.0.0.0/104", "10.3.2.1", true),
            ("10.0.0.0/8", "::ffff:10.3.2.1", true),
            // IPv4 blocks do not hold IPv6 addresses, nor the reverse.
            ("0.0.0.0/0", "::1", false),
            ("::/0", "127.0.0.1", false),
        ];
        for (list, ip, expected) in table {
            assert_eq!(
                trusted(list).contains(ip.parse().unwrap()),
                expected,
                "{list:?} holds {ip}"
            );
        }
        assert_eq!(
            trusted(" 127.0.0.1, 10.1.2.3/8,fd00::/8 ").to_string(),
            "127.0.0.1/32,10.0.0.0/8,fd00::/8"
        );
        assert!(trusted("").is_empty());
        assert!(trusted(" , ").is_empty());
    }

    #[test]
    fn invalid_entries_are_named() {
        for (list, entry) in [
            ("127.0.0.1,localhost", "localhost"),
            ("10.0.0.0/33", "10.0.0.0/33"),
            ("10.0.0/8", "10.0.0/8"),
            ("fd00::/129", "fd00::/129"),
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("10.0.0.0/8 192.168.0.0/16", "10.0.0.0/8 192.168.0.0/16"),
            ("*", "*"),
        ] {
            let e = list.parse::<TrustedProxies>().unwrap_err();
            assert_eq!(e.entry, entry, "{list:?}");
            assert!(e.to_string().contains(&format!("{entry:?}")), "{e}");
        }
    }

    /// The client of a request from `peer` carrying these
    /// `X-Forwarded-For` lines, with `list` trusted.
    fn client(list: &str, peer: &str, xff: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for v in xff {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        trusted(list)
            .client(peer.parse().unwrap(), &headers)
            .to_string()
    }

    #[test]
    fn forwarded_for_is_walked_from_the_right_past_trusted_proxies() {
        // (trusted, peer, X-Forwarded-For lines, client)
        let table: &[(&str, &str, &[&str], &str)] = &[
            // Nothing trusted: the header is ignored.
            ("", "127.0.0.1", &["203.0.113.7"], "127.0.0.1"),
            // An untrusted peer: its header is ignored.
            ("127.0.0.1", "127.0.0.2", &["203.0.113.7"], "127.0.0.2"),
            ("127.0.0.1", "127.0.0.1", &["203.0.113.7"], "203.0.113.7"),
            // What the client sent is left of what the proxy appended.
            (
                "127.0.0.1",
                "127.0.0.1",
                &["198.51.100.1, 203.0.113.7"],
                "203.0.113.7",
            ),
            // Two proxies: the inner one's entry is skipped.
            (
                "127.0.0.1,10.0.0.0/8",
                "127.0.0.1",
                &["198.51.100.1,203.0.113.7,10.1.1.1"],
                "203.0.113.7",
            ),
            // Several header lines are one list, in order.
            (
                "127.0.0.1,10.0.0.0/8",
                "127.0.0.1",
                &["198.51.100.1, 203.0.113.7", "10.1.1.1"],
                "203.0.113.7",
            ),
            // Every entry trusted: the leftmost.
            (
                "127.0.0.1,10.0.0.0/8",
                "127.0.0.1",
                &["10.0.0.9, 10.1.1.1"],
                "10.0.0.9",
            ),
            // Missing, empty or unparsable on the way: the peer.
            ("127.0.0.1", "127.0.0.1", &[], "127.0.0.1"),
            ("127.0.0.1", "127.0.0.1", &[""], "127.0.0.1"),
            ("127.0.0.1", "127.0.0.1", &["unknown"], "127.0.0.1"),
            (
                "127.0.0.1,10.0.0.0/8",
                "127.0.0.1",
                &["203.0.113.7, _hidden, 10.1.1.1"],
                "127.0.0.1",
            ),
            // Garbage left of the client is never reached.
            (
                "127.0.0.1",
                "127.0.0.1",
                &["<script>, 203.0.113.7"],
                "203.0.113.7",
            ),
            // Ports and IPv6.
            (
                "127.0.0.1",
                "127.0.0.1",
                &["203.0.113.7:4711"],
                "203.0.113.7",
            ),
            ("::1", "::1", &["[2001:db8::7]:4711"], "2001:db8::7"),
            (
                "fd00::/8",
                "fd00::1",
                &["2001:db8::7, fd00::2"],
                "2001:db8::7",
            ),
            (
                "127.0.0.1",
                "::ffff:127.0.0.1",
                &["::ffff:203.0.113.7"],
                "203.0.113.7",
            ),
        ];
        for (list, peer, xff, expected) in table {
            assert_eq!(
                client(list, peer, xff),
                *expected,
                "trusted {list:?}, peer {peer}, X-Forwarded-For {xff:?}"
            );
        }
    }
}
