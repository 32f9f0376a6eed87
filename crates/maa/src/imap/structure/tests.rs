//! ENVELOPE, BODY/BODYSTRUCTURE and sections on real-world-shaped messages,
//! checked against the text imap-codec puts on the wire.

use std::num::NonZeroU32;

use imap_codec::ResponseCodec;
use imap_codec::decode::Decoder;
use imap_codec::encode::Encoder;
use imap_next::imap_types::core::{AString, Vec1};
use imap_next::imap_types::fetch::{MessageDataItem, Part, Section};
use imap_next::imap_types::response::{Data, Response};

use super::mime::parse_content_type;
use super::*;

/// A data item as imap-codec writes it in `* 1 FETCH (...)`; a client's parser
/// (imap-codec's) reads it back as the same value.
fn wire(item: MessageDataItem<'static>) -> String {
    let resp = Response::Data(Data::Fetch {
        seq: NonZeroU32::MIN,
        items: Vec1::from(item),
    });
    let bytes = ResponseCodec::default().encode(&resp).dump();
    let (rest, back) = ResponseCodec::default().decode(&bytes).unwrap();
    assert!(rest.is_empty());
    assert_eq!(back, resp);
    let out = String::from_utf8_lossy(&bytes).into_owned();
    out.strip_prefix("* 1 FETCH (")
        .and_then(|s| s.strip_suffix(")\r\n"))
        .unwrap()
        .to_owned()
}

fn bodystructure(msg: &[u8]) -> String {
    wire(MessageDataItem::BodyStructure(
        parse(msg).body_structure(true),
    ))
}

fn body(msg: &[u8]) -> String {
    wire(MessageDataItem::Body(parse(msg).body_structure(false)))
}

fn envelope(msg: &[u8]) -> String {
    wire(MessageDataItem::Envelope(parse(msg).envelope()))
}

fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

fn part(nums: &[u32]) -> Part {
    Part(
        Vec1::try_from(
            nums.iter()
                .map(|&n| NonZeroU32::new(n).unwrap())
                .collect::<Vec<_>>(),
        )
        .unwrap(),
    )
}

fn nums(nums: &[u32]) -> Vec<NonZeroU32> {
    nums.iter().map(|&n| NonZeroU32::new(n).unwrap()).collect()
}

fn names(list: &[&str]) -> Vec1<AString<'static>> {
    Vec1::try_from(
        list.iter()
            .map(|n| AString::try_from(n.to_string()).unwrap())
            .collect::<Vec<_>>(),
    )
    .unwrap()
}

fn section(msg: &[u8], s: Option<Section<'_>>) -> Option<String> {
    parse(msg)
        .section(msg, s.as_ref())
        .map(|b| String::from_utf8(b.into_owned()).unwrap())
}

// RFC 9051 §6.3.12 (APPEND) / RFC 3501 §6.3.11: the message of the examples.
const SIMPLE: &str = "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)
From: Fred Foobar <foobar@Blurdybloop.example>
Subject: afternoon meeting
To: mooch@owatagu.siam.edu.example
Message-Id: <B27397-0100000@Blurdybloop.example>
MIME-Version: 1.0
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII

Hello Joe, do you think we can meet at 3:30 tomorrow?
";

#[test]
fn simple_text_plain() {
    let msg = crlf(SIMPLE);
    let fred = r#"("Fred Foobar" NIL "foobar" "Blurdybloop.example")"#;
    assert_eq!(
        envelope(&msg),
        format!(
            r#"ENVELOPE ("Mon, 7 Feb 1994 21:52:25 -0800 (PST)" "afternoon meeting" ({fred}) ({fred}) ({fred}) ((NIL NIL "mooch" "owatagu.siam.edu.example")) NIL NIL NIL "<B27397-0100000@Blurdybloop.example>")"#
        )
    );
    assert_eq!(
        body(&msg),
        r#"BODY ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 55 1)"#
    );
    assert_eq!(
        bodystructure(&msg),
        r#"BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 55 1 NIL NIL NIL NIL)"#
    );
}

