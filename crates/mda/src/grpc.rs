//! The MDA's gRPC services: `Delivery` (from the MTA), `Mailbox` (for the MAA,
//! in `mailbox`), `Auth` (for the MSA and MAA) and `Accounts` (for the operator,
//! in `accounts`), `StoreAdmin` (for the operator, in `store_admin`: the
//! store's report and blob collection, and the periodic collector), all over
//! the one store; the
//! helpers they share (store calls off the async workers, the one store-error
//! mapping).

mod accounts;
mod mailbox;
pub mod store_admin;

pub use accounts::AccountsService;
use facteur_daemon::logging::clean;
pub use store_admin::StoreAdminService;

use std::pin::Pin;
use std::sync::Arc;

use facteur_daemon::Shutdown;
use facteur_protocol::smtp::reply::Reply;
use facteur_rpc::delivery::delivery_server::Delivery;
use facteur_rpc::delivery::{DeliverReply, DeliverRequest, RecipientResult};
use facteur_rpc::mailbox::auth_server::Auth;
use facteur_rpc::mailbox::{self as pb};
use facteur_rpc::relay::{MailReply, RecipientQuery, RecipientVerdict};
use facteur_rpc::stream as rpc_stream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{Authenticator, Verdict};
use crate::filing::{Filing, account_of};
use crate::store::{BlobStore, MailStore, Marks, StoreError};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub(crate) fn mail_reply(r: &Reply) -> MailReply {
    MailReply::from(r)
}

/// One place maps a store error to a gRPC status; the cause goes to the log.
fn status(e: StoreError) -> Status {
    match e {
        StoreError::NoSuchMailbox(m) => Status::not_found(format!("no such mailbox: {m}")),
        StoreError::MailboxExists(m) => Status::already_exists(format!("mailbox exists: {m}")),
        StoreError::InvalidMailboxName(_) | StoreError::InvalidUser(_) => {
            Status::invalid_argument(e.to_string())
        }
        StoreError::NotAllowed(m) => Status::failed_precondition(m),
        StoreError::Full(m) => {
            tracing::warn!(error = %m, "store full");
            Status::resource_exhausted("insufficient storage")
        }
        other => {
            tracing::error!(error = %other, "store failure");
            Status::unavailable("mailbox store unavailable")
        }
    }
}

/// One store call off the async workers, timed in `facteur_store_seconds`.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Status> {
    let start = std::time::Instant::now();
    let done = tokio::task::spawn_blocking(f).await;
    facteur_daemon::metrics::store_since(start);
    match done {
        Ok(r) => r.map_err(status),
        Err(e) => {
            tracing::error!(error = %e, "store task failed");
            Err(Status::internal("internal error"))
        }
    }
}

/// Fails with the store's error when the mailbox does not exist.
async fn check_mailbox<S: MailStore>(
    store: &Arc<S>,
    user: &str,
    mailbox: &str,
) -> Result<(), Status> {
    let (store, user, mailbox) = (Arc::clone(store), user.to_owned(), mailbox.to_owned());
    blocking(move || store.status(&user, &mailbox)).await?;
    Ok(())
}

/// The services, generic over the storage backend.
pub struct Services<S> {
    pub filing: Filing<S>,
    pub max_message_size: u64,
    /// Ends the long-lived `Watch` streams, so a graceful stop does not wait
    /// for idling IMAP clients.
    pub shutdown: Shutdown,
    /// Each `Delivery.Deliver` hand-over is recorded (`grpc-in`) when on.
    pub transcripts: facteur_daemon::transcript::Transcripts,
}

impl<S> Clone for Services<S> {
    fn clone(&self) -> Self {
        Self {
            filing: self.filing.clone(),
            max_message_size: self.max_message_size,
            shutdown: self.shutdown.clone(),
            transcripts: self.transcripts.clone(),
        }
    }
}

impl<S> Services<S> {
    fn store(&self) -> Arc<S> {
        Arc::clone(&self.filing.store)
    }
}

fn mailbox_ref(m: Option<pb::MailboxRef>) -> Result<(String, String), Status> {
    let m = m.ok_or_else(|| Status::invalid_argument("mailbox missing"))?;
    Ok((account_of(&m.user), m.mailbox))
}

