//! The `Mailbox` service: the MAA's reads and writes of mailboxes (POP3 and
//! IMAP), each one store call off the async workers, streamed where a reply
//! can be large. Field mappings are `facteur_rpc::convert`'s.

use std::sync::Arc;

use facteur_rpc::convert;
use facteur_rpc::mailbox::mailbox_server::Mailbox;
use facteur_rpc::mailbox::{self as pb};
use facteur_rpc::stream as rpc_stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{BoxStream, Services, blocking, check_mailbox, mailbox_ref, status};
use crate::filing::account_of;
use crate::store::header::read_header;
use crate::store::{self, BlobStore, ChangeFeed, MailStore, StoreError};

/// Page size of `Mailbox.List` reads from the store.
const LIST_PAGE: usize = 1024;

/// Messages per `FetchMany` or `Metas` call at most.
const FETCH_MANY_MAX: usize = 1024;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Which part of each message `FetchMany` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Nothing,
    Header,
    Whole,
}

#[tonic::async_trait]
impl<S: MailStore + BlobStore + ChangeFeed> Mailbox for Services<S> {
    type ListStream = BoxStream<pb::MetaPage>;
    type FetchStream = BoxStream<pb::FetchChunk>;
    type FetchManyStream = BoxStream<pb::MessageChunk>;
    type WatchStream = BoxStream<pb::WatchEvent>;

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
        let (s, keywords) = blocking(move || {
            Ok((
                store.status(&user, &mailbox)?,
                store.keywords(&user, &mailbox)?,
            ))
        })
        .await?;
        Ok(Response::new(convert::status_to_pb(s, keywords)))
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
                let metas = page.into_iter().map(Into::into).collect();
                if tx.send(Ok(pb::MetaPage { metas })).await.is_err() {
                    return;
                }
                if !full || last == u32::MAX {
                    return;
                }
                from = last + 1;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
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
        let want = match pb::FetchPart::try_from(req.part) {
            Ok(pb::FetchPart::Whole) => Want::Whole,
            Ok(pb::FetchPart::Header) => Want::Header,
            Ok(pb::FetchPart::None) => Want::Nothing,
            Err(_) => return Err(Status::invalid_argument("unknown fetch part")),
        };
        let store = self.store();
        // Check the mailbox now: a bad name is an error, not an empty stream.
        check_mailbox(&store, &user, &mailbox).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        // One blocking job for the whole window: per message its metadata,
        // then its bytes (or only its header) in ranged reads, chunk by
        // chunk; the bounded channel paces it to the client.
        tokio::task::spawn_blocking(move || {
            for uid in req.uids {
                match send_message(&*store, &user, &mailbox, uid, want, &tx) {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(status(e)));
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn store_flags(
        &self,
        request: Request<pb::StoreFlagsRequest>,
    ) -> Result<Response<pb::StoreFlagsReply>, Status> {
        let req = request.into_inner();
        let op = convert::flag_op_from_pb(req.op)?;
        let (user, mailbox) = mailbox_ref(req.mailbox)?;
        let store = self.store();
        let since = (req.unchanged_since != 0).then_some(req.unchanged_since);
        let (uids, flags) = (req.uids, req.flags);
        let r =
            blocking(move || store.store_flags(&user, &mailbox, &uids, op, &flags, since)).await?;
        Ok(Response::new(r.into()))
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

    async fn prepare_user(
        &self,
        request: Request<pb::UserRef>,
    ) -> Result<Response<pb::Empty>, Status> {
        let user = account_of(&request.into_inner().user);
        let store = self.store();
        blocking(move || store.prepare_user(&user)).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn mailboxes(
        &self,
        request: Request<pb::UserRef>,
    ) -> Result<Response<pb::MailboxInfoList>, Status> {
        let user = account_of(&request.into_inner().user);
        let store = self.store();
        let (infos, subscribed) =
            blocking(move || Ok((store.mailboxes(&user)?, store.subscriptions(&user)?))).await?;
        // Both lists are sorted by name: one merge finds the names that are
        // subscribed but not mailboxes.
        let mut names = infos.iter().map(|i| i.name.as_str()).peekable();
        let mut subscribed_only = Vec::new();
        for s in subscribed {
            while names.next_if(|n| *n < s.as_str()).is_some() {}
            if names.peek() != Some(&s.as_str()) {
                subscribed_only.push(s);
            }
        }
        Ok(Response::new(pb::MailboxInfoList {
            mailboxes: infos.into_iter().map(Into::into).collect(),
            subscribed_only,
        }))
    }

    async fn create_mailbox(
        &self,
        request: Request<pb::CreateMailboxRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let req = request.into_inner();
        let role = convert::role_from_pb(req.role)?;
        let (user, mailbox) = mailbox_ref(req.mailbox)?;
        let store = self.store();
        blocking(move || store.create_mailbox_with_role(&user, &mailbox, role)).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn rename_mailbox(
        &self,
        request: Request<pb::RenameMailboxRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let req = request.into_inner();
        let user = account_of(&req.user);
        let store = self.store();
        // The store renames the children (`from/...`) in the same unit.
        blocking(move || store.rename_mailbox(&user, &req.from, &req.to)).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn delete_mailbox(
        &self,
        request: Request<pb::MailboxRef>,
    ) -> Result<Response<pb::Empty>, Status> {
        let (user, mailbox) = mailbox_ref(Some(request.into_inner()))?;
        let store = self.store();
        blocking(move || store.delete_mailbox(&user, &mailbox)).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let req = request.into_inner();
        let (user, mailbox) = mailbox_ref(req.mailbox)?;
        let store = self.store();
        blocking(move || store.set_subscribed(&user, &mailbox, req.subscribed)).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn append(
        &self,
        request: Request<Streaming<pb::AppendRequest>>,
    ) -> Result<Response<pb::AppendReply>, Status> {
        let mut stream = request.into_inner();
        let start = rpc_stream::envelope(&mut stream).await?;
        let (user, mailbox) = mailbox_ref(start.mailbox)?;
        let store = self.store();
        // A missing mailbox (IMAP TRYCREATE) is answered before the bytes are read.
        check_mailbox(&store, &user, &mailbox).await?;
        let mut message = Vec::new();
        let mut body = rpc_stream::Body::new(&mut stream);
        // Nothing is stored unless the end marker arrives and matches.
        while let Some(c) = body.next().await? {
            if body.received() > self.max_message_size {
                return Err(Status::invalid_argument(format!(
                    "message larger than {} bytes",
                    self.max_message_size
                )));
            }
            message.extend_from_slice(&c);
        }
        let date = match start.internal_date {
            0 => now(),
            d => d,
        };
        let flags = start.flags;
        let appended = blocking(move || {
            // The blob is durable before the metadata that points at it.
            let blob = BlobStore::put(&*store, &message)?;
            store.append(&user, &mailbox, &blob, message.len() as u64, &flags, date)
        })
        .await?;
        Ok(Response::new(appended.into()))
    }

    async fn copy(
        &self,
        request: Request<pb::CopyRequest>,
    ) -> Result<Response<pb::CopyReply>, Status> {
        let req = request.into_inner();
        let (user, from) = mailbox_ref(req.from)?;
        let store = self.store();
        let (uids, to, expunge) = (req.uids, req.to, req.expunge);
        let copied = blocking(move || store.copy(&user, &from, &uids, &to, expunge)).await?;
        Ok(Response::new(copied.into()))
    }

    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchReply>, Status> {
        let req = request.into_inner();
        let (user, mailbox) = mailbox_ref(req.mailbox)?;
        let key = req
            .query
            .ok_or_else(|| Status::invalid_argument("search query missing"))?;
        let query = convert::query_from_pb(key)?;
        let store = self.store();
        let (uids, highest_modseq) = blocking(move || {
            let uids = store.search(&user, &mailbox, &query)?;
            let mut highest = 0;
            if convert::uses_modseq(&query) {
                for m in store.metas(&user, &mailbox, &uids)? {
                    highest = highest.max(m.modseq);
                }
            }
            Ok((uids, highest))
        })
        .await?;
        Ok(Response::new(pb::SearchReply {
            uids,
            highest_modseq,
        }))
    }

    async fn uids(
        &self,
        request: Request<pb::MailboxRef>,
    ) -> Result<Response<pb::UidRuns>, Status> {
        let (user, mailbox) = mailbox_ref(Some(request.into_inner()))?;
        let store = self.store();
        let uids = blocking(move || store.uids(&user, &mailbox)).await?;
        Ok(Response::new(convert::uids_to_runs(&uids)))
    }

    async fn metas(
        &self,
        request: Request<pb::MetasRequest>,
    ) -> Result<Response<pb::MetaPage>, Status> {
        let req = request.into_inner();
        let (user, mailbox) = mailbox_ref(req.mailbox)?;
        if req.uids.len() > FETCH_MANY_MAX {
            return Err(Status::invalid_argument(format!(
                "at most {FETCH_MANY_MAX} messages per Metas"
            )));
        }
        let store = self.store();
        // One batch read; a bad mailbox is an error, not an empty page.
        let metas = blocking(move || store.metas(&user, &mailbox, &req.uids)).await?;
        Ok(Response::new(pb::MetaPage {
            metas: metas.into_iter().map(Into::into).collect(),
        }))
    }

    async fn changes(
        &self,
        request: Request<pb::ChangesRequest>,
    ) -> Result<Response<pb::ChangesReply>, Status> {
        let req = request.into_inner();
        let (user, mailbox) = mailbox_ref(req.mailbox)?;
        let store = self.store();
        let since = req.since;
        let reply = blocking(move || {
            // Status first: a change landing between the two reads is then
            // reported twice (harmless), never missed.
            let highest = store.status(&user, &mailbox)?.highest_modseq;
            let changes = store.changes_since(&user, &mailbox, since)?;
            let highest = changes
                .iter()
                .map(|c| match c {
                    store::Change::Updated(m) => m.modseq,
                    store::Change::Expunged { modseq, .. } => *modseq,
                })
                .fold(highest, u64::max);
            Ok(convert::changes_to_pb(changes, highest))
        })
        .await?;
        Ok(Response::new(reply))
    }

    async fn watch(
        &self,
        request: Request<pb::MailboxRef>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (user, mailbox) = mailbox_ref(Some(request.into_inner()))?;
        let store = self.store();
        let name = mailbox.clone();
        let mut feed =
            blocking(move || Ok(ChangeFeed::subscribe(&*store, &user, &mailbox))).await?;
        // The feed of a mailbox that does not exist is closed from the start.
        if feed.has_changed().is_err() {
            return Err(Status::not_found(format!("no such mailbox: {name}")));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                // Values that arrive while the client is slow coalesce in the
                // feed: the client learns of the newest one.
                let highest_modseq = *feed.borrow_and_update();
                tokio::select! {
                    sent = tx.send(Ok(pb::WatchEvent { highest_modseq })) => {
                        if sent.is_err() {
                            return;
                        }
                    }
                    () = shutdown.cancelled() => return,
                }
                tokio::select! {
                    changed = feed.changed() => {
                        // The sender closes when the mailbox goes away.
                        if changed.is_err() {
                            return;
                        }
                    }
                    () = tx.closed() => return,
                    () = shutdown.cancelled() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Streams one message of a `FetchMany` from a blocking thread, its metadata
/// in the first chunk; false when the receiver is gone.
fn send_message<S: MailStore + BlobStore>(
    store: &S,
    user: &str,
    mailbox: &str,
    uid: u32,
    want: Want,
    tx: &tokio::sync::mpsc::Sender<Result<pb::MessageChunk, Status>>,
) -> Result<bool, StoreError> {
    let send = |data: Vec<u8>, last: bool, missing: bool, meta: Option<pb::MessageMeta>| {
        tx.blocking_send(Ok(pb::MessageChunk {
            uid,
            data,
            last,
            missing,
            meta,
        }))
        .is_ok()
    };
    let Some(m) = MailStore::get(store, user, mailbox, uid)? else {
        return Ok(send(Vec::new(), true, true, None));
    };
    let (blob, size) = (m.blob.clone(), m.size);
    let mut meta = Some(pb::MessageMeta::from(m));
    let chunk = facteur_rpc::CHUNK_SIZE as u64;
    let end = match want {
        Want::Nothing => return Ok(send(Vec::new(), true, false, meta)),
        Want::Whole => size,
        Want::Header => {
            // A header fetch reads the header, not the message; usually one chunk.
            let head = read_header(store, &blob, size)?;
            let pieces = head.chunks(chunk as usize).collect::<Vec<_>>();
            if pieces.is_empty() {
                return Ok(send(Vec::new(), true, false, meta));
            }
            for (i, piece) in pieces.iter().enumerate() {
                if !send(piece.to_vec(), i + 1 == pieces.len(), false, meta.take()) {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
    };
    let mut at = 0u64;
    loop {
        let to = (at + chunk).min(end);
        let data = BlobStore::get(store, &blob, Some(at..to))?;
        let last = to >= end;
        if !send(data, last, false, meta.take()) {
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
) -> impl tokio_stream::Stream<Item = Result<pb::FetchChunk, Status>> + Send {
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
    ReceiverStream::new(rx)
}
