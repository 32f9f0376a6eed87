//! What the torture run knows and concludes: the ledger of every attempt and
//! every acknowledgement, the mailboxes read back over POP3 (through the MAA,
//! with `facteur-mua`'s client), and the verdict — every acknowledged
//! (id, recipient) filed exactly once, nothing filed twice or in a mailbox that
//! was not a recipient's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// One message as sent: its route, its recipients, and those it got a 250 for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Attempt {
    pub(crate) route: &'static str,
    pub(crate) rcpts: Vec<String>,
    pub(crate) acked: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct Inner {
    attempts: BTreeMap<String, Attempt>,
    /// Outcomes by kind: reply codes after DATA or at RCPT, errors by category.
    outcomes: BTreeMap<String, u64>,
}

/// Shared by every sender; written as soon as a reply arrives, so a sender
/// aborted at the end loses nothing it learnt.
#[derive(Debug, Default)]
pub(crate) struct Ledger(Mutex<Inner>);

impl Ledger {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut guard = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    pub(crate) fn attempt(&self, id: &str, route: &'static str, rcpts: &[&str]) {
        self.with(|l| {
            l.attempts.insert(
                id.to_owned(),
                Attempt {
                    route,
                    rcpts: rcpts.iter().map(|r| (*r).to_owned()).collect(),
                    acked: BTreeSet::new(),
                },
            );
        });
    }

    /// The reply for one recipient; 250 is the acknowledgement.
    pub(crate) fn reply(&self, id: &str, rcpt: &str, code: u16) {
        self.with(|l| {
            *l.outcomes.entry(format!("reply {code}")).or_default() += 1;
            if code == 250
                && let Some(a) = l.attempts.get_mut(id)
            {
                a.acked.insert(rcpt.to_owned());
            }
        });
    }

    /// The transaction broke (timeout, dropped connection): not acknowledged.
    pub(crate) fn failed(&self, _id: &str, why: &str) {
        self.with(|l| *l.outcomes.entry(format!("transaction {why}")).or_default() += 1);
    }

    /// A session could not be opened (agent down, refused AUTH...).
    pub(crate) fn session_failed(&self, route: &str, why: &str) {
        self.with(|l| {
            *l.outcomes
                .entry(format!("session {route}: {why}"))
                .or_default() += 1
        });
    }

    pub(crate) fn acked_messages(&self) -> usize {
        self.with(|l| l.attempts.values().filter(|a| !a.acked.is_empty()).count())
    }

    pub(crate) fn snapshot(&self) -> (BTreeMap<String, Attempt>, BTreeMap<String, u64>) {
        self.with(|l| (l.attempts.clone(), l.outcomes.clone()))
    }
}

/// The torture id in a message's own header section (not in a bounce's body).
pub(crate) fn torture_id(message: &[u8]) -> Option<String> {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(message.len());
    let headers = String::from_utf8_lossy(&message[..end]);
    headers.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("X-Torture-Id")
            .then(|| value.trim().to_owned())
    })
}

