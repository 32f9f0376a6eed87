//! Where mail for a domain goes: MX lookup (RFC 5321 §5.1) with hickory-resolver,
//! implicit MX when there is none, and null MX (RFC 7505) as a permanent failure.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The domain cannot receive mail (NXDOMAIN, null MX): bounce.
    #[error("{0}")]
    Permanent(String),
    /// Try again later.
    #[error("{0}")]
    Transient(String),
}

/// One mail exchanger, in preference order.
#[derive(Debug, Clone)]
pub struct Exchanger {
    pub host: String,
    pub addrs: Vec<IpAddr>,
}

pub struct MxResolver {
    resolver: Resolver<TokioConnectionProvider>,
}

impl MxResolver {
    /// A resolver asking `nameservers` (`ip:port`), or the system's when empty.
    pub fn new(nameservers: &[String]) -> anyhow::Result<Self> {
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(5);
        opts.attempts = 2;
        let resolver = if nameservers.is_empty() {
            Resolver::builder_tokio()?.with_options(opts).build()
        } else {
            let mut config = ResolverConfig::from_parts(None, vec![], vec![]);
            for ns in nameservers {
                let addr: SocketAddr = ns
                    .parse()
                    .map_err(|e| anyhow::anyhow!("bad name server {ns:?}: {e}"))?;
                config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
            }
            opts.use_hosts_file = ResolveHosts::Never;
            opts.ndots = 0;
            Resolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .build()
        };
        Ok(Self { resolver })
    }

    /// The addresses of `host`, a configured next hop (no MX lookup). Any
    /// failure is transient: a configured host that does not resolve is a
    /// setup to fix, and the mail waits for it instead of bouncing.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        self.resolver
            .lookup_ip(fqdn.as_str())
            .await
            .map(|ips| ips.iter().collect())
            .map_err(|e| DnsError::Transient(format!("address of {host}: {e}")))
    }

    /// The exchangers for `domain`, most preferred first.
    pub async fn exchangers(&self, domain: &str) -> Result<Vec<Exchanger>, DnsError> {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let hosts: Vec<String> = match self.resolver.mx_lookup(fqdn.as_str()).await {
            Ok(mx) => {
                let mut records: Vec<_> = mx
                    .iter()
                    .map(|m| (m.preference(), m.exchange().to_utf8()))
                    .collect();
                records.sort_by_key(|(pref, _)| *pref);
                // RFC 7505: a single MX of "." means the domain takes no mail.
                if records.len() == 1 && records[0].1 == "." {
                    return Err(DnsError::Permanent(format!(
                        "{domain} does not accept mail (null MX)"
                    )));
                }
                records.into_iter().map(|(_, h)| h).collect()
            }
            Err(e) if e.is_nx_domain() => {
                return Err(DnsError::Permanent(format!("{domain}: no such domain")));
            }
            // RFC 5321 §5.1: no MX, use the domain itself (implicit MX).
            Err(e) if e.is_no_records_found() => vec![fqdn.clone()],
            Err(e) => return Err(DnsError::Transient(format!("MX lookup for {domain}: {e}"))),
        };
        let mut out = Vec::new();
        let mut last_error = None;
        for host in hosts {
            match self.resolver.lookup_ip(host.as_str()).await {
                Ok(ips) => out.push(Exchanger {
                    host: host.trim_end_matches('.').to_owned(),
                    addrs: ips.iter().collect(),
                }),
                Err(e) => last_error = Some(format!("address of {host}: {e}")),
            }
        }
        if out.is_empty() {
            return Err(DnsError::Transient(
                last_error.unwrap_or_else(|| format!("no address for {domain}")),
            ));
        }
        Ok(out)
    }
}
