//! Every SMTP/LMTP reply the servers send, named once with its RFC reference
//! (mox's `smtp/codes.go` idea). Enhanced codes per RFC 3463 and the IANA registry.

use super::reply::{EnhancedCode, Reply};

fn r(code: u16, e: (u8, u16, u16), text: &str) -> Reply {
    Reply::new(code, Some(EnhancedCode::new(e.0, e.1, e.2)), text)
}

/// 220 greeting (RFC 5321 §4.3.1; RFC 2033 §4 for LMTP). No enhanced code:
/// RFC 2034 codes only follow EHLO.
pub fn greeting(host: &str, lmtp: bool) -> Reply {
    let proto = if lmtp { "LMTP" } else { "ESMTP" };
    Reply::new(220, None, &format!("{host} {proto} facteur ready"))
}

/// 250 reply to HELO (RFC 5321 §4.1.1.1).
pub fn helo(host: &str) -> Reply {
    Reply::new(250, None, host)
}

/// 250 2.0.0 OK (RSET, NOOP; RFC 5321 §4.1.1.5, §4.1.1.9).
pub fn ok() -> Reply {
    r(250, (2, 0, 0), "OK")
}

/// 250 2.1.0 sender accepted (RFC 3463 X.1.0).
pub fn sender_ok() -> Reply {
    r(250, (2, 1, 0), "Sender OK")
}

/// 250 2.1.5 recipient accepted (RFC 3463 X.1.5).
pub fn recipient_ok() -> Reply {
    r(250, (2, 1, 5), "Recipient OK")
}

/// 250 2.0.0 message accepted, with the queue id.
pub fn message_accepted(id: &str) -> Reply {
    r(250, (2, 0, 0), &format!("OK queued as {id}"))
}

/// 250 2.0.0 for a non-final BDAT chunk (RFC 3030 §2).
pub fn chunk_ok(octets: u64) -> Reply {
    r(250, (2, 0, 0), &format!("{octets} octets received"))
}

/// 252 2.5.2 to VRFY: we never confirm addresses (RFC 5321 §3.5.3, §7.3).
pub fn vrfy() -> Reply {
    r(
        252,
        (2, 5, 2),
        "Cannot VRFY user, but will accept message and attempt delivery",
    )
}

/// 214 2.0.0 to HELP (RFC 5321 §4.1.1.8).
pub fn help() -> Reply {
    r(214, (2, 0, 0), "See RFC 5321")
}

/// 221 2.0.0 to QUIT (RFC 5321 §4.1.1.10).
pub fn closing(host: &str) -> Reply {
    r(221, (2, 0, 0), &format!("{host} closing connection"))
}

/// 220 2.0.0 to STARTTLS (RFC 3207 §4).
pub fn tls_ready() -> Reply {
    r(220, (2, 0, 0), "Ready to start TLS")
}

/// 235 2.7.0 (RFC 4954 §6).
pub fn auth_ok() -> Reply {
    r(235, (2, 7, 0), "Authentication successful")
}

/// 334 SASL challenge, base64 text (RFC 4954 §4).
pub fn auth_challenge(base64: &str) -> Reply {
    Reply::new(334, None, base64)
}

/// 354 to DATA (RFC 5321 §4.1.1.4). No enhanced code: class 3 has none.
pub fn start_data() -> Reply {
    Reply::new(354, None, "End data with <CR><LF>.<CR><LF>")
}

/// 421 4.3.2 service shutting down (RFC 5321 §3.8).
pub fn service_unavailable(host: &str) -> Reply {
    r(
        421,
        (4, 3, 2),
        &format!("{host} Service not available, closing transmission channel"),
    )
}

/// 421 4.7.0 after `max_errors` bad commands (RFC 5321 §4.2.2 allows closing).
pub fn too_many_errors() -> Reply {
    r(421, (4, 7, 0), "Too many errors, closing connection")
}

/// 421 4.7.0 when input was pipelined after STARTTLS (CVE-2011-0411, RFC 3207 §4.2).
pub fn starttls_pipelined() -> Reply {
    r(
        421,
        (4, 7, 0),
        "Input pipelined after STARTTLS, closing connection",
    )
}

/// 451 4.3.0 our own transient failure (RFC 5321 §4.2.3).
pub fn local_error() -> Reply {
    r(451, (4, 3, 0), "Local error in processing, try again later")
}

/// 452 4.2.2 mailbox over quota, transient (RFC 3463 X.2.2).
pub fn mailbox_full() -> Reply {
    r(452, (4, 2, 2), "Mailbox full")
}

/// 452 4.3.1 our disk is (nearly) full: the queue (or the mailbox store)
/// takes nothing new until space returns (RFC 3463 X.3.1, RFC 5321 §4.5.3.1.9; Postfix's
/// `queue_minfree`).
pub fn insufficient_storage() -> Reply {
    r(452, (4, 3, 1), "Insufficient system storage")
}

