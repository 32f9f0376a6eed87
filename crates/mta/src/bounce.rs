//! Bounces: a delivery status notification (RFC 3464, multipart/report of RFC 6522)
//! sent from the null sender to the original sender when delivery fails for good.

use facteur_daemon::trace::{now_unix, rfc5322_date};

/// One failed recipient and the reply that failed it (e.g. `550 5.1.1 ...`).
pub struct Failure<'a> {
    pub rcpt: &'a str,
    pub reply: &'a str,
}

/// The enhanced status code in a reply text, or a generic one by class.
fn status_of(reply: &str) -> String {
    let mut words = reply.split_whitespace();
    let code = words.next().unwrap_or("");
    if let Some(second) = words.next() {
        let parts: Vec<&str> = second.split('.').collect();
        if parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return second.to_owned();
        }
    }
    if code.starts_with('4') {
        "4.0.0"
    } else {
        "5.0.0"
    }
    .to_owned()
}

/// The whole bounce message. `original_headers` is the header block of the
/// message that failed (RFC 6522 `text/rfc822-headers`).
pub fn dsn(
    hostname: &str,
    queue_id: &str,
    original_from: &str,
    arrival: i64,
    failures: &[Failure<'_>],
    original_headers: &[u8],
) -> Vec<u8> {
    let boundary = format!("{queue_id}.{}/{hostname}", now_unix());
    let now = rfc5322_date(now_unix());
    let mut human = String::new();
    let mut status = String::new();
    for f in failures {
        human.push_str(&format!("<{}>: {}\r\n", f.rcpt, f.reply));
        let diag = if f.reply.len() >= 3 && f.reply.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
            format!("smtp; {}", f.reply)
        } else {
            format!("X-facteur; {}", f.reply)
        };
        status.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {}\r\nAction: failed\r\nStatus: {}\r\nDiagnostic-Code: {}\r\n",
            f.rcpt,
            status_of(f.reply),
            diag
        ));
    }
    let mut out = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{original_from}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: {now}\r\n\
         Message-ID: <{queue_id}.bounce@{hostname}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         This is the mail system at host {hostname}.\r\n\
         \r\n\
         I'm sorry to have to inform you that your message could not\r\n\
         be delivered to one or more recipients.\r\n\
         \r\n\
         {human}\
         \r\n\
         --{boundary}\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; {hostname}\r\n\
         X-Queue-ID: {queue_id}\r\n\
         Arrival-Date: {}\r\n\
         {status}\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n",
        rfc5322_date(arrival)
    )
    .into_bytes();
    out.extend_from_slice(original_headers);
    if !original_headers.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_each_recipient_with_its_status() {
        let m = dsn(
            "mail.paris.test",
            "Q1",
            "pierre@paris.test",
            0,
            &[Failure {
                rcpt: "nobody@lyon.test",
                reply: "550 5.1.1 No such user",
            }],
            b"Subject: hi\r\n",
        );
        let text = String::from_utf8(m).unwrap();
        assert!(text.contains("Final-Recipient: rfc822; nobody@lyon.test\r\n"));
        assert!(text.contains("Status: 5.1.1\r\n"));
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\n"));
        assert!(text.starts_with("From: Mail Delivery System <MAILER-DAEMON@mail.paris.test>\r\n"));
    }

    #[test]
    fn status_falls_back_to_the_class() {
        assert_eq!(status_of("421 try later"), "4.0.0");
        assert_eq!(status_of("connection refused"), "5.0.0");
    }
}