/// What the mailboxes hold, against what was acknowledged.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub(crate) sent: usize,
    pub(crate) acked_messages: usize,
    /// Acknowledged (id, recipient) pairs.
    pub(crate) acked_copies: usize,
    pub(crate) delivered_acked: usize,
    /// Acknowledged and not in the recipient's mailbox: (id, recipient, route).
    pub(crate) lost: Vec<(String, String, &'static str)>,
    /// Filed more than once in one mailbox (acknowledged or not):
    /// (id, mailbox, copies, route).
    pub(crate) duplicated: Vec<(String, String, usize, &'static str)>,
    /// Not acknowledged but filed anyway (allowed: the 250 may have been lost on the way).
    pub(crate) unacked_delivered: usize,
    /// Not acknowledged and not there.
    pub(crate) unacked_absent: usize,
    /// Filed in a mailbox that was not among the message's recipients, or an id
    /// nobody sent: (id, mailbox).
    pub(crate) misfiled: Vec<(String, String)>,
    /// Messages without a torture id (bounces).
    pub(crate) others: usize,
}

impl Verdict {
    pub(crate) fn failed(&self) -> bool {
        !self.lost.is_empty() || !self.duplicated.is_empty() || !self.misfiled.is_empty()
    }
}

/// Compare the ledger with the mailboxes (mailbox address → the torture id of
/// each message in it, `None` for a message without one).
pub(crate) fn verdict(
    attempts: &BTreeMap<String, Attempt>,
    mailboxes: &BTreeMap<String, Vec<Option<String>>>,
) -> Verdict {
    let mut v = Verdict {
        sent: attempts.len(),
        acked_messages: attempts.values().filter(|a| !a.acked.is_empty()).count(),
        acked_copies: attempts.values().map(|a| a.acked.len()).sum(),
        ..Verdict::default()
    };
    let mut filed: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (mailbox, ids) in mailboxes {
        for id in ids {
            match id {
                Some(id) => *filed.entry((id.as_str(), mailbox.as_str())).or_default() += 1,
                None => v.others += 1,
            }
        }
    }
    for (&(id, mailbox), &n) in &filed {
        if n > 1 {
            let route = attempts.get(id).map_or("unknown id", |a| a.route);
            v.duplicated
                .push((id.to_owned(), mailbox.to_owned(), n, route));
        }
        let sent_to = attempts
            .get(id)
            .is_some_and(|a| a.rcpts.iter().any(|r| r == mailbox));
        if !sent_to {
            v.misfiled.push((id.to_owned(), mailbox.to_owned()));
        }
    }
    for (id, a) in attempts {
        for rcpt in &a.rcpts {
            let there = filed.contains_key(&(id.as_str(), rcpt.as_str()));
            match (a.acked.contains(rcpt), there) {
                (true, true) => v.delivered_acked += 1,
                (true, false) => v.lost.push((id.clone(), rcpt.clone(), a.route)),
                (false, true) => v.unacked_delivered += 1,
                (false, false) => v.unacked_absent += 1,
            }
        }
    }
    v
}

/// Every message in `user`'s maildrop, over POP3 with STLS on `addr` (the
/// MAA), with the MUA's client: the torture id of each.
pub(crate) async fn read_mailbox(
    addr: std::net::SocketAddr,
    server_name: &str,
    user: &str,
    password: &str,
    ca: &std::path::Path,
) -> anyhow::Result<Vec<Option<String>>> {
    use facteur_mua::cli::{ConnArgs, FetchArgs, TlsMode};
    let server = facteur_mua::net::Server::parse(&addr.to_string())?;
    let args = FetchArgs {
        pop3: Some(server.spec.clone()),
        imap: None,
        conn: ConnArgs {
            tls: TlsMode::Starttls,
            ca: Some(ca.to_path_buf()),
            server_name: Some(server_name.to_owned()),
            user: user.to_owned(),
            password: Some(password.to_owned()),
            insecure_auth: false,
            timeout: 60,
        },
        last: false,
        all: true,
        number: None,
        raw: true,
        trace: false,
        delete: false,
        maildir: None,
        keep: false,
        transcript: false,
    };
    let messages = facteur_mua::pop3::fetch(&server, &args, None).await?;
    Ok(messages.iter().map(|(_, m)| torture_id(m)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(rcpts: &[&str], acked: &[&str]) -> Attempt {
        Attempt {
            route: "test",
            rcpts: rcpts.iter().map(|r| (*r).to_owned()).collect(),
            acked: acked.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn the_id_comes_from_the_header_section_only() {
        let m = b"Subject: x\r\nx-torture-id:  t1-0-1 \r\n\r\nbody\r\n";
        assert_eq!(torture_id(m).as_deref(), Some("t1-0-1"));
        let bounce = b"From: MAILER-DAEMON\r\n\r\nX-Torture-Id: t1-0-1\r\n";
        assert_eq!(torture_id(bounce), None);
    }

    #[test]
    fn lost_duplicated_misfiled_and_unacknowledged_are_told_apart() {
        let attempts: BTreeMap<String, Attempt> = [
            ("a", attempt(&["p", "j"], &["p", "j"])), // p once, j lost
            ("b", attempt(&["p"], &["p"])),           // twice in p
            ("c", attempt(&["j"], &[])),              // unacked, delivered
            ("d", attempt(&["j"], &[])),              // unacked, absent
            ("e", attempt(&["j"], &["j"])),           // in j and in p (misfiled)
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let some = |s: &str| Some(s.to_owned());
        let mailboxes: BTreeMap<String, Vec<Option<String>>> = [
            ("p", vec![some("a"), some("b"), some("b"), some("e"), None]),
            ("j", vec![some("c"), some("e")]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let v = verdict(&attempts, &mailboxes);
        assert_eq!((v.sent, v.acked_messages, v.acked_copies), (5, 3, 4));
        assert_eq!(v.delivered_acked, 3);
        assert_eq!(v.lost, vec![("a".to_owned(), "j".to_owned(), "test")]);
        assert_eq!(
            v.duplicated,
            vec![("b".to_owned(), "p".to_owned(), 2, "test")]
        );
        assert_eq!(v.misfiled, vec![("e".to_owned(), "p".to_owned())]);
        assert_eq!((v.unacked_delivered, v.unacked_absent, v.others), (1, 1, 1));
        assert!(v.failed());
        let clean: BTreeMap<String, Vec<Option<String>>> =
            [("p".to_owned(), vec![some("b")])].into_iter().collect();
        let only_b: BTreeMap<String, Attempt> = [("b".to_owned(), attempt(&["p"], &["p"]))]
            .into_iter()
            .collect();
        assert!(!verdict(&only_b, &clean).failed());
    }
}
