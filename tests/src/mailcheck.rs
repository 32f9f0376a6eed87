//! What the swap matrix's rows check in a delivered message, the way a user
//! would: the test message (awkward body lines included), its `Received:`
//! fields top first, and that it arrived byte for byte under the trace fields
//! the hops added; and the mail client script `tests/interop/swap.py` that
//! sends and fetches it (smtplib, poplib, imaplib).

use std::path::PathBuf;
use std::process::Command;

/// The mail client script (smtplib, poplib, imaplib).
pub fn swap_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/swap.py")
}

/// Run `swap.py` with `args`; its output, or the test fails with `report`.
pub fn swap_py(args: &[&str], report: &dyn Fn(&str) -> String) -> String {
    let out = Command::new("python3")
        .arg(swap_script())
        .args(args)
        .env("FACTEUR_DEV_PASSWORD", crate::stack::dev_password())
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{}",
        report(&format!("swap.py {}:\n{text}", args.join(" ")))
    );
    text
}

/// A test message with `token` in its Subject and body; the exact bytes sent.
/// Complete headers (Date, Message-ID), so no server adds any of its own below
/// the trace fields; awkward body lines that a careless hop would change.
pub fn message(from: &str, to: &str, token: &str) -> Vec<u8> {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: swap {token}\r\n\
         Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n\
         Message-ID: <{token}@swap.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n\
         Hello, this is {token}.\r\n.leading dot\r\n.\r\n..two dots\r\n\
         trailing blanks   \r\n\ttab first\r\nFrom the start of a line\r\n\r\nend {token}\r\n"
    )
    .into_bytes()
}

/// The header block of a raw message (up to the first empty line).
pub fn header_block(raw: &[u8]) -> String {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// The `Received:` fields of a message, top (last hop) first, unfolded.
pub fn received(raw: &[u8]) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    let mut in_received = false;
    for line in header_block(raw).split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if in_received && let Some(last) = fields.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
            continue;
        }
        in_received = line.to_ascii_lowercase().starts_with("received:");
        if in_received {
            fields.push(line.to_owned());
        }
    }
    fields
}

/// The stored message is the sent one under the trace fields the hops added.
pub fn assert_intact(sent: &[u8], got: &[u8], report: &dyn Fn(&str) -> String) {
    assert!(
        got.ends_with(sent),
        "{}",
        report(&format!(
            "the sent message is not intact at the end of the stored one:\n{}",
            String::from_utf8_lossy(got)
        ))
    );
    let added = String::from_utf8_lossy(&got[..got.len() - sent.len()]).into_owned();
    let trace = ["received:", "return-path:", "delivered-to:"];
    let extra: Vec<&str> = added
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with([' ', '\t']))
        .filter(|l| !trace.iter().any(|t| l.to_ascii_lowercase().starts_with(t)))
        .collect();
    assert!(
        extra.is_empty(),
        "{}",
        report(&format!(
            "headers added besides the trace fields: {extra:?}"
        ))
    );
}
