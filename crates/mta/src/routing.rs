//! Who may relay and where mail goes: the `[smtp] trusted_networks` list and the
//! `[transport]` table (Postfix's `mynetworks` and `transport_maps`), parsed and
//! checked once at startup so a bad value is a config error naming its key.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::str::FromStr;

use facteur_rpc::delivery::delivery_client::DeliveryClient;
use ipnet::IpNet;
use tonic::transport::Channel;

use crate::config::MtaConfig;

/// A config value that does not parse; names the key.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct RouteError {
    pub key: String,
    pub message: String,
}

fn bad(key: &str, message: impl Into<String>) -> RouteError {
    RouteError {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// How one domain's mail is delivered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Transport {
    /// gRPC `Delivery` at this URL; `None`: the MDA at `mda.url`.
    Grpc(Option<String>),
    /// LMTP (RFC 2033) to `host:port`.
    Lmtp(HostPort),
    /// SMTP to a smarthost, no MX lookup.
    Smtp(HostPort),
    /// SMTP to the domain's MX hosts.
    Mx,
}

/// A `host:port` next hop (`[::1]:24` for IPv6).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for HostPort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} is not host:port"))?;
        let bracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        if let Some(v6) = bracketed
            && v6.parse::<std::net::Ipv6Addr>().is_err()
        {
            return Err(format!("bad IPv6 address in {s:?}"));
        }
        let host = bracketed.unwrap_or(host);
        if host.is_empty() || (bracketed.is_none() && host.contains([':', '[', ']', '/', ' '])) {
            return Err(format!(
                "bad host in {s:?} (an IPv6 address is written [addr]:port)"
            ));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("bad port in {s:?}"))?;
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, rest) = s.split_once(':').ok_or_else(|| {
            format!("{s:?}: expected grpc:, lmtp:host:port, smtp:host:port or mx:")
        })?;
        match kind {
            "grpc" if rest.is_empty() => Ok(Transport::Grpc(None)),
            "grpc" if rest.starts_with("http://") || rest.starts_with("https://") => {
                Ok(Transport::Grpc(Some(rest.to_owned())))
            }
            "grpc" => Err(format!(
                "{s:?}: expected grpc:, grpc:http://host:port or grpc:https://host:port"
            )),
            "lmtp" => rest.parse().map(Transport::Lmtp),
            "smtp" => rest.parse().map(Transport::Smtp),
            "mx" if rest.is_empty() => Ok(Transport::Mx),
            _ => Err(format!(
                "{s:?}: expected grpc:, lmtp:host:port, smtp:host:port or mx:"
            )),
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Grpc(None) => write!(f, "grpc:"),
            Transport::Grpc(Some(url)) => write!(f, "grpc:{url}"),
            Transport::Lmtp(hp) => write!(f, "lmtp:{hp}"),
            Transport::Smtp(hp) => write!(f, "smtp:{hp}"),
            Transport::Mx => write!(f, "mx:"),
        }
    }
}

/// The parsed `[transport]` table.
#[derive(Debug, Clone)]
pub struct Routes {
    /// Lower-case domain (no trailing dot) → transport.
    by_domain: BTreeMap<String, Transport>,
    /// For non-local domains without an entry (`"*"`, else `mx:`).
    default: Transport,
}

fn normalize(domain: &str) -> String {
    domain.trim_end_matches('.').to_ascii_lowercase()
}

impl Routes {
    pub fn new(table: &BTreeMap<String, String>) -> Result<Self, RouteError> {
        let mut by_domain = BTreeMap::new();
        let mut default = Transport::Mx;
        for (domain, value) in table {
            let key = format!("transport.{domain:?}");
            let transport: Transport = value.parse().map_err(|e: String| bad(&key, e))?;
            if domain == "*" {
                default = transport;
            } else if domain.is_empty() || domain.contains(['@', ' ', '*']) {
                return Err(bad(&key, "expected a domain name or \"*\""));
            } else {
                by_domain.insert(normalize(domain), transport);
            }
        }
        Ok(Self { by_domain, default })
    }

    /// Where mail for `domain` goes; `local`: one of `local_domains`.
    pub fn route(&self, domain: &str, local: bool) -> Transport {
        match self.by_domain.get(&normalize(domain)) {
            Some(t) => t.clone(),
            None if local => Transport::Grpc(None),
            None => self.default.clone(),
        }
    }

    /// The gRPC URLs other than the MDA's that some domain is routed to.
    pub fn grpc_urls(&self) -> impl Iterator<Item = &str> {
        self.by_domain
            .values()
            .chain(std::iter::once(&self.default))
            .filter_map(|t| match t {
                Transport::Grpc(Some(url)) => Some(url.as_str()),
                _ => None,
            })
    }
}

/// The `[smtp] trusted_networks` list.
#[derive(Debug, Clone, Default)]
pub struct Networks(Vec<IpNet>);

/// An address mail must not be sent to unless allowed: not a public unicast
/// one (private RFC 1918 / unique local, loopback, link-local, shared
/// 100.64/10, unspecified, broadcast, multicast, documentation; an
/// IPv4-mapped IPv6 address counts as its IPv4 address).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] == 0
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local()
            }
        },
    }
}

