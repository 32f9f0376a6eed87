//! [`GrpcMda`]: the [`Mda`] trait over the MDA's `Mailbox` and `Auth` gRPC
//! services, the production path. Every field mapping is `facteur_rpc::convert`'s;
//! every failed call goes through [`error`], the one place a gRPC status becomes
//! an [`MdaError`]. With a passwd-file set, passwords are checked against it
//! instead of the `Auth` service; the mailbox calls still go to the MDA.

use std::collections::VecDeque;

use facteur_daemon::passwd_file::PasswdFile;
use facteur_rpc::convert;
use facteur_rpc::mailbox::auth_client::AuthClient;
use facteur_rpc::mailbox::mailbox_client::MailboxClient;
use facteur_rpc::mailbox::{self as pb};
use facteur_rpc::relay::MessageEnd;
use futures::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use super::{
    Appended, BoxStream, Changes, Copied, Fetched, FlagOp, MailboxInfo, MailboxRef, MailboxStatus,
    Mda, MdaError, MessageMeta, Part, Query, Role, StoreFlagsResult, Uid, Verdict,
};

/// The MDA reached over gRPC. Cheap to clone (the clients share one channel).
#[derive(Debug, Clone)]
pub struct GrpcMda {
    mailbox: MailboxClient<Channel>,
    auth: AuthClient<Channel>,
    passwd: Option<PasswdFile>,
}

impl GrpcMda {
    /// Both services over one channel to the MDA.
    pub fn new(channel: Channel) -> Self {
        Self {
            mailbox: MailboxClient::new(channel.clone()),
            auth: AuthClient::new(channel),
            passwd: None,
        }
    }

    /// From clients already made.
    pub fn from_clients(mailbox: MailboxClient<Channel>, auth: AuthClient<Channel>) -> Self {
        Self {
            mailbox,
            auth,
            passwd: None,
        }
    }

    /// Check passwords against this passwd-file rather than the `Auth` service.
    pub fn with_passwd_file(mut self, passwd: Option<PasswdFile>) -> Self {
        self.passwd = passwd;
        self
    }

    fn mailbox(&self) -> MailboxClient<Channel> {
        self.mailbox.clone()
    }
}

/// The one mapping from a failed MDA call to what the protocols answer; the
/// cause goes to the log.
fn error(what: &str, status: &Status) -> MdaError {
    let message = status.message().to_owned();
    match status.code() {
        Code::NotFound => {
            tracing::debug!(what, error = %message, "MDA: not found");
            MdaError::NoSuchMailbox(message)
        }
        Code::AlreadyExists => MdaError::Exists(message),
        Code::InvalidArgument => {
            tracing::info!(what, error = %message, "MDA: invalid argument");
            MdaError::Invalid(message)
        }
        Code::FailedPrecondition
            if status
                .metadata()
                .contains_key(facteur_rpc::MAILBOXES_ELSEWHERE) =>
        {
            tracing::warn!(what, error = %message, "MDA: mailboxes are served elsewhere");
            MdaError::Elsewhere(message)
        }
        Code::FailedPrecondition => MdaError::NotAllowed(message),
        Code::ResourceExhausted => {
            tracing::warn!(what, error = %message, "MDA: store full");
            MdaError::Full
        }
        code => {
            tracing::error!(what, ?code, error = %message, "MDA call failed");
            MdaError::Unavailable(message)
        }
    }
}

/// `error` for `?` on a call: `.map_err(on("Mailbox.X"))`.
fn on(what: &'static str) -> impl Fn(Status) -> MdaError {
    move |s| error(what, &s)
}

fn wire_ref(m: &MailboxRef) -> pb::MailboxRef {
    pb::MailboxRef {
        user: m.user.clone(),
        mailbox: m.mailbox.clone(),
    }
}

/// The state of a `FetchMany` stream being turned into [`Fetched`] items.
struct FetchState {
    stream: Streaming<pb::MessageChunk>,
    queue: VecDeque<Fetched>,
    /// Inside a message: its first chunk arrived, its last not yet.
    inside: bool,
    done: bool,
}