#[test]
fn no_content_type_is_text_plain_us_ascii() {
    let msg = crlf("Subject: x\n\nline one\nline two\n");
    assert_eq!(
        body(&msg),
        r#"BODY ("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 20 2)"#
    );
    // A text part without a charset gets the default one added.
    let msg = crlf("Content-Type: text/html\n\n<p>hi</p>");
    assert_eq!(
        body(&msg),
        r#"BODY ("TEXT" "html" ("charset" "us-ascii") NIL NIL "7bit" 9 0)"#
    );
}

/// RFC 3501 §7.4.2's BODYSTRUCTURE example, rebuilt as a message of those sizes.
#[test]
fn rfc3501_example_body() {
    let mut first = String::new();
    for _ in 0..22 {
        first.push_str(&"x".repeat(48));
        first.push_str("\r\n");
    }
    first.push_str(&"y".repeat(50));
    first.push_str("\r\n");
    assert_eq!((first.len(), first.matches('\n').count()), (1152, 23));
    let mut second = String::new();
    for _ in 0..72 {
        second.push_str(&"A".repeat(60));
        second.push_str("\r\n");
    }
    second.push_str(&"B".repeat(88));
    second.push_str("\r\n");
    assert_eq!((second.len(), second.matches('\n').count()), (4554, 73));
    let msg = format!(
        "From: a@example.com\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: MULTIPART/MIXED; BOUNDARY=\"---- =_NextPart\"\r\n\
         \r\n\
         preamble\r\n\
         ------ =_NextPart\r\n\
         Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\
         Content-Transfer-Encoding: 7BIT\r\n\
         \r\n\
         {first}\r\n\
         ------ =_NextPart\r\n\
         Content-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME=cc.diff\r\n\
         Content-ID: <960723163407.20117h@cac.washington.edu>\r\n\
         Content-Description: Compiler diff\r\n\
         Content-Transfer-Encoding: BASE64\r\n\
         \r\n\
         {second}\r\n\
         ------ =_NextPart--\r\n\
         epilogue\r\n"
    );
    assert_eq!(
        body(msg.as_bytes()),
        r#"BODY (("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") "<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4554 73) "MIXED")"#
    );
    // The parts are exactly those bytes, the line break before a delimiter excluded.
    assert_eq!(
        section(msg.as_bytes(), Some(Section::Part(part(&[1])))).unwrap(),
        first
    );
    assert_eq!(
        section(msg.as_bytes(), Some(Section::Part(part(&[2])))).unwrap(),
        second
    );
}

const ALTERNATIVE: &str = "From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>
To: \"Doe, Jane\" <jane@example.com>, bob@example.org (Bob Smith)
Subject: =?UTF-8?B?R3LDvMOfZQ==?=
 und mehr
Date: Tue, 3 Feb 2026 09:15:00 +0100
Message-ID: <alt-1@example.de>
In-Reply-To: <orig@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=\"alt\"

--alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Gr=C3=BC=C3=9Fe
--alt
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>Gr=C3=BC=C3=9Fe</p>

--alt--
";

#[test]
fn multipart_alternative() {
    let msg = crlf(ALTERNATIVE);
    let joerg = r#"("=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?=" NIL "joerg" "example.de")"#;
    assert_eq!(
        envelope(&msg),
        format!(
            r#"ENVELOPE ("Tue, 3 Feb 2026 09:15:00 +0100" "=?UTF-8?B?R3LDvMOfZQ==?= und mehr" ({joerg}) ({joerg}) ({joerg}) (("Doe, Jane" NIL "jane" "example.com")("Bob Smith" NIL "bob" "example.org")) NIL NIL "<orig@example.com>" "<alt-1@example.de>")"#
        )
    );
    // "Gr=C3=BC=C3=9Fe" is 15 bytes, no line break (it belongs to the delimiter);
    // the html part ends with one line break of its own.
    assert_eq!(
        bodystructure(&msg),
        r#"BODYSTRUCTURE (("TEXT" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 15 0 NIL NIL NIL NIL)("TEXT" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 24 1 NIL NIL NIL NIL) "alternative" ("boundary" "alt") NIL NIL NIL)"#
    );
    assert_eq!(
        body(&msg),
        r#"BODY (("TEXT" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 15 0)("TEXT" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 24 1) "alternative")"#
    );
    let tree = parse(&msg);
    assert_eq!(
        tree.binary(&msg, &nums(&[1])).unwrap().unwrap().as_ref(),
        "Grüße".as_bytes()
    );
    assert_eq!(
        tree.binary(&msg, &nums(&[2])).unwrap().unwrap().as_ref(),
        "<p>Grüße</p>\r\n".as_bytes()
    );
}