/// 452 4.5.3 too many recipients (RFC 5321 §4.5.3.1.10).
pub fn too_many_recipients() -> Reply {
    r(452, (4, 5, 3), "Too many recipients")
}

/// 500 5.5.2 unparsable command line.
pub fn syntax_error() -> Reply {
    r(500, (5, 5, 2), "Syntax error")
}

/// 500 5.5.1 unknown verb (RFC 5321 §4.2.4).
pub fn unknown_command() -> Reply {
    r(500, (5, 5, 1), "Command unrecognized")
}

/// 500 5.5.2 line over the limit (RFC 5321 §4.5.3.1.4, §4.2.2 "Line too long").
pub fn line_too_long() -> Reply {
    r(500, (5, 5, 2), "Line too long")
}

/// 501 5.5.4 bad arguments (RFC 5321 §4.2.2).
pub fn bad_arguments() -> Reply {
    r(501, (5, 5, 4), "Syntax error in parameters or arguments")
}

/// 501 5.1.7 / 5.1.3 unparsable sender / recipient address (RFC 3463).
pub fn bad_address(sender: bool) -> Reply {
    if sender {
        r(501, (5, 1, 7), "Bad sender address syntax")
    } else {
        r(501, (5, 1, 3), "Bad recipient address syntax")
    }
}

/// 501 5.0.0 the client cancelled AUTH with `*` (RFC 4954 §4).
pub fn auth_cancelled() -> Reply {
    r(501, (5, 0, 0), "Authentication cancelled")
}

/// 501 5.5.2 undecodable SASL response (RFC 4954 §4).
pub fn auth_bad_response() -> Reply {
    r(501, (5, 5, 2), "Invalid authentication response")
}

/// 502 5.5.1 command not implemented (RFC 5321 §4.2.4): EXPN, BDAT without CHUNKING.
pub fn not_implemented() -> Reply {
    r(502, (5, 5, 1), "Command not implemented")
}

/// 503 5.5.1 bad sequence of commands (RFC 5321 §4.1.4).
pub fn bad_sequence() -> Reply {
    r(503, (5, 5, 1), "Bad sequence of commands")
}

/// 504 5.5.4 unknown SASL mechanism (RFC 4954 §4).
pub fn auth_mechanism_unknown() -> Reply {
    r(504, (5, 5, 4), "Unrecognized authentication type")
}

/// 555 5.5.4 MAIL/RCPT parameter not recognised (RFC 5321 §4.1.1.11).
pub fn param_not_impl() -> Reply {
    r(
        555,
        (5, 5, 4),
        "MAIL FROM/RCPT TO parameters not recognized or not implemented",
    )
}

/// 530 5.7.0 authentication required (RFC 4954 §6).
pub fn auth_required() -> Reply {
    r(530, (5, 7, 0), "Authentication required")
}

/// 535 5.7.8 bad credentials (RFC 4954 §6).
pub fn auth_failed() -> Reply {
    r(535, (5, 7, 8), "Authentication credentials invalid")
}

/// 538 5.7.11 AUTH over a clear channel (RFC 4954 §6).
pub fn encryption_required() -> Reply {
    r(
        538,
        (5, 7, 11),
        "Encryption required for requested authentication mechanism",
    )
}

/// 550 5.1.1 unknown recipient (RFC 3463 X.1.1).
pub fn no_such_user() -> Reply {
    r(550, (5, 1, 1), "No such user here")
}

/// 554 5.7.1 relaying refused: port 25 takes mail for local domains only.
pub fn relay_denied() -> Reply {
    r(554, (5, 7, 1), "Relay access denied")
}

/// 552 5.3.4 message over the size limit (RFC 1870 §6, RFC 3463 X.3.4).
pub fn message_too_big() -> Reply {
    r(
        552,
        (5, 3, 4),
        "Message size exceeds fixed maximum message size",
    )
}

/// 553 5.6.7 UTF-8 address without SMTPUTF8 (RFC 6531 §3.4, RFC 6533 X.6.7).
pub fn non_ascii_address() -> Reply {
    r(553, (5, 6, 7), "Non-ASCII address requires SMTPUTF8")
}

/// 554 5.6.0 message held a bare CR or LF (SMTP smuggling, CVE-2023-51764/5/6).
///
/// Chosen over Postfix's `521 5.5.2` + close: the DATA decoder reads to the true
/// `CRLF.CRLF`, so the stream is still framed and the session can go on; 554
/// is RFC 5321's "transaction failed" and X.6.0 (RFC 3463) a media error.
pub fn bare_line_ending() -> Reply {
    r(554, (5, 6, 0), "Message contains bare CR or LF characters")
}

/// 554 5.0.0 generic permanent failure of a transaction (RFC 5321 §4.2.3).
pub fn transaction_failed() -> Reply {
    r(554, (5, 0, 0), "Transaction failed")
}
