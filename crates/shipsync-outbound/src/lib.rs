//! Where shipsync's outbound HTTP may go. Every client that carries a
//! merchant's credentials (Deposco, Shopify, any later platform) is built
//! with [`client_builder`], so that a URL a user typed cannot point those
//! credentials at the inside of the network:
//!
//! - only public addresses: loopback, private (RFC 1918, fc00::/7),
//!   link-local (169.254/16, fe80::/10), shared/CGNAT (100.64/10),
//!   unspecified, broadcast, reserved and multicast targets are refused
//!   **after DNS resolution, at connect time** — a name resolving to
//!   127.0.0.1 is refused by the resolver, an IP literal (which never reaches
//!   the resolver) by a check of the connected socket's peer address before
//!   any byte of the request is written — unless the operator allows them
//!   ([`TargetPolicy::allow_private`], `SHIPSYNC_ALLOW_PRIVATE_TARGETS`);
//! - redirects are followed only to the same scheme, host and port, at most
//!   [`MAX_REDIRECTS`] times; any other redirect is not followed (the 3xx
//!   answer is returned as it is);
//! - proxies from the environment are ignored (`HTTP_PROXY` cannot route
//!   around the policy);
//! - answers are read with a cap ([`read_capped`]).
//!
//! Saving a URL checks it the same way, by resolving it now
//! ([`check_target`]).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connection, HttpInfo};
use url::Url;

/// The operator's setting that allows private targets, as named in every
/// refusal.
pub const SETTING: &str = "SHIPSYNC_ALLOW_PRIVATE_TARGETS";
/// Same-origin redirects followed at most.
pub const MAX_REDIRECTS: usize = 5;
/// How long [`check_target`] waits for DNS when a URL is saved.
const SAVE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether outbound calls may reach non-public addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// `SHIPSYNC_ALLOW_PRIVATE_TARGETS`: off in production, on for the demo,
    /// the sandboxes and the tests (all on loopback).
    pub allow_private: bool,
}

impl TargetPolicy {
    /// Public addresses only (the default).
    pub const PUBLIC_ONLY: Self = Self {
        allow_private: false,
    };
    /// Any address (the sandboxes on loopback).
    pub const ALLOW_PRIVATE: Self = Self {
        allow_private: true,
    };

    /// `Err` when this policy refuses `ip`; `target` names what was asked
    /// for (a host, a URL) in the message.
    pub fn check_ip(&self, target: &str, ip: IpAddr) -> Result<(), Refused> {
        match classify(ip) {
            Some(kind) if !self.allow_private => Err(Refused {
                target: target.to_owned(),
                address: ip,
                kind,
            }),
            _ => Ok(()),
        }
    }
}

/// An outbound call refused by the policy. Its message names the setting
/// that allows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{target} resolves to {address}, a {kind} address: outbound calls go to public addresses only; \
     set {SETTING}=true (--allow-private-targets) to allow it"
)]
pub struct Refused {
    pub target: String,
    pub address: IpAddr,
    pub kind: &'static str,
}

/// True for every address an outbound call must not reach by default.
pub fn is_forbidden(ip: IpAddr) -> bool {
    classify(ip).is_some()
}

/// What kind of non-public address `ip` is, or `None` for a public one.
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    let kind = if a == 0 {
        // 0.0.0.0/8, "this network": Linux connects 0.0.0.0 to itself.
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        "link-local"
    } else if a == 100 && (b & 0xc0) == 64 {
        "shared (CGNAT)"
    } else if ip.is_broadcast() {
        "broadcast"
    } else if ip.is_multicast() {
        "multicast"
    } else if a >= 240 {
        // 240/4: reserved, never a public server.
        "reserved"
    } else {
        return None;
    };
    Some(kind)
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    // An IPv4 address inside IPv6 (mapped ::ffff:a.b.c.d, the old
    // compatible ::a.b.c.d, NAT64 64:ff9b::a.b.c.d) is judged as IPv4.
    let embedded = match segments {
        [0, 0, 0, 0, 0, 0xffff, ..] => ip.to_ipv4_mapped(),
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => ip.to_ipv4(),
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => {
            let o = ip.octets();
            Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
        }
        _ => None,
    };
    if let Some(v4) = embedded {
        return classify_v4(v4);
    }
    Some(match segments[0] {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        s if (s & 0xfe00) == 0xfc00 => "private",
        // fec0::/10, deprecated site-local: private too.
        s if (s & 0xffc0) == 0xfec0 => "private",
        s if (s & 0xffc0) == 0xfe80 => "link-local",
        s if (s & 0xff00) == 0xff00 => "multicast",
        _ => return None,
    })
}

