//! The MAA's two `Mda` implementations tell the same story: one scenario
//! (login, folders, APPEND, FETCH, SEARCH, COPY/MOVE, flags, CHANGES, WATCH,
//! errors) runs against `GrpcMda` talking to the real MDA services on loopback
//! and against `StoreMda` in process, so session tests on `StoreMda` hold for
//! production.
#![allow(clippy::unwrap_used)] // test code: a failure here is a failed test

use std::sync::Arc;
use std::time::Duration;

use facteur_maa::mda::{
    Fetched, FlagOp, GrpcMda, MailboxRef, Mda, MdaError, Part, Query, Role, StoreMda, Verdict,
};
use facteur_mda::filing::Filing;
use facteur_mda::grpc::{AuthService, Services};
use facteur_mda::store::{Field, SledStore};
use facteur_rpc::mailbox::auth_server::AuthServer;
use facteur_rpc::mailbox::mailbox_server::MailboxServer;
use futures::StreamExt;

const USER: &str = "andre@lyon.test";
const MSG: &[u8] =
    b"From: pierre@paris.test\r\nSubject: Lunch on Friday\r\n\r\nSee you at noon.\r\n";

async fn grpc(dir: &std::path::Path) -> GrpcMda {
    let store = SledStore::open(dir).unwrap();
    let accounts = facteur_mda::accounts::Accounts::new(Arc::new(store.clone()));
    accounts.add(USER, "pw").unwrap();
    let auth =
        facteur_mda::auth::Authenticator::start(accounts.clone(), &Default::default()).unwrap();
    let services = Services {
        filing: Filing {
            store: Arc::new(store),
            accounts,
            aliases: Arc::new(Default::default()),
            maildir: None,
            quota_bytes: 0,
        },
        max_message_size: 1 << 20,
        shutdown: facteur_daemon::Shutdown::new(),
        transcripts: facteur_daemon::transcript::Transcripts::off(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MailboxServer::new(services))
            .add_service(AuthServer::new(AuthService { auth }))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    GrpcMda::new(channel)
}

async fn fetched<M: Mda>(mda: &M, m: &MailboxRef, uids: &[u32], part: Part) -> Vec<Fetched> {
    let mut s = mda.fetch(m, uids, part).await.unwrap();
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.push(item.unwrap());
    }
    out
}

