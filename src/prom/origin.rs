//! Where a shop's Prom calls may go. A tenant admin chooses a shop's Prom URL, and every
//! call to it carries the shop's token; left unchecked, that URL could point promsync at
//! its own network (loopback, the cluster, a cloud metadata service) and read the answers
//! back. So a Prom URL is:
//!
//! - parsed into a [`PromOrigin`]: `http(s)://host[:port]` and nothing else (no user info,
//!   path, query or fragment), so what is stored is exactly what is called;
//! - vetted by an [`OriginPolicy`] when saved ([`OriginPolicy::vet`], which resolves the
//!   host name) and again before every call ([`OriginPolicy::check`] for the origin and IP
//!   literals, [`PublicResolver`] for names): `https` to public unicast addresses only,
//!   unless the origin is one `PROMSYNC_PROM_ALLOWED_ORIGINS` lists (simulators, demos,
//!   tests), which passes exactly as listed.
//!
//! [`classify`] is the one place that says which addresses are public.

use std::{
    collections::HashSet,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// How long saving a Prom URL waits for its host name to resolve.
const SAVE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a string is not a Prom origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("`{0}` is not a URL; expected an origin such as https://my.prom.ua")]
    NotAUrl(String),
    #[error("the scheme must be https (or http for an allowed origin), not {0}")]
    Scheme(String),
    #[error("must not contain user info (user:password@)")]
    UserInfo,
    #[error("must not have a path (`{0}`): promsync appends /api/v1/… itself")]
    Path(String),
    #[error("must not have a query")]
    Query,
    #[error("must not have a fragment")]
    Fragment,
}

/// Why an origin may not be called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0} is not https; only the origins PROMSYNC_PROM_ALLOWED_ORIGINS lists may use http")]
    NotHttps(String),
    #[error("{ip} is {}", .class.describe())]
    Address { ip: IpAddr, class: AddressClass },
    #[error("{host} resolves to {ip}, {}", .class.describe())]
    Resolves {
        host: String,
        ip: IpAddr,
        class: AddressClass,
    },
    #[error("{0} names this machine (a loopback name)")]
    LoopbackName(String),
    #[error("{0} is allowed only at the exact origins PROMSYNC_PROM_ALLOWED_ORIGINS lists")]
    OtherOriginOfAllowedHost(String),
}

/// Why a Prom URL given for a shop is not taken; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromUrlError {
    #[error("prom_url: {0}")]
    Invalid(#[from] OriginError),
    #[error("prom_url: {0}")]
    Refused(#[from] Refused),
}

/// The kind of an IP address, as far as calling it from promsync is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Unspecified,
    Loopback,
    Private,
    LinkLocal,
    UniqueLocal,
    SharedCgnat,
    Multicast,
    Broadcast,
    Documentation,
    Benchmarking,
    /// "This network", IETF protocol assignments, 240/4, deprecated site-local, discard,
    /// Teredo/ORCHID and anything outside IPv6 global unicast (2000::/3).
    Reserved,
}

impl AddressClass {
    pub fn is_public(self) -> bool {
        self == AddressClass::Public
    }

    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "a public address",
            AddressClass::Unspecified => "the unspecified address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::UniqueLocal => "a unique-local address",
            AddressClass::SharedCgnat => "a shared (CGNAT) address",
            AddressClass::Multicast => "a multicast address",
            AddressClass::Broadcast => "the broadcast address",
            AddressClass::Documentation => "a documentation address",
            AddressClass::Benchmarking => "a benchmarking address",
            AddressClass::Reserved => "a reserved address",
        }
    }
}