/// A `reqwest` client builder that enforces `policy` (see the crate's
/// documentation). Set timeouts and the like on it, then build.
pub fn client_builder(policy: TargetPolicy) -> reqwest::ClientBuilder {
    // rustls with ring; another part of the process may have installed it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(redirect_policy());
    if policy.allow_private {
        return builder;
    }
    builder
        .dns_resolver(Arc::new(PublicResolver))
        .connector_layer(PeerCheckLayer)
}

/// Follows a redirect only to the origin (scheme, host, port) of the first
/// request; any other is not followed and its 3xx answer is returned.
pub fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if !same_origin {
            attempt.stop()
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

/// Resolves names with the system resolver and keeps only the addresses the
/// policy allows; none left is a [`Refused`] error.
struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(
                    |a| match TargetPolicy::PUBLIC_ONLY.check_ip(&host, a.ip()) {
                        Ok(()) => true,
                        Err(e) => {
                            refused.get_or_insert(e);
                            false
                        }
                    },
                )
                .collect();
            match refused {
                Some(e) if allowed.is_empty() => Err(Box::new(e) as BoxError),
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// Refuses a connection whose peer is not public, before the request is
/// written: IP literals never reach the resolver.
#[derive(Clone)]
struct PeerCheckLayer;

impl<S> tower::Layer<S> for PeerCheckLayer {
    type Service = PeerCheck<S>;
    fn layer(&self, inner: S) -> Self::Service {
        PeerCheck(inner)
    }
}

#[derive(Clone)]
struct PeerCheck<S>(S);

impl<S, R> tower::Service<R> for PeerCheck<S>
where
    S: tower::Service<R, Error = BoxError>,
    S::Response: Connection + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let connecting = self.0.call(request);
        Box::pin(async move {
            let conn = connecting.await?;
            let mut extras = http::Extensions::new();
            conn.connected().get_extras(&mut extras);
            match extras.get::<HttpInfo>() {
                Some(info) => {
                    let ip = info.remote_addr().ip();
                    TargetPolicy::PUBLIC_ONLY.check_ip(&ip.to_string(), ip)?;
                    Ok(conn)
                }
                // Not knowing the peer is not knowing it is public.
                None => Err("the connection does not report its peer address".into()),
            }
        })
    }
}

/// The policy refusal behind a failed call, if that is why it failed.
pub fn refusal<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r);
        }
        current = e.source();
    }
    None
}

/// Checks a URL being saved: its host, resolved now, must be public unless
/// `policy` allows private targets. A name that does not resolve (yet) is
/// accepted: calls will say what is wrong.
pub async fn check_target(policy: TargetPolicy, url: &Url) -> Result<(), Refused> {
    if policy.allow_private {
        return Ok(());
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let (target, addrs): (String, Vec<IpAddr>) = match url.host() {
        None => return Ok(()),
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), vec![IpAddr::V4(ip)]),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), vec![IpAddr::V6(ip)]),
        Some(url::Host::Domain(name)) => {
            let lookup = tokio::net::lookup_host((name, port));
            let found = match tokio::time::timeout(SAVE_LOOKUP_TIMEOUT, lookup).await {
                Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                _ => Vec::new(),
            };
            (name.to_owned(), found)
        }
    };
    // Any private answer is refused: the connection might use it.
    addrs
        .into_iter()
        .try_for_each(|ip| policy.check_ip(&target, ip))
}

/// An answer body that could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("reading the answer failed: {0}")]
    Read(#[source] reqwest::Error),
}

/// Reads an answer's body, at most `max` bytes: a larger one is an error,
/// read no further than the cap (so memory stays bounded).
pub async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Err(BodyError::TooLarge { max });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge { max });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests;