/// Data items of a fetch joined, so chunking does not matter.
fn bytes(items: &[Fetched]) -> Vec<u8> {
    items
        .iter()
        .filter_map(|f| match f {
            Fetched::Data(d) => Some(d.to_vec()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .concat()
}

async fn scenario<M: Mda>(mda: M) {
    let inbox = MailboxRef::new(USER, "INBOX");
    assert_eq!(
        mda.verify("Andre@lyon.test", "pw", "imap", "127.0.0.1")
            .await
            .unwrap(),
        Verdict::Ok(USER.into())
    );
    assert_eq!(
        mda.verify(USER, "wrong", "imap", "127.0.0.1")
            .await
            .unwrap(),
        Verdict::Failed
    );
    mda.prepare_user(USER).await.unwrap();
    let (boxes, only) = mda.mailboxes(USER).await.unwrap();
    assert!(only.is_empty());
    assert_eq!(
        boxes.iter().find(|b| b.name == "Trash").unwrap().role,
        Some(Role::Trash)
    );

    // Folders.
    let work = MailboxRef::new(USER, "Work");
    mda.create(&work, None).await.unwrap();
    assert!(matches!(
        mda.create(&work, None).await,
        Err(MdaError::Exists(_))
    ));
    mda.subscribe(&MailboxRef::new(USER, "Gone"), true)
        .await
        .unwrap();
    let (_, only) = mda.mailboxes(USER).await.unwrap();
    assert_eq!(only, vec!["Gone".to_owned()]);
    assert!(matches!(
        mda.delete(&inbox).await,
        Err(MdaError::NotAllowed(_))
    ));
    let nope = MailboxRef::new(USER, "Nope");
    assert!(matches!(
        mda.status(&nope).await,
        Err(MdaError::NoSuchMailbox(_))
    ));

    // APPEND, then FETCH it back in each form.
    let (before, _) = mda.status(&inbox).await.unwrap();
    let mut watch = mda.watch(&inbox).await.unwrap();
    assert_eq!(watch.next().await.unwrap().unwrap(), before.highest_modseq);
    let a = mda
        .append(
            &inbox,
            &["$Lunch".into()],
            Some(1_700_000_000),
            MSG.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(a.uidvalidity, before.uidvalidity);
    let seen = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(seen > before.highest_modseq, "WATCH reports the APPEND");
    let big: Vec<u8> = [b"Subject: big\r\n\r\n".as_slice(), &vec![b'z'; 150 * 1024]].concat();
    let b = mda.append(&inbox, &[], None, big.clone()).await.unwrap();
    let whole = fetched(&mda, &inbox, &[b.uid, 999, a.uid], Part::Whole).await;
    let Fetched::Meta(meta_b) = &whole[0] else {
        panic!("meta first: {:?}", whole[0])
    };
    assert_eq!(meta_b.size, big.len() as u64);
    let missing_at = whole
        .iter()
        .position(|f| *f == Fetched::Missing(999))
        .unwrap();
    assert_eq!(bytes(&whole[..missing_at]), big);
    assert_eq!(bytes(&whole[missing_at..]), MSG);
    assert_eq!(whole.last(), Some(&Fetched::End));
    let header = fetched(&mda, &inbox, &[a.uid], Part::Header).await;
    assert_eq!(
        bytes(&header),
        b"From: pierre@paris.test\r\nSubject: Lunch on Friday\r\n\r\n"
    );
    let none = fetched(&mda, &inbox, &[a.uid], Part::None).await;
    let [Fetched::Meta(meta_a), Fetched::End] = &none[..] else {
        panic!("meta only: {none:?}")
    };
    assert_eq!(meta_a.internal_date, 1_700_000_000);
    assert_eq!(meta_a.flags, vec!["$Lunch".to_owned()]);
    assert_eq!(mda.read(&inbox, b.uid).await.unwrap(), Some(big.clone()));
    assert_eq!(mda.read(&inbox, 999).await.unwrap(), None);
    assert!(matches!(
        mda.read(&nope, 1).await,
        Err(MdaError::NoSuchMailbox(_))
    ));
    let (status, keywords) = mda.status(&inbox).await.unwrap();
    assert_eq!(status.exists, 2);
    assert_eq!(status.size, (MSG.len() + big.len()) as u64);
    assert_eq!(keywords, vec!["$Lunch".to_owned()]);
    assert_eq!(mda.uids(&inbox).await.unwrap(), vec![a.uid, b.uid]);
    let metas = mda.metas(&inbox, &[b.uid, a.uid, 5000]).await.unwrap();
    assert_eq!(
        metas.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![a.uid, b.uid]
    );

    // SEARCH.
    let subject = Query::Header(Field::Subject, "lunch".into());
    assert_eq!(mda.search(&inbox, &subject).await.unwrap().0, vec![a.uid]);
    let (hits, _) = mda
        .search(&inbox, &Query::Not(Box::new(Query::Flag("$Lunch".into()))))
        .await
        .unwrap();
    assert_eq!(hits, vec![b.uid]);

    // Flags, COPY, MOVE, CHANGES.
    let since = mda.status(&inbox).await.unwrap().0.highest_modseq;
    let r = mda
        .store_flags(&inbox, &[a.uid], FlagOp::Add, &["\\Seen".into()], None)
        .await
        .unwrap();
    assert!(r.updated[0].flags.contains(&"\\Seen".to_owned()));
    let copied = mda.copy(&inbox, &[a.uid], "Work", false).await.unwrap();
    assert_eq!(copied.uids.len(), 1);
    assert_eq!(
        bytes(&fetched(&mda, &work, &[copied.uids[0].1], Part::Whole).await),
        MSG
    );
    let moved = mda.copy(&inbox, &[b.uid], "Trash", true).await.unwrap();
    assert_eq!(moved.uids[0].0, b.uid);
    let changes = mda.changes(&inbox, since).await.unwrap();
    assert_eq!(changes.expunged, vec![b.uid]);
    assert_eq!(
        changes.updated.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![a.uid]
    );
    assert_eq!(
        changes.highest_modseq,
        mda.status(&inbox).await.unwrap().0.highest_modseq
    );
    assert_eq!(
        mda.expunge(&inbox, Some(&[a.uid])).await.unwrap(),
        vec![a.uid]
    );

    // Rename takes the messages along; the POP3 lock is exclusive.
    mda.rename(USER, "Work", "Done").await.unwrap();
    let done = MailboxRef::new(USER, "Done");
    assert_eq!(mda.status(&done).await.unwrap().0.exists, 1);
    assert!(mda.lock(USER, "s1", 60).await.unwrap());
    assert!(!mda.lock(USER, "s2", 60).await.unwrap());
    mda.unlock(USER, "s1").await.unwrap();
    assert!(mda.lock(USER, "s2", 60).await.unwrap());
}

#[tokio::test]
async fn grpc_mda_against_the_real_mda_services() {
    let dir = tempfile::tempdir().unwrap();
    scenario(grpc(dir.path()).await).await;
}

#[tokio::test]
async fn store_mda_in_process() {
    let dir = tempfile::tempdir().unwrap();
    scenario(StoreMda::open(dir.path(), &[(USER, "pw")]).unwrap()).await;
}
