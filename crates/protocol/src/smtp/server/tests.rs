//! Server session tests: RFC 5321 Appendix D style `C:`/`S:` transcripts.
//!
//! Script lines:
//! - `C: text`  client line (CRLF appended); consecutive C lines are fed together
//! - `C~ text`  raw client bytes with `\r`, `\n`, `\\` escapes, no CRLF appended
//! - `S: text`  next server output line
//! - `E: desc`  next event (see `describe`)
//! - `A: reply` the agent answers (one reply line, e.g. `250 2.1.0 OK`)
//! - `T:`       the agent upgraded to TLS (`tls_started`)

use super::*;
use crate::smtp::reply::ReplyParser;
use proptest::prelude::*;

fn describe(ev: &Event) -> String {
    match ev {
        Event::MailFrom { from, params } => {
            let mut s = format!("MailFrom {from}");
            if let Some(n) = params.size {
                s.push_str(&format!(" SIZE={n}"));
            }
            if params.smtputf8 {
                s.push_str(" SMTPUTF8");
            }
            s
        }
        Event::Rcpt { to, .. } => format!("Rcpt {to}"),
        Event::DataStart => "DataStart".into(),
        Event::DataChunk(b) => format!("DataChunk {}", b.escape_ascii()),
        Event::DataEnd => "DataEnd".into(),
        Event::DataAborted(e) => format!("DataAborted {e:?}"),
        Event::AuthCredentials {
            authzid,
            authcid,
            password,
        } => format!(
            "Auth {} {authcid} {}",
            authzid.as_deref().unwrap_or("-"),
            password.expose()
        ),
        Event::StartTls => "StartTls".into(),
        Event::Reset => "Reset".into(),
        Event::Quit => "Quit".into(),
        Event::Close => "Close".into(),
    }
}

fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        if b == b'\\' {
            match it.next() {
                Some(b'r') => out.push(b'\r'),
                Some(b'n') => out.push(b'\n'),
                Some(b'\\') => out.push(b'\\'),
                Some(o) => panic!("bad escape \\{}", o as char),
                None => panic!("trailing backslash"),
            }
        } else {
            out.push(b);
        }
    }
    out
}

struct Runner {
    s: ServerSession,
    pending: Vec<u8>,
    out: Vec<u8>,
    events: VecDeque<Event>,
}

impl Runner {
    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let p = std::mem::take(&mut self.pending);
            self.s.feed(&p);
        }
        while let Some(ev) = self.s.next_event() {
            self.events.push_back(ev);
        }
        self.out.extend(self.s.take_output());
    }
}

fn transcript_tls(config: ServerConfig, tls: bool, script: &str) {
    let mut r = Runner {
        s: ServerSession::new(config, tls),
        pending: Vec::new(),
        out: Vec::new(),
        events: VecDeque::new(),
    };
    for (n, line) in script.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() {
            continue;
        }
        let (tag, text) = line.split_at(2.min(line.len()));
        let text = text.strip_prefix(' ').unwrap_or(text);
        let at = format!("script line {}: {line}", n + 1);
        match tag {
            "C:" => {
                r.pending.extend_from_slice(text.as_bytes());
                r.pending.extend_from_slice(b"\r\n");
            }
            "C~" => r.pending.extend(unescape(text)),
            "S:" => {
                r.flush();
                let pos = r
                    .out
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .unwrap_or_else(|| {
                        panic!("{at}: no server output left (events: {:?})", r.events)
                    });
                let got: Vec<u8> = r.out.drain(..pos + 2).collect();
                assert_eq!(String::from_utf8_lossy(&got[..pos]), text, "{at}");
            }
            "E:" => {
                r.flush();
                let ev = r
                    .events
                    .pop_front()
                    .unwrap_or_else(|| panic!("{at}: no event"));
                if text == "DataChunk *" {
                    assert!(matches!(ev, Event::DataChunk(_)), "{at}: {ev:?}");
                } else {
                    assert_eq!(describe(&ev), text, "{at}");
                }
            }
            "A:" => {
                r.flush();
                let reply = ReplyParser::default()
                    .feed(text.as_bytes())
                    .unwrap_or_else(|| panic!("{at}: not one line"))
                    .unwrap_or_else(|e| panic!("{at}: {e}"));
                r.s.answer(reply);
            }
            "T:" => {
                r.flush();
                r.s.tls_started();
            }
            _ => panic!("{at}: bad tag"),
        }
    }
    r.flush();
    assert!(
        r.out.is_empty(),
        "unchecked server output: {}",
        r.out.escape_ascii()
    );
    assert!(r.events.is_empty(), "unchecked events: {:?}", r.events);
}

