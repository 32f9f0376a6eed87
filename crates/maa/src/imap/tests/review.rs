//! Session tests of the protocol and bad-input lists, item by item:
//! hierarchy renames and deletes, INBOX rename, the selected mailbox seen by
//! STATUS, APPEND and COPY, IDLE then a command, charsets, partial and
//! BINARY.SIZE fetches, ID, wrong states and QRESYNC-only modifiers.

use super::*;

#[tokio::test]
async fn rename_moves_the_children_and_delete_keeps_them() {
    let h = start(false).await;
    let mut c = h.session().await;
    c.cmd("r1", "CREATE Work/2024/Q1").await;
    c.append("r2", "Work/2024/Q1", MSG2).await;
    let r = c.cmd("r3", "RENAME Work Job").await;
    assert!(r.contains("r3 OK"), "{r}");
    let r = c.cmd("r4", "LIST \"\" \"*\"").await;
    for want in [
        "\"/\" Job\r\n",
        "\"/\" Job/2024\r\n",
        "\"/\" Job/2024/Q1\r\n",
    ] {
        assert!(r.contains(want), "{want:?}: {r}");
    }
    assert!(!r.contains("Work"), "{r}");
    let r = c.cmd("r5", "STATUS Job/2024/Q1 (MESSAGES)").await;
    assert!(r.contains("(MESSAGES 1)"), "the messages follow: {r}");
    // Into an existing name: refused.
    let r = c.cmd("r6", "RENAME Job Sent").await;
    assert!(r.contains("r6 NO [ALREADYEXISTS]"), "{r}");
    let r = c.cmd("r7", "DELETE Job/2024").await;
    assert!(r.contains("r7 OK"), "{r}");
    let r = c.cmd("r8", "STATUS Job/2024/Q1 (MESSAGES)").await;
    assert!(r.contains("(MESSAGES 1)"), "children stay: {r}");
}

#[tokio::test]
async fn rename_inbox_moves_its_messages_and_leaves_it_empty() {
    let h = start(false).await;
    let mut c = h.session().await;
    let r = c.cmd("i1", "RENAME INBOX Old").await;
    assert!(r.contains("i1 OK"), "{r}");
    let r = c.cmd("i2", "STATUS Old (MESSAGES)").await;
    assert!(r.contains("* STATUS Old (MESSAGES 2)"), "{r}");
    let r = c.cmd("i3", "STATUS INBOX (MESSAGES)").await;
    assert!(r.contains("* STATUS INBOX (MESSAGES 0)"), "{r}");
}

#[tokio::test]
async fn the_selected_mailbox_hears_of_its_own_appends_copies_and_status() {
    let h = start(false).await;
    let mut c = h.session().await;
    c.cmd("s1", "SELECT INBOX").await;
    let r = c.append("s2", "INBOX", MSG2).await;
    assert!(
        r.contains("* 3 EXISTS\r\n"),
        "APPEND to the selected mailbox: {r}"
    );
    let r = c.cmd("s3", "COPY 1 INBOX").await;
    assert!(r.contains("* 4 EXISTS\r\n"), "COPY into it: {r}");
    // Another session appends: STATUS on the selected mailbox says so after EXISTS.
    h.mda
        .append(&MailboxRef::new(USER, "INBOX"), &[], None, MSG2.to_vec())
        .await
        .unwrap();
    let r = c.cmd("s4", "STATUS INBOX (MESSAGES)").await;
    let exists = r.find("* 5 EXISTS").expect("EXISTS");
    let status = r.find("* STATUS INBOX (MESSAGES 5)").expect("STATUS");
    assert!(exists < status, "{r}");
}

#[tokio::test]
async fn idle_done_then_a_command() {
    let h = start(false).await;
    let mut c = h.session().await;
    c.cmd("d1", "SELECT INBOX").await;
    c.send("d2 IDLE").await;
    let cont = String::from_utf8(c.line().await).unwrap();
    assert!(cont.starts_with("+ "), "{cont}");
    c.send("DONE").await;
    let r = c.until("d2").await;
    assert!(r.contains("d2 OK"), "{r}");
    let r = c.cmd("d3", "FETCH 1 (FLAGS)").await;
    assert!(
        r.contains("* 1 FETCH (FLAGS ())") && r.contains("d3 OK"),
        "{r}"
    );
}

