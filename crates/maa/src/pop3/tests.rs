//! Whole POP3 sessions driven in memory (bytes in through `Session::input`,
//! bytes out through `take_output`) over [`StoreMda`], the real store in a
//! temporary directory: no sockets, no fake MDA.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use facteur_daemon::conn::{Session, Step};

use super::{Pop3Session, Pop3Shared, top_lines};
use crate::mda::{MailboxRef, Mda, StoreMda};

const USER: &str = "andre@lyon.test";
const PASSWORD: &str = "correct horse";

struct Server {
    _dir: tempfile::TempDir,
    mda: StoreMda,
    shared: Arc<Pop3Shared<StoreMda>>,
}

fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mda = StoreMda::open(dir.path(), &[(USER, PASSWORD)]).unwrap();
    let shared = Arc::new(Pop3Shared {
        hostname: "mail.lyon.test".into(),
        mda: mda.clone(),
        tls_available: true,
        max_line: 512,
        auth_failure_delay: Duration::ZERO,
        max_auth_failures: 3,
        max_errors: 10,
        lock_ttl: Duration::from_secs(600),
    });
    Server {
        _dir: dir,
        mda,
        shared,
    }
}

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!("From: pierre@paris.test\r\nTo: {USER}\r\nSubject: {subject}\r\n\r\n{body}")
        .into_bytes()
}

impl Server {
    async fn file(&self, mailbox: &str, bytes: Vec<u8>) -> u32 {
        let m = MailboxRef::new(USER, mailbox);
        self.mda.append(&m, &[], None, bytes).await.unwrap().uid
    }

    async fn inbox_uids(&self) -> Vec<u32> {
        self.mda
            .uids(&MailboxRef::new(USER, "INBOX"))
            .await
            .unwrap()
    }

    /// A session over TLS (or not), greeting read.
    fn session(&self, tls: bool) -> Client {
        let peer = "127.0.0.1:50110".parse().unwrap();
        let mut s = Pop3Session::new(Arc::clone(&self.shared), peer, tls);
        let greeting = String::from_utf8(s.take_output()).unwrap();
        assert!(greeting.starts_with("+OK mail.lyon.test"), "{greeting}");
        Client { s, step: None }
    }

    /// A session over TLS, logged in with USER/PASS.
    async fn logged_in(&self) -> Client {
        let mut c = self.session(true);
        assert_eq!(c.say(&format!("USER {USER}")).await, "+OK\r\n");
        let reply = c.say(&format!("PASS {PASSWORD}")).await;
        assert!(reply.starts_with("+OK Logged in"), "{reply}");
        c
    }
}

struct Client {
    s: Pop3Session<StoreMda>,
    /// What the last input returned.
    step: Option<Step>,
}

impl Client {
    /// Send raw bytes; everything the session answers (as the loop would
    /// collect it, also after stopping at its output high-water mark).
    async fn send(&mut self, bytes: &[u8]) -> String {
        let mut step = self.s.input(bytes).await;
        let mut out = self.s.take_output();
        while step == Step::Continue && self.s.has_more() {
            step = self.s.input(&[]).await;
            out.extend(self.s.take_output());
        }
        self.step = Some(step);
        String::from_utf8(out).unwrap()
    }

    /// Send one command line.
    async fn say(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await
    }

    /// The lines of a multi-line answer between its `+OK` line and the `.`.
    async fn lines(&mut self, line: &str) -> Vec<String> {
        let reply = self.say(line).await;
        assert!(reply.starts_with("+OK"), "{line}: {reply}");
        assert!(reply.ends_with("\r\n.\r\n"), "{line}: {reply}");
        let mut lines: Vec<String> = reply.split("\r\n").map(str::to_owned).collect();
        lines.truncate(lines.len() - 2);
        lines.remove(0);
        lines
    }
}

#[tokio::test]
async fn passwords_only_over_tls_and_stls_offered_in_the_clear() {
    let srv = server();
    let mut c = srv.session(false);
    let capa = c.lines("CAPA").await;
    assert!(capa.contains(&"STLS".to_owned()), "{capa:?}");
    assert!(!capa.iter().any(|l| l == "USER" || l.starts_with("SASL")));
    let refused = c.say(&format!("USER {USER}")).await;
    assert!(refused.starts_with("-ERR [AUTH] Plaintext"), "{refused}");
    let refused = c
        .say("AUTH PLAIN AGFuZHJlQGx5b24udGVzdABjb3JyZWN0IGhvcnNl")
        .await;
    assert!(refused.starts_with("-ERR [AUTH] Plaintext"), "{refused}");

    assert_eq!(c.say("STLS").await, "+OK Begin TLS negotiation\r\n");
    assert_eq!(c.step, Some(Step::StartTls));
    c.s.tls_started();
    let capa = c.lines("CAPA").await;
    assert!(capa.contains(&"USER".to_owned()), "{capa:?}");
    assert!(capa.contains(&"SASL PLAIN".to_owned()), "{capa:?}");
    assert!(!capa.contains(&"STLS".to_owned()), "{capa:?}");
    assert_eq!(c.say("STLS").await, "-ERR Already in TLS\r\n");
    assert_eq!(c.say(&format!("USER {USER}")).await, "+OK\r\n");
    let ok = c.say(&format!("PASS {PASSWORD}")).await;
    assert_eq!(ok, "+OK Logged in, 0 messages (0 octets)\r\n");
}