fn transcript(config: ServerConfig, script: &str) {
    transcript_tls(config, false, script);
}

fn config() -> ServerConfig {
    ServerConfig {
        hostname: "mail.paris.test".into(),
        max_message_size: 1000,
        ..ServerConfig::default()
    }
}

const EHLO: &str = "
    S: 250-mail.paris.test
    S: 250-PIPELINING
    S: 250-SIZE 1000
    S: 250-8BITMIME
    S: 250-SMTPUTF8
    S: 250 ENHANCEDSTATUSCODES
";

const GREETING: &str = "S: 220 mail.paris.test ESMTP facteur ready";

/// Greeting, EHLO, MAIL and one accepted RCPT, ready for DATA.
fn with_txn(rest: &str) -> String {
    with_txn_ehlo(EHLO, rest)
}

fn with_txn_ehlo(ehlo: &str, rest: &str) -> String {
    format!(
        "{GREETING}
        C: EHLO bar.com
        {ehlo}
        C: MAIL FROM:<smith@bar.com>
        E: MailFrom <smith@bar.com>
        A: 250 2.1.0 OK
        S: 250 2.1.0 OK
        C: RCPT TO:<jones@paris.test>
        E: Rcpt <jones@paris.test>
        A: 250 2.1.5 OK
        S: 250 2.1.5 OK
        {rest}"
    )
}

#[test]
fn rfc5321_appendix_d1_a_typical_transaction() {
    transcript(
        config(),
        &format!(
            "{GREETING}
            C: EHLO bar.com
            {EHLO}
            C: MAIL FROM:<Smith@bar.com>
            E: MailFrom <Smith@bar.com>
            A: 250 OK
            S: 250 OK
            C: RCPT TO:<Jones@foo.com>
            E: Rcpt <Jones@foo.com>
            A: 250 OK
            S: 250 OK
            C: RCPT TO:<Green@foo.com>
            E: Rcpt <Green@foo.com>
            A: 550 No such user here
            S: 550 No such user here
            C: RCPT TO:<Brown@foo.com>
            E: Rcpt <Brown@foo.com>
            A: 250 OK
            S: 250 OK
            C: DATA
            E: DataStart
            A: 354 Start mail input; end with <CRLF>.<CRLF>
            S: 354 Start mail input; end with <CRLF>.<CRLF>
            C: Blah blah blah...
            C: ..etc. etc. etc.
            C: .
            E: DataChunk Blah blah blah...\\r\\n.etc. etc. etc.\\r\\n
            E: DataEnd
            A: 250 OK
            S: 250 OK
            C: QUIT
            S: 221 2.0.0 mail.paris.test closing connection
            E: Quit
            C: NOOP"
        ),
    );
}

#[test]
fn pipelined_commands_wait_for_each_answer() {
    transcript(
        config(),
        &format!(
            "{GREETING}
            C: EHLO bar.com
            C: MAIL FROM:<a@bar.com> SIZE=500
            C: RCPT TO:<b@paris.test>
            C: RCPT TO:<c@paris.test>
            C: DATA
            {EHLO}
            E: MailFrom <a@bar.com> SIZE=500
            A: 250 2.1.0 OK
            E: Rcpt <b@paris.test>
            A: 250 2.1.5 OK
            E: Rcpt <c@paris.test>
            A: 550 5.1.1 No such user here
            E: DataStart
            A: 354 go ahead
            S: 250 2.1.0 OK
            S: 250 2.1.5 OK
            S: 550 5.1.1 No such user here
            S: 354 go ahead
            C~ hello\\r\\n.\\r\\nRSET\\r\\n
            E: DataChunk hello\\r\\n
            E: DataEnd
            A: 250 2.0.0 OK queued
            S: 250 2.0.0 OK queued
            S: 250 2.0.0 OK"
        ),
    );
}

