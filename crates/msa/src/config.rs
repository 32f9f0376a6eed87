//! The MSA's configuration (see `deploy/facteur-msa.toml` for a commented sample).

use facteur_daemon::grpc::GrpcTls;
use facteur_daemon::listener::ConnLimits;
use facteur_daemon::tls::TlsFiles;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct MsaConfig {
    /// This host's name: greeting, EHLO, Received `by`, Message-ID domain.
    pub hostname: String,
    /// How the log is written (`[log] format = "text" | "json"`).
    pub log: facteur_daemon::logging::LogConfig,
    /// Per-connection transcripts (`[transcript]`, off by default; the dev stack
    /// turns them on for `cargo xtask demo` and `facteur-mua trace`).
    pub transcript: facteur_daemon::transcript::TranscriptConfig,
    /// HTTP listener for `GET /metrics` (Prometheus) and `GET /healthz`;
    /// "" (default) disables both.
    pub metrics_listen: String,
    /// Submission with STARTTLS (RFC 6409, port 587); "" disables.
    pub submission_listen: String,
    /// Submission over implicit TLS (RFC 8314, port 465); "" disables.
    pub submissions_listen: String,
    /// Certificate and key: required, AUTH is offered only over TLS.
    pub tls: TlsFiles,
    /// The MTA's `Relay` service.
    pub mta_url: String,
    /// Where submitted mail goes: "" (default) the MTA's `Relay` at `mta_url`;
    /// `smtp://host:port` (STARTTLS per `next_hop_smtp.starttls`) or
    /// `smtps://host:port` (implicit TLS): any SMTP server.
    pub next_hop: String,
    /// How to talk to an SMTP next hop.
    pub next_hop_smtp: NextHopSmtp,
    /// The `Auth` service that checks passwords (the MDA's).
    pub auth_url: String,
    /// A passwd-file (Dovecot's format): when set, AUTH is checked against it
    /// instead of the `Auth` service.
    pub passwd_file: String,
    /// Mutual TLS on gRPC (`ca`, `cert`, `key`); unset: plaintext, loopback only.
    pub grpc_tls: GrpcTls,
    /// Local address for calls to the MTA and MDA; none: the system's choice.
    pub source_address: Option<std::net::IpAddr>,
    /// Largest message accepted, in bytes (announced in SIZE).
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_line: usize,
    /// Errors (bad commands, refused recipients) before the connection is
    /// closed with 421.
    pub max_errors: usize,
    /// Errors after which each further one waits `error_sleep_ms` more.
    pub soft_error_limit: usize,
    pub error_sleep_ms: u64,
    /// Milliseconds to wait before answering a failed AUTH (slows guessing).
    pub auth_failure_delay_ms: u64,
    /// The envelope sender must be the authenticated user (Postfix's
    /// `reject_sender_login_mismatch`).
    pub enforce_sender: bool,
    /// The `From:` header's addresses must be the authenticated user's (or in
    /// its `from_aliases`): the envelope is checked by `enforce_sender`, but
    /// readers see the header (Stalwart's and Postfix's
    /// `smtpd_sender_login_maps` setups).
    pub enforce_from: bool,
    /// Addresses a user may also send as, in MAIL FROM and `From:`:
    /// `"pierre@paris.test" = ["contact@paris.test"]`.
    pub from_aliases: std::collections::BTreeMap<String, Vec<String>>,
    /// Largest header block rewritten (Message-ID, Date, Bcc); a larger one is refused.
    pub max_header_size: usize,
    #[serde(flatten)]
    pub limits: ConnLimits,
}

impl Default for MsaConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            log: facteur_daemon::logging::LogConfig::default(),
            transcript: facteur_daemon::transcript::TranscriptConfig::default(),
            metrics_listen: String::new(),
            submission_listen: "0.0.0.0:587".into(),
            submissions_listen: "0.0.0.0:465".into(),
            tls: TlsFiles::default(),
            mta_url: "http://127.0.0.1:7025".into(),
            next_hop: String::new(),
            next_hop_smtp: NextHopSmtp::default(),
            auth_url: "http://127.0.0.1:7024".into(),
            passwd_file: String::new(),
            grpc_tls: GrpcTls::default(),
            source_address: None,
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 100,
            max_line: 2048,
            max_errors: 10,
            soft_error_limit: 3,
            error_sleep_ms: 500,
            auth_failure_delay_ms: 1000,
            enforce_sender: true,
            enforce_from: true,
            from_aliases: std::collections::BTreeMap::new(),
            max_header_size: 256 * 1024,
            limits: ConnLimits::default(),
        }
    }
}

/// STARTTLS towards an `smtp://` next hop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    /// When offered (Postfix's `may`).
    #[default]
    Opportunistic,
    /// Or no mail goes (Postfix's `encrypt`).
    Required,
    /// Never.
    Off,
}

/// The `[next_hop_smtp]` table.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct NextHopSmtp {
    pub starttls: StartTls,
    /// CA bundle (PEM): when set, the next hop's certificate must chain to it and
    /// name the host of `next_hop`; "" accepts any certificate (encryption only).
    pub tls_ca: String,
    /// AUTH PLAIN as this user (after TLS only); "" sends no AUTH.
    pub user: String,
    /// The file holding the password of `user` (read once at startup).
    pub password_file: String,
    /// Name in EHLO; "" is `hostname`.
    pub helo: String,
}

impl MsaConfig {
    /// The startup checks that need no IO (`config check` runs them too).
    pub fn check(&self) -> Result<(), String> {
        if !self.tls.is_set() {
            return Err("the MSA needs tls.cert and tls.key: AUTH is only offered over TLS".into());
        }
        if self.submission_listen.is_empty() && self.submissions_listen.is_empty() {
            return Err("no listener configured (submission_listen, submissions_listen)".into());
        }
        Ok(())
    }

    /// The addresses it listens on, by key ("" is off).
    pub fn listens(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("submission_listen", &self.submission_listen),
            ("submissions_listen", &self.submissions_listen),
        ]
    }
}

impl MsaConfig {
    /// May `user` (logged in) send as `address`: itself, or one of its aliases.
    pub fn may_send_as(&self, user: &str, address: &str) -> bool {
        address.eq_ignore_ascii_case(user)
            || self
                .from_aliases
                .iter()
                .filter(|(u, _)| u.eq_ignore_ascii_case(user))
                .flat_map(|(_, a)| a)
                .any(|a| a.eq_ignore_ascii_case(address))
    }
}

#[cfg(test)]
mod alias_tests {
    use super::MsaConfig;

    #[test]
    fn a_user_sends_as_itself_or_its_aliases_only() {
        let mut c = MsaConfig::default();
        c.from_aliases.insert(
            "pierre@paris.test".into(),
            vec!["contact@paris.test".into()],
        );
        assert!(c.may_send_as("pierre@paris.test", "Pierre@Paris.Test"));
        assert!(c.may_send_as("pierre@paris.test", "contact@paris.test"));
        assert!(!c.may_send_as("pierre@paris.test", "jacques@paris.test"));
        assert!(!c.may_send_as("jacques@paris.test", "contact@paris.test"));
    }
}
