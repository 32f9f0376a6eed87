//! Session tests of protocol details: the CONDSTORE/QRESYNC answers of
//! EXPUNGE, MOVE and STORE, literals over the limit, LIST-EXTENDED's
//! CHILDINFO and implied parents, and the review list of issue 16.

use super::*;

/// The number in `[HIGHESTMODSEQ n]` of the tagged reply for `tag`.
fn tagged_highest(r: &str, tag: &str) -> Option<u64> {
    let line = r.lines().find(|l| l.starts_with(&format!("{tag} ")))?;
    let at = line.find("[HIGHESTMODSEQ ")? + 15;
    line[at..].split(']').next()?.parse().ok()
}

#[tokio::test]
async fn expunge_and_move_answer_highestmodseq_under_condstore() {
    let h = start(false).await;
    let mut c = h.session().await;
    c.cmd("h1", "SELECT INBOX (CONDSTORE)").await;
    // Nothing expunged: no code.
    let r = c.cmd("h2", "EXPUNGE").await;
    assert!(
        r.contains("h2 OK") && tagged_highest(&r, "h2").is_none(),
        "{r}"
    );
    c.cmd("h3", "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let r = c.cmd("h4", "EXPUNGE").await;
    assert!(r.contains("* 1 EXPUNGE"), "{r}");
    let after = tagged_highest(&r, "h4").expect("HIGHESTMODSEQ after EXPUNGE");
    let r = c.cmd("h5", "STATUS INBOX (HIGHESTMODSEQ)").await;
    assert!(r.contains(&format!("HIGHESTMODSEQ {after})")), "{r}");

    let r = c.cmd("h6", "UID MOVE 2 Trash").await;
    let moved = tagged_highest(&r, "h6").expect("HIGHESTMODSEQ after MOVE");
    assert!(moved > after, "{r}");

    // UID EXPUNGE under QRESYNC too.
    let mut q = h.session().await;
    q.cmd("q1", "ENABLE QRESYNC").await;
    q.cmd("q2", "SELECT Trash").await;
    q.cmd("q3", "STORE 1 +FLAGS (\\Deleted)").await;
    let r = q.cmd("q4", "UID EXPUNGE 1:*").await;
    assert!(r.contains("* VANISHED "), "{r}");
    assert!(tagged_highest(&r, "q4").is_some(), "{r}");

    // Without CONDSTORE, no code.
    let mut p = h.session().await;
    p.cmd("p1", "SELECT Trash").await;
    p.append("p2", "Trash (\\Deleted)", MSG2).await;
    let r = p.cmd("p3", "EXPUNGE").await;
    assert!(r.contains("p3 OK Expunge"), "{r}");
}

#[tokio::test]
async fn store_silent_under_condstore_still_sends_modseq() {
    let h = start(false).await;
    let mut c = h.session().await;
    c.cmd("s1", "SELECT INBOX").await;
    // Without CONDSTORE, .SILENT is silent.
    let r = c.cmd("s2", "STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    assert!(!r.contains("FETCH"), "{r}");
    c.cmd("s3", "ENABLE CONDSTORE").await;
    let r = c.cmd("s4", "STORE 1 +FLAGS.SILENT (\\Answered)").await;
    assert!(r.contains("* 1 FETCH (MODSEQ ("), "{r}");
    assert!(!r.contains("FLAGS ("), "no FLAGS under .SILENT: {r}");
    let r = c.cmd("s5", "UID STORE 2 -FLAGS.SILENT (\\Seen)").await;
    assert!(r.contains("* 2 FETCH (UID 2 MODSEQ ("), "{r}");
    let r = c.cmd("s6", "STORE 2 +FLAGS (\\Seen)").await;
    assert!(r.contains("* 2 FETCH (FLAGS (\\Seen) MODSEQ ("), "{r}");
    // A FETCH that sets \Seen reports the new MODSEQ with the flags.
    let r = c.cmd("s7", "FETCH 1 (BODY[TEXT])").await;
    assert!(r.contains("MODSEQ ("), "{r}");
}

#[tokio::test]
async fn a_non_synchronizing_literal_over_the_limit_is_toobig_and_closes() {
    // RFC 7888 §4: the client sends the bytes at once, so the server answers
    // BAD [TOOBIG] and closes rather than read them.
    let h = start(false).await;
    let mut c = h.plain();
    c.line().await;
    c.send("n1 LOGIN {100000+}").await;
    let r = c.until("n1").await;
    assert!(r.starts_with("n1 BAD [TOOBIG]"), "{r}");
    let rest = String::from_utf8(c.line().await).unwrap();
    assert!(rest.starts_with("* BYE"), "{rest}");
    assert!(c.is_closed().await);

    // The second literal of a command counts too; its tag is the command's.
    let mut c = h.plain();
    c.line().await;
    c.send("n2 LOGIN {4+}\r\nuser {9000+}").await;
    let r = c.until("n2").await;
    assert!(r.starts_with("n2 BAD [TOOBIG]"), "{r}");
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn literal_data_that_looks_like_a_literal_is_only_data() {
    let h = start(false).await;
    let mut c = h.session().await;
    // A message line ending like a literal announcement, over the limit.
    let msg = b"Subject: x\r\n\r\nsee {999999999+}\r\nand {999999999}\r\n";
    c.send(&format!("a1 APPEND INBOX {{{}+}}", msg.len())).await;
    c.send_bytes(msg).await;
    c.send("").await;
    let r = c.until("a1").await;
    assert!(r.contains("a1 OK [APPENDUID "), "{r}");
    let r = c.cmd("a2", "NOOP").await;
    assert!(r.contains("a2 OK"), "{r}");
    // Within the limit, a non-synchronizing literal is read as usual.
    let r = c.cmd("a3", "SELECT {5+}\r\nINBOX").await;
    assert!(r.contains("a3 OK [READ-WRITE]"), "{r}");
}

#[tokio::test]
async fn list_recursivematch_gives_childinfo_for_subscribed_descendants() {
    let h = start(false).await;
    let mut c = h.session().await;
    c.cmd("r1", "CREATE Foo/Bar").await;
    c.cmd("r2", "SUBSCRIBE Foo/Bar").await;
    c.cmd("r3", "CREATE Moo").await;
    c.cmd("r4", "SUBSCRIBE Moo").await;
    let r = c
        .cmd("r5", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\"")
        .await;
    // RFC 5258 §4: Foo is not subscribed, but a child it hides from `%` is.
    assert!(
        r.contains("* LIST (\\HasChildren) \"/\" Foo (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"),
        "{r}"
    );
    assert!(
        r.contains("* LIST (\\Subscribed \\HasNoChildren) \"/\" Moo\r\n"),
        "{r}"
    );
    assert!(!r.contains("Foo/Bar") && r.contains("r5 OK"), "{r}");
    // With `*` the child itself is listed: no redundant parent.
    let r = c
        .cmd("r6", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"*\"")
        .await;
    assert!(
        r.contains("* LIST (\\Subscribed \\HasNoChildren) \"/\" Foo/Bar\r\n"),
        "{r}"
    );
    assert!(!r.contains("\" Foo\r\n") && !r.contains("CHILDINFO"), "{r}");
    // Without RECURSIVEMATCH, no CHILDINFO and no Foo.
    let r = c.cmd("r7", "LIST (SUBSCRIBED) \"\" \"%\"").await;
    assert!(!r.contains("CHILDINFO") && !r.contains("\" Foo"), "{r}");
    // A subscribed parent that no longer exists, with a subscribed child.
    c.cmd("r8", "CREATE Old/Kid").await;
    c.cmd("r9", "SUBSCRIBE Old").await;
    c.cmd("r10", "SUBSCRIBE Old/Kid").await;
    c.cmd("r11", "DELETE Old").await;
    let r = c
        .cmd("r12", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\"")
        .await;
    assert!(
        r.contains(
            "* LIST (\\NonExistent \\Subscribed \\HasChildren) \"/\" Old (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
        ),
        "{r}"
    );
}

#[tokio::test]
async fn a_parent_only_implied_by_children_is_noselect_under_percent() {
    let h = start(false).await;
    let mut c = h.session().await;
    c.cmd("p1", "CREATE a/b").await;
    let r = c.cmd("p2", "DELETE a").await;
    assert!(
        r.contains("p2 OK"),
        "a mailbox with children can be deleted: {r}"
    );
    let r = c.cmd("p3", "LIST \"\" \"*\"").await;
    assert!(r.contains("* LIST (\\HasNoChildren) \"/\" a/b\r\n"), "{r}");
    assert!(!r.contains("\"/\" a\r\n"), "`*` lists only mailboxes: {r}");
    let r = c.cmd("p4", "LIST \"\" \"%\"").await;
    assert!(
        r.contains("* LIST (\\Noselect \\HasChildren) \"/\" a\r\n"),
        "{r}"
    );
    let r = c.cmd("p5", "SELECT a").await;
    assert!(r.contains("p5 NO [NONEXISTENT]"), "{r}");
    let r = c.cmd("p6", "SELECT a/b").await;
    assert!(r.contains("p6 OK"), "the child survives: {r}");
}

#[tokio::test]
async fn lsub_percent_gives_the_unsubscribed_parent_as_noselect() {
    let h = start(false).await;
    let mut c = h.session().await;
    c.cmd("l1", "CREATE foo/bar").await;
    c.cmd("l2", "SUBSCRIBE foo/bar").await;
    // RFC 3501 §6.3.9: `%` must return foo, not foo/bar, flagged \Noselect.
    let r = c.cmd("l3", "LSUB \"\" \"%\"").await;
    assert!(r.contains("* LSUB (\\Noselect) \"/\" foo\r\n"), "{r}");
    assert!(
        !r.contains("foo/bar") && r.contains("* LSUB () \"/\" INBOX"),
        "{r}"
    );
    let r = c.cmd("l4", "LSUB \"\" \"*\"").await;
    assert!(r.contains("* LSUB () \"/\" foo/bar\r\n"), "{r}");
    assert!(!r.contains("\" foo\r\n"), "{r}");
}
