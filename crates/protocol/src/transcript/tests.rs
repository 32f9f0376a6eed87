//! Transcripts of real dialogues: lines, masks, bodies, Message-IDs, bounds.

use super::*;

fn texts(t: &Transcript) -> Vec<String> {
    t.lines()
        .iter()
        .map(|l| format!("{} {}", l.dir.prefix(), l.text))
        .collect()
}

#[test]
fn an_smtp_submission_reads_like_the_course_with_the_password_and_body_hidden() {
    let mut t = Transcript::new(Proto::Smtp, Limits::default());
    t.server(b"220 mail.paris.test ESMTP facteur\r\n");
    t.client(b"EHLO pc\r\n");
    t.server(b"250-mail.paris.test\r\n250 AUTH PLAIN\r\n");
    t.client(b"AUTH PLAIN AHBpZXJyZQBmYWN0ZXVy\r\n");
    t.server(b"235 2.7.0 ok\r\n");
    // Pipelined, and the body split across reads at awkward places.
    t.client(b"MAIL FROM:<pierre@paris.test>\r\nRCPT TO:<andre@lyon.test>\r\nDATA\r\n");
    t.server(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n");
    t.client(b"Subject: hi\r\nMessage-ID: <1@paris.test>\r\n\r\nBonjour\r");
    t.client(b"\n.");
    t.client(b"\r\nQUIT\r\n");
    t.server(b"250 2.0.0 queued as ABC\r\n221 bye\r\n");
    assert_eq!(
        texts(&t),
        [
            "S: 220 mail.paris.test ESMTP facteur",
            "C: EHLO pc",
            "S: 250-mail.paris.test",
            "S: 250 AUTH PLAIN",
            "C: AUTH PLAIN ********",
            "S: 235 2.7.0 ok",
            "C: MAIL FROM:<pierre@paris.test>",
            "C: RCPT TO:<andre@lyon.test>",
            "C: DATA",
            "S: 250 2.1.0 ok",
            "S: 250 2.1.5 ok",
            "S: 354 go",
            "C: (52 octets of message, Message-ID: <1@paris.test>)",
            "C: .",
            "C: QUIT",
            "S: 250 2.0.0 queued as ABC",
            "S: 221 bye",
        ]
    );
    assert_eq!(t.message_ids(), ["<1@paris.test>"]);
    assert_eq!(t.headers(), ["Subject: hi", "Message-ID: <1@paris.test>"]);
    assert!(!format!("{:?}", t.lines()).contains("AHBpZXJy"));
}

#[test]
fn sasl_responses_after_a_challenge_are_masked_and_dot_lines_in_a_body_are_not_its_end() {
    let mut t = Transcript::new(Proto::Smtp, Limits::default());
    t.client(b"AUTH LOGIN\r\n");
    t.server(b"334 VXNlcm5hbWU6\r\n");
    t.client(b"cGllcnJl\r\n");
    t.server(b"334 UGFzc3dvcmQ6\r\n");
    t.client(b"c2VjcmV0\r\n");
    t.server(b"235 ok\r\n");
    t.client(b"DATA\r\n");
    t.server(b"354 go\r\n");
    t.client(b"\r\n..stuffed\r\n.x\r\n.\r\nNOOP\r\n");
    let all = texts(&t);
    assert_eq!(all[2], "C: ********");
    assert_eq!(all[4], "C: ********");
    assert_eq!(all[8], "C: (17 octets)");
    assert_eq!(all[9], "C: .");
    assert_eq!(all[10], "C: NOOP");
    assert!(t.message_ids().is_empty());
}

#[test]
fn bdat_chunks_are_counted_not_shown() {
    let mut t = Transcript::new(Proto::Smtp, Limits::default());
    t.client(b"BDAT 32 LAST\r\nMessage-ID: <b@x>\r\n\r\nbody\nbare\r\nRSET\r\n");
    assert_eq!(
        texts(&t),
        [
            "C: BDAT 32 LAST",
            "C: (32 octets of message, Message-ID: <b@x>)",
            "C: RSET",
        ]
    );
}

#[test]
fn a_pop3_session_hides_pass_and_shows_retr_as_one_line_after_pipelined_listings() {
    let mut t = Transcript::new(Proto::Pop3, Limits::default());
    t.server(b"+OK POP3 ready\r\n");
    t.client(b"USER andre@lyon.test\r\nPASS facteur\r\n");
    t.server(b"+OK\r\n+OK logged in\r\n");
    t.client(b"UIDL\r\nRETR 1\r\nLIST 1\r\nQUIT\r\n");
    t.server(b"+OK\r\n1 abc\r\n.\r\n+OK 40 octets\r\nMessage-Id: \r\n <r@lyon.test>\r\n\r\n");
    t.server(b"..x\r\n.\r\n+OK 1 40\r\n+OK bye\r\n");
    assert_eq!(
        texts(&t),
        [
            "S: +OK POP3 ready",
            "C: USER andre@lyon.test",
            "C: PASS ********",
            "S: +OK",
            "S: +OK logged in",
            "C: UIDL",
            "C: RETR 1",
            "C: LIST 1",
            "C: QUIT",
            "S: +OK",
            "S: 1 abc",
            "S: .",
            "S: +OK 40 octets",
            "S: (37 octets of message, Message-ID: <r@lyon.test>)",
            "S: .",
            "S: +OK 1 40",
            "S: +OK bye",
        ]
    );
    assert_eq!(t.message_ids(), ["<r@lyon.test>"]);
}

#[test]
fn pop3_auth_plain_after_a_challenge_is_masked() {
    let mut t = Transcript::new(Proto::Pop3, Limits::default());
    t.client(b"AUTH PLAIN\r\n");
    t.server(b"+ \r\n");
    t.client(b"AGFuZHJlAGZhY3RldXI=\r\n");
    t.server(b"+OK\r\n");
    t.client(b"APOP andre c4c9334bac560ecc979e58001b3e22fb\r\n");
    let all = texts(&t);
    assert_eq!(all[2], "C: ********");
    assert_eq!(all[4], "C: APOP andre ********");
}

#[test]
fn imap_login_is_masked_and_literals_either_way_are_counted() {
    let mut t = Transcript::new(Proto::Imap, Limits::default());
    t.server(b"* OK ready\r\n");
    t.client(b"a1 LOGIN andre@lyon.test \"fac teur\"\r\n");
    t.server(b"a1 OK done\r\n");
    t.client(b"a2 AUTHENTICATE PLAIN\r\n");
    t.server(b"+ \r\n");
    t.client(b"AGFuZHJl\r\n");
    t.server(b"a2 NO [AUTHENTICATIONFAILED] no\r\n");
    t.client(b"a3 APPEND Sent {21+}\r\nMessage-ID: <a@b>\r\n\r\n\r\n");
    t.server(b"* 1 FETCH (UID 7 BODY[] {21}\r\nMessage-ID: <f@g>\r\n\r\nx)\r\na4 OK\r\n");
    let all = texts(&t);
    assert_eq!(all[1], "C: a1 LOGIN andre@lyon.test ********");
    assert_eq!(all[5], "C: ********");
    assert_eq!(all[7], "C: a3 APPEND Sent {21+}");
    assert_eq!(all[8], "C: (21 octets of message, Message-ID: <a@b>)");
    assert_eq!(all[9], "C: ");
    assert_eq!(all[10], "S: * 1 FETCH (UID 7 BODY[] {21}");
    assert_eq!(all[11], "S: (21 octets of message, Message-ID: <f@g>)");
    assert_eq!(all[12], "S: x)");
    assert_eq!(all[13], "S: a4 OK");
    assert_eq!(t.message_ids(), ["<a@b>", "<f@g>"]);
}

#[test]
fn hostile_input_stays_bounded_and_one_event_per_line() {
    let limits = Limits {
        max_lines: 5,
        max_line: 20,
    };
    let mut t = Transcript::new(Proto::Smtp, limits);
    t.client(b"EHLO a\x1b[31mred\rforged\r\n");
    t.client(&vec![b'x'; 100_000]);
    t.client(b"\r\n");
    for _ in 0..100 {
        t.client(b"NOOP\r\n");
    }
    t.client(b"BDAT 99999999999999999999999 LAST\r\n");
    let all = texts(&t);
    assert_eq!(all.len(), 5);
    assert_eq!(all[0], "C: EHLO a\\u{1b}[31mred\\r…");
    assert_eq!(all[1].chars().count(), "C: ".len() + 21);
    assert_eq!(t.dropped(), 98);
    let f = t.finish();
    assert_eq!((f.lines.len(), f.dropped), (5, 98));
}

#[test]
fn message_ids_are_read_from_the_header_only() {
    assert_eq!(
        message_id(b"From: a\r\nMESSAGE-ID:<x@y>\r\n\r\n").as_deref(),
        Some("<x@y>")
    );
    assert_eq!(message_id(b"From: a\r\n\r\nMessage-ID: <x@y>\r\n"), None);
    assert_eq!(message_id(b"Message-ID: none\r\n\r\n"), None);
    assert_eq!(message_id(b"Message-ID: <>\r\n\r\n"), None);
}
