//! Which RFC 9051-era forms imap-codec reads itself, and the parser for the rest.

use imap_next::imap_types::core::Atom;
use imap_next::imap_types::search::SearchKey;

use super::*;

fn codec_ok(cmd: &[u8]) -> bool {
    codec(cmd).is_some()
}

/// The forms desktop clients send that imap-codec (with the MAA's features) reads.
#[test]
fn forms_imap_codec_reads_itself() {
    let forms: &[&[u8]] = &[
        b"a ENABLE IMAP4rev2\r\n",
        b"a ENABLE UTF8=ACCEPT\r\n",
        b"a ENABLE QRESYNC CONDSTORE\r\n",
        b"a STATUS INBOX (MESSAGES UNSEEN UIDNEXT UIDVALIDITY SIZE DELETED HIGHESTMODSEQ)\r\n",
        b"a SELECT INBOX (CONDSTORE)\r\n",
        b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
        b"a SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211 (1:10 41:50)))\r\n",
        b"a EXAMINE INBOX (QRESYNC (67890007 20050715194045000))\r\n",
        b"a FETCH 1:* (FLAGS) (CHANGEDSINCE 5 VANISHED)\r\n",
        b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 5 VANISHED)\r\n",
        b"a STORE 1 (UNCHANGEDSINCE 5) +FLAGS (\\Seen)\r\n",
        b"a UID EXPUNGE 1:3\r\n",
        b"a MOVE 1:3 Trash\r\n",
        b"a UID MOVE 1:3 Trash\r\n",
        b"a ID (\"name\" \"x\")\r\n",
        b"a ID NIL\r\n",
        b"a NAMESPACE\r\n",
        b"a APPEND box (\\Seen) \"01-Jan-2026 10:00:00 +0000\" {5+}\r\nhello\r\n",
        b"a FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1] MODSEQ)\r\n",
        b"a SEARCH CHARSET UTF-8 SUBJECT {5+}\r\ncaf\xc3\xa9\r\n",
        b"a SEARCH MODSEQ 5\r\n",
        b"a UNSELECT\r\n",
    ];
    for f in forms {
        assert!(
            codec_ok(f),
            "imap-codec refuses {:?}",
            String::from_utf8_lossy(f)
        );
        // So they never reach this module's parser as "ours".
    }
}

/// The forms imap-codec refuses, which this module reads.
#[test]
fn forms_imap_codec_refuses() {
    let forms: &[&[u8]] = &[
        b"a LIST (SUBSCRIBED) \"\" \"*\"\r\n",
        b"a LIST \"\" \"*\" RETURN (CHILDREN)\r\n",
        b"a LIST \"\" (\"INBOX\" \"Sent*\")\r\n",
        b"a SEARCH RETURN (MIN MAX) ALL\r\n",
        b"a UID SEARCH RETURN () UNSEEN\r\n",
        b"a CREATE \"x\" (USE (\\Sent))\r\n",
        b"a APPEND box (\\Seen) {5+}\r\nhello {5+}\r\nworld\r\n",
    ];
    for f in forms {
        assert!(
            !codec_ok(f),
            "imap-codec now reads {:?}",
            String::from_utf8_lossy(f)
        );
        assert!(parse(f).is_ok(), "{:?}", String::from_utf8_lossy(f));
    }
}

fn tag(s: &str) -> Tag<'static> {
    Tag::try_from(s.to_owned()).unwrap()
}

fn list_cmd(cmd: &[u8]) -> ListExtended {
    match parse(cmd) {
        Ok(ExtCommand::List(l)) => l,
        other => panic!("{other:?}"),
    }
}

/// A pattern's bytes (imap-types tells a quoted one from an atom; the session won't).
fn pat(p: &ListMailbox<'_>) -> Vec<u8> {
    match p {
        ListMailbox::Token(t) => t.as_ref().to_vec(),
        ListMailbox::String(s) => s.as_ref().to_vec(),
    }
}

fn pats(l: &ListExtended) -> Vec<Vec<u8>> {
    l.patterns.iter().map(pat).collect()
}

