//! The MDA's `Mailbox` RPCs for IMAP over a real socket: APPEND files only a
//! complete, correctly sized message; COPY and MOVE keep the bytes and report
//! the new uids; SEARCH queries cross the wire intact; WATCH reports an append;
//! CHANGES reports an expunge's tombstone; folders, subscriptions and STATUS.
#![allow(clippy::unwrap_used)] // test helpers: a failure here is a failed test

use std::sync::Arc;
use std::time::Duration;

use facteur_mda::filing::Filing;
use facteur_mda::grpc::Services;
use facteur_mda::store::{Field, Query, SledStore};
use facteur_rpc::convert;
use facteur_rpc::mailbox::append_request::Part;
use facteur_rpc::mailbox::mailbox_client::MailboxClient;
use facteur_rpc::mailbox::mailbox_server::MailboxServer;
use facteur_rpc::mailbox::{
    AppendRequest, AppendStart, ChangesRequest, CopyRequest, CreateMailboxRequest, ExpungeRequest,
    FetchManyRequest, FetchPart, MailboxRef, MetasRequest, RenameMailboxRequest, Role,
    SearchRequest, StoreFlagsRequest, SubscribeRequest, UserRef,
};
use facteur_rpc::relay::MessageEnd;
use tonic::Code;
use tonic::transport::Channel;

const USER: &str = "andre@lyon.test";
const MAX: u64 = 64 * 1024;

async fn start(dir: &std::path::Path) -> (MailboxClient<Channel>, facteur_daemon::Shutdown) {
    let store = SledStore::open(dir).unwrap();
    let accounts = facteur_mda::accounts::Accounts::new(Arc::new(store.clone()));
    accounts.add(USER, "pw").unwrap();
    let shutdown = facteur_daemon::Shutdown::new();
    let services = Services {
        filing: Filing {
            store: Arc::new(store),
            accounts,
            aliases: Arc::new(Default::default()),
            maildir: None,
            quota_bytes: 0,
        },
        max_message_size: MAX,
        shutdown: shutdown.clone(),
        transcripts: facteur_daemon::transcript::Transcripts::off(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MailboxServer::new(services))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let mut client = MailboxClient::new(channel);
    client
        .prepare_user(UserRef { user: USER.into() })
        .await
        .unwrap();
    (client, shutdown)
}

fn mbox(name: &str) -> MailboxRef {
    MailboxRef {
        user: USER.into(),
        mailbox: name.into(),
    }
}

/// An APPEND stream: start, the body in two chunks, and an end marker
/// saying `end` bytes (none when `None`).
fn append_parts(
    mailbox: &str,
    flags: &[&str],
    body: &[u8],
    end: Option<u64>,
) -> Vec<AppendRequest> {
    let (a, b) = body.split_at(body.len() / 2);
    let mut v = vec![
        AppendRequest {
            part: Some(Part::Start(AppendStart {
                mailbox: Some(mbox(mailbox)),
                flags: flags.iter().map(|f| (*f).to_owned()).collect(),
                internal_date: 1_700_000_000,
            })),
        },
        AppendRequest {
            part: Some(Part::Chunk(a.to_vec())),
        },
        AppendRequest {
            part: Some(Part::Chunk(b.to_vec())),
        },
    ];
    if let Some(size) = end {
        v.push(AppendRequest {
            part: Some(Part::End(MessageEnd { size })),
        });
    }
    v
}

async fn append(c: &mut MailboxClient<Channel>, mailbox: &str, flags: &[&str], body: &[u8]) -> u32 {
    c.append(tokio_stream::iter(append_parts(
        mailbox,
        flags,
        body,
        Some(body.len() as u64),
    )))
    .await
    .unwrap()
    .into_inner()
    .uid
}

async fn exists(c: &mut MailboxClient<Channel>, mailbox: &str) -> u32 {
    c.status(mbox(mailbox)).await.unwrap().into_inner().exists
}

/// Every message of a `FetchMany`, reassembled: (meta of the first chunk, bytes).
async fn fetch(
    c: &mut MailboxClient<Channel>,
    mailbox: &str,
    uids: &[u32],
    part: FetchPart,
) -> Vec<(Option<facteur_rpc::mailbox::MessageMeta>, Vec<u8>)> {
    let mut stream = c
        .fetch_many(FetchManyRequest {
            mailbox: Some(mbox(mailbox)),
            uids: uids.to_vec(),
            part: part as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    let mut current: Option<(Option<facteur_rpc::mailbox::MessageMeta>, Vec<u8>)> = None;
    while let Some(chunk) = stream.message().await.unwrap() {
        let cur = current.get_or_insert_with(|| (chunk.meta.clone(), Vec::new()));
        cur.1.extend_from_slice(&chunk.data);
        if chunk.last {
            out.extend(current.take());
        }
    }
    assert!(current.is_none(), "a message without its last chunk");
    out
}

const MSG: &[u8] = b"From: Pierre <pierre@paris.test>\r\nTo: andre@lyon.test\r\nSubject: Lunch on Friday\r\n\r\nSee you at noon.\r\n";

#[tokio::test]
async fn append_files_a_complete_message_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, _sd) = start(dir.path()).await;
    let status = c.status(mbox("Drafts")).await.unwrap().into_inner();
    let reply = c
        .append(tokio_stream::iter(append_parts(
            "Drafts",
            &["\\Draft", "$Label"],
            MSG,
            Some(MSG.len() as u64),
        )))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.uidvalidity, status.uidvalidity);
    assert_eq!(reply.uid, status.uidnext);
    let got = fetch(&mut c, "Drafts", &[reply.uid], FetchPart::Whole).await;
    let meta = got[0].0.clone().unwrap();
    assert_eq!(got[0].1, MSG, "the bytes come back as appended");
    assert_eq!(meta.internal_date, 1_700_000_000);
    assert_eq!(meta.size, MSG.len() as u64);
    assert_eq!(meta.flags, vec!["\\Draft".to_owned(), "$Label".to_owned()]);
    let s = c.status(mbox("Drafts")).await.unwrap().into_inner();
    assert_eq!((s.exists, s.size), (1, MSG.len() as u64));
    assert_eq!(s.keywords, vec!["$Label".to_owned()]);

    // Cut short, the wrong size, too big, or to a missing mailbox: refused,
    // nothing filed.
    let cut = c
        .append(tokio_stream::iter(append_parts("Drafts", &[], MSG, None)))
        .await;
    assert!(cut.is_err(), "no end marker must be an error: {cut:?}");
    let wrong = c
        .append(tokio_stream::iter(append_parts(
            "Drafts",
            &[],
            MSG,
            Some(3),
        )))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::InvalidArgument, "{wrong:?}");
    let big = vec![b'x'; MAX as usize + 1];
    let too_big = c
        .append(tokio_stream::iter(append_parts(
            "Drafts",
            &[],
            &big,
            Some(big.len() as u64),
        )))
        .await
        .unwrap_err();
    assert_eq!(too_big.code(), Code::InvalidArgument, "{too_big:?}");
    let missing = c
        .append(tokio_stream::iter(append_parts(
            "Nope",
            &[],
            MSG,
            Some(MSG.len() as u64),
        )))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert_eq!(exists(&mut c, "Drafts").await, 1);
}