impl FetchState {
    /// The items of one chunk, queued; a chunk that breaks the contract is an error.
    fn push(&mut self, c: pb::MessageChunk) -> Result<(), MdaError> {
        if c.missing {
            if self.inside {
                return Err(MdaError::Unavailable(
                    "FetchMany: missing mid-message".into(),
                ));
            }
            self.queue.push_back(Fetched::Missing(c.uid));
            return Ok(());
        }
        if !self.inside {
            let meta = c
                .meta
                .ok_or_else(|| MdaError::Unavailable("FetchMany: a message without meta".into()))?;
            self.queue.push_back(Fetched::Meta(meta.into()));
            self.inside = true;
        }
        if !c.data.is_empty() {
            self.queue.push_back(Fetched::Data(c.data.into()));
        }
        if c.last {
            self.queue.push_back(Fetched::End);
            self.inside = false;
        }
        Ok(())
    }

    async fn next(mut self) -> Option<(Result<Fetched, MdaError>, Self)> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some((Ok(item), self));
            }
            if self.done {
                return None;
            }
            let failed = match self.stream.message().await {
                Ok(Some(c)) => self.push(c).err(),
                Ok(None) if self.inside => Some(MdaError::Unavailable(
                    "FetchMany: the stream ended mid-message".into(),
                )),
                Ok(None) => {
                    self.done = true;
                    None
                }
                Err(s) => Some(error("Mailbox.FetchMany", &s)),
            };
            if let Some(e) = failed {
                self.done = true;
                self.queue.clear();
                return Some((Err(e), self));
            }
        }
    }
}

impl Mda for GrpcMda {
    async fn verify(
        &self,
        user: &str,
        password: &str,
        service: &str,
        remote_addr: &str,
    ) -> Result<Verdict, MdaError> {
        if let Some(passwd) = &self.passwd {
            return match passwd.verify(user, password).await {
                Ok(Some(account)) => Ok(Verdict::Ok(account)),
                Ok(None) => Ok(Verdict::Failed),
                Err(e) => {
                    tracing::error!(error = %e, "passwd-file check failed");
                    Err(MdaError::Unavailable(e.to_string()))
                }
            };
        }
        let req = pb::VerifyRequest {
            user: user.to_owned(),
            password: password.to_owned(),
            service: service.to_owned(),
            remote_addr: remote_addr.to_owned(),
        };
        let r = self
            .auth
            .clone()
            .verify(req)
            .await
            .map_err(on("Auth.Verify"))?
            .into_inner();
        Ok(if r.ok {
            Verdict::Ok(r.user)
        } else {
            Verdict::Failed
        })
    }

    async fn prepare_user(&self, user: &str) -> Result<(), MdaError> {
        let req = pb::UserRef {
            user: user.to_owned(),
        };
        self.mailbox()
            .prepare_user(req)
            .await
            .map_err(on("Mailbox.PrepareUser"))?;
        Ok(())
    }

    async fn mailboxes(&self, user: &str) -> Result<(Vec<MailboxInfo>, Vec<String>), MdaError> {
        let req = pb::UserRef {
            user: user.to_owned(),
        };
        let r = self
            .mailbox()
            .mailboxes(req)
            .await
            .map_err(on("Mailbox.Mailboxes"))?
            .into_inner();
        let infos = r
            .mailboxes
            .into_iter()
            .map(convert::mailbox_info_from_pb)
            .collect::<Result<Vec<_>, _>>()
            .map_err(on("Mailbox.Mailboxes"))?;
        Ok((infos, r.subscribed_only))
    }

    async fn create(&self, mailbox: &MailboxRef, role: Option<Role>) -> Result<(), MdaError> {
        let req = pb::CreateMailboxRequest {
            mailbox: Some(wire_ref(mailbox)),
            role: convert::role_to_pb(role) as i32,
        };
        self.mailbox()
            .create_mailbox(req)
            .await
            .map_err(on("Mailbox.CreateMailbox"))?;
        Ok(())
    }

    async fn rename(&self, user: &str, from: &str, to: &str) -> Result<(), MdaError> {
        let req = pb::RenameMailboxRequest {
            user: user.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
        };
        self.mailbox()
            .rename_mailbox(req)
            .await
            .map_err(on("Mailbox.RenameMailbox"))?;
        Ok(())
    }

    async fn delete(&self, mailbox: &MailboxRef) -> Result<(), MdaError> {
        self.mailbox()
            .delete_mailbox(wire_ref(mailbox))
            .await
            .map_err(on("Mailbox.DeleteMailbox"))?;
        Ok(())
    }