#[test]
fn smtp_smuggling_lf_dot_lf_is_not_an_end_cve_2023_51766() {
    transcript(
        config(),
        &with_txn(
            "C: DATA
            E: DataStart
            A: 354 go
            S: 354 go
            C~ Subject: hi\\r\\n\\r\\nhello\\n.\\nMAIL FROM:<evil@bar.com>\\nRCPT TO:<victim@paris.test>\\nDATA\\nsmuggled\\n.\\r\\n
            E: DataChunk Subject: hi\\r\\n\\r\\nhello\\n.\\nMAIL FROM:<evil@bar.com>\\nRCPT TO:<victim@paris.test>\\nDATA\\nsmuggled\\n.\\r\\n
            C~ \\r\\n.\\r\\nNOOP\\r\\n
            E: DataChunk \\r\\n
            E: DataAborted BareLineEnding
            S: 554 5.6.0 Message contains bare CR or LF characters
            S: 250 2.0.0 OK
            C: RCPT TO:<x@paris.test>
            S: 503 5.5.1 Bad sequence of commands",
        ),
    );
}

#[test]
fn smtp_smuggling_crlf_dot_lf_and_cr_dot_cr_are_not_ends_cve_2023_51764() {
    for body in [
        "a\\r\\n.\\nMAIL FROM:<evil@bar.com>\\r\\n",
        "a\\r.\\rMAIL FROM:<evil@bar.com>\\r\\n",
        "a\\n.\\r\\nMAIL FROM:<evil@bar.com>\\r\\n",
        "a\\r\\n.\\r.\\r\\n",
    ] {
        transcript(
            config(),
            &with_txn(&format!(
                "C: DATA
                E: DataStart
                A: 354 go
                S: 354 go
                C~ {body}.\\r\\nNOOP\\r\\n
                E: DataChunk *
                E: DataAborted BareLineEnding
                S: 554 5.6.0 Message contains bare CR or LF characters
                S: 250 2.0.0 OK",
            )),
        );
    }
}

#[test]
fn message_over_the_limit_is_read_to_its_end_and_refused() {
    let big = "0123456789".repeat(120);
    transcript(
        config(),
        &with_txn(&format!(
            "C: DATA
            E: DataStart
            A: 354 go
            S: 354 go
            C: {big}
            C: .
            C: NOOP
            E: DataChunk *
            E: DataAborted TooBig
            S: 552 5.3.4 Message size exceeds fixed maximum message size
            S: 250 2.0.0 OK"
        )),
    );
}

#[test]
fn size_parameter_over_the_limit_is_refused_rfc1870() {
    transcript(
        config(),
        &format!(
            "{GREETING}
            C: EHLO x
            {EHLO}
            C: MAIL FROM:<a@bar.com> SIZE=1001
            S: 552 5.3.4 Message size exceeds fixed maximum message size"
        ),
    );
}

#[test]
fn sequence_and_syntax_errors() {
    transcript(
        ServerConfig {
            max_errors: 100,
            ..config()
        },
        &format!(
            "{GREETING}
            C: MAIL FROM:<a@bar.com>
            S: 503 5.5.1 Bad sequence of commands
            C: EHLO
            S: 501 5.5.4 Syntax error in parameters or arguments
            C: HELO bar.com
            S: 250 mail.paris.test
            C: RCPT TO:<b@paris.test>
            S: 503 5.5.1 Bad sequence of commands
            C: DATA
            S: 503 5.5.1 Bad sequence of commands
            C: FOO
            S: 500 5.5.1 Command unrecognized
            C: MAIL FROM:<a@bar.com> FOO=BAR
            S: 555 5.5.4 MAIL FROM/RCPT TO parameters not recognized or not implemented
            C: MAIL FROM:<a@>
            S: 501 5.1.7 Bad sender address syntax
            C: MAIL FROM:<a@bar.com>
            E: MailFrom <a@bar.com>
            A: 250 2.1.0 OK
            S: 250 2.1.0 OK
            C: MAIL FROM:<a@bar.com>
            S: 503 5.5.1 Bad sequence of commands
            C: DATA
            S: 503 5.5.1 Bad sequence of commands
            C: RCPT TO:<b@paris.test> NOTIFY=NEVER
            S: 555 5.5.4 MAIL FROM/RCPT TO parameters not recognized or not implemented
            C: RCPT TO:<andré@paris.test>
            S: 553 5.6.7 Non-ASCII address requires SMTPUTF8
            C: VRFY pierre
            S: 252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery
            C: EXPN list
            S: 502 5.5.1 Command not implemented
            C: HELP
            S: 214 2.0.0 See RFC 5321
            C: NOOP
            S: 250 2.0.0 OK
            C: BDAT 3 LAST
            S: 502 5.5.1 Command not implemented
            C: RSET
            E: Reset
            S: 250 2.0.0 OK
            C: RSET
            S: 250 2.0.0 OK"
        ),
    );
}

