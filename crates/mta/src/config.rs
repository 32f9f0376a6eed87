//! The MTA's configuration (see `deploy/facteur-mta.toml` for a commented sample).

use std::collections::BTreeMap;
use std::path::PathBuf;

use facteur_daemon::grpc::GrpcTls;
use facteur_daemon::listener::ConnLimits;
use facteur_daemon::tls::TlsFiles;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct MtaConfig {
    /// This MTA's name: greetings, EHLO, Received `by`, e.g. `mail.paris.test`.
    pub hostname: String,
    /// How the log is written (`[log] format = "text" | "json"`).
    pub log: facteur_daemon::logging::LogConfig,
    /// Per-connection transcripts (`[transcript]`, off by default; the dev stack
    /// turns them on for `cargo xtask demo` and `facteur-mua trace`).
    pub transcript: facteur_daemon::transcript::TranscriptConfig,
    /// HTTP listener for `GET /metrics` (Prometheus) and `GET /healthz`;
    /// "" (default) disables both.
    pub metrics_listen: String,
    /// Domains whose mail goes to our MDA; port 25 takes mail for these only.
    pub local_domains: Vec<String>,
    /// Queue database and spool.
    pub data_dir: PathBuf,
    /// Largest message accepted, in bytes (announced in SIZE).
    pub max_message_size: u64,
    /// A message with more `Received:` fields than this is in a loop and is
    /// refused (RFC 5321 §6.3; Postfix's `hopcount_limit`).
    pub max_hops: usize,
    pub smtp: SmtpConfig,
    pub grpc: GrpcConfig,
    /// Mutual TLS on gRPC (`ca`, `cert`, `key`); unset: plaintext, loopback only.
    pub grpc_tls: GrpcTls,
    pub mda: MdaLink,
    pub dns: DnsConfig,
    pub relay: RelayConfig,
    pub queue: QueueConfig,
    /// Where mail for a domain goes (Postfix's `transport_maps`): domain →
    /// `grpc:`, `grpc:http://host:port`, `lmtp:host:port`, `smtp:host:port` or
    /// `mx:`; `"*"` is the default for non-local domains (see `routing`).
    pub transport: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct SmtpConfig {
    /// Inbound SMTP from other MTAs; "" disables.
    pub listen: String,
    /// Certificate for STARTTLS; STARTTLS is offered when set.
    pub tls: TlsFiles,
    pub max_recipients: usize,
    pub max_line: usize,
    /// Errors (bad commands, refused recipients) before the connection is
    /// closed with 421 (Postfix's `smtpd_hard_error_limit`).
    pub max_errors: usize,
    /// Errors after which each further one waits `error_sleep_ms` more
    /// (`smtpd_soft_error_limit`, `smtpd_error_sleep_time`): RCPT harvesting
    /// is slowed, then cut.
    pub soft_error_limit: usize,
    pub error_sleep_ms: u64,
    /// Clients from these networks (CIDR, or a bare address) may relay to any
    /// domain (Postfix's `mynetworks`).
    pub trusted_networks: Vec<String>,
    /// Offer AUTH PLAIN/LOGIN after STARTTLS; an authenticated client may relay
    /// (Postfix's `permit_sasl_authenticated`).
    pub auth: bool,
    /// The `Auth` service that checks those passwords; "" = `mda.url`.
    pub auth_url: String,
    /// A MAIL FROM in one of `local_domains` is refused (`550 5.7.1`) unless
    /// the client is in `trusted_networks` or authenticated: our own users
    /// submit through the MSA, so a stranger claiming to be one is forging
    /// (Postfix's `reject_sender_login_mismatch` on port 25).
    pub reject_spoofed_local_senders: bool,
    #[serde(flatten)]
    pub limits: ConnLimits,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct GrpcConfig {
    /// The `Relay` service the MSA submits to.
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct MdaLink {
    /// The MDA's `Delivery` service, e.g. `http://127.0.0.1:7024`
    /// (`https://mda.paris.test:7024` with `[grpc_tls]`).
    pub url: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default)]
pub struct DnsConfig {
    /// Name servers as `ip:port`; empty uses the system's resolv.conf.
    pub nameservers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RelayConfig {
    /// The port other MTAs listen on (25; 2525 in the dev stack).
    pub port: u16,
    /// CA bundle to verify other MTAs' certificates; empty: STARTTLS is
    /// opportunistic (encrypt, do not verify), as Postfix's `may` level.
    pub tls_ca: PathBuf,
    /// Refuse to relay in the clear (Postfix's `encrypt` level).
    pub require_tls: bool,
    /// Local address to send from (to other MTAs and to the MDA); none: the system's choice.
    pub source_address: Option<std::net::IpAddr>,
    /// Seconds to wait for a reply (RFC 5321 §4.5.3.2 suggests minutes).
    pub command_timeout_secs: u64,
    /// Seconds the TLS handshake after STARTTLS may take.
    pub tls_handshake_timeout_secs: u64,
    /// Private, loopback and link-local addresses (and the like) are never
    /// connected to for an address literal (`user@[10.0.0.1]`) or an MX
    /// answer, so a user or a DNS zone cannot point the MTA into the internal
    /// network; these networks are the exceptions (the dev stack's loopback,
    /// a compose network). Transports (`smtp:`, `lmtp:`) are the operator's
    /// own and are not checked.
    pub allow_networks: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct QueueConfig {
    /// Delays between attempts, in seconds; the last one repeats.
    pub retry_secs: Vec<u64>,
    /// Give up and bounce after this long (RFC 5321 §4.5.4.1: 4-5 days).
    pub max_age_secs: u64,
    /// Messages delivered at once.
    pub concurrency: usize,
    /// New mail is refused with 452 4.3.1 while less than this many bytes are
    /// free on the queue's disk, so what was acknowledged keeps room to be
    /// delivered (Postfix's `queue_minfree`). 0 disables the check.
    pub min_free_bytes: u64,
}

impl Default for MtaConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            log: facteur_daemon::logging::LogConfig::default(),
            transcript: facteur_daemon::transcript::TranscriptConfig::default(),
            metrics_listen: String::new(),
            local_domains: Vec::new(),
            data_dir: PathBuf::from("/var/lib/facteur/mta"),
            max_message_size: 50 * 1024 * 1024,
            max_hops: 50,
            smtp: SmtpConfig::default(),
            grpc: GrpcConfig::default(),
            grpc_tls: GrpcTls::default(),
            mda: MdaLink::default(),
            dns: DnsConfig::default(),
            relay: RelayConfig::default(),
            queue: QueueConfig::default(),
            transport: BTreeMap::new(),
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:25".into(),
            tls: TlsFiles::default(),
            max_recipients: 1000,
            max_line: 2048,
            max_errors: 10,
            soft_error_limit: 3,
            error_sleep_ms: 500,
            trusted_networks: Vec::new(),
            auth: false,
            auth_url: String::new(),
            reject_spoofed_local_senders: true,
            limits: ConnLimits::default(),
        }
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7025".into(),
        }
    }
}

