//! The MDA's configuration (see `deploy/facteur-mda.toml` for a commented sample).

use std::path::PathBuf;

use facteur_daemon::grpc::GrpcTls;
use facteur_daemon::listener::ConnLimits;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct MdaConfig {
    /// The name in LMTP greetings and logs, e.g. `mail.paris.test`.
    pub hostname: String,
    /// How the log is written (`[log] format = "text" | "json"`).
    pub log: facteur_daemon::logging::LogConfig,
    /// Per-connection transcripts (`[transcript]`, off by default; the dev stack
    /// turns them on for `cargo xtask demo` and `facteur-mua trace`).
    pub transcript: facteur_daemon::transcript::TranscriptConfig,
    /// HTTP listener for `GET /metrics` (Prometheus) and `GET /healthz`;
    /// "" (default) disables both.
    pub metrics_listen: String,
    /// Where the mailbox store lives (only the MDA opens it).
    pub data_dir: PathBuf,
    /// Largest message accepted, in bytes, trace headers included: keep it a
    /// little above the MTA's limit, which counts only what the sender sent.
    pub max_message_size: u64,
    pub grpc: GrpcConfig,
    /// Mutual TLS on gRPC (`ca`, `cert`, `key`); unset: plaintext, loopback only.
    pub grpc_tls: GrpcTls,
    pub lmtp: LmtpConfig,
    pub store: StoreConfig,
    /// Delivery aliases: `"postmaster@example.org" = "alice@example.org"`. RFC 5321
    /// §4.5.1 wants every domain to take mail for postmaster.
    pub aliases: std::collections::BTreeMap<String, String>,
    pub auth: AuthConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct StoreConfig {
    /// New mail is refused with a temporary error (`452 4.3.1`) when fewer
    /// bytes than this are free on the store's disk, like Postfix's
    /// `queue_minfree`; flag changes and expunges still work.
    pub min_free_bytes: u64,
    /// When set, every message filed (gRPC `Delivery` and LMTP) goes into the
    /// Maildir++ tree `<maildir>/<domain>/<localpart>/` instead of the store's
    /// mailboxes (Dovecot: `mail_location = maildir:<maildir>/%d/%n`); the
    /// `Mailbox` service then refuses every call. Accounts stay in the store.
    pub maildir: PathBuf,
    /// Each user's mailboxes may hold this many bytes in all (0: no limit); a
    /// message that would go past it is refused `552 5.2.2` (RFC 3463 mailbox
    /// full; the MTA bounces it), as Dovecot's quota plugin does over LMTP.
    /// Not applied to `maildir` filing.
    pub quota_bytes: u64,
    /// Seconds between collections of the blobs no message references any
    /// more (expunged, deleted mailboxes); 0: never (`facteur-mda store gc`
    /// still runs one). Dovecot's `doveadm purge`, on a timer.
    pub gc_interval_secs: u64,
    /// A blob unreferenced but put less than this long ago is left: the bytes
    /// of a filing on its way, or of one that is retried.
    pub gc_grace_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            min_free_bytes: 64 * 1024 * 1024,
            maildir: PathBuf::new(),
            quota_bytes: 0,
            gc_interval_secs: 3600,
            gc_grace_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct GrpcConfig {
    /// Delivery, Mailbox and Auth services.
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
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
            log: facteur_daemon::logging::LogConfig::default(),
            transcript: facteur_daemon::transcript::TranscriptConfig::default(),
            metrics_listen: String::new(),
            data_dir: PathBuf::from("/var/lib/facteur/mda"),
            max_message_size: 51 * 1024 * 1024,
            grpc: GrpcConfig::default(),
            grpc_tls: GrpcTls::default(),
            lmtp: LmtpConfig::default(),
            store: StoreConfig::default(),
            aliases: std::collections::BTreeMap::new(),
            auth: AuthConfig::default(),
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

/// `[auth]`: how `Auth.Verify` spends memory and CPU (see `crate::auth`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct AuthConfig {
    /// argon2 threads, each owning one reusable memory block; 0 = one per core.
    pub workers: usize,
    /// Verifications waiting for a worker; past this `Verify` answers
    /// "unavailable" (a temporary failure) instead of queueing without bound.
    pub queue: usize,
    /// Stored hashes asking for more argon2 memory than this (KiB) are refused
    /// as corrupt, so one bad record cannot make a worker allocate gigabytes.
    pub max_hash_memory_kib: u32,
    /// Verdicts kept, like Dovecot's `auth_cache_size` (in entries); 0 disables.
    pub cache_size: usize,
    /// Seconds a successful verification is remembered (`auth_cache_ttl`).
    pub cache_ttl_secs: u64,
    /// Seconds a failed one is remembered (`auth_cache_negative_ttl`).
    pub cache_negative_ttl_secs: u64,
    pub throttle: ThrottleConfig,
}

/// `[auth.throttle]`: failed logins across every connection and agent.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ThrottleConfig {
    /// Failures from one IP address (IPv6: one /64) within a window after which
    /// that address is refused until the window ends; 0 disables.
    pub ip_failures: u32,
    /// Failures for one user within a window after which that user is refused
    /// until the window ends; 0 disables.
    pub user_failures: u32,
    /// Length of the window, counted from its first failure, in seconds.
    pub window_secs: u64,
    /// Addresses and users tracked at most (each); the oldest are forgotten first.
    pub max_entries: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            queue: 1024,
            max_hash_memory_kib: 256 * 1024,
            cache_size: 10_000,
            cache_ttl_secs: 3600,
            cache_negative_ttl_secs: 3600,
            throttle: ThrottleConfig::default(),
        }
    }
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            ip_failures: 20,
            user_failures: 50,
            window_secs: 600,
            max_entries: 100_000,
        }
    }
}

impl MdaConfig {
    /// The startup checks that need no IO (`config check` runs them too).
    pub fn check(&self) -> Result<(), String> {
        if self.grpc.listen.is_empty() {
            return Err("grpc.listen is required (Delivery, Mailbox and Auth)".into());
        }
        Ok(())
    }

    /// The addresses it listens on, by key ("" is off).
    pub fn listens(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("grpc.listen", &self.grpc.listen),
            ("lmtp.listen", &self.lmtp.listen),
        ]
    }
}
