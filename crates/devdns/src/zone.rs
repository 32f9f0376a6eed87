//! Dev zones: parsing `domain=ip` and building each domain's in-memory authority.

use std::net::Ipv4Addr;
use std::str::FromStr;

use hickory_proto::rr::rdata::{A, MX, NS, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record};
use hickory_server::authority::ZoneType;
use hickory_server::store::in_memory::InMemoryAuthority;

/// TTL of every record served.
pub const TTL: u32 = 60;
/// Preference of the single MX record.
pub const MX_PREFERENCE: u16 = 10;
/// SOA serial of every zone (zones never change while the server runs).
const SERIAL: u32 = 1;

/// One dev mail domain and the IPv4 address its agents listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The mail domain, e.g. `paris.test` (a trailing dot is accepted).
    pub domain: String,
    /// Address of `mail.<domain>` (and of `<domain>` itself).
    pub ip: Ipv4Addr,
}

/// Why a zone could not be parsed or built.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// The `--zone` argument has no `=`.
    #[error("zone {0:?} is not of the form domain=ipv4")]
    Syntax(String),
    /// The address part is not an IPv4 address.
    #[error("zone {zone:?}: {ip:?} is not an IPv4 address")]
    Ip {
        /// The whole argument.
        zone: String,
        /// The address part.
        ip: String,
    },
    /// The domain is empty or not a valid DNS name.
    #[error("invalid domain {domain:?}: {reason}")]
    Domain {
        /// The domain as given.
        domain: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The same domain was given twice.
    #[error("domain {0} given more than once")]
    Duplicate(String),
    /// hickory refused a record (should not happen).
    #[error("zone {domain}: {reason}")]
    Build {
        /// The zone's domain.
        domain: String,
        /// hickory's message.
        reason: String,
    },
}

impl FromStr for Zone {
    type Err = ZoneError;

    /// Parses `paris.test=127.0.0.2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (domain, ip) = s
            .split_once('=')
            .ok_or_else(|| ZoneError::Syntax(s.to_owned()))?;
        let ip = ip.trim().parse().map_err(|_| ZoneError::Ip {
            zone: s.to_owned(),
            ip: ip.to_owned(),
        })?;
        let zone = Zone {
            domain: domain.trim().to_owned(),
            ip,
        };
        zone.origin()?;
        Ok(zone)
    }
}

impl Zone {
    /// The zone's apex as a fully qualified, lower-cased name.
    pub fn origin(&self) -> Result<Name, ZoneError> {
        let bare = self.domain.trim_end_matches('.');
        let invalid = |reason: String| ZoneError::Domain {
            domain: self.domain.clone(),
            reason,
        };
        if bare.is_empty() {
            return Err(invalid("empty domain".to_owned()));
        }
        let name = Name::from_ascii(format!("{}.", bare.to_ascii_lowercase()))
            .map_err(|e| invalid(e.to_string()))?;
        if name.is_wildcard() {
            return Err(invalid("wildcards are not supported".to_owned()));
        }
        Ok(name)
    }

    /// `mail.<domain>.`
    pub fn mail_host(&self) -> Result<Name, ZoneError> {
        let origin = self.origin()?;
        Name::from_ascii("mail")
            .and_then(|mail| mail.append_domain(&origin))
            .map_err(|e| ZoneError::Domain {
                domain: self.domain.clone(),
                reason: e.to_string(),
            })
    }

    /// Every record of the zone: SOA, NS, MX, TXT (SPF) and the two A records.
    pub fn records(&self) -> Result<Vec<Record>, ZoneError> {
        let origin = self.origin()?;
        let mail = self.mail_host()?;
        let hostmaster = Name::from_ascii("hostmaster")
            .and_then(|h| h.append_domain(&origin))
            .map_err(|e| ZoneError::Domain {
                domain: self.domain.clone(),
                reason: e.to_string(),
            })?;
        let soa = SOA::new(mail.clone(), hostmaster, SERIAL, 3600, 600, 86400, TTL);
        let spf = format!("v=spf1 ip4:{} -all", self.ip);
        let rr = |name: &Name, rdata: RData| Record::from_rdata(name.clone(), TTL, rdata);
        Ok(vec![
            rr(&origin, RData::SOA(soa)),
            rr(&origin, RData::NS(NS(mail.clone()))),
            rr(&origin, RData::MX(MX::new(MX_PREFERENCE, mail.clone()))),
            rr(&origin, RData::TXT(TXT::new(vec![spf]))),
            rr(&origin, RData::A(A(self.ip))),
            rr(&mail, RData::A(A(self.ip))),
        ])
    }

    /// The authoritative in-memory zone for this domain.
    pub fn authority(&self) -> Result<InMemoryAuthority, ZoneError> {
        let origin = self.origin()?;
        let mut authority = InMemoryAuthority::empty(origin, ZoneType::Primary, false);
        for record in self.records()? {
            let what = format!("{} {}", record.name(), record.record_type());
            if !authority.upsert_mut(record, SERIAL) {
                return Err(ZoneError::Build {
                    domain: self.domain.clone(),
                    reason: format!("could not insert {what}"),
                });
            }
        }
        Ok(authority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_domain_equals_ip() {
        let zone: Zone = "Paris.Test.=127.0.0.2".parse().unwrap();
        assert_eq!(zone.ip, Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(zone.origin().unwrap().to_string(), "paris.test.");
        assert_eq!(zone.mail_host().unwrap().to_string(), "mail.paris.test.");
    }

    #[test]
    fn rejects_bad_zones() {
        for bad in [
            "paris.test",
            "paris.test=",
            "paris.test=::1",
            "=127.0.0.2",
            ".=127.0.0.2",
            "*.test=127.0.0.2",
            "a..b=127.0.0.2",
        ] {
            assert!(bad.parse::<Zone>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn zone_has_all_records() {
        let zone: Zone = "lyon.test=127.0.0.3".parse().unwrap();
        let records = zone.records().unwrap();
        let text: Vec<String> = records.iter().map(|r| r.to_string()).collect();
        let all = text.join("\n");
        assert!(all.contains("MX 10 mail.lyon.test."), "{all}");
        assert!(all.contains("v=spf1 ip4:127.0.0.3 -all"), "{all}");
        assert!(records.iter().all(|r| r.ttl() == TTL));
        zone.authority().unwrap();
    }
}
