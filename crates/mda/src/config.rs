//! The MDA's configuration (see `deploy/facteur-mda.toml` for a commented sample).

use std::path::PathBuf;

use facteur_daemon::listener::ConnLimits;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MdaConfig {
    /// The name in LMTP greetings and logs, e.g. `mail.paris.test`.
    pub hostname: String,
    /// Where the mailbox store lives (only the MDA opens it).
    pub data_dir: PathBuf,
    /// Largest message accepted, in bytes, trace headers included: keep it a
    /// little above the MTA's limit, which counts only what the sender sent.
    pub max_message_size: u64,
    pub grpc: GrpcConfig,
    pub lmtp: LmtpConfig,
    pub store: StoreConfig,
    /// Delivery aliases: `"postmaster@example.org" = "alice@example.org"`. RFC 5321
    /// §4.5.1 wants every domain to take mail for postmaster.
    pub aliases: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    /// New mail is refused with a temporary error (`452 4.3.1`) when fewer
    /// bytes than this are free on the store's disk, like Postfix's
    /// `queue_minfree`; flag changes and expunges still work.
    pub min_free_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            min_free_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GrpcConfig {
    /// Delivery, Mailbox and Auth services.
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LmtpConfig {
    /// LMTP listener (RFC 2033), e.g. for Postfix's `lmtp:` transport; "" disables.
    pub listen: String,
    pub max_recipients: usize,
    pub max_line: usize,
    #[serde(flatten)]
    pub limits: ConnLimits,
}

impl Default for MdaConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            data_dir: PathBuf::from("/var/lib/facteur/mda"),
            max_message_size: 51 * 1024 * 1024,
            grpc: GrpcConfig::default(),
            lmtp: LmtpConfig::default(),
            store: StoreConfig::default(),
            aliases: std::collections::BTreeMap::new(),
        }
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7024".into(),
        }
    }
}

impl Default for LmtpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:24".into(),
            max_recipients: 1000,
            max_line: 2048,
            limits: ConnLimits::default(),
        }
    }
}
