//! POP3 (RFC 1939, CAPA RFC 2449, STLS RFC 2595, AUTH PLAIN RFC 5034) over the
//! [`Mda`] trait (gRPC to the MDA in production, the store in process in unit
//! tests): a sans-IO session, bytes in and bytes out, one per connection on the
//! shared loop.
//!
//! Passwords only over TLS (as Dovecot's `disable_plaintext_auth`); the maildrop
//! is locked for the session (RFC 1939 §8); DELE takes effect only at QUIT.
//! POP3 sees the INBOX only.

use facteur_daemon::logging::clean;
use std::sync::Arc;
use std::time::Duration;

use facteur_daemon::conn::{Session, Step};
use facteur_protocol::Secret;
use facteur_protocol::deadline::{Phase, Progress};
use facteur_protocol::line::{LineError, LineFramer};
use facteur_protocol::pop3::{Command, MultilineEncoder, Response};
use facteur_protocol::sasl::{self, SaslError};

use crate::mda::{MailboxRef, Mda, MdaError, Verdict};

#[cfg(test)]
mod tests;

/// What every POP3 session shares.
pub struct Pop3Shared<M> {
    pub hostname: String,
    pub mda: M,
    pub tls_available: bool,
    pub max_line: usize,
    pub auth_failure_delay: Duration,
    pub max_auth_failures: u32,
    /// Bad commands (unknown, malformed, overlong) before the connection is closed.
    pub max_errors: u32,
    /// How long the maildrop lock lives unless refreshed; it is refreshed while the
    /// session is used, so a crashed MAA frees the maildrop after this long.
    pub lock_ttl: Duration,
}

/// Output queued by one batch of pipelined commands before the session stops
/// taking more and lets the loop write (one large RETR at a time, not hundreds).
const OUTPUT_HIGH_WATER: usize = 256 * 1024;

struct Msg {
    uid: u32,
    size: u64,
    deleted: bool,
}

enum State {
    Authorization {
        user: Option<String>,
    },
    /// AUTH PLAIN sent without an initial response: waiting for it.
    SaslPlain,
    Transaction {
        user: String,
        uidvalidity: u32,
        msgs: Vec<Msg>,
    },
}

/// Metadata asked of the MDA per call (the trait's bound).
const METAS_PER_CALL: usize = 1024;

pub struct Pop3Session<M> {
    shared: Arc<Pop3Shared<M>>,
    peer: std::net::SocketAddr,
    framer: LineFramer,
    out: Vec<u8>,
    state: State,
    tls: bool,
    failures: u32,
    errors: u32,
    owner: String,
    /// When the maildrop lock was last taken or refreshed.
    locked_at: Option<std::time::Instant>,
    more: bool,
    /// Command lines taken so far (for the request deadline).
    completed: u64,
}

fn temp_failure() -> Response {
    // RFC 3206 §4: SYS/TEMP for a problem that may go away.
    Response::err("[SYS/TEMP] Temporary failure, try again later")
}

fn inbox(user: &str) -> MailboxRef {
    MailboxRef::new(user, "INBOX")
}

impl<M: Mda> Pop3Session<M> {
    pub fn new(shared: Arc<Pop3Shared<M>>, peer: std::net::SocketAddr, tls: bool) -> Self {
        let mut me = Self {
            framer: LineFramer::new(shared.max_line),
            shared,
            peer,
            out: Vec::new(),
            state: State::Authorization { user: None },
            tls,
            failures: 0,
            errors: 0,
            owner: format!("pop3-{:016x}", rand_u64()),
            locked_at: None,
            more: false,
            completed: 0,
        };
        me.send(Response::ok(&format!("{} POP3 ready", me.shared.hostname)));
        me
    }

    fn send(&mut self, r: Response) {
        self.out.extend_from_slice(&r.to_bytes());
    }

