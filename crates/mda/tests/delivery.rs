//! The MDA's gRPC `Delivery` and `Mailbox` services over a real socket: a retried
//! delivery (same message key) files once; a transfer without its end marker, or
//! with a wrong size, files nothing; unknown users get 550 5.1.1.
#![allow(clippy::unwrap_used)] // test helpers: a failure here is a failed test

use std::sync::Arc;

use facteur_mda::filing::Filing;
use facteur_mda::grpc::Services;
use facteur_mda::store::SledStore;
use facteur_rpc::delivery::delivery_client::DeliveryClient;
use facteur_rpc::delivery::delivery_server::DeliveryServer;
use facteur_rpc::delivery::{DeliverRequest, DeliveryEnvelope, deliver_request::Part};
use facteur_rpc::mailbox::mailbox_client::MailboxClient;
use facteur_rpc::mailbox::mailbox_server::MailboxServer;
use facteur_rpc::mailbox::{FetchManyRequest, FetchPart, MailboxRef};
use facteur_rpc::relay::MessageEnd;
use tonic::transport::Channel;

async fn start(dir: &std::path::Path) -> Channel {
    let store = SledStore::open(dir).unwrap();
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
            .add_service(DeliveryServer::new(services.clone()))
            .add_service(MailboxServer::new(services))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy()
}

fn parts(key: &str, rcpts: &[&str], body: &[u8], end: Option<u64>) -> Vec<DeliverRequest> {
    let mut v = vec![
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
    ];
    if let Some(size) = end {
        v.push(DeliverRequest {
            part: Some(Part::End(MessageEnd { size })),
        });
    }
    v
}

async fn exists(channel: &Channel) -> u32 {
    let mut c = MailboxClient::new(channel.clone());
    c.status(MailboxRef {
        user: "andre@lyon.test".into(),
        mailbox: "INBOX".into(),
    })
    .await
    .unwrap()
    .into_inner()
    .exists
}

#[tokio::test]
async fn a_retried_delivery_files_once_and_unknown_users_get_550() {
    let dir = tempfile::tempdir().unwrap();
    let channel = start(dir.path()).await;
    let mut client = DeliveryClient::new(channel.clone());
    let body = b"Subject: hi\r\n\r\nhello\r\n";
    let n = body.len() as u64;
    for _ in 0..2 {
        let reply = client
            .deliver(tokio_stream::iter(parts(
                "k1",
                &["andre@lyon.test", "nobody@lyon.test"],
                body,
                Some(n),
            )))
            .await
            .unwrap()
            .into_inner();
        let codes: Vec<(u32, String)> = reply
            .results
            .iter()
            .map(|r| {
                let m = r.reply.clone().unwrap();
                (m.code, m.enhanced)
            })
            .collect();
        assert_eq!(codes, vec![(250, "2.0.0".into()), (550, "5.1.1".into())]);
    }
    assert_eq!(
        exists(&channel).await,
        1,
        "the retry must not file a second copy"
    );
}

#[tokio::test]
async fn a_transfer_without_its_end_marker_or_with_a_wrong_size_files_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let channel = start(dir.path()).await;
    let mut client = DeliveryClient::new(channel.clone());
    let body = b"Subject: cut\r\n\r\nhalf a mess";
    let cut = client
        .deliver(tokio_stream::iter(parts(
            "k2",
            &["andre@lyon.test"],
            body,
            None,
        )))
        .await;
    assert!(cut.is_err(), "no end marker must be an error: {cut:?}");
    let wrong = client
        .deliver(tokio_stream::iter(parts(
            "k3",
            &["andre@lyon.test"],
            body,
            Some(9999),
        )))
        .await;
    assert!(
        wrong.is_err(),
        "a size mismatch must be an error: {wrong:?}"
    );
    assert_eq!(exists(&channel).await, 0);
}

/// Every message of a `FetchMany` stream, reassembled: `(uid, bytes)`, with
/// `None` for a missing one.
async fn fetch_many(
    channel: &Channel,
    uids: &[u32],
    part: FetchPart,
) -> Vec<(u32, Option<Vec<u8>>)> {
    let mut c = MailboxClient::new(channel.clone());
    let mut stream = c
        .fetch_many(FetchManyRequest {
            mailbox: Some(MailboxRef {
                user: "andre@lyon.test".into(),
                mailbox: "INBOX".into(),
            }),
            uids: uids.to_vec(),
            part: part as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let mut out: Vec<(u32, Option<Vec<u8>>)> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        if chunk.missing {
            assert!(chunk.last && chunk.data.is_empty());
            out.push((chunk.uid, None));
            continue;
        }
        current.extend_from_slice(&chunk.data);
        if chunk.last {
            out.push((chunk.uid, Some(std::mem::take(&mut current))));
        }
    }
    assert!(current.is_empty(), "a message without its last chunk");
    out
}

#[tokio::test]
async fn fetch_many_streams_whole_messages_or_only_headers_in_the_order_asked() {
    let dir = tempfile::tempdir().unwrap();
    let channel = start(dir.path()).await;
    let mut client = DeliveryClient::new(channel.clone());
    let small = b"Subject: one\r\n\r\nbody one\r\n".to_vec();
    // A header longer than the first read and a body over one chunk.
    let mut big = Vec::new();
    for i in 0..600 {
        big.extend_from_slice(format!("X-Long-{i}: {}\r\n", "v".repeat(40)).as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    big.extend_from_slice(&vec![b'b'; 200 * 1024]);
    let no_body = b"Subject: header only\r\n".to_vec();
    for (key, body) in [("s", &small), ("b", &big), ("n", &no_body)] {
        let n = body.len() as u64;
        client
            .deliver(tokio_stream::iter(parts(
                key,
                &["andre@lyon.test"],
                body,
                Some(n),
            )))
            .await
            .unwrap();
    }
    // Filing adds Return-Path first.
    let stored = |m: &[u8]| [b"Return-Path: <pierre@paris.test>\r\n".as_slice(), m].concat();
    let header = |m: &[u8]| {
        let m = stored(m);
        let end = m
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(m.len(), |i| i + 4);
        m[..end].to_vec()
    };
    let whole = fetch_many(&channel, &[3, 1, 77, 2], FetchPart::Whole).await;
    assert_eq!(
        whole,
        vec![
            (3, Some(stored(&no_body))),
            (1, Some(stored(&small))),
            (77, None),
            (2, Some(stored(&big))),
        ]
    );
    let headers = fetch_many(&channel, &[2, 1, 3], FetchPart::Header).await;
    assert_eq!(
        headers,
        vec![
            (2, Some(header(&big))),
            (1, Some(header(&small))),
            (3, Some(header(&no_body))),
        ]
    );
    assert!(
        header(&big).len() > 16 * 1024,
        "the long header needs more than one read"
    );
}