#[tonic::async_trait]
impl<S: MailStore + BlobStore + Marks> Delivery for Services<S> {
    async fn deliver(
        &self,
        request: Request<Streaming<DeliverRequest>>,
    ) -> Result<Response<DeliverReply>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "gRPC client".to_owned(), |a| a.to_string());
        let mut stream = request.into_inner();
        let env = rpc_stream::envelope(&mut stream).await?;
        let mut rec = self.transcripts.start(
            facteur_daemon::transcript::Proto::Smtp,
            "grpc-in",
            &peer,
            "Delivery",
        );
        if let Some(rec) = rec.as_mut() {
            let to: Vec<String> = env
                .rcpt_to
                .iter()
                .map(|r| format!("<{}>", clean(r)))
                .collect();
            rec.note(&format!(
                "gRPC Delivery.Deliver ← {peer}: key {}, MAIL FROM:<{}>, RCPT TO:{}",
                clean(&env.message_key),
                clean(&env.mail_from),
                to.join(",")
            ));
        }
        if env.message_key.is_empty() || env.rcpt_to.is_empty() {
            return Err(Status::invalid_argument(
                "message key and recipients are required",
            ));
        }
        let mut message = Vec::new();
        let mut too_big = false;
        let mut body = rpc_stream::Body::new(&mut stream);
        while let Some(c) = body.next().await? {
            if body.received() > self.max_message_size {
                too_big = true;
                message = Vec::new();
            } else {
                message.extend_from_slice(&c);
            }
        }
        if let Some(rec) = rec.as_mut() {
            let head = &message[..message.len().min(16 * 1024)];
            if let Some(id) = facteur_protocol::transcript::message_id(head) {
                rec.message_id(&id);
            }
            rec.header_bytes(head);
            rec.note(&format!("{} bytes received", body.received()));
        }
        let replies = if too_big {
            vec![facteur_protocol::smtp::codes::message_too_big(); env.rcpt_to.len()]
        } else {
            self.filing
                .file(&env.message_key, &env.mail_from, &env.rcpt_to, message)
                .await
        };
        let results = env
            .rcpt_to
            .iter()
            .zip(replies.iter())
            .map(|(rcpt, r)| RecipientResult {
                rcpt_to: rcpt.clone(),
                reply: Some(mail_reply(r)),
            })
            .collect();
        if let Some(mut rec) = rec {
            for (rcpt, r) in env.rcpt_to.iter().zip(replies.iter()) {
                rec.note(&format!("gRPC reply → <{}>: {r}", clean(rcpt)));
            }
            rec.finish();
        }
        Ok(Response::new(DeliverReply { results }))
    }

    async fn check_recipient(
        &self,
        request: Request<RecipientQuery>,
    ) -> Result<Response<RecipientVerdict>, Status> {
        let reply = self
            .filing
            .check_recipient(&request.into_inner().rcpt_to)
            .await;
        Ok(Response::new(RecipientVerdict {
            reply: Some(mail_reply(&reply)),
        }))
    }
}

/// The `Auth` service over the MDA's `Authenticator` (throttle, cache, argon2 pool).
#[derive(Clone, Debug)]
pub struct AuthService {
    pub auth: Authenticator,
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyReply>, Status> {
        let req = request.into_inner();
        let verdict = match self
            .auth
            .verify(&req.user, &req.password, &req.remote_addr)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(user = %clean(&req.user), service = %clean(&req.service), remote = %clean(&req.remote_addr), error = %e, "auth verify unavailable");
                return Err(Status::unavailable(
                    "authentication temporarily unavailable",
                ));
            }
        };
        let (ok, user) = match verdict {
            Verdict::Ok(user) => (true, user),
            Verdict::Failed => (false, String::new()),
            Verdict::Throttled(why) => {
                tracing::info!(user = %clean(&req.user), service = %clean(&req.service), remote = %clean(&req.remote_addr), ?why, "auth verify throttled");
                return Ok(Response::new(pb::VerifyReply {
                    ok: false,
                    user: String::new(),
                }));
            }
        };
        tracing::info!(user = %clean(&account_of(&req.user)), service = %clean(&req.service), remote = %clean(&req.remote_addr), ok, "auth verify");
        Ok(Response::new(pb::VerifyReply { ok, user }))
    }
}
