//! An MDA that is down: every call fails as `GrpcMda` fails when the MDA
//! does not answer. The session must say `NO [UNAVAILABLE]`, never panic.

use super::*;
use crate::mda::{
    Appended, BoxStream, Changes, Copied, Fetched, FlagOp, MailboxInfo, MailboxStatus, MdaError,
    MessageMeta, Part, Query, Role, StoreFlagsResult, Uid, Verdict,
};

#[derive(Clone)]
struct Down;

fn down<T>() -> Result<T, MdaError> {
    Err(MdaError::Unavailable("connection refused".to_owned()))
}

impl Mda for Down {
    async fn verify(&self, _: &str, _: &str, _: &str, _: &str) -> Result<Verdict, MdaError> {
        down()
    }
    async fn prepare_user(&self, _: &str) -> Result<(), MdaError> {
        down()
    }
    async fn mailboxes(&self, _: &str) -> Result<(Vec<MailboxInfo>, Vec<String>), MdaError> {
        down()
    }
    async fn create(&self, _: &MailboxRef, _: Option<Role>) -> Result<(), MdaError> {
        down()
    }
    async fn rename(&self, _: &str, _: &str, _: &str) -> Result<(), MdaError> {
        down()
    }
    async fn delete(&self, _: &MailboxRef) -> Result<(), MdaError> {
        down()
    }
    async fn subscribe(&self, _: &MailboxRef, _: bool) -> Result<(), MdaError> {
        down()
    }
    async fn status(&self, _: &MailboxRef) -> Result<(MailboxStatus, Vec<String>), MdaError> {
        down()
    }
    async fn uids(&self, _: &MailboxRef) -> Result<Vec<Uid>, MdaError> {
        down()
    }
    async fn metas(&self, _: &MailboxRef, _: &[Uid]) -> Result<Vec<MessageMeta>, MdaError> {
        down()
    }
    async fn fetch(
        &self,
        _: &MailboxRef,
        _: &[Uid],
        _: Part,
    ) -> Result<BoxStream<Fetched>, MdaError> {
        down()
    }
    async fn read(&self, _: &MailboxRef, _: Uid) -> Result<Option<Vec<u8>>, MdaError> {
        down()
    }
    async fn store_flags(
        &self,
        _: &MailboxRef,
        _: &[Uid],
        _: FlagOp,
        _: &[String],
        _: Option<u64>,
    ) -> Result<StoreFlagsResult, MdaError> {
        down()
    }
    async fn expunge(&self, _: &MailboxRef, _: Option<&[Uid]>) -> Result<Vec<Uid>, MdaError> {
        down()
    }
    async fn append(
        &self,
        _: &MailboxRef,
        _: &[String],
        _: Option<i64>,
        _: Vec<u8>,
    ) -> Result<Appended, MdaError> {
        down()
    }
    async fn copy(&self, _: &MailboxRef, _: &[Uid], _: &str, _: bool) -> Result<Copied, MdaError> {
        down()
    }
    async fn search(&self, _: &MailboxRef, _: &Query) -> Result<(Vec<Uid>, u64), MdaError> {
        down()
    }
    async fn changes(&self, _: &MailboxRef, _: u64) -> Result<Changes, MdaError> {
        down()
    }
    async fn watch(&self, _: &MailboxRef) -> Result<BoxStream<u64>, MdaError> {
        down()
    }
    async fn lock(&self, _: &str, _: &str, _: u64) -> Result<bool, MdaError> {
        down()
    }
    async fn unlock(&self, _: &str, _: &str) -> Result<(), MdaError> {
        down()
    }
}

#[tokio::test]
async fn with_the_mda_down_login_answers_unavailable() {
    let (acceptor, connector) = tls_pair();
    let ctx = Arc::new(ImapContext {
        config: ImapConfig::default(),
        mda: Down,
        tls: Some(acceptor),
        shutdown: facteur_daemon::Shutdown::new(),
        transcripts: facteur_daemon::transcript::Transcripts::off(),
    });
    let (client, server) = tokio::io::duplex(64 * 1024);
    let peer = "127.0.0.1:40000".parse().unwrap();
    tokio::spawn(async move {
        let _ = serve(Stream::Memory(server), peer, ctx, true).await;
    });
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = Client::new(connector.connect(name, client).await.unwrap());
    c.line().await;
    let r = c.cmd("d1", &format!("LOGIN {USER} {PASSWORD}")).await;
    assert!(r.starts_with("d1 NO [UNAVAILABLE]"), "{r}");
    let r = c.cmd("d2", "NOOP").await;
    assert!(r.starts_with("d2 OK"), "the session goes on: {r}");
}
