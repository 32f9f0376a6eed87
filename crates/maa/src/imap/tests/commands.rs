//! Session tests of the mailbox commands: folders and LIST, APPEND, COPY and
//! MOVE with a second session watching, IDLE, SEARCH, CONDSTORE and QRESYNC.

use super::*;

#[tokio::test]
async fn folders_lifecycle_and_list_attributes() {
    let h = start(false).await;
    let mut c = h.session().await;
    let r = c.cmd("f1", "LIST \"\" \"*\"").await;
    for want in [
        "* LIST (\\HasNoChildren) \"/\" INBOX\r\n",
        "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n",
        "* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n",
        "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts\r\n",
        "* LIST (\\HasNoChildren \\Junk) \"/\" Junk\r\n",
        "* LIST (\\HasNoChildren \\Archive) \"/\" Archive\r\n",
    ] {
        assert!(r.contains(want), "missing {want:?} in {r}");
    }
    let r = c.cmd("f2", "LIST \"\" \"\"").await;
    assert!(r.contains("* LIST (\\Noselect) \"/\" \"\"\r\n"), "{r}");

    let r = c.cmd("f3", "CREATE Projets/2024").await;
    assert!(r.contains("f3 OK"), "{r}");
    let r = c.cmd("f4", "CREATE Projets").await;
    assert!(
        r.contains("f4 NO [ALREADYEXISTS]"),
        "parent made with the child: {r}"
    );
    let r = c.cmd("f5", "LIST \"\" \"%\"").await;
    assert!(
        r.contains("* LIST (\\HasChildren) \"/\" Projets\r\n"),
        "{r}"
    );
    assert!(!r.contains("2024"), "% stops at the delimiter: {r}");
    let r = c.cmd("f6", "LIST Projets/ %").await;
    assert!(
        r.contains("* LIST (\\HasNoChildren) \"/\" Projets/2024\r\n"),
        "{r}"
    );

    let r = c.cmd("f7", "RENAME Projets/2024 Projets/2025").await;
    assert!(r.contains("f7 OK"), "{r}");
    let r = c
        .cmd("f8", "STATUS Projets/2025 (MESSAGES UIDNEXT UNSEEN)")
        .await;
    assert!(
        r.contains("* STATUS Projets/2025 (MESSAGES 0 UIDNEXT 1 UNSEEN 0)"),
        "{r}"
    );
    let r = c.cmd("f9", "SELECT Projets/2024").await;
    assert!(r.contains("f9 NO [NONEXISTENT]"), "{r}");

    let r = c.cmd("g1", "SUBSCRIBE Projets/2025").await;
    assert!(r.contains("g1 OK"), "{r}");
    let r = c.cmd("g2", "LSUB \"\" \"*\"").await;
    assert!(r.contains("* LSUB () \"/\" Projets/2025\r\n"), "{r}");
    assert!(
        r.contains("* LSUB () \"/\" Sent\r\n"),
        "defaults are subscribed: {r}"
    );
    let r = c.cmd("g3", "UNSUBSCRIBE Projets/2025").await;
    assert!(r.contains("g3 OK"), "{r}");
    let r = c.cmd("g4", "LSUB \"\" \"Projets/*\"").await;
    assert!(!r.contains("2025"), "{r}");

    let r = c.cmd("g5", "DELETE Projets/2025").await;
    assert!(r.contains("g5 OK"), "{r}");
    let r = c.cmd("g6", "DELETE Projets/2025").await;
    assert!(r.contains("g6 NO [NONEXISTENT]"), "{r}");
    let r = c.cmd("g7", "DELETE INBOX").await;
    assert!(r.starts_with("g7 NO"), "{r}");
    let r = c.cmd("g8", "CREATE inbox").await;
    assert!(r.contains("g8 NO [ALREADYEXISTS]"), "{r}");

    let r = c
        .cmd(
            "g9",
            "STATUS INBOX (MESSAGES UNSEEN UIDNEXT UIDVALIDITY DELETED HIGHESTMODSEQ RECENT)",
        )
        .await;
    assert!(
        r.contains("* STATUS INBOX (MESSAGES 2 UNSEEN 1 UIDNEXT 3 UIDVALIDITY ")
            && r.contains(" DELETED 0 HIGHESTMODSEQ ")
            && r.contains(" RECENT 0)"),
        "{r}"
    );
    let r = c.cmd("h1", "NAMESPACE").await;
    assert!(r.contains("* NAMESPACE ((\"\" \"/\")) NIL NIL"), "{r}");
}