#[test]
fn too_many_errors_closes_with_421() {
    let cfg = ServerConfig {
        max_errors: 3,
        ..config()
    };
    transcript(
        cfg,
        &format!(
            "{GREETING}
            C: FOO
            C: BAR
            C: BAZ
            C: NOOP
            S: 500 5.5.1 Command unrecognized
            S: 500 5.5.1 Command unrecognized
            S: 500 5.5.1 Command unrecognized
            S: 421 4.7.0 Too many errors, closing connection
            E: Close"
        ),
    );
}

#[test]
fn overlong_lines_get_500_and_stay_framed() {
    let cfg = ServerConfig {
        max_line: 64,
        ..config()
    };
    let long = "X".repeat(100);
    transcript(
        cfg,
        &format!(
            "{GREETING}
            C: NOOP {long}
            C: NOOP
            S: 500 5.5.2 Line too long
            S: 250 2.0.0 OK
            C~ NOOP {long}
            S: 500 5.5.2 Line too long
            C~ {long}
            C~ {long}\\r\\nNOOP\\r\\n
            S: 250 2.0.0 OK"
        ),
    );
}

#[test]
fn too_many_recipients_get_452() {
    let cfg = ServerConfig {
        max_recipients: 1,
        ..config()
    };
    transcript(
        cfg,
        &with_txn(
            "C: RCPT TO:<x@paris.test>
            S: 452 4.5.3 Too many recipients",
        ),
    );
}

#[test]
fn utf8_addresses_need_smtputf8_rfc6531() {
    transcript(
        config(),
        &format!(
            "{GREETING}
            C: EHLO x
            {EHLO}
            C: MAIL FROM:<andré@lyon.test>
            S: 553 5.6.7 Non-ASCII address requires SMTPUTF8
            C: MAIL FROM:<andré@lyon.test> SMTPUTF8
            E: MailFrom <andré@lyon.test> SMTPUTF8
            A: 250 2.1.0 OK
            S: 250 2.1.0 OK
            C: RCPT TO:<pierre@paris.test>
            E: Rcpt <pierre@paris.test>"
        ),
    );
}

fn submission() -> ServerConfig {
    ServerConfig {
        starttls: true,
        auth_mechanisms: vec!["PLAIN".into(), "LOGIN".into()],
        require_auth: true,
        chunking: true,
        max_errors: 50,
        ..config()
    }
}

const EHLO_PLAIN: &str = "
    S: 250-mail.paris.test
    S: 250-PIPELINING
    S: 250-SIZE 1000
    S: 250-8BITMIME
    S: 250-SMTPUTF8
    S: 250-ENHANCEDSTATUSCODES
    S: 250-CHUNKING
    S: 250 STARTTLS
";

const EHLO_TLS: &str = "
    S: 250-mail.paris.test
    S: 250-PIPELINING
    S: 250-SIZE 1000
    S: 250-8BITMIME
    S: 250-SMTPUTF8
    S: 250-ENHANCEDSTATUSCODES
    S: 250-CHUNKING
    S: 250 AUTH PLAIN LOGIN
";

#[test]
fn starttls_then_auth_plain_rfc3207_rfc4954() {
    transcript(
        submission(),
        &format!(
            "{GREETING}
            C: EHLO bar.com
            {EHLO_PLAIN}
            C: AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm
            S: 538 5.7.11 Encryption required for requested authentication mechanism
            C: MAIL FROM:<tim@paris.test>
            S: 530 5.7.0 Authentication required
            C: STARTTLS
            S: 220 2.0.0 Ready to start TLS
            E: StartTls
            C: this plaintext arrives before the upgrade and is dropped
            T:
            C: MAIL FROM:<tim@paris.test>
            S: 503 5.5.1 Bad sequence of commands
            C: EHLO bar.com
            {EHLO_TLS}
            C: STARTTLS
            S: 503 5.5.1 Bad sequence of commands
            C: AUTH CRAM-MD5
            S: 504 5.5.4 Unrecognized authentication type
            C: AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm
            E: Auth - tim tanstaaftanstaaf
            A: 535 5.7.8 Authentication credentials invalid
            S: 535 5.7.8 Authentication credentials invalid
            C: AUTH PLAIN
            S: 334 
            C: *
            S: 501 5.0.0 Authentication cancelled
            C: AUTH PLAIN
            S: 334 
            C: not base64!
            S: 501 5.5.2 Invalid authentication response
            C: AUTH PLAIN
            S: 334 
            C: AHRpbQB0YW5zdGFhZnRhbnN0YWFm
            E: Auth - tim tanstaaftanstaaf
            A: 235 2.7.0 Authentication successful
            S: 235 2.7.0 Authentication successful
            C: AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm
            S: 503 5.5.1 Bad sequence of commands
            C: MAIL FROM:<tim@paris.test>
            E: MailFrom <tim@paris.test>"
        ),
    );
}