    async fn subscribe(&self, mailbox: &MailboxRef, subscribed: bool) -> Result<(), MdaError> {
        let req = pb::SubscribeRequest {
            mailbox: Some(wire_ref(mailbox)),
            subscribed,
        };
        self.mailbox()
            .subscribe(req)
            .await
            .map_err(on("Mailbox.Subscribe"))?;
        Ok(())
    }

    async fn status(&self, mailbox: &MailboxRef) -> Result<(MailboxStatus, Vec<String>), MdaError> {
        let s = self
            .mailbox()
            .status(wire_ref(mailbox))
            .await
            .map_err(on("Mailbox.Status"))?
            .into_inner();
        Ok(convert::status_from_pb(s))
    }

    async fn uids(&self, mailbox: &MailboxRef) -> Result<Vec<Uid>, MdaError> {
        let runs = self
            .mailbox()
            .uids(wire_ref(mailbox))
            .await
            .map_err(on("Mailbox.Uids"))?
            .into_inner();
        convert::runs_to_uids(&runs).map_err(on("Mailbox.Uids"))
    }

    async fn metas(
        &self,
        mailbox: &MailboxRef,
        uids: &[Uid],
    ) -> Result<Vec<MessageMeta>, MdaError> {
        let req = pb::MetasRequest {
            mailbox: Some(wire_ref(mailbox)),
            uids: uids.to_vec(),
        };
        let page = self
            .mailbox()
            .metas(req)
            .await
            .map_err(on("Mailbox.Metas"))?
            .into_inner();
        Ok(page.metas.into_iter().map(Into::into).collect())
    }