    fn capa(&self) -> Vec<u8> {
        let mut caps = vec!["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"];
        if self.tls {
            caps.push("USER");
            caps.push("SASL PLAIN");
        } else if self.shared.tls_available {
            caps.push("STLS");
        }
        caps.push("IMPLEMENTATION facteur");
        let mut out = Response::ok("Capability list follows").to_bytes();
        out.extend_from_slice(&facteur_protocol::pop3::response::multiline_lines(caps));
        out
    }

    async fn login(&mut self, user: &str, password: &Secret<String>) -> Step {
        let verdict = self
            .shared
            .mda
            .verify(user, password.expose(), "pop3", &self.peer.ip().to_string())
            .await;
        let account = match verdict {
            Ok(Verdict::Ok(account)) => Some(account),
            Ok(Verdict::Failed) => None,
            Err(e) => {
                tracing::warn!(error = %e, "password check failed");
                self.send(temp_failure());
                return Step::Continue;
            }
        };
        let Some(user) = account else {
            self.failures += 1;
            tracing::info!(user = %clean(user), "authentication failed");
            tokio::time::sleep(self.shared.auth_failure_delay).await;
            self.send(Response::err("[AUTH] Authentication failed"));
            self.state = State::Authorization { user: None };
            if self.failures >= self.shared.max_auth_failures {
                return Step::Close;
            }
            return Step::Continue;
        };
        match self.lock(&user).await {
            Ok(true) => {}
            Ok(_) => {
                self.send(Response::err(
                    "[IN-USE] Mailbox is locked by another session",
                ));
                self.state = State::Authorization { user: None };
                return Step::Continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "maildrop lock failed");
                self.send(match e {
                    MdaError::Elsewhere(where_) => Response::err(&format!("[SYS/PERM] {where_}")),
                    _ => temp_failure(),
                });
                return Step::Continue;
            }
        }
        match self.load(&user).await {
            Ok((uidvalidity, msgs)) => {
                tracing::info!(user = %clean(&user), messages = msgs.len(), "logged in");
                let total: u64 = msgs.iter().map(|m| m.size).sum();
                self.send(Response::ok(&format!(
                    "Logged in, {} messages ({total} octets)",
                    msgs.len()
                )));
                self.state = State::Transaction {
                    user,
                    uidvalidity,
                    msgs,
                };
            }
            Err(e) => {
                tracing::warn!(error = %e, "listing failed");
                self.unlock(&user).await;
                self.send(match e {
                    // RFC 3206 §4: SYS/PERM, retrying will not help.
                    MdaError::Elsewhere(where_) => Response::err(&format!("[SYS/PERM] {where_}")),
                    _ => temp_failure(),
                });
                self.state = State::Authorization { user: None };
            }
        }
        Step::Continue
    }

    /// The INBOX's UIDVALIDITY and its messages (uid and size), in uid order.
    async fn load(&self, user: &str) -> Result<(u32, Vec<Msg>), MdaError> {
        let mda = &self.shared.mda;
        let mailbox = inbox(user);
        let (status, _) = mda.status(&mailbox).await?;
        let uids = mda.uids(&mailbox).await?;
        let mut msgs = Vec::with_capacity(uids.len());
        for chunk in uids.chunks(METAS_PER_CALL) {
            let metas = mda.metas(&mailbox, chunk).await?;
            msgs.extend(metas.into_iter().map(|m| Msg {
                uid: m.uid,
                size: m.size,
                deleted: false,
            }));
        }
        Ok((status.uidvalidity, msgs))
    }

    /// Take (or refresh) the maildrop lock for this session.
    async fn lock(&mut self, user: &str) -> Result<bool, MdaError> {
        let ttl = self.shared.lock_ttl.as_secs().max(1);
        let acquired = self.shared.mda.lock(user, &self.owner, ttl).await?;
        if acquired {
            self.locked_at = Some(std::time::Instant::now());
        }
        Ok(acquired)
    }

    async fn unlock(&self, user: &str) {
        if let Err(e) = self.shared.mda.unlock(user, &self.owner).await {
            tracing::warn!(error = %e, "maildrop unlock failed");
        }
    }

    async fn command(&mut self, line: &[u8]) -> Step {
        if let State::SaslPlain = self.state {
            self.state = State::Authorization { user: None };
            return self.sasl_plain(line.trim_ascii()).await;
        }
        let cmd = match Command::parse(line) {
            Ok(c) => c,
            Err(e) => return self.error(e.response()),
        };
        match cmd {
            Command::Capa => {
                let capa = self.capa();
                self.out.extend_from_slice(&capa);
            }
            Command::Noop => self.send(Response::ok("")),
            Command::Quit => return self.quit().await,
            other => {
                return if matches!(self.state, State::Transaction { .. }) {
                    self.transaction(other).await
                } else {
                    self.authorization(other).await
                };
            }
        }
        Step::Continue
    }

    /// A bad command: answer it, and close once there were too many.
    fn error(&mut self, response: Response) -> Step {
        self.errors += 1;
        self.send(response);
        if self.errors >= self.shared.max_errors {
            self.send(Response::err("Too many errors, closing connection"));
            return Step::Close;
        }
        Step::Continue
    }

    async fn authorization(&mut self, cmd: Command) -> Step {
        match cmd {
            Command::Stls if self.tls => self.send(Response::err("Already in TLS")),
            Command::Stls if !self.shared.tls_available => {
                self.send(Response::err("TLS not available"))
            }
            Command::Stls => {
                self.send(Response::ok("Begin TLS negotiation"));
                return Step::StartTls;
            }
            Command::User(_) | Command::Pass(_) | Command::Auth { .. } | Command::Apop { .. }
                if !self.tls =>
            {
                // Dovecot's wording for the same refusal.
                self.send(Response::err(
                    "[AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
                ));
            }
            Command::User(name) => {
                self.state = State::Authorization { user: Some(name) };
                self.send(Response::ok(""));
            }
            Command::Pass(password) => {
                let State::Authorization { user: Some(user) } = &self.state else {
                    self.send(Response::err("No username given"));
                    return Step::Continue;
                };
                let user = user.clone();
                return self.login(&user, &password).await;
            }
            Command::Auth { mechanism, initial } if mechanism.eq_ignore_ascii_case("PLAIN") => {
                match initial {
                    Some(token) => return self.sasl_plain(token.expose().as_bytes()).await,
                    None => {
                        self.state = State::SaslPlain;
                        self.out.extend_from_slice(b"+ \r\n");
                    }
                }
            }
            Command::Auth { .. } => {
                self.send(Response::err("Unsupported authentication mechanism"))
            }
            Command::Apop { .. } => self.send(Response::err("APOP is not supported")),
            _ => self.send(Response::err("Unknown command in AUTHORIZATION state")),
        }
        Step::Continue
    }

    async fn sasl_plain(&mut self, token: &[u8]) -> Step {
        if token == b"*" {
            self.send(Response::err("Authentication cancelled"));
            return Step::Continue;
        }
        let creds = std::str::from_utf8(token)
            .map_err(|_| SaslError::Base64)
            .and_then(sasl::base64_decode)
            .and_then(|bytes| sasl::decode_plain(&bytes));
        let creds = match creds {
            Ok(c) => c,
            Err(e) => {
                self.send(Response::err(&format!("Invalid SASL PLAIN response: {e}")));
                return Step::Continue;
            }
        };
        if creds
            .authzid
            .as_ref()
            .is_some_and(|z| !z.is_empty() && *z != creds.authcid)
        {
            self.send(Response::err("[AUTH] Authentication failed"));
            return Step::Continue;
        }
        self.login(&creds.authcid, &creds.password).await
    }

    async fn transaction(&mut self, cmd: Command) -> Step {
        let stale = self
            .locked_at
            .is_none_or(|t| t.elapsed() > self.shared.lock_ttl / 3);
        if stale && let State::Transaction { user, .. } = &self.state {
            let user = user.clone();
            match self.lock(&user).await {
                Ok(true) => {}
                Ok(false) => {
                    // Our lock expired and another session took the maildrop.
                    self.send(Response::err("[IN-USE] Maildrop lock lost"));
                    self.state = State::Authorization { user: None };
                    return Step::Close;
                }
                Err(e) => tracing::warn!(error = %e, "lock refresh failed"),
            }
        }
        let State::Transaction {
            user,
            uidvalidity,
            msgs,
        } = &mut self.state
        else {
            return Step::Continue;
        };
        let live = |msgs: &Vec<Msg>, n: u32| -> Option<usize> {
            let i = usize::try_from(n).ok()?.checked_sub(1)?;
            msgs.get(i).filter(|m| !m.deleted).map(|_| i)
        };
        let response = match cmd {
            Command::Stat => {
                let (n, size) = msgs
                    .iter()
                    .filter(|m| !m.deleted)
                    .fold((0, 0), |(n, s), m| (n + 1, s + m.size));
                Response::ok(&format!("{n} {size}"))
            }
            Command::List(None) | Command::Uidl(None) => {
                let uidl = matches!(cmd, Command::Uidl(_));
                let lines: Vec<String> = msgs
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| !m.deleted)
                    .map(|(i, m)| {
                        if uidl {
                            format!("{} {:08x}{:08x}", i + 1, uidvalidity, m.uid)
                        } else {
                            format!("{} {}", i + 1, m.size)
                        }
                    })
                    .collect();
                let mut out = Response::ok(&format!("{} messages", lines.len())).to_bytes();
                out.extend_from_slice(&facteur_protocol::pop3::response::multiline_lines(lines));
                self.out.extend_from_slice(&out);
                return Step::Continue;
            }
            Command::List(Some(n)) => match live(msgs, n) {
                Some(i) => Response::ok(&format!("{n} {}", msgs[i].size)),
                None => Response::err("No such message"),
            },
            Command::Uidl(Some(n)) => match live(msgs, n) {
                Some(i) => Response::ok(&format!("{n} {:08x}{:08x}", uidvalidity, msgs[i].uid)),
                None => Response::err("No such message"),
            },
            Command::Dele(n) => match live(msgs, n) {
                Some(i) => {
                    msgs[i].deleted = true;
                    Response::ok("Marked to be deleted")
                }
                None => Response::err("No such message"),
            },
            Command::Rset => {
                msgs.iter_mut().for_each(|m| m.deleted = false);
                Response::ok("")
            }
            Command::Retr(n) | Command::Top(n, _) => {
                let Some(i) = live(msgs, n) else {
                    self.send(Response::err("No such message"));
                    return Step::Continue;
                };
                let (uid, size) = (msgs[i].uid, msgs[i].size);
                let top = if let Command::Top(_, k) = cmd {
                    Some(k)
                } else {
                    None
                };
                let user = user.clone();
                match self.shared.mda.read(&inbox(&user), uid).await {
                    Ok(Some(bytes)) => {
                        let bytes = match top {
                            Some(k) => top_lines(&bytes, k),
                            None => bytes,
                        };
                        let head = if top.is_some() {
                            Response::ok("")
                        } else {
                            Response::ok(&format!("{size} octets"))
                        };
                        self.out.extend_from_slice(&head.to_bytes());
                        let mut enc = MultilineEncoder::new();
                        let body = enc.encode(&bytes);
                        self.out.extend_from_slice(&body);
                        self.out.extend_from_slice(&enc.finish());
                        return Step::Continue;
                    }
                    Ok(None) => {
                        // Expunged meanwhile through IMAP (the lock is POP3's only).
                        Response::err("[SYS/PERM] Message was removed by another client")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading a message failed");
                        temp_failure()
                    }
                }
            }
            Command::Stls | Command::User(_) | Command::Pass(_) | Command::Auth { .. } => {
                Response::err("Already authenticated")
            }
            _ => Response::err("Unknown command"),
        };
        self.send(response);
        Step::Continue
    }

    /// QUIT: in TRANSACTION, enter UPDATE and expunge what was deleted (RFC 1939 §6).
    async fn quit(&mut self) -> Step {
        let state = std::mem::replace(&mut self.state, State::Authorization { user: None });
        if let State::Transaction { user, msgs, .. } = state {
            let uids: Vec<u32> = msgs.iter().filter(|m| m.deleted).map(|m| m.uid).collect();
            let mut ok = true;
            // UPDATE only while the maildrop is still ours (RFC 1939 §8).
            if !uids.is_empty() && !matches!(self.lock(&user).await, Ok(true)) {
                self.send(Response::err(
                    "[IN-USE] Maildrop lock lost; nothing deleted",
                ));
                return Step::Close;
            }
            if !uids.is_empty()
                && let Err(e) = self.shared.mda.expunge(&inbox(&user), Some(&uids)).await
            {
                tracing::warn!(error = %e, "expunge failed");
                ok = false;
            }
            self.unlock(&user).await;
            if !ok {
                // RFC 1939 §6: -ERR if some deleted messages were not removed.
                self.send(Response::err(
                    "[SYS/TEMP] Some deleted messages were not removed",
                ));
                return Step::Close;
            }
        }
        self.send(Response::ok("Logging out"));
        Step::Close
    }
}