fn mbox(m: &Mailbox<'_>) -> Vec<u8> {
    match m {
        Mailbox::Inbox => b"INBOX".to_vec(),
        Mailbox::Other(o) => o.inner().as_ref().to_vec(),
    }
}

#[test]
fn list_extended_everything() {
    let l = list_cmd(
        b"A01 LIST (SUBSCRIBED RECURSIVEMATCH SPECIAL-USE REMOTE) \"\" (\"INBOX\" \"Sent*\" {5}\r\nDra%t) RETURN (SUBSCRIBED CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN UIDNEXT UIDVALIDITY HIGHESTMODSEQ SIZE DELETED))\r\n",
    );
    assert_eq!(l.tag, tag("A01"));
    assert_eq!(
        l.selection,
        ListSelection {
            subscribed: true,
            remote: true,
            recursive_match: true,
            special_use: true
        }
    );
    assert_eq!(mbox(&l.reference), b"");
    assert_eq!(pats(&l), vec![&b"INBOX"[..], b"Sent*", b"Dra%t"]);
    assert_eq!(
        l.returns,
        ListReturn {
            subscribed: true,
            children: true,
            special_use: true,
            status: Some(vec![
                StatusDataItemName::Messages,
                StatusDataItemName::Unseen,
                StatusDataItemName::UidNext,
                StatusDataItemName::UidValidity,
                StatusDataItemName::HighestModSeq,
                StatusDataItemName::Size,
                StatusDataItemName::Deleted,
            ])
        }
    );
}

#[test]
fn list_extended_subsets() {
    let l = list_cmd(b"a list \"\" \"*\" return ()\r\n");
    assert_eq!(l.selection, ListSelection::default());
    assert_eq!(l.returns, ListReturn::default());
    assert_eq!(pats(&l), vec![b"*"]);

    let l = list_cmd(b"a LIST (SPECIAL-USE) \"\" *\r\n");
    assert!(l.selection.special_use);
    assert_eq!(pats(&l), vec![b"*"]);

    let l = list_cmd(b"a LIST () Archive/ % RETURN (STATUS (MESSAGES))\r\n");
    assert_eq!(mbox(&l.reference), b"Archive/");
    assert_eq!(l.returns.status, Some(vec![StatusDataItemName::Messages]));

    // Several patterns, quoted or not.
    let l = list_cmd(b"a LIST \"\" (inbox \"Sent Items\" %/%)\r\n");
    assert_eq!(pats(&l), vec![&b"inbox"[..], b"Sent Items", b"%/%"]);
}

#[test]
fn list_extended_errors() {
    for (cmd, why) in [
        (
            &b"a LIST (RECURSIVEMATCH) \"\" *\r\n"[..],
            "RECURSIVEMATCH alone",
        ),
        (b"a LIST (BOGUS) \"\" *\r\n", "unknown selection"),
        (b"a LIST \"\" * RETURN (BOGUS)\r\n", "unknown return option"),
        (b"a LIST \"\" * RETURN (STATUS)\r\n", "STATUS without items"),
        (
            b"a LIST \"\" * RETURN (STATUS (BOGUS))\r\n",
            "bad STATUS item",
        ),
        (b"a LIST \"\" ()\r\n", "empty pattern list"),
        (b"a LIST \"\" * junk\r\n", "junk after patterns"),
        (b"a LIST \"\" (\"unterminated)\r\n", "unterminated string"),
        (b"a LIST \"\" {10}\r\nabc\r\n", "truncated literal"),
    ] {
        assert!(
            matches!(parse(cmd), Err(ExtError::Bad(ref t, _)) if *t == tag("a")),
            "{why}: {:?}",
            parse(cmd)
        );
    }
}