/// Which kind of address `ip` is. IPv6 addresses that carry an IPv4 address (mapped,
/// compatible, NAT64, 6to4) are judged by the IPv4 address they lead to.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if a == 100 && (64..128).contains(&b) {
        // 100.64.0.0/10 (`Ipv4Addr::is_shared` is not stable).
        AddressClass::SharedCgnat
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if ip.is_broadcast() {
        AddressClass::Broadcast
    } else if ip.is_documentation() {
        AddressClass::Documentation
    } else if a == 198 && (b & 0xfe) == 18 {
        // 198.18.0.0/15 (`Ipv4Addr::is_benchmarking` is not stable).
        AddressClass::Benchmarking
    } else if a == 0
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 88 && c == 99)
    {
        // 0/8 "this network", 240/4 reserved, 192.0.0/24 IETF assignments, 192.88.99/24
        // the retired 6to4 relay anycast.
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let segments = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if segments[..6] == [0; 6] {
        // IPv4-compatible ::a.b.c.d (deprecated, still routed by some stacks).
        return classify_v4(embedded_v4(segments[6], segments[7]));
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 64:ff9b::/96 leads to the embedded IPv4 address.
        return classify_v4(embedded_v4(segments[6], segments[7]));
    }
    if segments[0] == 0x2002 {
        // 6to4 2002:V4ADDR::/48.
        return classify_v4(embedded_v4(segments[1], segments[2]));
    }
    if ip.is_multicast() {
        return AddressClass::Multicast;
    }
    if ip.is_unique_local() {
        return AddressClass::UniqueLocal;
    }
    if ip.is_unicast_link_local() {
        return AddressClass::LinkLocal;
    }
    if segments[0] == 0x2001 && segments[1] == 0x0db8
        || segments[0] == 0x3fff && segments[1] < 0x1000
    {
        // 2001:db8::/32 and 3fff::/20.
        return AddressClass::Documentation;
    }
    if segments[0] == 0x2001 && segments[1] == 0x0002 && segments[2] == 0 {
        // 2001:2::/48.
        return AddressClass::Benchmarking;
    }
    if segments[0] & 0xe000 != 0x2000 || segments[0] == 0x2001 && segments[1] < 0x0200 {
        // Outside global unicast 2000::/3 (site-local fec0::/10, discard 100::/64 and the
        // rest), or 2001::/23 IETF assignments (Teredo, ORCHID, …).
        return AddressClass::Reserved;
    }
    AddressClass::Public
}

/// `ip` if it is public, or why not.
fn public(ip: IpAddr) -> Result<(), Refused> {
    match classify(ip) {
        AddressClass::Public => Ok(()),
        class => Err(Refused::Address { ip, class }),
    }
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A Prom origin: scheme, host and port (`None` when it is the scheme's default), and
/// nothing else. Its string form is what a shop stores.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PromOrigin {
    scheme: Scheme,
    host: Host<String>,
    port: Option<u16>,
}

impl PromOrigin {
    /// Parses `raw` (surrounding whitespace and a bare trailing `/` are fine); anything
    /// but an origin is refused with the reason.
    pub fn parse(raw: &str) -> Result<Self, OriginError> {
        let raw = raw.trim();
        let url = Url::parse(raw).map_err(|e| OriginError::NotAUrl(format!("{raw}: {e}")))?;
        let origin = Self::of_url(&url)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OriginError::UserInfo);
        }
        if !matches!(url.path(), "" | "/") {
            return Err(OriginError::Path(url.path().to_owned()));
        }
        if url.query().is_some() {
            return Err(OriginError::Query);
        }
        if url.fragment().is_some() {
            return Err(OriginError::Fragment);
        }
        Ok(origin)
    }

    /// The origin a URL is sent to (its path, query and user info set aside).
    pub fn of_url(url: &Url) -> Result<Self, OriginError> {
        let scheme = match url.scheme() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => return Err(OriginError::Scheme(other.to_owned())),
        };
        // http(s) URLs always have a host; `url` refuses them otherwise.
        let host = url
            .host()
            .ok_or_else(|| OriginError::NotAUrl(url.to_string()))?
            .to_owned();
        Ok(Self {
            scheme,
            host,
            port: url.port(),
        })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    pub fn host(&self) -> &Host<String> {
        &self.host
    }
}

impl fmt::Display for PromOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl std::str::FromStr for PromOrigin {
    type Err = OriginError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for PromOrigin {
    type Error = OriginError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

/// A [`PromOrigin`] the policy accepted when it was saved; only [`OriginPolicy::vet`]
/// makes one, so a shop cannot be created with an origin nobody checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VettedOrigin(PromOrigin);

impl VettedOrigin {
    pub fn origin(&self) -> &PromOrigin {
        &self.0
    }
}

impl fmt::Display for VettedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which origins shops may call: `https` ones on public addresses, plus the ones
/// configured as allowed (exact scheme, host and port).
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    allowed: HashSet<PromOrigin>,
}

impl OriginPolicy {
    pub fn new(allowed: impl IntoIterator<Item = PromOrigin>) -> Self {
        Self {
            allowed: allowed.into_iter().collect(),
        }
    }

