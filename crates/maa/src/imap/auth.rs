//! Getting in: LOGIN and AUTHENTICATE PLAIN (TLS only, SASL-IR accepted),
//! STARTTLS (input pipelined after it closes the connection), and at login
//! the user's default mailboxes (`Mda::prepare_user`).

use facteur_daemon::logging::clean;
use imap_next::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_next::imap_types::core::{AString, Tag};
use imap_next::imap_types::response::{Code, CommandContinuationRequest, Status};
use imap_next::imap_types::secret::Secret;
use imap_next::types::CommandAuthenticate;

use super::ImapError;
use super::conn::Connection;
use super::reply::{authenticationfailed, bad, bye, no, no_text, ok, privacyrequired, unavailable};
use super::session::{Session, Step};
use crate::mda::{Mda, MdaError, Verdict};

/// Outcome of a credentials check.
enum Verified {
    Ok(String),
    Failed,
    Unavailable,
    /// The MDA serves no mailboxes (Maildir mode): this text says where they are.
    Elsewhere(String),
}

impl<M: Mda> Session<M> {
    /// LOGIN (RFC 9051 §6.2.3), over TLS only.
    pub(super) async fn login(
        &mut self,
        conn: &mut Connection,
        tag: Tag<'static>,
        username: AString<'static>,
        password: Secret<AString<'static>>,
    ) -> Result<Step, ImapError> {
        if self.user.is_some() {
            conn.status(bad(tag, "Already authenticated."));
            return Ok(Step::Continue);
        }
        if !conn.is_tls() {
            tracing::debug!("LOGIN refused without TLS");
            conn.status(no(
                tag,
                Some(privacyrequired()),
                "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
            ));
            return Ok(Step::Continue);
        }
        let user = String::from_utf8(username.as_ref().to_vec());
        let pass = String::from_utf8(password.declassify().as_ref().to_vec());
        let verified = match (user, pass) {
            (Ok(u), Ok(p)) => self.verify(&u, &p).await,
            _ => self.failed().await,
        };
        let (status, step) = self.auth_outcome(tag, verified, conn.is_tls());
        conn.status(status);
        step
    }

    /// STARTTLS (RFC 9051 §6.2.1). Input pipelined after it closes the connection.
    pub(super) async fn starttls(
        &mut self,
        conn: &mut Connection,
        tag: Tag<'static>,
    ) -> Result<Step, ImapError> {
        if conn.is_tls() {
            conn.status(bad(tag, "TLS is already active."));
            return Ok(Step::Continue);
        }
        let Some(acceptor) = self.ctx.tls.clone() else {
            conn.status(bad(tag, "TLS support isn't enabled."));
            return Ok(Step::Continue);
        };
        if conn.has_pending_input() {
            tracing::info!("input pipelined after STARTTLS");
            conn.status(bye("Input after STARTTLS is refused."));
            return Err(ImapError::PipelinedStartTls);
        }
        conn.status(ok(tag, None, "Begin TLS negotiation now."));
        conn.start_tls(&acceptor, &self.ctx).await?;
        // Back to the not-authenticated state, nothing kept from before TLS.
        self.user = None;
        self.selected = None;
        self.authenticating = None;
        Ok(Step::Continue)
    }

    /// AUTHENTICATE (PLAIN only, TLS only, SASL-IR accepted).
    pub(super) async fn authenticate(
        &mut self,
        conn: &mut Connection,
        cmd: CommandAuthenticate,
    ) -> Result<Step, ImapError> {
        let tag = cmd.tag;
        let refusal = if self.user.is_some() {
            Some(bad(tag.clone(), "Already authenticated."))
        } else if !conn.is_tls() {
            Some(no(
                tag.clone(),
                Some(privacyrequired()),
                "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
            ))
        } else if !matches!(cmd.mechanism, AuthMechanism::Plain) {
            Some(no(
                tag.clone(),
                None,
                "Unsupported authentication mechanism.",
            ))
        } else {
            None
        };
        if let Some(status) = refusal {
            finish_auth(conn, status);
            return Ok(Step::Continue);
        }
        match cmd.initial_response {
            Some(ir) => self.plain(conn, tag, ir.declassify()).await,
            None => {
                self.authenticating = Some(tag);
                let cont = CommandContinuationRequest::base64(Vec::new());
                if let Err(cont) = conn.server.authenticate_continue(cont) {
                    tracing::error!(?cont, "imap-next refused an AUTHENTICATE continuation");
                }
                Ok(Step::Continue)
            }
        }
    }