/// The header and the first `k` body lines (TOP, RFC 1939 §7).
fn top_lines(message: &[u8], k: u32) -> Vec<u8> {
    let Some(end) = message.windows(4).position(|w| w == b"\r\n\r\n") else {
        return message.to_vec();
    };
    let body_start = end + 4;
    let mut out = message[..body_start].to_vec();
    let mut rest = &message[body_start..];
    for _ in 0..k {
        if rest.is_empty() {
            break;
        }
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // A session id for the maildrop lock: unique enough, no rand dependency needed.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

impl<M: Mda> Session for Pop3Session<M> {
    async fn input(&mut self, bytes: &[u8]) -> Step {
        self.framer.push(bytes);
        self.more = false;
        while let Some(line) = self.framer.next_line() {
            self.completed += 1;
            let step = match line {
                Ok(line) => self.command(&line).await,
                Err(LineError::TooLong) => self.error(Response::err("Line too long")),
            };
            if step != Step::Continue {
                return step;
            }
            if self.out.len() >= OUTPUT_HIGH_WATER {
                // Let the loop write this before running the next pipelined command.
                self.more = true;
                break;
            }
        }
        Step::Continue
    }

    fn has_more(&self) -> bool {
        self.more
    }

    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    fn progress(&self) -> Progress {
        Progress {
            phase: if self.framer.in_line() {
                Phase::Command
            } else {
                Phase::Idle
            },
            completed: self.completed,
        }
    }

    fn buffered_input(&self) -> usize {
        self.framer.buffered()
    }

    fn tls_started(&mut self) {
        // RFC 2595 §4: back to the start of AUTHORIZATION, no new greeting.
        self.tls = true;
        self.state = State::Authorization { user: None };
    }

    fn timeout_reply(&self) -> Vec<u8> {
        Response::err("Disconnected for inactivity").to_bytes()
    }

    fn shutdown_reply(&self) -> Vec<u8> {
        Response::err("[SYS/TEMP] Server shutting down").to_bytes()
    }

    async fn finish(&mut self) {
        // A connection that ends without QUIT deletes nothing (RFC 1939 §6).
        if let State::Transaction { user, .. } = &self.state {
            let user = user.clone();
            self.unlock(&user).await;
        }
    }
}
