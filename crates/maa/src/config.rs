//! The MAA's configuration (see `deploy/facteur-maa.toml` for a commented sample).

use facteur_daemon::grpc::GrpcTls;
use facteur_daemon::listener::ConnLimits;
use facteur_daemon::tls::TlsFiles;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct MaaConfig {
    /// This host's name, in greetings.
    pub hostname: String,
    /// How the log is written (`[log] format = "text" | "json"`).
    pub log: facteur_daemon::logging::LogConfig,
    /// Per-connection transcripts (`[transcript]`, off by default; the dev stack
    /// turns them on for `cargo xtask demo` and `facteur-mua trace`).
    pub transcript: facteur_daemon::transcript::TranscriptConfig,
    /// HTTP listener for `GET /metrics` (Prometheus) and `GET /healthz`;
    /// "" (default) disables both.
    pub metrics_listen: String,
    /// The MDA's `Mailbox` and `Auth` services.
    pub mda_url: String,
    /// Mutual TLS on gRPC (`ca`, `cert`, `key`); unset: plaintext, loopback only.
    pub grpc_tls: GrpcTls,
    /// Certificate and key: STLS/STARTTLS and the implicit-TLS ports; passwords
    /// are accepted only over TLS.
    pub tls: TlsFiles,
    /// A passwd-file (Dovecot's format): when set, logins are checked against it
    /// instead of the MDA's `Auth` service; "" (default): the MDA checks.
    pub passwd_file: String,
    /// Milliseconds to wait before answering a failed login.
    pub auth_failure_delay_ms: u64,
    /// Failed logins per connection before it is closed.
    pub max_auth_failures: u32,
    pub pop3: Pop3Config,
    pub imap: ImapListen,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Pop3Config {
    /// POP3 with STLS (110); "" disables.
    pub listen: String,
    /// POP3 over implicit TLS (995); "" disables.
    pub tls_listen: String,
    /// Longest command line (RFC 2449 §4 says 255; clients with long AUTH lines need more).
    pub max_line: usize,
    /// Bad commands before the connection is closed.
    pub max_errors: u32,
    /// Seconds a maildrop lock lives unless the session refreshes it.
    pub lock_ttl_secs: u64,
    #[serde(flatten)]
    pub limits: ConnLimits,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ImapListen {
    /// IMAP with STARTTLS (143); "" disables.
    pub listen: String,
    /// IMAP over implicit TLS (993); "" disables.
    pub tls_listen: String,
    /// Largest literal a client may send once logged in.
    pub max_literal: u32,
    /// Largest literal before login (refused with BAD before it is read).
    pub max_literal_pre_auth: u32,
    /// Largest command before login, literals included.
    pub max_command_pre_auth: u32,
    /// Invalid commands in a row before the connection is closed.
    pub max_bad_commands: u32,
    #[serde(flatten)]
    pub limits: ConnLimits,
}

impl Default for MaaConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            log: facteur_daemon::logging::LogConfig::default(),
            transcript: facteur_daemon::transcript::TranscriptConfig::default(),
            metrics_listen: String::new(),
            mda_url: "http://127.0.0.1:7024".into(),
            grpc_tls: GrpcTls::default(),
            tls: TlsFiles::default(),
            passwd_file: String::new(),
            auth_failure_delay_ms: 1000,
            max_auth_failures: 3,
            pop3: Pop3Config::default(),
            imap: ImapListen::default(),
        }
    }
}

impl Default for Pop3Config {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:110".into(),
            tls_listen: "0.0.0.0:995".into(),
            max_line: 1024,
            max_errors: 10,
            lock_ttl_secs: 900,
            limits: ConnLimits {
                // RFC 1939 §3: at least 10 minutes of inactivity before autologout.
                idle_timeout_secs: 600,
                ..ConnLimits::default()
            },
        }
    }
}

impl Default for ImapListen {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:143".into(),
            tls_listen: "0.0.0.0:993".into(),
            max_literal: 25 * 1024 * 1024,
            max_literal_pre_auth: 8 * 1024,
            max_command_pre_auth: 16 * 1024,
            max_bad_commands: 20,
            limits: ConnLimits {
                // RFC 9051 §5.4: autologout after at least 30 minutes.
                idle_timeout_secs: 1800,
                ..ConnLimits::default()
            },
        }
    }
}

impl MaaConfig {
    /// The startup checks that need no IO (`config check` runs them too).
    pub fn check(&self) -> Result<(), String> {
        for (key, addr) in [
            ("pop3.tls_listen", &self.pop3.tls_listen),
            ("imap.tls_listen", &self.imap.tls_listen),
        ] {
            if !addr.is_empty() && !self.tls.is_set() {
                return Err(format!("{key} needs tls.cert and tls.key"));
            }
        }
        if self.listens().iter().all(|(_, a)| a.is_empty()) {
            return Err("no listener configured".into());
        }
        Ok(())
    }

    /// The addresses it listens on, by key ("" is off).
    pub fn listens(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("pop3.listen", &self.pop3.listen),
            ("pop3.tls_listen", &self.pop3.tls_listen),
            ("imap.listen", &self.imap.listen),
            ("imap.tls_listen", &self.imap.tls_listen),
        ]
    }
}