#[tokio::test]
async fn a_wrong_password_fails_and_too_many_close_the_connection() {
    let srv = server();
    let mut c = srv.session(true);
    for i in 1..=3 {
        c.say(&format!("USER {USER}")).await;
        let reply = c.say("PASS wrong").await;
        assert_eq!(reply, "-ERR [AUTH] Authentication failed\r\n");
        let want = if i < 3 { Step::Continue } else { Step::Close };
        assert_eq!(c.step, Some(want), "after failure {i}");
    }
    let mut c = srv.session(true);
    assert_eq!(c.say("PASS x").await, "-ERR No username given\r\n");
}

#[tokio::test]
async fn auth_plain_with_and_without_an_initial_response() {
    let srv = server();
    // "\0andre@lyon.test\0correct horse"
    let token = "AGFuZHJlQGx5b24udGVzdABjb3JyZWN0IGhvcnNl";
    let mut c = srv.session(true);
    let ok = c.say(&format!("AUTH PLAIN {token}")).await;
    assert!(ok.starts_with("+OK Logged in"), "{ok}");
    assert_eq!(c.say("QUIT").await, "+OK Logging out\r\n");

    let mut c = srv.session(true);
    assert_eq!(c.say("AUTH PLAIN").await, "+ \r\n");
    let ok = c.say(token).await;
    assert!(ok.starts_with("+OK Logged in"), "{ok}");
}

#[tokio::test]
async fn stat_list_and_uidl_show_the_inbox_with_stable_uids() {
    let srv = server();
    let sizes: Vec<usize> = ["one", "two", "three"]
        .iter()
        .map(|s| message(s, "Hello.\r\n").len())
        .collect();
    for s in ["one", "two", "three"] {
        srv.file("INBOX", message(s, "Hello.\r\n")).await;
    }
    let total: usize = sizes.iter().sum();
    let mut c = srv.logged_in().await;
    assert_eq!(c.say("STAT").await, format!("+OK 3 {total}\r\n"));
    let list = c.lines("LIST").await;
    let want: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{} {n}", i + 1))
        .collect();
    assert_eq!(list, want);
    assert_eq!(c.say("LIST 2").await, format!("+OK 2 {}\r\n", sizes[1]));
    assert_eq!(c.say("LIST 4").await, "-ERR No such message\r\n");
    let uidl = c.lines("UIDL").await;
    assert_eq!(uidl.len(), 3);
    let ids: Vec<&str> = uidl.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| id.len() == 16), "{ids:?}");
    assert_eq!(c.say("UIDL 3").await, format!("+OK 3 {}\r\n", ids[2]));
    c.say("QUIT").await;

    // Another session, after a new message: the old ones keep their ids.
    srv.file("INBOX", message("four", "Hello.\r\n")).await;
    let mut c = srv.logged_in().await;
    let again = c.lines("UIDL").await;
    assert_eq!(again[..3], uidl[..]);
    assert_eq!(again.len(), 4);
    assert!(!ids.contains(&again[3].split(' ').nth(1).unwrap()));
}

#[tokio::test]
async fn retr_sends_the_message_dot_stuffed_and_top_the_header_and_k_lines() {
    let srv = server();
    let body = "line 1\r\n.starts with a dot\r\nline 3\r\n";
    let bytes = message("Lunch", body);
    srv.file("INBOX", bytes.clone()).await;
    let mut c = srv.logged_in().await;
    let retr = c.say("RETR 1").await;
    let text = String::from_utf8(bytes.clone()).unwrap();
    let stuffed = text.replace("\r\n.starts", "\r\n..starts");
    assert_eq!(
        retr,
        format!("+OK {} octets\r\n{stuffed}.\r\n", bytes.len())
    );
    let top = c.say("TOP 1 1").await;
    let header = text.split("\r\n\r\n").next().unwrap();
    assert_eq!(top, format!("+OK\r\n{header}\r\n\r\nline 1\r\n.\r\n"));
    let top0 = c.say("TOP 1 0").await;
    assert_eq!(top0, format!("+OK\r\n{header}\r\n\r\n.\r\n"));
    assert_eq!(c.say("RETR 2").await, "-ERR No such message\r\n");
}