#[test]
fn list_pattern_and_option_bounds() {
    let mut cmd = b"a LIST \"\" (".to_vec();
    for _ in 0..MAX_ITEMS {
        cmd.extend_from_slice(b"x ");
    }
    cmd.extend_from_slice(b")\r\n");
    assert_eq!(list_cmd(&cmd).patterns.len(), MAX_ITEMS);
    let mut cmd = b"a LIST \"\" (".to_vec();
    for _ in 0..=MAX_ITEMS {
        cmd.extend_from_slice(b"x ");
    }
    cmd.extend_from_slice(b")\r\n");
    assert!(matches!(parse(&cmd), Err(ExtError::Bad(..))));
    let mut cmd = b"a LIST ".to_vec();
    cmd.extend(std::iter::repeat_n(b'(', 1000));
    cmd.extend_from_slice(b"\r\n");
    assert!(matches!(parse(&cmd), Err(ExtError::Bad(..))));
}

fn esearch(cmd: &[u8]) -> Esearch {
    match parse(cmd) {
        Ok(ExtCommand::Search(s)) => s,
        other => panic!("{other:?}"),
    }
}

#[test]
fn esearch_return_options_and_criteria() {
    let s = esearch(b"a1 SEARCH RETURN (MIN MAX COUNT ALL SAVE) UNSEEN SUBJECT {4}\r\nhi!!\r\n");
    assert_eq!(
        s.returns,
        SearchReturn {
            min: true,
            max: true,
            all: true,
            count: true,
            save: true
        }
    );
    assert_eq!(s.command.tag, tag("a1"));
    let CommandBody::Search {
        charset,
        criteria,
        uid,
    } = s.command.body
    else {
        panic!()
    };
    assert!(!uid);
    assert_eq!(charset, None);
    let criteria: Vec<SearchKey<'_>> = criteria.into_iter().collect();
    assert_eq!(criteria.len(), 2);
    assert_eq!(criteria[0], SearchKey::Unseen);
    assert!(matches!(&criteria[1], SearchKey::Subject(s) if s.as_ref() == b"hi!!"));

    let s = esearch(b"a2 uid search return () charset UTF-8 FROM \"x\"\r\n");
    assert_eq!(
        s.returns,
        SearchReturn {
            all: true,
            ..SearchReturn::default()
        }
    );
    let CommandBody::Search { charset, uid, .. } = s.command.body else {
        panic!()
    };
    assert!(uid);
    assert!(charset.is_some());

    let s = esearch(b"a3 UID SEARCH RETURN (COUNT) 1:* NOT DELETED\r\n");
    assert_eq!(
        s.returns,
        SearchReturn {
            count: true,
            ..SearchReturn::default()
        }
    );

    assert!(matches!(
        parse(b"a SEARCH RETURN (BOGUS) ALL\r\n"),
        Err(ExtError::Bad(..))
    ));
    assert!(matches!(
        parse(b"a SEARCH RETURN (MIN) NOTAKEY\r\n"),
        Err(ExtError::Bad(..))
    ));
    // A malformed plain SEARCH is not ours.
    assert_eq!(parse(b"a SEARCH NOTAKEY\r\n"), Err(ExtError::NotOurs));
}

#[test]
fn create_with_use() {
    let Ok(ExtCommand::Create(c)) = parse(b"c1 CREATE \"Sent Items\" (USE (\\Sent \\Archive))\r\n")
    else {
        panic!()
    };
    assert_eq!(c.tag, tag("c1"));
    assert_eq!(mbox(&c.mailbox), b"Sent Items");
    assert_eq!(c.uses, vec!["\\Sent".to_owned(), "\\Archive".to_owned()]);
    let Ok(ExtCommand::Create(c)) = parse(b"c2 CREATE {4}\r\nJunk (USE ())\r\n") else {
        panic!()
    };
    assert_eq!(mbox(&c.mailbox), b"Junk");
    assert!(c.uses.is_empty());
    for bad in [
        &b"c CREATE x (USE (Sent))\r\n"[..],
        b"c CREATE x (FOO (\\Sent))\r\n",
        b"c CREATE x (USE)\r\n",
        b"c CREATE x (USE (\\Sent)) y\r\n",
    ] {
        assert!(matches!(parse(bad), Err(ExtError::Bad(..))), "{bad:?}");
    }
}