    pub fn is_allowed(&self, origin: &PromOrigin) -> bool {
        self.allowed.contains(origin)
    }

    /// Host names of allowed origins: the resolver lets their private answers through.
    fn allowed_names(&self) -> HashSet<String> {
        self.allowed
            .iter()
            .filter_map(|o| match &o.host {
                Host::Domain(name) => Some(name.trim_end_matches('.').to_ascii_lowercase()),
                _ => None,
            })
            .collect()
    }

    /// Everything that can be said without DNS: an allowed origin passes; otherwise an
    /// IP literal must be public, a name must be neither a loopback name nor the host of
    /// an allowed origin (which the resolver lets through), and the scheme must be https.
    /// Runs before every call, since IP literals never reach the resolver.
    pub fn check(&self, origin: &PromOrigin) -> Result<(), Refused> {
        if self.is_allowed(origin) {
            return Ok(());
        }
        match &origin.host {
            Host::Ipv4(ip) => public(IpAddr::V4(*ip))?,
            Host::Ipv6(ip) => public(IpAddr::V6(*ip))?,
            Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    return Err(Refused::LoopbackName(name));
                }
                if self.allowed_names().contains(&name) {
                    return Err(Refused::OtherOriginOfAllowedHost(name));
                }
            }
        }
        if origin.scheme != Scheme::Https {
            return Err(Refused::NotHttps(origin.to_string()));
        }
        Ok(())
    }

    /// The check made when a Prom URL is saved: [`OriginPolicy::check`], then every
    /// address the host name resolves to must be public. A name that does not resolve
    /// (now) is accepted: it cannot be called either, and the resolver checks it again
    /// at every connection.
    pub async fn vet(&self, origin: PromOrigin) -> Result<VettedOrigin, Refused> {
        self.check(&origin)?;
        if let (false, Host::Domain(name)) = (self.is_allowed(&origin), &origin.host) {
            let lookup = tokio::net::lookup_host((name.as_str(), 443));
            match tokio::time::timeout(SAVE_LOOKUP_TIMEOUT, lookup).await {
                Ok(Ok(addrs)) => {
                    for addr in addrs {
                        let class = classify(addr.ip());
                        if !class.is_public() {
                            return Err(Refused::Resolves {
                                host: name.clone(),
                                ip: addr.ip(),
                                class,
                            });
                        }
                    }
                }
                Ok(Err(e)) => {
                    tracing::debug!(host = %name, error = %e, "a Prom host does not resolve now")
                }
                Err(_) => tracing::debug!(host = %name, "resolving a Prom host timed out"),
            }
        }
        Ok(VettedOrigin(origin))
    }

    /// A Prom URL as a user gives it: parsed, then vetted as [`OriginPolicy::vet`] does.
    pub async fn vet_url(&self, raw: &str) -> Result<VettedOrigin, PromUrlError> {
        Ok(self.vet(PromOrigin::parse(raw)?).await?)
    }

    /// The resolver the Prom client connects through.
    pub fn resolver(&self) -> PublicResolver {
        PublicResolver {
            allowed_names: Arc::new(self.allowed_names()),
        }
    }
}

/// A DNS resolver that answers only public addresses, except for the host names of
/// allowed origins: a name that resolved to a public address when it was saved but
/// resolves home now is refused at connection time. (IP literals never reach a resolver;
/// [`OriginPolicy::check`] covers them.)
#[derive(Debug, Clone)]
pub struct PublicResolver {
    allowed_names: Arc<HashSet<String>>,
}