const MIXED: &str = "From: Alice <alice@example.com>
To: undisclosed-recipients:;
Subject: Report
Date: Wed, 4 Feb 2026 10:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=\"outer\"

This is a multi-part message in MIME format.

--outer
Content-Type: multipart/alternative; boundary=\"inner\"

--inner
Content-Type: text/plain; charset=\"us-ascii\"

See attached.

--inner
Content-Type: text/html; charset=\"us-ascii\"

<p>See attached.</p>

--inner--

--outer
Content-Type: application/pdf; name=\"Entw=?UTF-8?Q?=C3=BC?=rfe.pdf\"
Content-Disposition: attachment;
 filename*=UTF-8''Entw%C3%BCrfe.pdf;
 size=12
Content-Transfer-Encoding: base64

SGVsbG8sIFBERiE=

--outer
Content-Type: image/png; name=\"dot.png\"
Content-Disposition: inline; filename*0*=UTF-8''d%C3%B6; filename*1=t.png
Content-Language: de, en
Content-Location: http://example.com/dot.png
Content-ID: <dot@example.com>
Content-Transfer-Encoding: x-uuencode

begin 644 dot.png
end

--outer--
";

#[test]
fn nested_multipart_with_attachments() {
    let msg = crlf(MIXED);
    assert_eq!(
        envelope(&msg),
        r#"ENVELOPE ("Wed, 4 Feb 2026 10:00:00 +0000" "Report" (("Alice" NIL "alice" "example.com")) (("Alice" NIL "alice" "example.com")) (("Alice" NIL "alice" "example.com")) ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL)"#
    );
    assert_eq!(
        bodystructure(&msg),
        concat!(
            r#"BODYSTRUCTURE ((("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 15 1 NIL NIL NIL NIL)"#,
            r#"("TEXT" "html" ("charset" "us-ascii") NIL NIL "7bit" 22 1 NIL NIL NIL NIL) "alternative" ("boundary" "inner") NIL NIL NIL)"#,
            r#"("application" "pdf" ("name" "Entw=?UTF-8?Q?=C3=BC?=rfe.pdf") NIL NIL "base64" 18 NIL ("attachment" ("filename*" "UTF-8''Entw%C3%BCrfe.pdf" "size" "12")) NIL NIL)"#,
            r#"("image" "png" ("name" "dot.png") "<dot@example.com>" NIL "x-uuencode" 24 NIL ("inline" ("filename*" "UTF-8''d%C3%B6t.png")) ("de" "en") "http://example.com/dot.png")"#,
            r#" "mixed" ("boundary" "outer") NIL NIL NIL)"#
        )
    );
    // Part numbers, at every depth.
    assert_eq!(
        section(&msg, Some(Section::Part(part(&[1, 1])))).unwrap(),
        "See attached.\r\n"
    );
    assert_eq!(
        section(&msg, Some(Section::Mime(part(&[1, 2])))).unwrap(),
        "Content-Type: text/html; charset=\"us-ascii\"\r\n\r\n"
    );
    assert_eq!(
        section(&msg, Some(Section::Part(part(&[2])))).unwrap(),
        "SGVsbG8sIFBERiE=\r\n"
    );
    assert!(section(&msg, Some(Section::Part(part(&[4])))).is_none());
    assert!(section(&msg, Some(Section::Part(part(&[2, 2])))).is_none());
    // BINARY decodes the leaves, and refuses an encoding it does not know.
    let tree = parse(&msg);
    assert_eq!(
        tree.binary(&msg, &nums(&[2])).unwrap().unwrap().as_ref(),
        b"Hello, PDF!"
    );
    assert_eq!(
        tree.binary(&msg, &nums(&[3])),
        Err(BinaryError::UnknownCte("x-uuencode".into()))
    );
    assert_eq!(
        tree.binary(&msg, &nums(&[1, 1])).unwrap().unwrap().as_ref(),
        b"See attached.\r\n"
    );
    assert_eq!(tree.binary(&msg, &nums(&[5])), Ok(None));
    assert_eq!(tree.binary(&msg, &[]).unwrap().unwrap().as_ref(), &msg[..]);
}