#[test]
fn auth_login_exchange() {
    transcript_tls(
        submission(),
        true,
        &format!(
            "{GREETING}
            C: EHLO bar.com
            {EHLO_TLS}
            C: AUTH LOGIN
            S: 334 VXNlcm5hbWU6
            C: dGlt
            S: 334 UGFzc3dvcmQ6
            C: c2VjcmV0
            E: Auth - tim secret
            A: 235 2.7.0 Authentication successful
            S: 235 2.7.0 Authentication successful
            C: QUIT
            S: 221 2.0.0 mail.paris.test closing connection
            E: Quit"
        ),
    );
    transcript_tls(
        submission(),
        true,
        &format!(
            "{GREETING}
            C: EHLO bar.com
            {EHLO_TLS}
            C: AUTH LOGIN dGlt
            S: 334 UGFzc3dvcmQ6
            C: c2VjcmV0
            E: Auth - tim secret
            A: 535 5.7.8 Authentication credentials invalid
            S: 535 5.7.8 Authentication credentials invalid"
        ),
    );
}

#[test]
fn starttls_command_injection_closes_cve_2011_0411() {
    transcript(
        submission(),
        &format!(
            "{GREETING}
            C: EHLO bar.com
            {EHLO_PLAIN}
            C: STARTTLS
            C: MAIL FROM:<evil@bar.com>
            S: 421 4.7.0 Input pipelined after STARTTLS, closing connection
            E: Close"
        ),
    );
}

#[test]
fn starttls_not_offered_is_refused() {
    transcript(
        config(),
        &format!(
            "{GREETING}
            C: STARTTLS
            S: 502 5.5.1 Command not implemented"
        ),
    );
}

fn lmtp() -> ServerConfig {
    ServerConfig {
        lmtp: true,
        ..config()
    }
}

#[test]
fn lmtp_answers_once_per_accepted_recipient_rfc2033() {
    transcript(
        lmtp(),
        &format!(
            "S: 220 mail.paris.test LMTP facteur ready
            C: EHLO bar.com
            S: 500 5.5.1 Command unrecognized
            C: HELO bar.com
            S: 500 5.5.1 Command unrecognized
            C: LHLO bar.com
            {EHLO}
            C: MAIL FROM:<a@bar.com>
            C: RCPT TO:<pierre@paris.test>
            C: RCPT TO:<nobody@paris.test>
            C: RCPT TO:<jacques@paris.test>
            C: DATA
            E: MailFrom <a@bar.com>
            A: 250 2.1.0 OK
            E: Rcpt <pierre@paris.test>
            A: 250 2.1.5 OK
            E: Rcpt <nobody@paris.test>
            A: 550 5.1.1 No such user here
            E: Rcpt <jacques@paris.test>
            A: 250 2.1.5 OK
            E: DataStart
            A: 354 go
            S: 250 2.1.0 OK
            S: 250 2.1.5 OK
            S: 550 5.1.1 No such user here
            S: 250 2.1.5 OK
            S: 354 go
            C: hi
            C: .
            C: MAIL FROM:<b@bar.com>
            E: DataChunk hi\\r\\n
            E: DataEnd
            A: 250 2.0.0 pierre delivered
            A: 452 4.2.2 jacques over quota
            E: MailFrom <b@bar.com>
            A: 250 2.1.0 OK
            S: 250 2.0.0 pierre delivered
            S: 452 4.2.2 jacques over quota
            S: 250 2.1.0 OK"
        ),
    );
}