#[tokio::test]
async fn copy_and_move_keep_the_bytes_and_report_the_new_uids() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, _sd) = start(dir.path()).await;
    let a = append(&mut c, "INBOX", &["\\Seen"], MSG).await;
    let b = append(&mut c, "INBOX", &[], b"Subject: two\r\n\r\n2\r\n").await;
    let archive = c.status(mbox("Archive")).await.unwrap().into_inner();
    let copied = c
        .copy(CopyRequest {
            from: Some(mbox("INBOX")),
            uids: vec![b, a, 999],
            to: "Archive".into(),
            expunge: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(copied.uidvalidity, archive.uidvalidity);
    assert_eq!(
        copied.source_uids,
        vec![a, b],
        "ascending, the missing uid left out"
    );
    assert_eq!(copied.dest_uids.len(), 2);
    assert_eq!(exists(&mut c, "INBOX").await, 2, "COPY leaves the source");
    let got = fetch(&mut c, "Archive", &[copied.dest_uids[0]], FetchPart::Whole).await;
    assert_eq!(got[0].1, MSG);
    assert_eq!(got[0].0.clone().unwrap().flags, vec!["\\Seen".to_owned()]);

    let moved = c
        .copy(CopyRequest {
            from: Some(mbox("INBOX")),
            uids: vec![a],
            to: "Trash".into(),
            expunge: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.source_uids, vec![a]);
    assert_eq!(
        exists(&mut c, "INBOX").await,
        1,
        "MOVE takes it out of the source"
    );
    assert_eq!(exists(&mut c, "Trash").await, 1);
    let to_missing = c
        .copy(CopyRequest {
            from: Some(mbox("INBOX")),
            uids: vec![b],
            to: "Nope".into(),
            expunge: true,
        })
        .await
        .unwrap_err();
    assert_eq!(to_missing.code(), Code::NotFound);
    assert_eq!(
        exists(&mut c, "INBOX").await,
        1,
        "a failed MOVE expunges nothing"
    );
}

#[tokio::test]
async fn search_queries_cross_the_wire_and_match_what_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, _sd) = start(dir.path()).await;
    let lunch = append(&mut c, "INBOX", &["\\Seen"], MSG).await;
    let other = append(
        &mut c,
        "INBOX",
        &[],
        b"From: marie@nantes.test\r\nSubject: Report\r\n\r\nnoon figures\r\n",
    )
    .await;
    let search = |q: Query| {
        let mut c = c.clone();
        async move {
            c.search(SearchRequest {
                mailbox: Some(mbox("INBOX")),
                query: Some(convert::query_to_pb(&q).unwrap()),
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    assert_eq!(
        search(Query::Header(Field::Subject, "lunch".into()))
            .await
            .uids,
        vec![lunch]
    );
    assert_eq!(
        search(Query::Header(Field::From, "nantes".into()))
            .await
            .uids,
        vec![other]
    );
    assert_eq!(
        search(Query::Body("noon".into())).await.uids,
        vec![lunch, other]
    );
    assert_eq!(
        search(Query::Not(Box::new(Query::Flag("\\Seen".into()))))
            .await
            .uids,
        vec![other]
    );
    assert_eq!(
        search(Query::Or(
            Box::new(Query::Uids(vec![(lunch, lunch)])),
            Box::new(Query::Header(Field::Subject, "nothing like it".into())),
        ))
        .await
        .uids,
        vec![lunch]
    );
    assert!(search(Query::Text("absent".into())).await.uids.is_empty());
    let with_modseq = search(Query::ModSeq(1)).await;
    assert_eq!(with_modseq.uids, vec![lunch, other]);
    let metas = c
        .metas(MetasRequest {
            mailbox: Some(mbox("INBOX")),
            uids: vec![other, lunch, 4242],
        })
        .await
        .unwrap()
        .into_inner()
        .metas;
    assert_eq!(
        metas.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![lunch, other]
    );
    let top = metas.iter().map(|m| m.modseq).max().unwrap();
    assert_eq!(with_modseq.highest_modseq, top);

    // A query the MDA cannot take is refused, not half-run.
    let mut deep = facteur_rpc::mailbox::SearchKey {
        key: Some(facteur_rpc::mailbox::search_key::Key::All(true)),
    };
    for _ in 0..convert::MAX_QUERY_DEPTH {
        deep = facteur_rpc::mailbox::SearchKey {
            key: Some(facteur_rpc::mailbox::search_key::Key::Not(Box::new(deep))),
        };
    }
    let refused = c
        .search(SearchRequest {
            mailbox: Some(mbox("INBOX")),
            query: Some(deep),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn watch_reports_the_current_modseq_then_an_append_and_ends_with_the_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, shutdown) = start(dir.path()).await;
    c.create_mailbox(CreateMailboxRequest {
        mailbox: Some(mbox("Lists")),
        role: Role::None as i32,
    })
    .await
    .unwrap();
    let before = c.status(mbox("Lists")).await.unwrap().into_inner();
    let mut watch = c.watch(mbox("Lists")).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.highest_modseq, before.highest_modseq);
    append(&mut c, "Lists", &[], MSG).await;
    let after = c.status(mbox("Lists")).await.unwrap().into_inner();
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("the append is reported")
        .unwrap()
        .unwrap();
    assert_eq!(next.highest_modseq, after.highest_modseq);
    c.delete_mailbox(mbox("Lists")).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match watch.message().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await
    .expect("the stream ends with the mailbox");
    assert!(end.is_ok(), "a clean end: {end:?}");
    let missing = c.watch(mbox("Lists")).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // A stop of the MDA ends the watches that are left.
    let mut inbox = c.watch(mbox("INBOX")).await.unwrap().into_inner();
    inbox.message().await.unwrap().unwrap();
    shutdown.trigger();
    let stopped = tokio::time::timeout(Duration::from_secs(10), inbox.message())
        .await
        .expect("shutdown ends the watch");
    assert!(matches!(stopped, Ok(None)), "{stopped:?}");
}

#[tokio::test]
async fn changes_after_an_expunge_report_flags_and_the_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, _sd) = start(dir.path()).await;
    let a = append(&mut c, "INBOX", &[], MSG).await;
    let b = append(&mut c, "INBOX", &[], MSG).await;
    let since = c
        .status(mbox("INBOX"))
        .await
        .unwrap()
        .into_inner()
        .highest_modseq;
    c.store_flags(StoreFlagsRequest {
        mailbox: Some(mbox("INBOX")),
        uids: vec![a],
        op: facteur_rpc::mailbox::FlagOp::Add as i32,
        flags: vec!["\\Deleted".into()],
        unchanged_since: 0,
    })
    .await
    .unwrap();
    c.store_flags(StoreFlagsRequest {
        mailbox: Some(mbox("INBOX")),
        uids: vec![b],
        op: facteur_rpc::mailbox::FlagOp::Add as i32,
        flags: vec!["\\Flagged".into()],
        unchanged_since: 0,
    })
    .await
    .unwrap();
    assert_eq!(
        c.status(mbox("INBOX")).await.unwrap().into_inner().deleted,
        1
    );
    let expunged = c
        .expunge(ExpungeRequest {
            mailbox: Some(mbox("INBOX")),
            uids: vec![],
            only_uids: false,
        })
        .await
        .unwrap()
        .into_inner()
        .expunged;
    assert_eq!(expunged, vec![a]);
    let changes = c
        .changes(ChangesRequest {
            mailbox: Some(mbox("INBOX")),
            since,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        changes.expunged.iter().map(|t| t.uid).collect::<Vec<_>>(),
        vec![a]
    );
    assert_eq!(changes.updated.len(), 1);
    assert_eq!(changes.updated[0].uid, b);
    assert!(changes.updated[0].flags.contains(&"\\Flagged".to_owned()));
    let status = c.status(mbox("INBOX")).await.unwrap().into_inner();
    assert_eq!(changes.highest_modseq, status.highest_modseq);
    assert!(changes.expunged[0].modseq > since);
    let uids = c.uids(mbox("INBOX")).await.unwrap().into_inner();
    assert_eq!(convert::runs_to_uids(&uids).unwrap(), vec![b]);
}

#[tokio::test]
async fn folders_roles_subscriptions_and_meta_only_fetches() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, _sd) = start(dir.path()).await;
    let list = |c: &mut MailboxClient<Channel>| {
        let mut c = c.clone();
        async move {
            c.mailboxes(UserRef { user: USER.into() })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let l = list(&mut c).await;
    let names: Vec<&str> = l.mailboxes.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    );
    let sent = l.mailboxes.iter().find(|m| m.name == "Sent").unwrap();
    assert_eq!((sent.role, sent.subscribed), (Role::Sent as i32, true));

    c.create_mailbox(CreateMailboxRequest {
        mailbox: Some(mbox("Work")),
        role: Role::None as i32,
    })
    .await
    .unwrap();
    c.create_mailbox(CreateMailboxRequest {
        mailbox: Some(mbox("Work/2025")),
        role: Role::None as i32,
    })
    .await
    .unwrap();
    let again = c
        .create_mailbox(CreateMailboxRequest {
            mailbox: Some(mbox("Work")),
            role: Role::None as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    let uid = append(&mut c, "Work/2025", &[], MSG).await;
    c.rename_mailbox(RenameMailboxRequest {
        user: USER.into(),
        from: "Work".into(),
        to: "Projects".into(),
    })
    .await
    .unwrap();
    let got = fetch(&mut c, "Projects/2025", &[uid], FetchPart::None).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].1.is_empty(), "FETCH_PART_NONE sends no bytes");
    assert_eq!(got[0].0.clone().unwrap().size, MSG.len() as u64);
    let header = fetch(&mut c, "Projects/2025", &[uid], FetchPart::Header).await;
    assert!(header[0].1.ends_with(b"Subject: Lunch on Friday\r\n\r\n"));
    assert!(header[0].0.is_some(), "meta in the first chunk");

    c.subscribe(SubscribeRequest {
        mailbox: Some(mbox("Old/Gone")),
        subscribed: true,
    })
    .await
    .unwrap();
    c.subscribe(SubscribeRequest {
        mailbox: Some(mbox("Projects")),
        subscribed: true,
    })
    .await
    .unwrap();
    let l = list(&mut c).await;
    assert_eq!(l.subscribed_only, vec!["Old/Gone".to_owned()]);
    assert!(
        l.mailboxes
            .iter()
            .any(|m| m.name == "Projects" && m.subscribed)
    );
    assert!(!l.mailboxes.iter().any(|m| m.name.starts_with("Work")));

    let inbox = c.delete_mailbox(mbox("INBOX")).await.unwrap_err();
    assert_eq!(inbox.code(), Code::FailedPrecondition);
    let missing = c.delete_mailbox(mbox("Nope")).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}
