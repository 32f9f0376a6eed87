//! facteur-devdns: the dev stack's authoritative DNS server (MX, A, SPF TXT per dev domain).
//!
//! For each [`Zone`] it serves, with TTL 60:
//! `<domain>. MX 10 mail.<domain>.`, `A <ip>` for both `<domain>.` and
//! `mail.<domain>.`, `TXT "v=spf1 ip4:<ip> -all"`, and SOA/NS. Unknown names in a
//! zone get NXDOMAIN, names outside every zone REFUSED.

mod server;
mod zone;

pub use server::{serve, spawn};
pub use zone::{MX_PREFERENCE, TTL, Zone, ZoneError};