#[test]
fn multiappend_splits_into_appends() {
    let Ok(ExtCommand::MultiAppend { tag: t, appends }) = parse(
        b"m APPEND Drafts (\\Seen) \"01-Jan-2026 10:00:00 +0000\" {5+}\r\nhello (\\Draft) {5}\r\nworld {3}\r\nend\r\n",
    ) else {
        panic!()
    };
    assert_eq!(t, tag("m"));
    assert_eq!(appends.len(), 3);
    let messages: Vec<(usize, bool, Vec<u8>)> = appends
        .into_iter()
        .map(|c| match c.body {
            CommandBody::Append {
                flags,
                date,
                message,
                mailbox,
            } => {
                assert_eq!(mbox(&mailbox), b"Drafts");
                let bytes = match message {
                    imap_next::imap_types::extensions::binary::LiteralOrLiteral8::Literal(l) => {
                        l.data().to_vec()
                    }
                    imap_next::imap_types::extensions::binary::LiteralOrLiteral8::Literal8(l) => {
                        l.data.to_vec()
                    }
                };
                (flags.len(), date.is_some(), bytes)
            }
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        messages,
        vec![
            (1, true, b"hello".to_vec()),
            (1, false, b"world".to_vec()),
            (0, false, b"end".to_vec())
        ]
    );
    // One message is imap-codec's business.
    assert_eq!(
        parse(b"m APPEND Drafts (\\Seen) {5}\r\nhello\r\n"),
        Err(ExtError::NotOurs)
    );
}

#[test]
fn other_commands_are_not_ours() {
    for cmd in [
        &b"a FETCH 1 (BOGUS)\r\n"[..],
        b"a UID FETCH x\r\n",
        b"\r\n",
        b"",
        b"+ LIST\r\n",
    ] {
        assert_eq!(parse(cmd), Err(ExtError::NotOurs), "{cmd:?}");
    }
}

#[test]
fn list_responses() {
    let attr = |a: &str| FlagNameAttribute::from(Atom::try_from(a.to_owned()).unwrap());
    let line = encode_list_childinfo(
        vec![attr("HasChildren"), attr("Sent")],
        Some(QuotedChar::try_from('/').unwrap()),
        Mailbox::try_from("Sent").unwrap(),
    );
    assert_eq!(
        String::from_utf8(line).unwrap(),
        "* LIST (\\HasChildren \\Sent) \"/\" Sent (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
    );
    // Data::List carries special-use attributes itself.
    let plain = Response::Data(Data::List {
        items: vec![
            attr("HasNoChildren"),
            attr("Junk"),
            FlagNameAttribute::Noselect,
        ],
        delimiter: Some(QuotedChar::try_from('/').unwrap()),
        mailbox: Mailbox::try_from("Spam folder").unwrap(),
    });
    assert_eq!(
        String::from_utf8(ResponseCodec::default().encode(&plain).dump()).unwrap(),
        "* LIST (\\HasNoChildren \\Junk \\Noselect) \"/\" \"Spam folder\"\r\n"
    );
}

#[test]
fn arbitrary_input_never_panics() {
    let valid: &[&[u8]] = &[
        b"A01 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"INBOX\" {4}\r\nSent) RETURN (CHILDREN STATUS (MESSAGES))\r\n",
        b"a1 UID SEARCH RETURN (MIN MAX) CHARSET UTF-8 SUBJECT {4}\r\nhi!! OR SEEN NOT FROM \"x\"\r\n",
        b"c CREATE \"x\" (USE (\\Sent))\r\n",
        b"m APPEND Drafts (\\Seen) {5+}\r\nhello {3}\r\nend\r\n",
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for v in valid {
        for cut in 0..=v.len() {
            let _ = parse(&v[..cut]);
        }
        for _ in 0..2000 {
            let mut m = v.to_vec();
            for _ in 0..(next() % 6 + 1) {
                let i = (next() as usize) % m.len();
                m[i] = match next() % 4 {
                    0 => b'(',
                    1 => b'{',
                    2 => b'"',
                    _ => next() as u8,
                };
            }
            let _ = parse(&m);
        }
    }
    for _ in 0..2000 {
        let len = (next() % 200) as usize;
        let m: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = parse(&m);
        let mut cmd = b"a LIST ".to_vec();
        cmd.extend_from_slice(&m);
        let _ = parse(&cmd);
    }
}
