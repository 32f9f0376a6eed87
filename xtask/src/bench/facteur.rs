//! facteur's side of the bench: the dev stack's own launcher (`StackSpec`)
//! with one domain, `bench.test`, on 127.0.0.10 (DNS on 127.0.0.9), the bench's
//! users and listener limits high enough for thousands of sessions, started
//! from the chosen build's binaries in a fresh directory of its own.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use facteur_tests::{Domain, Stack, StackSpec};

/// The bench domain's agents (away from the dev stack on 127.0.0.1-3).
pub(crate) const IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 10);
pub(crate) const DOMAIN: &str = "bench.test";
/// Connections per listener and per IP the bench may open.
const LIMIT: usize = 20_000;

pub(crate) fn spec(var: PathBuf, bin_dir: PathBuf, users: &[String]) -> StackSpec {
    let mut spec = StackSpec::dev(var, bin_dir, 0);
    spec.domains = vec![Domain {
        name: DOMAIN.into(),
        ip: IP,
    }];
    spec.dns_ip = Ipv4Addr::new(127, 0, 0, 9);
    spec.extra_users = users.to_vec();
    spec.listener_limits = Some((LIMIT, LIMIT));
    // Production's default: no transcripts (they cost a little per connection).
    spec.transcripts = false;
    spec
}

/// Lay out a fresh `var` and start the agents.
pub(crate) fn start(var: &Path, bin_dir: PathBuf, users: &[String]) -> anyhow::Result<Stack> {
    if var.exists() {
        std::fs::remove_dir_all(var)?;
    }
    let spec = spec(var.to_owned(), bin_dir, users);
    spec.prepare()?;
    spec.start()
}

pub(crate) fn addr(stack: &Stack, port: fn(&facteur_tests::Ports) -> u16) -> SocketAddr {
    SocketAddr::from((IP, port(&stack.spec.ports)))
}

/// The processes whose memory counts for IMAP sessions: the MAA and the MDA.
pub(crate) fn imap_pids(stack: &Stack) -> Vec<u32> {
    ["maa", "mda"]
        .iter()
        .filter_map(|a| stack.pid(DOMAIN, a).ok())
        .collect()
}