#[tokio::test]
async fn dele_hides_a_message_rset_brings_it_back_and_quit_expunges() {
    let srv = server();
    let mut uids = Vec::new();
    for s in ["one", "two", "three"] {
        uids.push(srv.file("INBOX", message(s, "Hi.\r\n")).await);
    }
    let size = message("two", "Hi.\r\n").len();
    let mut c = srv.logged_in().await;
    assert_eq!(c.say("DELE 2").await, "+OK Marked to be deleted\r\n");
    assert_eq!(c.say("DELE 2").await, "-ERR No such message\r\n");
    assert_eq!(c.say("RETR 2").await, "-ERR No such message\r\n");
    let list = c.lines("LIST").await;
    assert_eq!(list.len(), 2);
    assert!(
        list[0].starts_with("1 ") && list[1].starts_with("3 "),
        "{list:?}"
    );
    assert_eq!(c.say("RSET").await, "+OK\r\n");
    assert_eq!(c.say("LIST 2").await, format!("+OK 2 {size}\r\n"));
    c.say("DELE 1").await;
    c.say("DELE 3").await;
    // Nothing is removed before QUIT.
    assert_eq!(srv.inbox_uids().await, uids);
    assert_eq!(c.say("QUIT").await, "+OK Logging out\r\n");
    assert_eq!(c.step, Some(Step::Close));
    assert_eq!(srv.inbox_uids().await, vec![uids[1]]);

    let mut c = srv.logged_in().await;
    assert_eq!(c.say("STAT").await, format!("+OK 1 {size}\r\n"));
}

#[tokio::test]
async fn a_connection_that_ends_without_quit_deletes_nothing_and_frees_the_maildrop() {
    let srv = server();
    let uid = srv.file("INBOX", message("keep", "Hi.\r\n")).await;
    let mut c = srv.logged_in().await;
    c.say("DELE 1").await;
    c.s.finish().await;
    assert_eq!(srv.inbox_uids().await, vec![uid]);
    let mut again = srv.logged_in().await;
    assert!(again.say("STAT").await.starts_with("+OK 1 "));
}

#[tokio::test]
async fn the_maildrop_is_locked_while_a_session_holds_it() {
    let srv = server();
    srv.file("INBOX", message("one", "Hi.\r\n")).await;
    let mut first = srv.logged_in().await;
    let mut second = srv.session(true);
    second.say(&format!("USER {USER}")).await;
    let refused = second.say(&format!("PASS {PASSWORD}")).await;
    assert_eq!(
        refused,
        "-ERR [IN-USE] Mailbox is locked by another session\r\n"
    );
    // Still in AUTHORIZATION: no TRANSACTION command works.
    assert_eq!(
        second.say("STAT").await,
        "-ERR Unknown command in AUTHORIZATION state\r\n"
    );
    assert!(first.say("STAT").await.starts_with("+OK 1 "));
    first.say("QUIT").await;
    second.say(&format!("USER {USER}")).await;
    let ok = second.say(&format!("PASS {PASSWORD}")).await;
    assert!(ok.starts_with("+OK Logged in, 1 messages"), "{ok}");
}

#[tokio::test]
async fn pop3_sees_the_inbox_only() {
    let srv = server();
    srv.mda.prepare_user(USER).await.unwrap();
    srv.file("Archive", message("archived", "Old.\r\n")).await;
    srv.file("Sent", message("sent", "Mine.\r\n")).await;
    let inbox = message("new", "New.\r\n");
    srv.file("INBOX", inbox.clone()).await;
    let mut c = srv.logged_in().await;
    assert_eq!(c.say("STAT").await, format!("+OK 1 {}\r\n", inbox.len()));
    let retr = c.say("RETR 1").await;
    assert!(retr.contains("Subject: new\r\n"), "{retr}");
    c.say("DELE 1").await;
    c.say("QUIT").await;
    // Expunging the INBOX leaves the other folders alone.
    let archive = srv.mda.uids(&MailboxRef::new(USER, "Archive")).await;
    assert_eq!(archive.unwrap().len(), 1);
    assert!(srv.inbox_uids().await.is_empty());
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let srv = server();
    srv.file("INBOX", message("one", "Hi.\r\n")).await;
    let size = message("one", "Hi.\r\n").len();
    let mut c = srv.session(true);
    let out = c
        .send(
            format!("USER {USER}\r\nPASS {PASSWORD}\r\nSTAT\r\nLIST 1\r\nNOOP\r\nQUIT\r\n")
                .as_bytes(),
        )
        .await;
    assert_eq!(
        out,
        format!(
            "+OK\r\n+OK Logged in, 1 messages ({size} octets)\r\n+OK 1 {size}\r\n\
             +OK 1 {size}\r\n+OK\r\n+OK Logging out\r\n"
        )
    );
    assert_eq!(c.step, Some(Step::Close));
}

#[tokio::test]
async fn bad_commands_are_answered_and_too_many_close() {
    let srv = server();
    let mut c = srv.session(true);
    for _ in 0..9 {
        assert!(c.say("FROB").await.starts_with("-ERR"));
        assert_eq!(c.step, Some(Step::Continue));
    }
    let last = c.say("FROB").await;
    assert!(
        last.ends_with("-ERR Too many errors, closing connection\r\n"),
        "{last}"
    );
    assert_eq!(c.step, Some(Step::Close));
}

#[test]
fn top_keeps_the_header_and_k_body_lines() {
    let m = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n";
    assert_eq!(top_lines(m, 0), b"A: 1\r\nB: 2\r\n\r\n");
    assert_eq!(top_lines(m, 2), b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n");
    assert_eq!(top_lines(m, 9), m);
}