const FORWARD: &str = "From: bob@example.org
To: Team: carol@example.net, Dave <dave@example.net>;, eve@example.com
Subject: Fwd: hello
Date: Thu, 5 Feb 2026 12:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: text/plain

See below.
--b1
Content-Type: message/rfc822
Content-Description: forwarded message

From: \"Zoë\" <zoe@example.com>
Sender: list@example.com
Reply-To: <replies@example.com>
Subject: =?ISO-8859-1?Q?Caf=E9?=
Message-ID: <inner@example.com>
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: 8bit

Bonjour,
à bientôt.

--b1--
";

#[test]
fn message_rfc822_part() {
    let msg = crlf(FORWARD);
    assert_eq!(
        envelope(&msg),
        concat!(
            r#"ENVELOPE ("Thu, 5 Feb 2026 12:00:00 +0000" "Fwd: hello" ((NIL NIL "bob" "example.org")) ((NIL NIL "bob" "example.org")) ((NIL NIL "bob" "example.org")) "#,
            r#"((NIL NIL "Team" NIL)(NIL NIL "carol" "example.net")("Dave" NIL "dave" "example.net")(NIL NIL NIL NIL)(NIL NIL "eve" "example.com")) NIL NIL NIL NIL)"#
        )
    );
    let inner_header = "From: \"Zoë\" <zoe@example.com>\r\nSender: list@example.com\r\nReply-To: <replies@example.com>\r\nSubject: =?ISO-8859-1?Q?Caf=E9?=\r\nMessage-ID: <inner@example.com>\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n";
    let inner_body = "Bonjour,\r\nà bientôt.\r\n";
    let inner_len = inner_header.len() + inner_body.len();
    let inner_lines = 10;
    // The name holds 8-bit bytes, so it goes out as a literal.
    let zoe = "(({4}\r\nZo\u{eb} NIL \"zoe\" \"example.com\"))";
    assert_eq!(
        bodystructure(&msg),
        format!(
            concat!(
                r#"BODYSTRUCTURE (("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)"#,
                r#"("MESSAGE" "RFC822" NIL NIL "forwarded message" "7bit" {len} "#,
                r#"(NIL "=?ISO-8859-1?Q?Caf=E9?=" {zoe} ((NIL NIL "list" "example.com")) ((NIL NIL "replies" "example.com")) NIL NIL NIL NIL "<inner@example.com>") "#,
                r#"("TEXT" "plain" ("charset" "iso-8859-1") NIL NIL "8bit" {body_len} 2 NIL NIL NIL NIL) {lines} NIL NIL NIL NIL)"#,
                r#" "mixed" ("boundary" "b1") NIL NIL NIL)"#
            ),
            len = inner_len,
            zoe = zoe,
            body_len = inner_body.len(),
            lines = inner_lines,
        )
    );
    // Sections into the message/rfc822 part.
    assert_eq!(
        section(&msg, Some(Section::Part(part(&[2])))).unwrap(),
        format!("{inner_header}{inner_body}")
    );
    assert_eq!(
        section(&msg, Some(Section::Header(Some(part(&[2]))))).unwrap(),
        inner_header
    );
    assert_eq!(
        section(&msg, Some(Section::Text(Some(part(&[2]))))).unwrap(),
        inner_body
    );
    assert_eq!(
        section(&msg, Some(Section::Mime(part(&[2])))).unwrap(),
        "Content-Type: message/rfc822\r\nContent-Description: forwarded message\r\n\r\n"
    );
    // Part 1 of the non-multipart inner message is its body.
    assert_eq!(
        section(&msg, Some(Section::Part(part(&[2, 1])))).unwrap(),
        inner_body
    );
    assert_eq!(
        section(
            &msg,
            Some(Section::HeaderFields(
                Some(part(&[2])),
                names(&["subject", "MESSAGE-ID"])
            ))
        )
        .unwrap(),
        "Subject: =?ISO-8859-1?Q?Caf=E9?=\r\nMessage-ID: <inner@example.com>\r\n\r\n"
    );
    assert!(section(&msg, Some(Section::Part(part(&[2, 2])))).is_none());
}