#[test]
fn lmtp_refused_message_gets_one_reply_per_recipient() {
    transcript(
        lmtp(),
        "S: 220 mail.paris.test LMTP facteur ready
        C: LHLO x
        C: MAIL FROM:<a@bar.com>
        C: RCPT TO:<pierre@paris.test>
        C: RCPT TO:<jacques@paris.test>
        C: DATA
        E: MailFrom <a@bar.com>
        A: 250 OK
        E: Rcpt <pierre@paris.test>
        A: 250 OK
        E: Rcpt <jacques@paris.test>
        A: 250 OK
        E: DataStart
        A: 354 go
        C~ x\\n.\\n\\r\\n.\\r\\n
        S: 250-mail.paris.test
        S: 250-PIPELINING
        S: 250-SIZE 1000
        S: 250-8BITMIME
        S: 250-SMTPUTF8
        S: 250 ENHANCEDSTATUSCODES
        S: 250 OK
        S: 250 OK
        S: 250 OK
        S: 354 go
        E: DataChunk x\\n.\\n\\r\\n
        E: DataAborted BareLineEnding
        S: 554 5.6.0 Message contains bare CR or LF characters
        S: 554 5.6.0 Message contains bare CR or LF characters",
    );
}

#[test]
fn bdat_chunks_rfc3030() {
    transcript_tls(
        ServerConfig {
            require_auth: false,
            ..submission()
        },
        true,
        &with_txn_ehlo(
            EHLO_TLS,
            "C~ BDAT 7\\r\\nhel\\r\\n.\\r
            C~ BDAT 3 LAST\\r\\n\\nabNOOP\\r\\n
            E: DataChunk hel\\r\\n.\\r
            S: 250 2.0.0 7 octets received
            E: DataChunk \\nab
            E: DataEnd
            A: 250 2.0.0 OK queued
            S: 250 2.0.0 OK queued
            S: 250 2.0.0 OK
            C~ BDAT 5 LAST\\r\\nQUIT\\n
            S: 503 5.5.1 Bad sequence of commands
            C: DATA
            S: 503 5.5.1 Bad sequence of commands",
        ),
    );
}

/// The bytes DATA refuses (bare LF, bare CR, a CR at the very end) BDAT
/// refuses too, in the chunk that holds them, and the transaction ends.
#[test]
fn bdat_refuses_bare_line_endings_as_data_does() {
    for (chunks, aborted_at) in [
        (&[&b"a\nb"[..]][..], 0),
        (&[&b"ab\r"[..], &b"x"[..]][..], 1),
        (&[&b"ok\r\n"[..], &b"x\ry"[..]][..], 1),
        (&[&b"end\r"[..]][..], 0),
    ] {
        let cfg = ServerConfig {
            chunking: true,
            ..ServerConfig::default()
        };
        let mut s = ServerSession::new(cfg, false);
        s.feed(b"EHLO x\r\nMAIL FROM:<a@b.c>\r\n");
        assert!(matches!(s.next_event(), Some(Event::MailFrom { .. })));
        s.answer(codes::sender_ok());
        s.feed(b"RCPT TO:<d@e.f>\r\n");
        assert!(matches!(s.next_event(), Some(Event::Rcpt { .. })));
        s.answer(codes::recipient_ok());
        let mut events = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            let last = if i + 1 == chunks.len() { " LAST" } else { "" };
            s.feed(format!("BDAT {}{last}\r\n", c.len()).as_bytes());
            s.feed(c);
            while let Some(e) = s.next_event() {
                events.push((i, e));
            }
        }
        let out = String::from_utf8(s.take_output()).unwrap();
        assert!(
            events.contains(&(aborted_at, Event::DataAborted(DataEnd::BareLineEnding))),
            "{chunks:?}: {events:?}"
        );
        assert!(
            !events.iter().any(|(_, e)| *e == Event::DataEnd),
            "{chunks:?}: {events:?}"
        );
        assert!(
            out.contains("554 5.6.0 Message contains bare CR or LF characters"),
            "{chunks:?}: {out}"
        );
    }
}