impl Default for MdaLink {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:7024".into(),
        }
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            port: 25,
            tls_ca: PathBuf::new(),
            require_tls: false,
            source_address: None,
            command_timeout_secs: 300,
            tls_handshake_timeout_secs: 30,
            allow_networks: Vec::new(),
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            retry_secs: vec![60, 300, 900, 1800, 3600, 7200, 14400],
            max_age_secs: 5 * 24 * 3600,
            concurrency: 16,
            min_free_bytes: 64 * 1024 * 1024,
        }
    }
}

impl MtaConfig {
    /// Is `domain` one of ours? (domains compare case-insensitively)
    pub fn is_local(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.');
        self.local_domains
            .iter()
            .any(|d| d.trim_end_matches('.').eq_ignore_ascii_case(domain))
    }
}

impl MtaConfig {
    /// The startup checks that need no IO (`config check` runs them too).
    pub fn check(&self) -> Result<(), String> {
        crate::routing::Routes::new(&self.transport).map_err(|e| e.to_string())?;
        crate::routing::Networks::new(&self.smtp.trusted_networks).map_err(|e| e.to_string())?;
        crate::routing::Networks::new(&self.relay.allow_networks)
            .map_err(|e| format!("relay.allow_networks: {e}"))?;
        if self.smtp.auth && (!self.smtp.tls.is_set() || self.smtp.listen.is_empty()) {
            return Err(
                "smtp.auth needs smtp.listen and smtp.tls (AUTH is offered after STARTTLS only)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The addresses it listens on, by key ("" is off).
    pub fn listens(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("smtp.listen", &self.smtp.listen),
            ("grpc.listen", &self.grpc.listen),
        ]
    }
}