#[test]
fn sections_of_a_single_part_message() {
    let msg = crlf(SIMPLE);
    let (header, text) = msg.split_at(msg.len() - 55);
    let header = std::str::from_utf8(header).unwrap();
    let text = std::str::from_utf8(text).unwrap();
    assert_eq!(section(&msg, None).unwrap().as_bytes(), &msg[..]);
    assert_eq!(section(&msg, Some(Section::Header(None))).unwrap(), header);
    assert_eq!(section(&msg, Some(Section::Text(None))).unwrap(), text);
    // Part 1 of a non-multipart message is its body; its MIME header is the header.
    assert_eq!(
        section(&msg, Some(Section::Part(part(&[1])))).unwrap(),
        text
    );
    assert_eq!(
        section(&msg, Some(Section::Mime(part(&[1])))).unwrap(),
        header
    );
    assert!(section(&msg, Some(Section::Part(part(&[2])))).is_none());
    assert_eq!(
        section(
            &msg,
            Some(Section::HeaderFields(None, names(&["From", "to"])))
        )
        .unwrap(),
        "From: Fred Foobar <foobar@Blurdybloop.example>\r\nTo: mooch@owatagu.siam.edu.example\r\n\r\n"
    );
    assert_eq!(
        section(&msg, Some(Section::HeaderFields(None, names(&["X-None"])))).unwrap(),
        "\r\n"
    );
    assert_eq!(
        section(
            &msg,
            Some(Section::HeaderFieldsNot(
                None,
                names(&["date", "from", "subject", "message-id", "mime-version"])
            ))
        )
        .unwrap(),
        "To: mooch@owatagu.siam.edu.example\r\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n"
    );
}

#[test]
fn header_fields_keep_folded_lines() {
    let msg = crlf("Subject: hi\n there\nX-A: 1\nsubject: again\n\nbody\n");
    assert_eq!(
        section(&msg, Some(Section::HeaderFields(None, names(&["SUBJECT"])))).unwrap(),
        "Subject: hi\r\n there\r\nsubject: again\r\n\r\n"
    );
}