impl PublicResolver {
    /// The addresses promsync may connect to for `name`, or why none.
    pub async fn lookup(&self, name: &str) -> Result<Vec<SocketAddr>, std::io::Error> {
        let normalized = name.trim_end_matches('.').to_ascii_lowercase();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, 0)).await?.collect();
        if self.allowed_names.contains(&normalized) {
            return Ok(addrs);
        }
        let mut refused = None;
        let public: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|addr| {
                let class = classify(addr.ip());
                if !class.is_public() && refused.is_none() {
                    refused = Some(Refused::Resolves {
                        host: normalized.clone(),
                        ip: addr.ip(),
                        class,
                    });
                }
                class.is_public()
            })
            .collect();
        match (public.is_empty(), refused) {
            (true, Some(refused)) => Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                refused,
            )),
            _ => Ok(public),
        }
    }
}

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolver.lookup(&name).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The policy's refusal inside a connection error's source chain, if that is why the
/// connection failed.
pub fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<Refused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused.clone());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(refused) = io.get_ref().and_then(|i| i.downcast_ref::<Refused>()) {
                return Some(refused.clone());
            }
        }
        source = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn origin(s: &str) -> PromOrigin {
        PromOrigin::parse(s).unwrap()
    }

    fn class(s: &str) -> AddressClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn an_origin_is_scheme_host_and_port_with_at_most_a_bare_slash() {
        assert_eq!(
            origin("https://my.prom.ua").to_string(),
            "https://my.prom.ua"
        );
        assert_eq!(
            origin(" https://My.Prom.UA/ ").to_string(),
            "https://my.prom.ua"
        );
        assert_eq!(
            origin("https://my.prom.ua:443").to_string(),
            "https://my.prom.ua"
        );
        assert_eq!(
            origin("http://127.0.0.1:9400").to_string(),
            "http://127.0.0.1:9400"
        );
        assert_eq!(
            origin("https://[::1]:8443/").to_string(),
            "https://[::1]:8443"
        );
        // `url` reads the shorthand IPv4 forms a resolver would; so does the check.
        assert_eq!(
            origin("http://0x7f.1").host(),
            &Host::<String>::Ipv4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(origin("http://2130706433").to_string(), "http://127.0.0.1");
    }

    #[test]
    fn anything_beyond_the_origin_is_refused_with_the_reason() {
        let err = |s: &str| PromOrigin::parse(s).unwrap_err();
        assert_eq!(err("https://user:pw@my.prom.ua"), OriginError::UserInfo);
        assert_eq!(err("https://user@my.prom.ua"), OriginError::UserInfo);
        assert_eq!(
            err("https://my.prom.ua/api/v1"),
            OriginError::Path("/api/v1".into())
        );
        assert_eq!(err("https://my.prom.ua/?x=1"), OriginError::Query);
        assert_eq!(err("https://my.prom.ua?"), OriginError::Query);
        assert_eq!(err("https://my.prom.ua#top"), OriginError::Fragment);
        assert_eq!(err("ftp://my.prom.ua"), OriginError::Scheme("ftp".into()));
        assert_eq!(
            err("file:///etc/passwd"),
            OriginError::Scheme("file".into())
        );
        assert!(matches!(err("not a url"), OriginError::NotAUrl(_)));
        assert!(matches!(err(""), OriginError::NotAUrl(_)));
    }

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for public in [
            "8.8.8.8",
            "91.198.174.192",
            "2a00:1450:4001:82a::200e",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(class(public), AddressClass::Public, "{public}");
        }
        for (ip, expected) in [
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.0.9", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("0.0.0.0", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Reserved),
            ("10.0.0.1", AddressClass::Private),
            ("172.16.5.4", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("fc00::1", AddressClass::UniqueLocal),
            ("fd12:3456::1", AddressClass::UniqueLocal),
            ("100.64.0.1", AddressClass::SharedCgnat),
            ("100.127.255.254", AddressClass::SharedCgnat),
            ("224.0.0.1", AddressClass::Multicast),
            ("ff02::1", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Broadcast),
            ("192.0.2.1", AddressClass::Documentation),
            ("2001:db8::1", AddressClass::Documentation),
            ("198.18.0.1", AddressClass::Benchmarking),
            ("240.0.0.1", AddressClass::Reserved),
            ("fec0::1", AddressClass::Reserved),
            ("2001::1", AddressClass::Reserved),
            // IPv6 forms of IPv4 addresses are judged by the IPv4 address.
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("::ffff:10.1.2.3", AddressClass::Private),
            ("::ffff:169.254.169.254", AddressClass::LinkLocal),
            ("::127.0.0.1", AddressClass::Loopback),
            ("64:ff9b::a00:1", AddressClass::Private),
            ("2002:7f00:1::", AddressClass::Loopback),
        ] {
            assert_eq!(class(ip), expected, "{ip}");
        }
        // The boundaries of the ranges written by hand.
        assert_eq!(class("100.63.255.255"), AddressClass::Public);
        assert_eq!(class("100.128.0.0"), AddressClass::Public);
        assert_eq!(class("198.20.0.0"), AddressClass::Public);
    }

    #[test]
    fn by_default_only_https_to_public_hosts_passes_the_check() {
        let policy = OriginPolicy::default();
        assert_eq!(policy.check(&origin("https://my.prom.ua")), Ok(()));
        assert_eq!(policy.check(&origin("https://8.8.8.8")), Ok(()));
        assert!(matches!(
            policy.check(&origin("http://my.prom.ua")),
            Err(Refused::NotHttps(_))
        ));
        for loopback in ["https://127.0.0.1:9999", "http://127.0.0.1:9999"] {
            let refused = policy.check(&origin(loopback)).unwrap_err();
            assert_eq!(refused.to_string(), "127.0.0.1 is a loopback address");
        }
        let refused = policy
            .check(&origin("https://[::ffff:7f00:1]"))
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "::ffff:127.0.0.1 is a loopback address"
        );
        assert!(matches!(
            policy.check(&origin("https://LOCALHOST.")),
            Err(Refused::LoopbackName(_))
        ));
        assert!(matches!(
            policy.check(&origin("https://app.localhost")),
            Err(Refused::LoopbackName(_))
        ));
    }

    #[test]
    fn an_allowed_origin_passes_exactly_as_listed() {
        let policy =
            OriginPolicy::new([origin("http://127.0.0.1:9400"), origin("http://sim:9090")]);
        assert_eq!(policy.check(&origin("http://127.0.0.1:9400/")), Ok(()));
        assert!(policy.check(&origin("http://127.0.0.1:9401")).is_err());
        assert!(policy.check(&origin("https://127.0.0.1:9400")).is_err());
        // The resolver lets `sim`'s private answers through, so another port of it is
        // refused before any lookup.
        assert!(matches!(
            policy.check(&origin("https://sim:22")),
            Err(Refused::OtherOriginOfAllowedHost(_))
        ));
    }

    #[tokio::test]
    async fn saving_refuses_a_name_that_resolves_home_and_accepts_an_allowed_one() {
        let refused = OriginPolicy::default()
            .vet(origin("https://localhost"))
            .await
            .unwrap_err();
        assert!(matches!(refused, Refused::LoopbackName(_)), "{refused}");

        let allowed = OriginPolicy::new([origin("http://localhost:9400")]);
        let vetted = allowed.vet(origin("http://localhost:9400")).await.unwrap();
        assert_eq!(vetted.to_string(), "http://localhost:9400");
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_that_resolves_only_to_loopback() {
        let err = OriginPolicy::default()
            .resolver()
            .lookup("localhost")
            .await
            .unwrap_err();
        let refused = refusal_in(&err).expect("the policy's refusal");
        assert!(
            matches!(refused, Refused::Resolves { ref host, class: AddressClass::Loopback, .. } if host == "localhost"),
            "{refused}"
        );

        // Through reqwest's own trait, as the client calls it.
        let name: Name = "localhost".parse().unwrap();
        assert!(OriginPolicy::default()
            .resolver()
            .resolve(name)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn the_resolver_answers_private_addresses_for_an_allowed_host() {
        let resolver = OriginPolicy::new([origin("http://localhost:9400")]).resolver();
        let addrs = resolver.lookup("localhost").await.unwrap();
        assert!(addrs.iter().any(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    proptest! {
        #[test]
        fn the_parser_never_panics_and_what_it_accepts_round_trips(raw in ".{0,80}") {
            if let Ok(parsed) = PromOrigin::parse(&raw) {
                prop_assert_eq!(PromOrigin::parse(&parsed.to_string()), Ok(parsed));
            }
        }

        #[test]
        fn the_parser_never_panics_on_url_like_input(
            raw in "(https?|ftp)://[a-zA-Z0-9@:%.\\[\\]/?#-]{0,40}"
        ) {
            let _ = PromOrigin::parse(&raw);
        }

        #[test]
        fn what_the_parser_accepts_round_trips(
            raw in "(https?://)?([a-zA-Z0-9.-]{1,20}|[0-9.]{1,15}|\\[[0-9a-f:.]{2,30}\\])(:[0-9]{1,5})?/?"
        ) {
            if let Ok(parsed) = PromOrigin::parse(&raw) {
                prop_assert_eq!(PromOrigin::parse(&parsed.to_string()), Ok(parsed));
            }
        }
    }
}