#[tokio::test]
async fn append_answers_appenduid_and_trycreate() {
    let h = start(false).await;
    let mut c = h.session().await;
    let msg = b"From: pierre@paris.test\r\nSubject: brouillon\r\n\r\nto be continued\r\n";
    let r = c
        .append(
            "a1",
            "Drafts (\\Draft $Todo) \"01-Feb-2024 10:00:00 +0100\"",
            msg,
        )
        .await;
    assert!(r.contains("a1 OK [APPENDUID "), "{r}");
    assert!(r.contains(" 1] "), "first uid of Drafts: {r}");
    let r = c.append("a2", "Nowhere", msg).await;
    assert!(r.contains("a2 NO [TRYCREATE]"), "{r}");

    let r = c.cmd("a3", "SELECT Drafts").await;
    assert!(r.contains("* 1 EXISTS"), "{r}");
    assert!(r.contains("$Todo"), "keywords in FLAGS: {r}");
    let r = c
        .cmd("a4", "FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
        .await;
    assert!(r.contains("FLAGS (\\Draft $Todo)"), "{r}");
    assert!(
        r.contains("INTERNALDATE \"01-Feb-2024 09:00:00 +0000\""),
        "{r}"
    );
    assert!(r.contains(&format!("RFC822.SIZE {}", msg.len())), "{r}");
    assert_eq!(body_of(&r, "BODY[] "), msg);

    // APPEND to the selected mailbox shows up as EXISTS.
    let r = c.append("a5", "Drafts", msg).await;
    assert!(
        r.contains("* 2 EXISTS") && r.contains("a5 OK [APPENDUID"),
        "{r}"
    );
}

#[tokio::test]
async fn copy_and_move_answer_copyuid_and_a_second_session_sees_the_expunge() {
    let h = start(false).await;
    let mut a = h.session().await;
    let mut b = h.session().await;
    a.cmd("a1", "SELECT INBOX").await;
    b.cmd("b1", "SELECT INBOX").await;

    let r = a.cmd("a2", "COPY 1:2 Archive").await;
    assert!(
        r.contains("a2 OK [COPYUID ") && r.contains(" 1:2 1:2]"),
        "{r}"
    );
    let r = a.cmd("a3", "UID COPY 9 Archive").await;
    assert!(r.starts_with("a3 OK"), "no such uid, nothing copied: {r}");
    let r = a.cmd("a4", "COPY 1 Nowhere").await;
    assert!(r.contains("a4 NO [TRYCREATE]"), "{r}");

    let r = a.cmd("a5", "UID MOVE 2 Trash").await;
    let copyuid = r.find("* OK [COPYUID ").expect("untagged COPYUID");
    let expunge = r.find("* 2 EXPUNGE").expect("EXPUNGE");
    assert!(copyuid < expunge && r.contains("a5 OK"), "{r}");
    let r = a.cmd("a6", "STATUS Trash (MESSAGES)").await;
    assert!(r.contains("* STATUS Trash (MESSAGES 1)"), "{r}");

    // The other session learns of it at its next command.
    let r = b.cmd("b2", "NOOP").await;
    assert!(r.contains("* 2 EXPUNGE\r\n"), "{r}");
    let r = b.cmd("b3", "FETCH 1:* UID").await;
    assert!(
        r.contains("* 1 FETCH (UID 1)") && !r.contains("* 2 FETCH"),
        "{r}"
    );

    // But not during a FETCH by message number.
    a.cmd("a7", "STORE 1 +FLAGS (\\Deleted)").await;
    a.cmd("a8", "EXPUNGE").await;
    let r = b.cmd("b4", "FETCH 1 UID").await;
    assert!(!r.contains("EXPUNGE"), "no EXPUNGE during FETCH: {r}");
    let r = b.cmd("b5", "UID FETCH 1:* UID").await;
    assert!(r.contains("* 1 EXPUNGE"), "{r}");
}

#[tokio::test]
async fn idle_announces_another_sessions_append_at_once() {
    let h = start(false).await;
    let mut a = h.session().await;
    let mut b = h.session().await;
    a.cmd("a1", "SELECT INBOX").await;
    a.send("a2 IDLE").await;
    let cont = String::from_utf8(a.line().await).unwrap();
    assert!(cont.starts_with("+ "), "{cont}");

    let r = b.append("b1", "INBOX (\\Flagged)", MSG2).await;
    assert!(r.contains("b1 OK [APPENDUID"), "{r}");
    let exists = String::from_utf8(a.line().await).unwrap();
    assert_eq!(exists, "* 3 EXISTS\r\n");
    let recent = String::from_utf8(a.line().await).unwrap();
    assert_eq!(recent, "* 0 RECENT\r\n");

    // A flag change by the other session, at once too.
    b.cmd("b2", "SELECT INBOX").await;
    b.cmd("b3", "STORE 1 +FLAGS.SILENT (\\Answered)").await;
    let fetch = String::from_utf8(a.line().await).unwrap();
    assert!(
        fetch.starts_with("* 1 FETCH (UID 1 FLAGS (\\Answered))"),
        "{fetch}"
    );

    a.send("DONE").await;
    let r = a.until("a2").await;
    assert!(r.contains("a2 OK"), "{r}");
}

#[tokio::test]
async fn search_keys() {
    let h = start(false).await;
    let inbox = MailboxRef::new(USER, "INBOX");
    let third = b"From: Zoe <zoe@nice.test>\r\nTo: pierre@paris.test\r\nCc: jacques@paris.test\r\nSubject: =?UTF-8?Q?R=C3=A9union?=\r\nDate: Fri, 01 Mar 2024 10:00:00 +0100\r\nX-Tag: urgent\r\n\r\nOrdre du jour: le budget.\r\n";
    h.mda
        .append(
            &inbox,
            &["$Work".to_owned()],
            Some(1_709_290_800),
            third.to_vec(),
        )
        .await
        .unwrap();
    let mut c = h.session().await;
    c.cmd("s0", "SELECT INBOX").await;
    let cases = [
        ("ALL", "* SEARCH 1 2 3\r\n"),
        ("SUBJECT bonjour", "* SEARCH 1\r\n"),
        ("CHARSET UTF-8 SUBJECT \"réunion\"", "* SEARCH 3\r\n"),
        ("FROM zoe", "* SEARCH 3\r\n"),
        ("TO pierre CC jacques", "* SEARCH 3\r\n"),
        ("HEADER X-Tag urgent", "* SEARCH 3\r\n"),
        ("BODY budget", "* SEARCH 3\r\n"),
        ("TEXT hello", "* SEARCH 2\r\n"),
        ("SEEN", "* SEARCH 2\r\n"),
        ("UNSEEN", "* SEARCH 1 3\r\n"),
        ("KEYWORD $Work", "* SEARCH 3\r\n"),
        ("UNKEYWORD $Work", "* SEARCH 1 2\r\n"),
        ("NOT SEEN NOT KEYWORD $Work", "* SEARCH 1\r\n"),
        ("OR SEEN KEYWORD $Work", "* SEARCH 2 3\r\n"),
        ("SINCE 1-Mar-2024", "* SEARCH 3\r\n"),
        ("BEFORE 1-Mar-2024", "* SEARCH 1 2\r\n"),
        ("ON 14-Nov-2023", "* SEARCH 1 2\r\n"),
        ("SENTON 1-Mar-2024", "* SEARCH 3\r\n"),
        ("SENTBEFORE 1-Jan-2024", "* SEARCH\r\n"),
        (&format!("LARGER {}", MSG2.len()), "* SEARCH 1 3\r\n"),
        (&format!("SMALLER {}", MSG1.len()), "* SEARCH 2\r\n"),
        ("2:*", "* SEARCH 2 3\r\n"),
        ("UID 3", "* SEARCH 3\r\n"),
        ("NEW", "* SEARCH\r\n"),
        ("RECENT", "* SEARCH\r\n"),
        ("OLD", "* SEARCH 1 2 3\r\n"),
        ("DELETED", "* SEARCH\r\n"),
    ];
    for (i, (keys, want)) in cases.iter().enumerate() {
        let r = c
            .cmd(&format!("s{}", i + 1), &format!("SEARCH {keys}"))
            .await;
        assert!(r.contains(want), "SEARCH {keys}: want {want:?} in {r}");
    }
    let r = c.cmd("u1", "UID SEARCH UNSEEN").await;
    assert!(r.contains("* SEARCH 1 3\r\n"), "{r}");
    let r = c.cmd("u2", "SEARCH CHARSET KOI8-R ALL").await;
    assert!(r.contains("u2 NO [BADCHARSET"), "{r}");
    let r = c.cmd("u3", "SEARCH MODSEQ 1").await;
    assert!(r.contains("* SEARCH 1 2 3 (MODSEQ "), "{r}");
}

#[tokio::test]
async fn store_unchangedsince_answers_modified() {
    let h = start(false).await;
    let mut c = h.session().await;
    let r = c.cmd("c1", "SELECT INBOX (CONDSTORE)").await;
    assert!(r.contains("* OK [HIGHESTMODSEQ "), "{r}");
    let r = c.cmd("c2", "FETCH 1:2 (MODSEQ)").await;
    let modseq = |r: &str, n: u32| -> u64 {
        let prefix = format!("* {n} FETCH (MODSEQ (");
        let at = r.find(&prefix).unwrap() + prefix.len();
        r[at..].split(')').next().unwrap().parse().unwrap()
    };
    let (m1, m2) = (modseq(&r, 1), modseq(&r, 2));
    let r = c
        .cmd(
            "c3",
            &format!("STORE 1 (UNCHANGEDSINCE {m1}) +FLAGS (\\Flagged)"),
        )
        .await;
    assert!(r.contains("* 1 FETCH (FLAGS (\\Flagged) MODSEQ ("), "{r}");
    assert!(r.contains("c3 OK") && !r.contains("MODIFIED"), "{r}");
    // Message 1 changed since m1 now: refused; message 2 still passes.
    let r = c
        .cmd(
            "c4",
            &format!(
                "STORE 1:2 (UNCHANGEDSINCE {}) +FLAGS (\\Answered)",
                m1.max(m2)
            ),
        )
        .await;
    assert!(r.contains("c4 OK [MODIFIED 1]"), "{r}");
    assert!(r.contains("* 2 FETCH (FLAGS (\\Seen \\Answered)"), "{r}");
    let r = c
        .cmd("c5", &format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {m2})"))
        .await;
    assert!(r.contains("* 1 FETCH") && r.contains("* 2 FETCH"), "{r}");
}

#[tokio::test]
async fn select_qresync_gives_vanished_earlier_and_changes() {
    let h = start(false).await;
    let mut c = h.session().await;
    let r = c.cmd("q1", "ENABLE QRESYNC").await;
    assert!(r.contains("* ENABLED QRESYNC"), "{r}");
    let r = c.cmd("q2", "SELECT INBOX").await;
    let at = r.find("[UIDVALIDITY ").unwrap() + 13;
    let validity: u32 = r[at..].split(']').next().unwrap().parse().unwrap();
    let at = r.find("[HIGHESTMODSEQ ").unwrap() + 15;
    let modseq: u64 = r[at..].split(']').next().unwrap().parse().unwrap();
    c.cmd("q3", "UNSELECT").await;

    // Another session flags 2 and expunges 1.
    let mut o = h.session().await;
    o.cmd("o1", "SELECT INBOX").await;
    o.cmd("o2", "STORE 2 +FLAGS (\\Flagged)").await;
    o.cmd("o3", "STORE 1 +FLAGS (\\Deleted)").await;
    let r = o.cmd("o4", "EXPUNGE").await;
    assert!(r.contains("* 1 EXPUNGE"), "{r}");

    let r = c
        .cmd(
            "q4",
            &format!("SELECT INBOX (QRESYNC ({validity} {modseq} 1:2))"),
        )
        .await;
    assert!(r.contains("* VANISHED (EARLIER) 1\r\n"), "{r}");
    assert!(
        r.contains("* 1 FETCH (UID 2 FLAGS (\\Seen \\Flagged) MODSEQ ("),
        "{r}"
    );
    assert!(r.contains("q4 OK [READ-WRITE]"), "{r}");

    // Under QRESYNC, expunges are VANISHED.
    o.cmd("o5", "STORE 1 +FLAGS (\\Deleted)").await;
    o.cmd("o6", "EXPUNGE").await;
    let r = c.cmd("q5", "NOOP").await;
    assert!(r.contains("* VANISHED 2\r\n"), "{r}");
}

#[tokio::test]
async fn enable_imap4rev2_answers_esearch() {
    let h = start(false).await;
    let mut c = h.session().await;
    let r = c.cmd("e1", "ENABLE IMAP4rev2").await;
    assert!(r.contains("* ENABLED IMAP4rev2"), "{r}");
    c.cmd("e2", "SELECT INBOX").await;
    let r = c.cmd("e3", "UID SEARCH ALL").await;
    assert!(r.contains("* ESEARCH (TAG \"e3\") UID ALL 1:2\r\n"), "{r}");
}

#[tokio::test]
async fn bad_input_and_wrong_state() {
    let h = start(false).await;
    let mut c = h.session().await;
    let r = c.cmd("w1", "EXPUNGE").await;
    assert!(r.starts_with("w1 BAD [CLIENTBUG]"), "{r}");
    let r = c.cmd("w2", "LOGIN a b").await;
    assert!(r.starts_with("w2 BAD"), "{r}");
    c.cmd("w3", "EXAMINE INBOX").await;
    let r = c.cmd("w4", "STORE 1 +FLAGS (\\Seen)").await;
    assert!(r.starts_with("w4 NO [NOPERM]"), "{r}");
    let r = c.cmd("w5", "EXPUNGE").await;
    assert!(r.starts_with("w5 NO [NOPERM]"), "{r}");
    let deep = format!("{}ALL{}", "(".repeat(60), ")".repeat(60));
    let r = c.cmd("w6", &format!("SEARCH {deep}")).await;
    assert!(r.starts_with("w6 BAD"), "{r}");
    let r = c
        .cmd("w7", "FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)")
        .await;
    assert!(
        r.starts_with("w7 BAD"),
        "VANISHED needs UID FETCH and QRESYNC: {r}"
    );
    let r = c.cmd("w8", "NOOP").await;
    assert!(r.starts_with("w8 OK"), "{r}");
}

#[tokio::test]
async fn list_extended_status_and_special_use() {
    let h = start(false).await;
    let mut c = h.session().await;
    let r = c.cmd("x0", "CAPABILITY").await;
    for cap in [
        "LIST-EXTENDED",
        "LIST-STATUS",
        "ESEARCH",
        "SPECIAL-USE",
        "CHILDREN",
    ] {
        assert!(r.contains(cap), "{cap}: {r}");
    }
    let r = c.cmd("x1", "CREATE Factures (USE (\\Archive))").await;
    assert!(r.contains("x1 OK"), "{r}");
    let r = c.cmd("x2", "CREATE Autre (USE (\\Bogus))").await;
    assert!(r.contains("x2 NO [USEATTR]"), "{r}");
    let r = c.cmd("x3", "LIST (SPECIAL-USE) \"\" \"*\"").await;
    assert!(
        r.contains("* LIST (\\HasNoChildren \\Archive) \"/\" Factures\r\n"),
        "{r}"
    );
    assert!(!r.contains(" INBOX\r\n"), "INBOX has no special use: {r}");
    let r = c
        .cmd(
            "x4",
            "LIST \"\" (INBOX Sent) RETURN (STATUS (MESSAGES UNSEEN SIZE))",
        )
        .await;
    assert!(
        r.contains("* LIST (\\HasNoChildren) \"/\" INBOX\r\n"),
        "{r}"
    );
    let size = MSG1.len() + MSG2.len();
    assert!(
        r.contains(&format!("* STATUS INBOX (MESSAGES 2 UNSEEN 1 SIZE {size})")),
        "{r}"
    );
    assert!(
        r.contains("* STATUS Sent (MESSAGES 0 UNSEEN 0 SIZE 0)"),
        "{r}"
    );
    assert!(!r.contains("Trash"), "{r}");
    c.cmd("x5", "UNSUBSCRIBE Junk").await;
    c.cmd("x6", "SUBSCRIBE Gone").await;
    let r = c.cmd("x7", "LIST (SUBSCRIBED) \"\" \"*\"").await;
    assert!(
        r.contains("\\Subscribed") && !r.contains(" Junk\r\n"),
        "{r}"
    );
    assert!(
        r.contains("* LIST (\\NonExistent \\Subscribed \\HasNoChildren) \"/\" Gone\r\n"),
        "{r}"
    );
    let r = c
        .cmd("x8", "LIST \"\" \"*\" RETURN (SUBSCRIBED CHILDREN)")
        .await;
    assert!(
        r.contains("* LIST (\\HasNoChildren \\Junk) \"/\" Junk\r\n"),
        "{r}"
    );
    assert!(!r.contains("Gone"), "not a mailbox: {r}");
    assert!(
        r.contains("* LIST (\\Subscribed \\HasNoChildren \\Sent) \"/\" Sent\r\n"),
        "{r}"
    );
}

#[tokio::test]
async fn esearch_return_options() {
    let h = start(false).await;
    let mut c = h.session().await;
    c.cmd("e0", "SELECT INBOX").await;
    let r = c.cmd("e1", "SEARCH RETURN (MIN MAX COUNT) ALL").await;
    assert!(
        r.contains("* ESEARCH (TAG \"e1\") MIN 1 MAX 2 COUNT 2\r\n"),
        "{r}"
    );
    let r = c.cmd("e2", "UID SEARCH RETURN () UNSEEN").await;
    assert!(r.contains("* ESEARCH (TAG \"e2\") UID ALL 1\r\n"), "{r}");
    let r = c.cmd("e3", "SEARCH RETURN (COUNT) DELETED").await;
    assert!(r.contains("* ESEARCH (TAG \"e3\") COUNT 0\r\n"), "{r}");
}

#[tokio::test]
async fn fetch_envelope_bodystructure_sections_and_binary() {
    let h = start(false).await;
    let inbox = MailboxRef::new(USER, "INBOX");
    let mime = b"From: =?UTF-8?Q?Z=C3=B6e?= <zoe@nice.test>\r\nTo: pierre@paris.test\r\nSubject: =?UTF-8?Q?Pi=C3=A8ce_jointe?=\r\nDate: Fri, 01 Mar 2024 10:00:00 +0100\r\nMessage-ID: <1@nice.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCh=C3=A8re amie\r\n--b1\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--b1--\r\n";
    h.mda
        .append(&inbox, &[], Some(DATE), mime.to_vec())
        .await
        .unwrap();
    let mut c = h.session().await;
    c.cmd("m0", "SELECT INBOX").await;
    let r = c.cmd("m1", "FETCH 3 (ENVELOPE)").await;
    assert!(
        r.contains(
            "ENVELOPE (\"Fri, 01 Mar 2024 10:00:00 +0100\" \"=?UTF-8?Q?Pi=C3=A8ce_jointe?=\""
        ),
        "{r}"
    );
    assert!(
        r.contains("((\"=?UTF-8?Q?Z=C3=B6e?=\" NIL \"zoe\" \"nice.test\"))"),
        "{r}"
    );
    let r = c.cmd("m2", "FETCH 3 BODYSTRUCTURE").await;
    assert!(
        r.contains("BODYSTRUCTURE ((\"TEXT\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 15 "),
        "{r}"
    );
    assert!(
        r.contains("(\"name\" \"a.bin\") NIL NIL \"base64\" 8 ")
            && r.contains(" \"mixed\" (\"boundary\" \"b1\")"),
        "{r}"
    );
    let r = c
        .cmd(
            "m3",
            "FETCH 3 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[1]<0.4>)",
        )
        .await;
    assert_eq!(body_of(&r, "BODY[1] "), b"Ch=C3=A8re amie");
    assert!(body_of(&r, "BODY[2.MIME] ").starts_with(b"Content-Type: application/octet-stream"));
    assert_eq!(body_of(&r, "BODY[1]<0> "), b"Ch=C");
    let r = c.cmd("m4", "FETCH 3 (BINARY.PEEK[2] BINARY.SIZE[1])").await;
    assert!(r.contains("BINARY[2] ~{4}\r\n\x00\x01\x02\x03"), "{r}");
    assert!(r.contains("BINARY.SIZE[1] 11"), "{r}");
    let r = c.cmd("m5", "FETCH 1 ALL").await;
    assert!(r.contains("ENVELOPE (NIL \"Bonjour\""), "{r}");
    assert!(r.contains("FLAGS () INTERNALDATE"), "{r}");
    let r = c.cmd("m6", "FETCH 2 FULL").await;
    assert!(
        r.contains("BODY (\"TEXT\" \"plain\" (\"charset\" \"us-ascii\")"),
        "{r}"
    );
    assert!(
        !inbox_flags(&h, 3).await.contains(&"\\Seen".to_owned()),
        "PEEK leaves \\Seen"
    );
    let r = c.cmd("m7", "FETCH 3 BINARY[1]").await;
    assert!(r.contains("\\Seen"), "BINARY without PEEK sets \\Seen: {r}");
}

#[tokio::test]
async fn mailbox_names_are_modified_utf7_until_utf8_is_enabled() {
    let h = start(false).await;
    let mut c = h.session().await;
    let r = c.cmd("u1", "CREATE R&AOk-unions").await;
    assert!(r.contains("u1 OK"), "{r}");
    let (infos, _) = h.mda.mailboxes(USER).await.unwrap();
    assert!(
        infos.iter().any(|i| i.name == "Réunions"),
        "UTF-8 in the store"
    );
    let r = c.cmd("u2", "LIST \"\" R*").await;
    assert!(
        r.contains("* LIST (\\HasNoChildren) \"/\" R&AOk-unions\r\n"),
        "{r}"
    );
    let r = c.cmd("u3", "CREATE R&Jjo").await;
    assert!(r.starts_with("u3 NO"), "bad modified UTF-7: {r}");
    let r = c.cmd("u4", "ENABLE UTF8=ACCEPT").await;
    assert!(r.contains("* ENABLED UTF8=ACCEPT"), "{r}");
    let r = c.cmd("u5", "LIST \"\" R*").await;
    assert!(r.contains("Réunions"), "{r}");
    let r = c.cmd("u6", "STATUS \"Réunions\" (MESSAGES)").await;
    assert!(r.contains("u6 OK"), "{r}");
}