#[test]
fn bdat_over_the_limit_is_skipped_and_refused() {
    let cfg = ServerConfig {
        chunking: true,
        max_message_size: 10,
        ..ServerConfig::default()
    };
    let mut s = ServerSession::new(cfg, false);
    s.feed(b"EHLO x\r\nMAIL FROM:<a@b.c>\r\n");
    assert!(matches!(s.next_event(), Some(Event::MailFrom { .. })));
    s.answer(codes::sender_ok());
    s.feed(b"RCPT TO:<d@e.f>\r\n");
    assert!(matches!(s.next_event(), Some(Event::Rcpt { .. })));
    s.answer(codes::recipient_ok());
    s.feed(b"BDAT 8\r\n12345678BDAT 8 LAST\r\n1234");
    assert_eq!(s.next_event(), Some(Event::DataChunk(b"12345678".to_vec())));
    assert_eq!(s.next_event(), None);
    s.feed(b"5678NOOP\r\n");
    assert_eq!(s.next_event(), Some(Event::DataAborted(DataEnd::TooBig)));
    assert_eq!(s.next_event(), None);
    let out = String::from_utf8(s.take_output()).unwrap();
    assert!(
        out.ends_with("250 2.0.0 8 octets received\r\n552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.0.0 OK\r\n"),
        "{out}"
    );
}

#[test]
fn data_refused_by_the_agent_keeps_the_transaction() {
    transcript(
        config(),
        &with_txn(
            "C: DATA
            E: DataStart
            A: 451 4.3.0 Local error in processing, try again later
            S: 451 4.3.0 Local error in processing, try again later
            C: hello
            S: 500 5.5.1 Command unrecognized
            C: RCPT TO:<y@paris.test>
            E: Rcpt <y@paris.test>",
        ),
    );
}

#[test]
fn accessors() {
    let mut s = ServerSession::new(submission(), true);
    assert!(s.is_tls());
    assert_eq!(s.helo(), None);
    s.feed(b"EHLO bar.com\r\nNOOP");
    assert_eq!(s.next_event(), None);
    assert_eq!(s.helo(), Some("bar.com"));
    assert_eq!(s.buffered_input(), 4);
    s.answer(codes::ok()); // nothing pending: dropped
    assert!(
        !String::from_utf8(s.take_output())
            .unwrap()
            .contains("250 2.0.0 OK")
    );
    assert_eq!(s.authenticated(), None);
}

#[test]
fn progress_tells_a_partial_line_from_a_body_for_the_request_deadlines() {
    use crate::deadline::Phase;
    let mut s = ServerSession::new(config(), false);
    assert_eq!(s.progress().phase, Phase::Idle);
    s.feed(b"EHLO x\r\nMAIL FR");
    assert_eq!(s.next_event(), None);
    let after_ehlo = s.progress();
    assert_eq!(after_ehlo.phase, Phase::Command);
    s.feed(b"OM:<a@b.c>\r\n");
    assert!(matches!(s.next_event(), Some(Event::MailFrom { .. })));
    s.answer(codes::sender_ok());
    assert_eq!(s.next_event(), None);
    let p = s.progress();
    assert_eq!(p.phase, Phase::Idle);
    assert!(
        p.completed > after_ehlo.completed,
        "MAIL completed a request"
    );
    s.feed(b"RCPT TO:<d@paris.test>\r\n");
    assert!(matches!(s.next_event(), Some(Event::Rcpt { .. })));
    s.answer(codes::recipient_ok());
    s.feed(b"DATA\r\n");
    assert_eq!(s.next_event(), Some(Event::DataStart));
    s.answer(Reply::new(354, "", "go ahead"));
    assert_eq!(s.next_event(), None);
    let in_body = s.progress();
    assert_eq!(
        in_body.phase,
        Phase::Data,
        "a body is data even before its first byte"
    );
    s.feed(b"hi\r\n.\r\n");
    assert!(matches!(s.next_event(), Some(Event::DataChunk(_))));
    assert_eq!(s.next_event(), Some(Event::DataEnd));
    let p = s.progress();
    assert_eq!(p.phase, Phase::Idle);
    assert!(p.completed > in_body.completed);
    // An overlong line stays a command until its end arrives, even while skipped.
    s.answer(codes::ok());
    s.feed(&[b'x'; 3000]);
    while s.next_event().is_some() {}
    assert_eq!(s.buffered_input(), 0);
    assert_eq!(s.progress().phase, Phase::Command);
}