    pub(super) async fn authenticate_data(
        &mut self,
        conn: &mut Connection,
        data: AuthenticateData<'static>,
    ) -> Result<Step, ImapError> {
        let Some(tag) = self.authenticating.take() else {
            tracing::error!("AUTHENTICATE data without a pending AUTHENTICATE");
            return Ok(Step::Close);
        };
        match data {
            AuthenticateData::Cancel => {
                finish_auth(conn, bad(tag, "Authentication aborted by client."));
                Ok(Step::Continue)
            }
            AuthenticateData::Continue(bytes) => self.plain(conn, tag, bytes.declassify()).await,
        }
    }

    /// SASL PLAIN (RFC 4616): `authzid NUL authcid NUL passwd`.
    async fn plain(
        &mut self,
        conn: &mut Connection,
        tag: Tag<'static>,
        data: &[u8],
    ) -> Result<Step, ImapError> {
        let mut parts = data.split(|&b| b == 0);
        let fields = (parts.next(), parts.next(), parts.next(), parts.next());
        let verified = match fields {
            (Some(authz), Some(user), Some(pass), None) => {
                match (
                    std::str::from_utf8(authz),
                    std::str::from_utf8(user),
                    std::str::from_utf8(pass),
                ) {
                    // No proxy authorization: authzid must be empty or the user itself.
                    (Ok(z), Ok(u), Ok(p)) if z.is_empty() || z == u => self.verify(u, p).await,
                    _ => self.failed().await,
                }
            }
            _ => self.failed().await,
        };
        let (status, step) = self.auth_outcome(tag, verified, conn.is_tls());
        finish_auth(conn, status);
        step
    }

    /// Ask the MDA, then make sure the user's default mailboxes exist.
    /// Failures are delayed and counted.
    async fn verify(&mut self, user: &str, password: &str) -> Verified {
        let remote = self.peer.ip().to_string();
        match self.ctx.mda.verify(user, password, "imap", &remote).await {
            Ok(Verdict::Ok(account)) => {
                let account = if account.is_empty() {
                    user.to_owned()
                } else {
                    account
                };
                if let Err(e) = self.ctx.mda.prepare_user(&account).await {
                    tracing::error!(user = %clean(&account), error = %e, "PrepareUser failed");
                    if let MdaError::Elsewhere(where_) = e {
                        return Verified::Elsewhere(where_);
                    }
                    return Verified::Unavailable;
                }
                tracing::info!(user = %clean(&account), "authenticated");
                Verified::Ok(account)
            }
            Ok(Verdict::Failed) => {
                tracing::info!(user = %clean(user), "authentication failed");
                self.failed().await
            }
            Err(e) => {
                tracing::error!(error = %e, "Auth.Verify failed");
                Verified::Unavailable
            }
        }
    }

    async fn failed(&mut self) -> Verified {
        self.auth_failures += 1;
        tokio::time::sleep(self.ctx.config.auth_failure_delay).await;
        Verified::Failed
    }

    /// The tagged reply to LOGIN/AUTHENTICATE, and whether to hang up.
    fn auth_outcome(
        &mut self,
        tag: Tag<'static>,
        verified: Verified,
        tls: bool,
    ) -> (Status<'static>, Result<Step, ImapError>) {
        match verified {
            Verified::Ok(user) => {
                self.user = Some(user);
                let caps = Code::Capability(self.capabilities(tls));
                (ok(tag, Some(caps), "Logged in."), Ok(Step::Continue))
            }
            Verified::Elsewhere(where_) => (
                no_text(tag, Some(unavailable()), where_),
                Ok(Step::Continue),
            ),
            Verified::Unavailable => (
                no(
                    tag,
                    Some(unavailable()),
                    "Temporary authentication failure, try again later.",
                ),
                Ok(Step::Continue),
            ),
            Verified::Failed => {
                let status = no(tag, Some(authenticationfailed()), "Authentication failed.");
                if self.auth_failures >= self.ctx.config.max_auth_failures {
                    (status, Err(ImapError::TooManyAuthFailures))
                } else {
                    (status, Ok(Step::Continue))
                }
            }
        }
    }
}

/// End an AUTHENTICATE exchange with `status` (imap-next then expects commands again).
fn finish_auth(conn: &mut Connection, status: Status<'static>) {
    if let Err(status) = conn.server.authenticate_finish(status) {
        conn.status(status);
    }
}
