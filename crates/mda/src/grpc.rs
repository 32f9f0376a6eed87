//! The MDA's gRPC services: `Delivery` (from the MTA), `Mailbox` (for the MAA) and
//! `Auth` (for the MSA and MAA), all over the one store.

use std::pin::Pin;
use std::sync::Arc;

use facteur_protocol::smtp::reply::Reply;
use facteur_rpc::delivery::delivery_server::Delivery;
use facteur_rpc::delivery::{DeliverReply, DeliverRequest, RecipientResult};
use facteur_rpc::mailbox::auth_server::Auth;
use facteur_rpc::mailbox::mailbox_server::Mailbox;
use facteur_rpc::mailbox::{self as pb};
use facteur_rpc::relay::{MailReply, RecipientQuery, RecipientVerdict};
use facteur_rpc::stream as rpc_stream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{Authenticator, Verdict};
use crate::filing::{Filing, account_of};
use crate::store::{self, BlobStore, MailStore, StoreError};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Page size of `Mailbox.List` reads from the store.
const LIST_PAGE: usize = 1024;

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

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Status> {
    match tokio::task::spawn_blocking(f).await {
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
}

impl<S> Clone for Services<S> {
    fn clone(&self) -> Self {
        Self {
            filing: self.filing.clone(),
            max_message_size: self.max_message_size,
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

fn meta(m: store::MessageMeta) -> pb::MessageMeta {
    pb::MessageMeta {
        uid: m.uid,
        size: m.size,
        flags: m.flags,
        modseq: m.modseq,
        internal_date: m.internal_date,
    }
}

#[tonic::async_trait]
impl<S: MailStore + BlobStore> Delivery for Services<S> {
    async fn deliver(
        &self,
        request: Request<Streaming<DeliverRequest>>,
    ) -> Result<Response<DeliverReply>, Status> {
        let mut stream = request.into_inner();
        let env = rpc_stream::envelope(&mut stream).await?;
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
                tracing::warn!(user = %req.user, service = %req.service, remote = %req.remote_addr, error = %e, "auth verify unavailable");
                return Err(Status::unavailable(
                    "authentication temporarily unavailable",
                ));
            }
        };
        let (ok, user) = match verdict {
            Verdict::Ok(user) => (true, user),
            Verdict::Failed => (false, String::new()),
            Verdict::Throttled(why) => {
                tracing::info!(user = %req.user, service = %req.service, remote = %req.remote_addr, ?why, "auth verify throttled");
                return Ok(Response::new(pb::VerifyReply {
                    ok: false,
                    user: String::new(),
                }));
            }
        };
        tracing::info!(user = %account_of(&req.user), service = %req.service, remote = %req.remote_addr, ok, "auth verify");
        Ok(Response::new(pb::VerifyReply { ok, user }))
    }
}

#[tonic::async_trait]
impl<S: MailStore + BlobStore> Mailbox for Services<S> {
    type ListStream = BoxStream<pb::MetaPage>;
    type FetchStream = BoxStream<pb::FetchChunk>;
    type FetchManyStream = BoxStream<pb::MessageChunk>;

    async fn list_mailboxes(
        &self,
        request: Request<pb::UserRef>,
    ) -> Result<Response<pb::MailboxList>, Status> {
        let user = account_of(&request.into_inner().user);
        let store = self.store();
        let names = blocking(move || store.list_mailboxes(&user)).await?;
        Ok(Response::new(pb::MailboxList { names }))
    }

    async fn status(
        &self,
        request: Request<pb::MailboxRef>,
    ) -> Result<Response<pb::MailboxStatus>, Status> {
        let (user, mailbox) = mailbox_ref(Some(request.into_inner()))?;
        let store = self.store();
        let s = blocking(move || store.status(&user, &mailbox)).await?;
        Ok(Response::new(pb::MailboxStatus {
            uidvalidity: s.uidvalidity,
            uidnext: s.uidnext,
            exists: s.exists,
            unseen: s.unseen,
            highest_modseq: s.highest_modseq,
        }))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let req = request.into_inner();
        let (user, mailbox) = mailbox_ref(req.mailbox)?;
        let store = self.store();
        // Check the mailbox now: a bad name is an error, not an empty stream.
        check_mailbox(&store, &user, &mailbox).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut from = req.from_uid.max(1);
            loop {
                let (s, u, m) = (Arc::clone(&store), user.clone(), mailbox.clone());
                let page = blocking(move || s.list(&u, &m, from, LIST_PAGE)).await;
                let page = match page {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let Some(last) = page.last().map(|m| m.uid) else {
                    return;
                };
                let full = page.len() == LIST_PAGE;
                let metas = page.into_iter().map(meta).collect();
                if tx.send(Ok(pb::MetaPage { metas })).await.is_err() {
                    return;
                }
                if !full || last == u32::MAX {
                    return;
                }
                from = last + 1;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        let req = request.into_inner();
        let (user, mailbox) = mailbox_ref(req.mailbox)?;
        let store = self.store();
        let uid = req.uid;
        let m = {
            let store = Arc::clone(&store);
            blocking(move || MailStore::get(&*store, &user, &mailbox, uid)).await?
        }
        .ok_or_else(|| Status::not_found("no such message"))?;
        let start = req.offset.min(m.size);
        let end = if req.length == 0 {
            m.size
        } else {
            start.saturating_add(req.length).min(m.size)
        };
        let blob = m.blob;
        let chunk = facteur_rpc::CHUNK_SIZE as u64;
        let stream = async_stream_chunks(store, blob, start, end, chunk);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn fetch_many(
        &self,
        request: Request<pb::FetchManyRequest>,
    ) -> Result<Response<Self::FetchManyStream>, Status> {
        let req = request.into_inner();
        let (user, mailbox) = mailbox_ref(req.mailbox)?;
        if req.uids.len() > FETCH_MANY_MAX {
            return Err(Status::invalid_argument(format!(
                "at most {FETCH_MANY_MAX} messages per FetchMany"
            )));
        }
        let header_only = req.part == pb::FetchPart::Header as i32;
        let store = self.store();
        // Check the mailbox now: a bad name is an error, not an empty stream.
        check_mailbox(&store, &user, &mailbox).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        // One blocking job for the whole window: per message its metadata,
        // then its bytes (or only its header) in ranged reads, chunk by
        // chunk; the bounded channel paces it to the client.
        tokio::task::spawn_blocking(move || {
            for uid in req.uids {
                match send_message(&*store, &user, &mailbox, uid, header_only, &tx) {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(status(e)));
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn store_flags(
        &self,
        request: Request<pb::StoreFlagsRequest>,
    ) -> Result<Response<pb::StoreFlagsReply>, Status> {
        let req = request.into_inner();
        let op = match pb::FlagOp::try_from(req.op) {
            Ok(pb::FlagOp::Add) => store::FlagOp::Add,
            Ok(pb::FlagOp::Remove) => store::FlagOp::Remove,
            Ok(pb::FlagOp::Replace) => store::FlagOp::Replace,
            Err(_) => return Err(Status::invalid_argument("unknown flag operation")),
        };
        let (user, mailbox) = mailbox_ref(req.mailbox)?;
        let store = self.store();
        let since = (req.unchanged_since != 0).then_some(req.unchanged_since);
        let (uids, flags) = (req.uids, req.flags);
        let r =
            blocking(move || store.store_flags(&user, &mailbox, &uids, op, &flags, since)).await?;
        Ok(Response::new(pb::StoreFlagsReply {
            updated: r.updated.into_iter().map(meta).collect(),
            failed_modified: r.failed_modified,
        }))
    }

    async fn expunge(
        &self,
        request: Request<pb::ExpungeRequest>,
    ) -> Result<Response<pb::ExpungeReply>, Status> {
        let req = request.into_inner();
        let (user, mailbox) = mailbox_ref(req.mailbox)?;
        let store = self.store();
        let uids = req.uids;
        let only = req.only_uids;
        let expunged = blocking(move || {
            store.expunge(&user, &mailbox, if only { Some(&uids[..]) } else { None })
        })
        .await?;
        Ok(Response::new(pb::ExpungeReply { expunged }))
    }

    async fn lock(
        &self,
        request: Request<pb::LockRequest>,
    ) -> Result<Response<pb::LockReply>, Status> {
        let req = request.into_inner();
        let store = self.store();
        let user = account_of(&req.user);
        let acquired =
            blocking(move || store.lock_maildrop(&user, &req.owner, req.ttl_secs.max(1))).await?;
        Ok(Response::new(pb::LockReply { acquired }))
    }

    async fn unlock(
        &self,
        request: Request<pb::LockRequest>,
    ) -> Result<Response<pb::LockReply>, Status> {
        let req = request.into_inner();
        let store = self.store();
        let user = account_of(&req.user);
        blocking(move || store.unlock_maildrop(&user, &req.owner)).await?;
        Ok(Response::new(pb::LockReply { acquired: false }))
    }
}

/// Messages per `FetchMany` call at most.
const FETCH_MANY_MAX: usize = 1024;

/// Where the header ends (after its empty line) in the first `bytes` of a
/// message; `None` if not within them.
fn header_end(bytes: &[u8]) -> Option<usize> {
    if bytes.starts_with(b"\r\n") {
        return Some(2);
    }
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// Streams one message of a `FetchMany` from a blocking thread; false when
/// the receiver is gone.
fn send_message<S: MailStore + BlobStore>(
    store: &S,
    user: &str,
    mailbox: &str,
    uid: u32,
    header_only: bool,
    tx: &tokio::sync::mpsc::Sender<Result<pb::MessageChunk, Status>>,
) -> Result<bool, StoreError> {
    let send = |data: Vec<u8>, last: bool, missing: bool| {
        tx.blocking_send(Ok(pb::MessageChunk {
            uid,
            data,
            last,
            missing,
        }))
        .is_ok()
    };
    let Some(m) = MailStore::get(store, user, mailbox, uid)? else {
        return Ok(send(Vec::new(), true, true));
    };
    let chunk = facteur_rpc::CHUNK_SIZE as u64;
    let end = if header_only {
        // Read the start of the message until the header ends: a header
        // fetch reads the header, not the message.
        let mut probe = 0u64;
        let mut found = None;
        let mut head = Vec::new();
        while found.is_none() && probe < m.size {
            probe = (probe + 16 * 1024).min(m.size);
            head = BlobStore::get(store, &m.blob, Some(0..probe))?;
            found = header_end(&head);
        }
        let end = found.unwrap_or(head.len());
        if end as u64 <= chunk {
            // The usual case: the header is in hand already, one chunk.
            head.truncate(end);
            return Ok(send(head, true, false));
        }
        end as u64
    } else {
        m.size
    };
    let mut at = 0u64;
    loop {
        let to = (at + chunk).min(end);
        let data = BlobStore::get(store, &m.blob, Some(at..to))?;
        let last = to >= end;
        if !send(data, last, false) {
            return Ok(false);
        }
        if last {
            return Ok(true);
        }
        at = to;
    }
}

/// The byte range `start..end` of a blob as a stream of chunks, read one chunk at a time.
fn async_stream_chunks<S: BlobStore>(
    store: Arc<S>,
    blob: store::BlobId,
    start: u64,
    end: u64,
    chunk: u64,
) -> impl Stream<Item = Result<pb::FetchChunk, Status>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        let mut at = start;
        while at < end {
            let to = (at + chunk).min(end);
            let (s, b) = (Arc::clone(&store), blob.clone());
            let r = blocking(move || s.get(&b, Some(at..to))).await;
            let stop = r.is_err();
            if tx
                .send(r.map(|data| pb::FetchChunk { data }))
                .await
                .is_err()
                || stop
            {
                return;
            }
            at = to;
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx).map(|r| r)
}
