//! `[store] maildir` over a real gRPC socket: each message lands once per
//! message key as a file in the recipient's Maildir `new/` (with Return-Path),
//! also after a crash between the file's rename and the record of it; the
//! `Mailbox` service refuses with a message naming the Maildir.
#![allow(clippy::unwrap_used)] // test helpers: a failure here is a failed test

use std::path::{Path, PathBuf};
use std::sync::Arc;

use facteur_mda::filing::Filing;
use facteur_mda::grpc::Services;
use facteur_mda::store::maildir::MaildirTree;
use facteur_mda::store::{Mark, Marks, SledStore};
use facteur_rpc::delivery::delivery_client::DeliveryClient;
use facteur_rpc::delivery::delivery_server::DeliveryServer;
use facteur_rpc::delivery::{DeliverRequest, DeliveryEnvelope, deliver_request::Part};
use facteur_rpc::mailbox::UserRef;
use facteur_rpc::mailbox::mailbox_client::MailboxClient;
use facteur_rpc::mailbox::mailbox_server::MailboxServer;
use facteur_rpc::relay::MessageEnd;
use tonic::transport::Channel;

async fn start(store: SledStore, root: &Path) -> Channel {
    let accounts = facteur_mda::accounts::Accounts::new(Arc::new(store.clone()));
    accounts.add("andre@lyon.test", "pw").unwrap();
    let services = Services {
        filing: Filing {
            store: Arc::new(store),
            accounts,
            aliases: Arc::new(
                [(
                    "postmaster@lyon.test".to_owned(),
                    "andre@lyon.test".to_owned(),
                )]
                .into(),
            ),
            maildir: Some(Arc::new(MaildirTree::new(root, "mx.lyon.test"))),
            quota_bytes: 0,
        },
        max_message_size: 1 << 20,
        shutdown: facteur_daemon::Shutdown::new(),
        transcripts: facteur_daemon::transcript::Transcripts::off(),
    };
    let refusal = facteur_mda::elsewhere_status(root);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(DeliveryServer::new(services.clone()))
            .add_service(MailboxServer::with_interceptor(services, move |_| {
                Err(refusal.clone())
            }))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy()
}

async fn deliver(channel: &Channel, key: &str, rcpts: &[&str], body: &[u8]) -> Vec<(u32, String)> {
    let parts = vec![
        DeliverRequest {
            part: Some(Part::Envelope(DeliveryEnvelope {
                message_key: key.into(),
                mail_from: "pierre@paris.test".into(),
                rcpt_to: rcpts.iter().map(|r| (*r).to_owned()).collect(),
            })),
        },
        DeliverRequest {
            part: Some(Part::Chunk(body.to_vec())),
        },
        DeliverRequest {
            part: Some(Part::End(MessageEnd {
                size: body.len() as u64,
            })),
        },
    ];
    DeliveryClient::new(channel.clone())
        .deliver(tokio_stream::iter(parts))
        .await
        .unwrap()
        .into_inner()
        .results
        .iter()
        .map(|r| {
            let m = r.reply.clone().unwrap();
            (m.code, m.enhanced)
        })
        .collect()
}

/// Every file of `dir` (new/ or cur/), sorted.
fn files(dir: PathBuf) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_retried_delivery_makes_one_file_in_new() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let channel = start(SledStore::open(&dir.path().join("store")).unwrap(), &root).await;
    let body = b"Subject: hi\r\n\r\nhello\r\n";
    for _ in 0..2 {
        let codes = deliver(
            &channel,
            "k1",
            &[
                "andre@lyon.test",
                "nobody@lyon.test",
                "Postmaster@lyon.test",
            ],
            body,
        )
        .await;
        assert_eq!(
            codes,
            vec![
                (250, "2.0.0".into()),
                (550, "5.1.1".into()),
                (250, "2.0.0".into())
            ]
        );
    }
    let new = files(root.join("lyon.test/andre/new"));
    assert_eq!(
        new.len(),
        1,
        "one file for one key, alias included: {new:?}"
    );
    assert_eq!(
        std::fs::read(&new[0]).unwrap(),
        b"Return-Path: <pierre@paris.test>\r\nSubject: hi\r\n\r\nhello\r\n"
    );
    assert!(!root.join("lyon.test/nobody").exists());
    // Another key is another message.
    deliver(&channel, "k2", &["andre@lyon.test"], body).await;
    assert_eq!(files(root.join("lyon.test/andre/new")).len(), 2);
}

#[tokio::test]
async fn a_crash_after_the_rename_does_not_file_twice() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let store = SledStore::open(&dir.path().join("store")).unwrap();
    let tree = MaildirTree::new(&root, "h");
    // As if the MDA died after renaming the file, before recording it done
    // (and an IMAP server has since marked it seen, moving it to cur/).
    let name = tree.new_name(5);
    store
        .set_mark(
            Mark::MaildirDelivery,
            "andre@lyon.test",
            "k1",
            &format!("pending:{name}"),
        )
        .unwrap();
    tree.ensure_folder("andre@lyon.test", "INBOX").unwrap();
    let cur = root.join("lyon.test/andre/cur");
    std::fs::write(cur.join(format!("{name}:2,S")), b"hello").unwrap();
    // As if it died before the rename: nothing on disk for k2.
    store
        .set_mark(
            Mark::MaildirDelivery,
            "andre@lyon.test",
            "k2",
            &format!("pending:{}", tree.new_name(5)),
        )
        .unwrap();
    let channel = start(store.clone(), &root).await;
    assert_eq!(
        deliver(&channel, "k1", &["andre@lyon.test"], b"hello").await,
        vec![(250, "2.0.0".into())]
    );
    assert!(files(root.join("lyon.test/andre/new")).is_empty());
    assert_eq!(
        store
            .get_mark(Mark::MaildirDelivery, "andre@lyon.test", "k1")
            .unwrap(),
        Some(format!("done:{name}"))
    );
    assert_eq!(
        deliver(&channel, "k2", &["andre@lyon.test"], b"hello").await,
        vec![(250, "2.0.0".into())]
    );
    assert_eq!(files(root.join("lyon.test/andre/new")).len(), 1);
}

#[tokio::test]
async fn the_mailbox_service_points_at_the_maildir() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let channel = start(SledStore::open(&dir.path().join("store")).unwrap(), &root).await;
    let err = MailboxClient::new(channel)
        .prepare_user(UserRef {
            user: "andre@lyon.test".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message().contains(&format!(
            "mailboxes are in the Maildir at {}",
            root.display()
        )),
        "{}",
        err.message()
    );
    assert!(
        err.metadata()
            .get(facteur_rpc::MAILBOXES_ELSEWHERE)
            .is_some()
    );
}