#[tokio::test]
async fn charsets_partial_bodies_binary_size_id_and_namespace() {
    let h = start(false).await;
    let mut c = h.session().await;
    let r = c.cmd("c1", "ID (\"name\" \"test\")").await;
    assert!(r.contains("* ID (\"name\" \"facteur\")"), "{r}");
    let r = c.cmd("c2", "NAMESPACE").await;
    assert!(r.contains("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"), "{r}");
    c.cmd("c3", "SELECT INBOX").await;
    let r = c.cmd("c4", "SEARCH CHARSET ISO-8859-1 SUBJECT x").await;
    assert!(r.contains("c4 NO [BADCHARSET (UTF-8 US-ASCII)]"), "{r}");
    let r = c.cmd("c5", "SEARCH CHARSET UTF-8 SUBJECT bonjour").await;
    assert!(r.contains("* SEARCH 1\r\n"), "{r}");
    let r = c.cmd("c6", "FETCH 1 (BODY.PEEK[]<0.10>)").await;
    assert!(r.contains("BODY[]<0> {10}\r\nFrom: jacq)"), "{r}");
    let r = c.cmd("c7", "FETCH 1 (BODY.PEEK[]<5000.10>)").await;
    assert!(
        r.contains("BODY[]<5000> {0}\r\n)"),
        "past the end: empty: {r}"
    );
    let r = c.cmd("c8", "FETCH 1 (BINARY.SIZE[1])").await;
    let text = MSG1.len() - MSG1.windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4;
    assert!(r.contains(&format!("BINARY.SIZE[1] {text})")), "{r}");
    let r = c.cmd("c9", "FETCH 1 (BINARY.SIZE[])").await;
    assert!(r.contains(&format!("BINARY.SIZE[] {})", MSG1.len())), "{r}");
    // BODY[]<0.100> without PEEK sets \Seen.
    let r = c.cmd("c10", "FETCH 1 (BODY[]<0.100>)").await;
    assert!(r.contains("\\Seen") && r.contains("BODY[]<0> {"), "{r}");
}

#[tokio::test]
async fn commands_in_the_wrong_state_are_bad() {
    let h = start(false).await;
    let mut c = h.starttls().await;
    for (tag, cmd) in [
        ("w1", "SELECT INBOX"),
        ("w2", "LIST \"\" *"),
        ("w3", "FETCH 1 FLAGS"),
    ] {
        let r = c.cmd(tag, cmd).await;
        assert!(r.starts_with(&format!("{tag} BAD")), "before login: {r}");
    }
    let r = c.cmd("w4", &format!("LOGIN {USER} {PASSWORD}")).await;
    assert!(r.contains("w4 OK"), "{r}");
    for (tag, cmd) in [
        ("w5", "FETCH 1 FLAGS"),
        ("w6", "STORE 1 +FLAGS (\\Seen)"),
        ("w7", "EXPUNGE"),
        ("w8", "CLOSE"),
        ("w9", "UID SEARCH ALL"),
    ] {
        let r = c.cmd(tag, cmd).await;
        assert!(
            r.starts_with(&format!("{tag} BAD [CLIENTBUG]")),
            "no mailbox selected: {r}"
        );
    }
}

#[tokio::test]
async fn vanished_needs_qresync_enabled() {
    let h = start(false).await;
    let mut c = h.session().await;
    c.cmd("v1", "SELECT INBOX (CONDSTORE)").await;
    let r = c
        .cmd("v2", "UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)")
        .await;
    assert!(r.contains("v2 BAD"), "QRESYNC not enabled: {r}");
    c.cmd("v3", "ENABLE QRESYNC").await;
    c.cmd("v4", "STORE 1 +FLAGS (\\Deleted)").await;
    c.cmd("v5", "EXPUNGE").await;
    let r = c
        .cmd("v6", "UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)")
        .await;
    assert!(r.contains("* VANISHED (EARLIER) 1\r\n"), "{r}");
    assert!(
        r.contains("* 1 FETCH (UID 2 FLAGS (\\Seen) MODSEQ ("),
        "{r}"
    );
    assert!(r.contains("v6 OK"), "{r}");
}

#[tokio::test]
async fn move_into_the_selected_mailbox_itself() {
    let h = start(false).await;
    let mut c = h.session().await;
    c.cmd("m1", "SELECT INBOX").await;
    let r = c.cmd("m2", "UID MOVE 1 INBOX").await;
    assert!(r.contains("* OK [COPYUID ") && r.contains(" 1 3]"), "{r}");
    assert!(
        r.contains("* 1 EXPUNGE\r\n") && r.contains("* 2 EXISTS\r\n"),
        "{r}"
    );
    let r = c.cmd("m3", "UID FETCH 1:* (UID)").await;
    assert!(
        r.contains("* 1 FETCH (UID 2)") && r.contains("* 2 FETCH (UID 3)"),
        "{r}"
    );
}