#[test]
fn envelope_addresses() {
    let msg = crlf(
        "From: \"Smith, J.\" <@relay.example,@other.example:john@example.com>\n\
         Sender:\n\
         To: a@example.com (Alice A), Just Name, <b@example.com>,, \"q\\\"x\"@example.com\n\
         Cc: Empty Group:;, c@[192.0.2.1]\n\
         Bcc: \"\" <d@example.com>\n\
         Reply-To: Team <team@example.com>\n\
         Subject: \n\
         \n",
    );
    let from = r#"("Smith, J." "@relay.example,@other.example" "john" "example.com")"#;
    assert_eq!(
        envelope(&msg),
        format!(
            concat!(
                r#"ENVELOPE (NIL "" ({from}) ({from}) (("Team" NIL "team" "example.com")) "#,
                r#"(("Alice A" NIL "a" "example.com")(NIL NIL "Just Name" "MISSING_DOMAIN")(NIL NIL "b" "example.com")(NIL NIL "q\"x" "example.com")) "#,
                r#"((NIL NIL "Empty Group" NIL)(NIL NIL NIL NIL)(NIL NIL "c" "[192.0.2.1]")) "#,
                r#"((NIL NIL "d" "example.com")) NIL NIL)"#
            ),
            from = from
        )
    );
    // No header at all: every field NIL.
    assert_eq!(
        envelope(b"\r\nbody"),
        "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    );
}

#[test]
fn rfc2231_parameters() {
    let ct = parse_content_type(
        b"application/octet-stream; name*1*=%C3%BCrfe.txt; name*0*=UTF-8''Entw;\r\n\tx=\"a;b\" (comment)",
    )
    .unwrap();
    assert_eq!(
        ct.params,
        vec![
            (b"name*".to_vec(), b"UTF-8''Entw%C3%BCrfe.txt".to_vec()),
            (b"x".to_vec(), b"a;b".to_vec()),
        ]
    );
    // A plain segment joined to extended ones is escaped to match.
    let ct = parse_content_type(b"a/b; f*0*=us-ascii''x%20; f*1=\"y z\"").unwrap();
    assert_eq!(
        ct.params,
        vec![(b"f*".to_vec(), b"us-ascii''x%20y%20z".to_vec())]
    );
    // Not extended: continuations joined as they are.
    let ct = parse_content_type(b"a/b; f*0=\"long \"; f*1=name").unwrap();
    assert_eq!(ct.params, vec![(b"f".to_vec(), b"long name".to_vec())]);
    // A gap in the numbering: passed through unmerged.
    let ct = parse_content_type(b"a/b; f*0=x; f*2=z").unwrap();
    assert_eq!(
        ct.params,
        vec![
            (b"f*0".to_vec(), b"x".to_vec()),
            (b"f*2".to_vec(), b"z".to_vec())
        ]
    );
    assert!(parse_content_type(b"garbage").is_none());
}

#[test]
fn multipart_digest_defaults_to_message_rfc822() {
    let msg =
        crlf("Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nfirst\n--d--\n");
    assert_eq!(
        body(&msg),
        r#"BODY (("MESSAGE" "RFC822" NIL NIL NIL "7bit" 21 (NIL "one" NIL NIL NIL NIL NIL NIL NIL NIL) ("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0) 2) "digest")"#
    );
}

#[test]
fn malformed_multiparts() {
    // No delimiter at all: one empty text part, as Dovecot writes it.
    let msg = crlf("Content-Type: multipart/mixed; boundary=zz\n\njust text\n");
    assert_eq!(
        body(&msg),
        r#"BODY (("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")"#
    );
    // No boundary parameter: read as text.
    let msg = crlf("Content-Type: multipart/mixed\n\njust text\n");
    assert_eq!(
        body(&msg),
        r#"BODY ("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 11 1)"#
    );
    // No close delimiter: the last part runs to the end; a boundary that is a
    // prefix of the delimiter line's text is not a delimiter.
    let msg = crlf("Content-Type: multipart/mixed; boundary=a\n\n--a\n\none\n--ab\ntwo\n");
    assert_eq!(
        body(&msg),
        r#"BODY (("TEXT" "plain" ("charset" "us-ascii") NIL NIL "7bit" 16 3) "mixed")"#
    );
}

#[test]
fn deep_nesting_is_bounded() {
    let mut msg = String::new();
    for i in 0..200 {
        msg.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"
        ));
    }
    msg.push_str("\r\nleaf\r\n");
    let tree = parse(msg.as_bytes());
    // (imap-codec's own response parser stops at 8 levels, so no round trip here.)
    let resp = Response::Data(Data::Fetch {
        seq: NonZeroU32::MIN,
        items: Vec1::from(MessageDataItem::BodyStructure(tree.body_structure(true))),
    });
    let text = String::from_utf8(ResponseCodec::default().encode(&resp).dump()).unwrap();
    assert_eq!(text.matches("\"mixed\"").count(), MAX_DEPTH);
    assert!(text.contains("\"application\" \"octet-stream\""));
    let _ = tree.section(msg.as_bytes(), Some(&Section::Part(part(&[1; 100]))));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let samples = [SIMPLE, ALTERNATIVE, MIXED, FORWARD];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for sample in samples {
        let msg = crlf(sample);
        for cut in 0..msg.len() {
            let m = &msg[..cut];
            let tree = parse(m);
            let _ = bodystructure(m);
            let _ = envelope(m);
            let _ = tree.section(m, Some(&Section::Part(part(&[2, 1]))));
            let _ = tree.binary(m, &nums(&[1]));
        }
        for _ in 0..200 {
            let mut m = msg.clone();
            for _ in 0..8 {
                let i = (next() as usize) % m.len();
                m[i] = next() as u8;
            }
            let _ = bodystructure(&m);
            let _ = envelope(&m);
        }
    }
}