/// An agent that says yes to everything, for property tests.
fn run_auto(config: ServerConfig, chunks: &[&[u8]]) -> (Vec<u8>, Vec<Event>) {
    let mut s = ServerSession::new(config, false);
    let mut events = Vec::new();
    let mut out = Vec::new();
    for c in chunks {
        s.feed(c);
        while let Some(ev) = s.next_event() {
            match &ev {
                Event::MailFrom { .. } => s.answer(codes::sender_ok()),
                Event::Rcpt { .. } => s.answer(codes::recipient_ok()),
                Event::DataStart => s.answer(codes::start_data()),
                Event::DataEnd => s.answer(codes::ok()),
                Event::AuthCredentials { .. } => s.answer(codes::auth_ok()),
                Event::StartTls => s.tls_started(),
                _ => {}
            }
            events.push(ev);
        }
        out.extend(s.take_output());
        assert!(s.buffered_input() <= 2048 + c.len());
    }
    // merge chunk boundaries away
    let mut merged: Vec<Event> = Vec::new();
    for ev in events {
        match (merged.last_mut(), ev) {
            (Some(Event::DataChunk(a)), Event::DataChunk(b)) => a.extend(b),
            (_, ev) => merged.push(ev),
        }
    }
    (out, merged)
}

const SESSION: &[u8] = b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n\
hello\n.\nMAIL FROM:<evil@b.c>\r\n.\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n\
DATA\r\n..dots\r\n.\r\nBDAT 3\r\nabcRSET\r\nFOO\r\nQUIT\r\nNOOP\r\n";

proptest! {
    #[test]
    fn splitting_input_never_changes_the_session(cuts in proptest::collection::vec(0..SESSION.len(), 0..8)) {
        let whole = run_auto(config(), &[SESSION]);
        let mut points = cuts.clone();
        points.sort_unstable();
        points.push(SESSION.len());
        let mut chunks = Vec::new();
        let mut pos = 0;
        for p in points { chunks.push(&SESSION[pos..p]); pos = p; }
        prop_assert_eq!(run_auto(config(), &chunks), whole);
    }

    #[test]
    fn garbage_never_panics_and_output_is_bounded(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..10),
        chunking in any::<bool>(),
    ) {
        let cfg = ServerConfig { chunking, max_line: 128, ..submission() };
        let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let (out, _) = run_auto(cfg, &chunks);
        prop_assert!(out.len() < 100_000);
    }

    #[test]
    fn command_like_garbage_never_panics(
        lines in proptest::collection::vec("(EHLO x|MAIL FROM:<a@b.c>|RCPT TO:<d@e.f>|DATA|BDAT [0-9]{1,2}( LAST)?|AUTH PLAIN|AUTH LOGIN|STARTTLS|RSET|\\*|\\.|[ -~]{0,10})(\r\n|\n|\r)", 0..30),
    ) {
        let input = lines.concat();
        let (_, _) = run_auto(submission(), &[input.as_bytes()]);
    }
}

/// RCPT harvesting: refused recipients count as errors; past the soft limit
/// the driver is told to wait longer each time, at the hard limit 421 closes.
#[test]
fn refused_recipients_are_errors_tarpitted_then_cut() {
    let cfg = ServerConfig {
        max_errors: 5,
        soft_error_limit: 2,
        error_sleep: std::time::Duration::from_millis(100),
        ..ServerConfig::default()
    };
    let mut s = ServerSession::new(cfg, false);
    s.feed(b"EHLO x\r\nMAIL FROM:<a@b.c>\r\n");
    assert!(matches!(s.next_event(), Some(Event::MailFrom { .. })));
    s.answer(codes::sender_ok());
    let mut delays = Vec::new();
    let mut closed = false;
    for i in 0..10 {
        s.feed(format!("RCPT TO:<nobody{i}@e.f>\r\n").as_bytes());
        match s.next_event() {
            Some(Event::Rcpt { .. }) => s.answer(codes::no_such_user()),
            None => {}
            other => panic!("{other:?}"),
        }
        if s.next_event() == Some(Event::Close) {
            closed = true;
            break;
        }
        delays.push(s.tarpit().map(|d| d.as_millis()));
    }
    assert!(closed, "the session must close at the hard limit");
    assert_eq!(delays, vec![None, None, Some(100), Some(200)]);
    let out = String::from_utf8(s.take_output()).unwrap();
    assert_eq!(out.matches("\r\n550 ").count(), 5, "{out}");
    assert!(
        out.ends_with("\r\n421 4.7.0 Too many errors, closing connection\r\n"),
        "{out}"
    );
}