    async fn fetch(
        &self,
        mailbox: &MailboxRef,
        uids: &[Uid],
        part: Part,
    ) -> Result<BoxStream<Fetched>, MdaError> {
        let part = match part {
            Part::None => pb::FetchPart::None,
            Part::Header => pb::FetchPart::Header,
            Part::Whole => pb::FetchPart::Whole,
        };
        let req = pb::FetchManyRequest {
            mailbox: Some(wire_ref(mailbox)),
            uids: uids.to_vec(),
            part: part as i32,
        };
        let stream = self
            .mailbox()
            .fetch_many(req)
            .await
            .map_err(on("Mailbox.FetchMany"))?
            .into_inner();
        let state = FetchState {
            stream,
            queue: VecDeque::new(),
            inside: false,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, FetchState::next)))
    }

    async fn read(&self, mailbox: &MailboxRef, uid: Uid) -> Result<Option<Vec<u8>>, MdaError> {
        let req = pb::FetchRequest {
            mailbox: Some(wire_ref(mailbox)),
            uid,
            offset: 0,
            length: 0,
        };
        let mut stream = match self.mailbox().fetch(req).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::NotFound => {
                // No such message, or no such mailbox: Status tells which.
                self.status(mailbox).await?;
                return Ok(None);
            }
            Err(s) => return Err(error("Mailbox.Fetch", &s)),
        };
        let mut out = Vec::new();
        while let Some(c) = stream.message().await.map_err(on("Mailbox.Fetch"))? {
            out.extend_from_slice(&c.data);
        }
        Ok(Some(out))
    }

    async fn store_flags(
        &self,
        mailbox: &MailboxRef,
        uids: &[Uid],
        op: FlagOp,
        flags: &[String],
        unchanged_since: Option<u64>,
    ) -> Result<StoreFlagsResult, MdaError> {
        let req = pb::StoreFlagsRequest {
            mailbox: Some(wire_ref(mailbox)),
            uids: uids.to_vec(),
            op: convert::flag_op_to_pb(op) as i32,
            flags: flags.to_vec(),
            unchanged_since: unchanged_since.unwrap_or(0),
        };
        let r = self
            .mailbox()
            .store_flags(req)
            .await
            .map_err(on("Mailbox.StoreFlags"))?
            .into_inner();
        Ok(r.into())
    }

    async fn expunge(
        &self,
        mailbox: &MailboxRef,
        uids: Option<&[Uid]>,
    ) -> Result<Vec<Uid>, MdaError> {
        let req = pb::ExpungeRequest {
            mailbox: Some(wire_ref(mailbox)),
            uids: uids.map(<[Uid]>::to_vec).unwrap_or_default(),
            only_uids: uids.is_some(),
        };
        let r = self
            .mailbox()
            .expunge(req)
            .await
            .map_err(on("Mailbox.Expunge"))?
            .into_inner();
        Ok(r.expunged)
    }

    async fn append(
        &self,
        mailbox: &MailboxRef,
        flags: &[String],
        internal_date: Option<i64>,
        message: Vec<u8>,
    ) -> Result<Appended, MdaError> {
        use pb::append_request::Part as P;
        let start = pb::AppendRequest {
            part: Some(P::Start(pb::AppendStart {
                mailbox: Some(wire_ref(mailbox)),
                flags: flags.to_vec(),
                internal_date: internal_date.unwrap_or(0),
            })),
        };
        let size = message.len() as u64;
        let chunks = message.len().div_ceil(facteur_rpc::CHUNK_SIZE);
        // Chunks are cut as the stream is read: the message is held once.
        let body = futures::stream::iter(0..chunks).map(move |i| {
            let at = i * facteur_rpc::CHUNK_SIZE;
            let to = (at + facteur_rpc::CHUNK_SIZE).min(message.len());
            pb::AppendRequest {
                part: Some(P::Chunk(message[at..to].to_vec())),
            }
        });
        let end = pb::AppendRequest {
            part: Some(P::End(MessageEnd { size })),
        };
        let stream = futures::stream::iter([start])
            .chain(body)
            .chain(futures::stream::iter([end]));
        let r = self
            .mailbox()
            .append(stream)
            .await
            .map_err(on("Mailbox.Append"))?
            .into_inner();
        Ok(r.into())
    }

    async fn copy(
        &self,
        from: &MailboxRef,
        uids: &[Uid],
        to: &str,
        expunge: bool,
    ) -> Result<Copied, MdaError> {
        let req = pb::CopyRequest {
            from: Some(wire_ref(from)),
            uids: uids.to_vec(),
            to: to.to_owned(),
            expunge,
        };
        let r = self
            .mailbox()
            .copy(req)
            .await
            .map_err(on("Mailbox.Copy"))?
            .into_inner();
        convert::copied_from_pb(r).map_err(on("Mailbox.Copy"))
    }

    async fn search(
        &self,
        mailbox: &MailboxRef,
        query: &Query,
    ) -> Result<(Vec<Uid>, u64), MdaError> {
        let query = convert::query_to_pb(query).map_err(on("Mailbox.Search"))?;
        let req = pb::SearchRequest {
            mailbox: Some(wire_ref(mailbox)),
            query: Some(query),
        };
        let r = self
            .mailbox()
            .search(req)
            .await
            .map_err(on("Mailbox.Search"))?
            .into_inner();
        Ok((r.uids, r.highest_modseq))
    }

    async fn changes(&self, mailbox: &MailboxRef, since: u64) -> Result<Changes, MdaError> {
        let req = pb::ChangesRequest {
            mailbox: Some(wire_ref(mailbox)),
            since,
        };
        let r = self
            .mailbox()
            .changes(req)
            .await
            .map_err(on("Mailbox.Changes"))?
            .into_inner();
        let mut updated: Vec<MessageMeta> = r.updated.into_iter().map(Into::into).collect();
        updated.sort_by_key(|m| m.uid);
        let mut expunged: Vec<Uid> = r.expunged.into_iter().map(|t| t.uid).collect();
        expunged.sort_unstable();
        Ok(Changes {
            updated,
            expunged,
            highest_modseq: r.highest_modseq,
        })
    }

    async fn watch(&self, mailbox: &MailboxRef) -> Result<BoxStream<u64>, MdaError> {
        let stream = self
            .mailbox()
            .watch(wire_ref(mailbox))
            .await
            .map_err(on("Mailbox.Watch"))?
            .into_inner();
        Ok(Box::pin(stream.map(|r| {
            r.map(|e| e.highest_modseq).map_err(on("Mailbox.Watch"))
        })))
    }

    async fn lock(&self, user: &str, owner: &str, ttl_secs: u64) -> Result<bool, MdaError> {
        let req = pb::LockRequest {
            user: user.to_owned(),
            owner: owner.to_owned(),
            ttl_secs,
        };
        let r = self
            .mailbox()
            .lock(req)
            .await
            .map_err(on("Mailbox.Lock"))?
            .into_inner();
        Ok(r.acquired)
    }

    async fn unlock(&self, user: &str, owner: &str) -> Result<(), MdaError> {
        let req = pb::LockRequest {
            user: user.to_owned(),
            owner: owner.to_owned(),
            ttl_secs: 0,
        };
        self.mailbox()
            .unlock(req)
            .await
            .map_err(on("Mailbox.Unlock"))?;
        Ok(())
    }
}