impl Networks {
    pub fn new(list: &[String]) -> Result<Self, RouteError> {
        list.iter()
            .map(|s| {
                let s = s.trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        bad(
                            "smtp.trusted_networks",
                            format!("{s:?} is not a network (e.g. \"127.0.0.0/8\", \"::1/128\")"),
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(Networks)
    }

    /// The network that holds `ip` (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn find(&self, ip: IpAddr) -> Option<&IpNet> {
        let ip = ip.to_canonical();
        self.0.iter().find(|n| n.contains(&ip))
    }
}

/// Everything `routing` checks at startup, and a gRPC client for each MDA
/// that a transport names.
pub struct Routing {
    pub routes: Routes,
    pub trusted: Networks,
    /// Internal addresses that address literals and MX answers may still
    /// reach (`relay.allow_networks`).
    pub allowed_internal: Networks,
    /// The MDA at `mda.url` (`grpc:`).
    pub mda: DeliveryClient<Channel>,
    /// The others (`grpc:URL`), by URL.
    others: HashMap<String, DeliveryClient<Channel>>,
}

impl Routing {
    /// May mail be sent to `ip` found from a recipient's domain (literal or MX)?
    pub fn may_connect(&self, ip: IpAddr) -> bool {
        !is_internal(ip) || self.allowed_internal.find(ip).is_some()
    }

    pub fn new(config: &MtaConfig, mda: DeliveryClient<Channel>) -> Result<Self, RouteError> {
        let routes = Routes::new(&config.transport)?;
        let mut others = HashMap::new();
        for url in routes.grpc_urls() {
            let channel =
                facteur_daemon::grpc::channel(url, config.relay.source_address, &config.grpc_tls)
                    .map_err(|e| bad("transport", e.to_string()))?;
            others.insert(url.to_owned(), DeliveryClient::new(channel));
        }
        Ok(Self {
            routes,
            trusted: Networks::new(&config.smtp.trusted_networks)?,
            allowed_internal: Networks::new(&config.relay.allow_networks)?,
            mda,
            others,
        })
    }

    /// The `Delivery` client of a `grpc:` transport (every URL of the table has one).
    pub fn delivery(&self, url: Option<&str>) -> Option<DeliveryClient<Channel>> {
        match url {
            None => Some(self.mda.clone()),
            Some(u) => self.others.get(u).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn transports_parse_and_print_back() {
        for s in [
            "grpc:",
            "grpc:http://127.0.0.1:7024",
            "lmtp:127.0.0.3:2400",
            "lmtp:[::1]:24",
            "smtp:relay.example.org:587",
            "mx:",
        ] {
            let t: Transport = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
        }
        for s in [
            "",
            "lmtp:",
            "lmtp:host",
            "lmtp:host:0",
            "lmtp::25",
            "smtp:h:99999",
            "mx:x",
            "grpc:h:1",
            "pipe:x",
            "lmtp:::1:24",
        ] {
            assert!(s.parse::<Transport>().is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn local_domains_default_to_grpc_others_to_star_or_mx() {
        let r = Routes::new(&table(&[])).unwrap();
        assert_eq!(r.route("paris.test", true), Transport::Grpc(None));
        assert_eq!(r.route("elsewhere.example", false), Transport::Mx);
        let r = Routes::new(&table(&[
            ("*", "smtp:10.0.0.1:25"),
            ("Lyon.Test", "lmtp:127.0.0.3:2400"),
        ]))
        .unwrap();
        assert_eq!(r.route("paris.test", true), Transport::Grpc(None));
        assert_eq!(
            r.route("lyon.test.", true).to_string(),
            "lmtp:127.0.0.3:2400"
        );
        assert_eq!(r.route("x.example", false).to_string(), "smtp:10.0.0.1:25");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let e = Routes::new(&table(&[("lyon.test", "lmtp:nowhere")])).unwrap_err();
        assert!(e.to_string().starts_with("transport.\"lyon.test\":"), "{e}");
        let e = Networks::new(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(e.to_string().starts_with("smtp.trusted_networks:"), "{e}");
    }

    #[test]
    fn networks_match_v4_v6_and_bare_addresses() {
        let n = Networks::new(&["127.85.0.0/24".into(), "::1".into(), "10.1.2.3".into()]).unwrap();
        assert!(n.find("127.85.0.9".parse().unwrap()).is_some());
        assert!(n.find("127.86.0.9".parse().unwrap()).is_none());
        assert!(n.find("::1".parse().unwrap()).is_some());
        assert!(n.find("::ffff:127.85.0.1".parse().unwrap()).is_some());
        assert!(n.find("10.1.2.3".parse().unwrap()).is_some());
        assert!(n.find("10.1.2.4".parse().unwrap()).is_none());
        assert!(
            Networks::default()
                .find("127.0.0.1".parse().unwrap())
                .is_none()
        );
    }
}

#[cfg(test)]
mod internal_tests {
    use super::is_internal;

    #[test]
    fn internal_addresses_are_known() {
        for ip in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["192.0.3.1", "8.8.8.8", "2a00:1450::1", "::ffff:8.8.8.8"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }
}
