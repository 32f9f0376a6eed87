//! Session tests: the real [`serve`] over an in-memory pipe
//! (`tokio::io::duplex`), a raw IMAP transcript, a TLS client (rustls,
//! certificate from rcgen) and the real store in a temporary directory
//! ([`StoreMda`]): no socket, no fake MDA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use facteur_daemon::stream::Stream;
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream,
};
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{ImapConfig, ImapContext, serve};
use crate::mda::{MailboxRef, Mda, StoreMda};

const USER: &str = "pierre@paris.test";
const PASSWORD: &str = "facteur";
const MSG1: &[u8] = b"From: jacques@paris.test\r\nTo: pierre@paris.test\r\nSubject: Bonjour\r\n\r\nSalut Pierre,\r\n\r\n\xc3\xa7a va ?\r\n";
const MSG2: &[u8] = b"From: andre@lyon.test\r\nSubject: second\r\n\r\nhello\r\n";
/// 2023-11-14 22:13:20 UTC.
const DATE: i64 = 1_700_000_000;

// ----- harness -----

struct Harness {
    mda: StoreMda,
    ctx: Arc<ImapContext<StoreMda>>,
    connector: TlsConnector,
    shutdown: facteur_daemon::Shutdown,
    implicit_tls: bool,
    _dir: tempfile::TempDir,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_pair() -> (TlsAcceptor, TlsConnector) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (
        TlsAcceptor::from(Arc::new(server)),
        TlsConnector::from(Arc::new(client)),
    )
}

async fn start(implicit_tls: bool) -> Harness {
    start_with(implicit_tls, |_| {}).await
}

/// A store with INBOX holding MSG1 (unseen) and MSG2 (seen).
async fn start_with(implicit_tls: bool, tweak: impl FnOnce(&mut ImapConfig)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let mda =
        tokio::task::spawn_blocking(move || StoreMda::open(&path, &[(USER, PASSWORD)]).unwrap())
            .await
            .unwrap();
    let inbox = MailboxRef::new(USER, "INBOX");
    mda.prepare_user(USER).await.unwrap();
    mda.append(&inbox, &[], Some(DATE), MSG1.to_vec())
        .await
        .unwrap();
    mda.append(&inbox, &["\\Seen".to_owned()], Some(DATE), MSG2.to_vec())
        .await
        .unwrap();
    let (acceptor, connector) = tls_pair();
    let shutdown = facteur_daemon::Shutdown::new();
    let mut config = ImapConfig {
        hostname: "mail.paris.test".to_owned(),
        auth_failure_delay: Duration::from_millis(10),
        ..ImapConfig::default()
    };
    tweak(&mut config);
    let ctx = Arc::new(ImapContext {
        config,
        mda: mda.clone(),
        tls: Some(acceptor),
        shutdown: shutdown.clone(),
        transcripts: facteur_daemon::transcript::Transcripts::off(),
    });
    Harness {
        mda,
        ctx,
        connector,
        shutdown,
        implicit_tls,
        _dir: dir,
    }
}

impl Harness {
    /// A new connection to the server: the client's end of the pipe.
    fn pipe(&self) -> DuplexStream {
        let (client, server) = tokio::io::duplex(256 * 1024);
        let (ctx, implicit) = (self.ctx.clone(), self.implicit_tls);
        let peer = "127.0.0.1:40000".parse().unwrap();
        tokio::spawn(async move {
            let _ = serve(Stream::Memory(server), peer, ctx, implicit).await;
        });
        client
    }

    fn plain(&self) -> Client<DuplexStream> {
        Client::new(self.pipe())
    }

    async fn tls(
        &self,
        pipe: DuplexStream,
    ) -> Client<tokio_rustls::client::TlsStream<DuplexStream>> {
        let name = ServerName::try_from("localhost").unwrap();
        Client::new(self.connector.connect(name, pipe).await.unwrap())
    }

    /// STARTTLS on a new connection.
    async fn starttls(&self) -> Client<tokio_rustls::client::TlsStream<DuplexStream>> {
        let mut c = self.plain();
        let greeting = String::from_utf8(c.line().await).unwrap();
        assert!(greeting.contains("STARTTLS LOGINDISABLED]"), "{greeting}");
        let r = c.cmd("s1", "STARTTLS").await;
        assert!(r.contains("s1 OK"), "{r}");
        assert!(c.io.buffer().is_empty());
        let pipe = c.io.into_inner();
        self.tls(pipe).await
    }

    /// A logged-in session (STARTTLS then LOGIN).
    async fn session(&self) -> Client<tokio_rustls::client::TlsStream<DuplexStream>> {
        let mut c = self.starttls().await;
        let r = c.cmd("l0", &format!("LOGIN {USER} {PASSWORD}")).await;
        assert!(r.contains("l0 OK"), "{r}");
        c
    }
}

/// A raw IMAP client: writes lines, reads responses (literals included) as bytes.
struct Client<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    fn new(s: S) -> Self {
        Self {
            io: BufReader::new(s),
        }
    }

    async fn send(&mut self, line: &str) {
        self.io.get_mut().write_all(line.as_bytes()).await.unwrap();
        self.io.get_mut().write_all(b"\r\n").await.unwrap();
        self.io.get_mut().flush().await.unwrap();
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
        self.io.get_mut().flush().await.unwrap();
    }

    /// One response line, with any literal it announces appended.
    async fn line(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = tokio::time::timeout(
                Duration::from_secs(10),
                self.io.read_until(b'\n', &mut line),
            )
            .await
            .expect("server too slow")
            .unwrap_or(0);
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&line);
            let Some(len) = literal_len(&line) else {
                return out;
            };
            let mut lit = vec![0; len];
            self.io.read_exact(&mut lit).await.unwrap();
            out.extend_from_slice(&lit);
        }
    }

    /// Everything up to and including the tagged reply for `tag`.
    async fn until(&mut self, tag: &str) -> String {
        let mut all = Vec::new();
        loop {
            let line = self.line().await;
            assert!(
                !line.is_empty(),
                "connection closed; so far: {}",
                String::from_utf8_lossy(&all)
            );
            all.extend_from_slice(&line);
            if line.starts_with(format!("{tag} ").as_bytes()) {
                return String::from_utf8_lossy(&all).into_owned();
            }
        }
    }

    async fn cmd(&mut self, tag: &str, rest: &str) -> String {
        self.send(&format!("{tag} {rest}")).await;
        self.until(tag).await
    }

    /// APPEND with a synchronizing literal.
    async fn append(&mut self, tag: &str, args: &str, msg: &[u8]) -> String {
        self.send(&format!("{tag} APPEND {args} {{{}}}", msg.len()))
            .await;
        let cont = String::from_utf8(self.line().await).unwrap();
        assert!(cont.starts_with("+ "), "{cont}");
        self.send_bytes(msg).await;
        self.send("").await;
        self.until(tag).await
    }

    async fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.io.read_to_end(&mut rest)).await,
            Ok(Ok(_)) | Ok(Err(_))
        )
    }
}

fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n")?;
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&line[open + 1..]).ok()?.parse().ok()
}

fn body_of(resp: &str, marker: &str) -> Vec<u8> {
    // The literal after `marker {n}\r\n`.
    let start = resp.find(marker).unwrap() + marker.len();
    let rest = &resp[start..];
    let close = rest.find("}\r\n").unwrap();
    let n: usize = rest[1..close].parse().unwrap();
    rest.as_bytes()[close + 3..close + 3 + n].to_vec()
}

async fn inbox_flags(h: &Harness, uid: u32) -> Vec<String> {
    let metas = h
        .mda
        .metas(&MailboxRef::new(USER, "INBOX"), &[uid])
        .await
        .unwrap();
    metas
        .into_iter()
        .next()
        .map(|m| m.flags)
        .unwrap_or_default()
}

// ----- getting in -----

#[tokio::test]
async fn plaintext_advertises_starttls_and_refuses_login() {
    let h = start(false).await;
    let mut c = h.plain();
    let greeting = String::from_utf8(c.line().await).unwrap();
    assert!(greeting.contains("mail.paris.test"), "{greeting}");
    let r = c.cmd("a1", "CAPABILITY").await;
    assert!(
        r.contains("* CAPABILITY IMAP4REV1 IMAP4rev2 LITERAL+ ID STARTTLS LOGINDISABLED\r\n"),
        "{r}"
    );
    assert!(!r.contains("AUTH=PLAIN"), "{r}");
    let r = c.cmd("a2", &format!("LOGIN {USER} {PASSWORD}")).await;
    assert!(r.starts_with("a2 NO [PRIVACYREQUIRED]"), "{r}");
    let r = c.cmd("a3", "AUTHENTICATE PLAIN").await;
    assert!(r.starts_with("a3 NO [PRIVACYREQUIRED]"), "{r}");
    let r = c.cmd("a4", "SELECT INBOX").await;
    assert!(r.starts_with("a4 BAD"), "{r}");
    let r = c.cmd("a5", "NOOP").await;
    assert!(r.starts_with("a5 OK"), "{r}");
    let r = c.cmd("a6", "ID (\"name\" \"test\")").await;
    assert!(
        r.contains("* ID (\"name\" \"facteur\")") && r.contains("a6 OK"),
        "{r}"
    );
    let r = c.cmd("a7", "LOGOUT").await;
    assert!(r.contains("* BYE") && r.contains("a7 OK"), "{r}");
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn garbage_gets_bad_and_the_session_goes_on() {
    let h = start(false).await;
    let mut c = h.plain();
    c.line().await;
    let r = c.cmd("g1", "FROBNICATE now").await;
    assert!(r.starts_with("g1 BAD"), "{r}");
    c.send("\x01\x02 garbage").await;
    let r = String::from_utf8(c.line().await).unwrap();
    assert!(r.starts_with("* BAD"), "{r}");
    let r = c.cmd("g2", "FETCH").await;
    assert!(r.starts_with("g2 BAD"), "{r}");
    let r = c.cmd("g3", "NOOP").await;
    assert!(r.starts_with("g3 OK"), "{r}");
}

#[tokio::test]
async fn implicit_tls_and_authenticate_plain() {
    let h = start(true).await;
    let mut c = h.tls(h.pipe()).await;
    let greeting = String::from_utf8(c.line().await).unwrap();
    assert!(
        greeting.contains("AUTH=PLAIN") && !greeting.contains("STARTTLS"),
        "{greeting}"
    );

    // Without initial response: "+ " then the credentials.
    c.send("p1 AUTHENTICATE PLAIN").await;
    let cont = String::from_utf8(c.line().await).unwrap();
    assert_eq!(cont, "+ \r\n");
    c.send("AHBpZXJyZUBwYXJpcy50ZXN0AHdyb25n").await; // \0pierre@paris.test\0wrong
    let r = c.until("p1").await;
    assert!(r.starts_with("p1 NO [AUTHENTICATIONFAILED]"), "{r}");

    // SASL-IR.
    let r = c
        .cmd(
            "p2",
            "AUTHENTICATE PLAIN AHBpZXJyZUBwYXJpcy50ZXN0AGZhY3RldXI=",
        )
        .await;
    assert!(r.starts_with("p2 OK [CAPABILITY"), "{r}");
    for cap in [
        "IDLE",
        "UIDPLUS",
        "MOVE",
        "CONDSTORE",
        "QRESYNC",
        "SPECIAL-USE",
    ] {
        assert!(r.contains(cap), "{cap} missing: {r}");
    }
    let r = c.cmd("p3", "EXAMINE INBOX").await;
    assert!(r.contains("p3 OK [READ-ONLY]"), "{r}");
    let r = c.cmd("p4", "FETCH 1 BODY[]").await;
    assert_eq!(body_of(&r, "BODY[] "), MSG1);
    assert!(
        !inbox_flags(&h, 1).await.contains(&"\\Seen".to_owned()),
        "EXAMINE must not set \\Seen"
    );
}

#[tokio::test]
async fn too_many_auth_failures_close_with_bye() {
    let h = start(false).await;
    let mut c = h.starttls().await;
    for i in 1..=2 {
        let r = c.cmd(&format!("f{i}"), &format!("LOGIN {USER} nope")).await;
        assert!(r.contains("NO [AUTHENTICATIONFAILED]"), "{r}");
    }
    let r = c.cmd("f3", &format!("LOGIN {USER} nope")).await;
    assert!(r.contains("f3 NO [AUTHENTICATIONFAILED]"), "{r}");
    let bye = String::from_utf8(c.line().await).unwrap();
    assert!(bye.starts_with("* BYE"), "{bye}");
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn input_pipelined_after_starttls_closes_the_connection() {
    let h = start(false).await;
    let mut c = h.plain();
    c.line().await;
    c.send_bytes(b"s1 STARTTLS\r\ns2 LOGIN pierre@paris.test facteur\r\n")
        .await;
    let r = String::from_utf8(c.line().await).unwrap();
    assert!(r.starts_with("* BYE"), "{r}");
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn shutdown_says_bye_to_a_live_session() {
    let h = start(false).await;
    let mut c = h.starttls().await;
    let r = c.cmd("n1", "NOOP").await;
    assert!(r.contains("n1 OK"), "{r}");
    h.shutdown.trigger();
    let bye = String::from_utf8(c.line().await).unwrap();
    assert!(bye.starts_with("* BYE Server shutting down"), "{bye}");
    assert!(c.is_closed().await);
}

// ----- deadlines and limits -----

/// Fails the test unless the server closes within `within` (generous: the
/// configured deadlines in these tests are a second or two).
async fn closed_within(pipe: &mut DuplexStream, within: Duration) {
    let mut rest = Vec::new();
    tokio::time::timeout(within, pipe.read_to_end(&mut rest))
        .await
        .expect("the server never closed the connection")
        .ok();
}

#[tokio::test]
async fn a_client_stalling_after_starttls_is_closed_at_the_handshake_deadline() {
    let h = start_with(false, |c| c.tls_handshake_timeout = Duration::from_secs(1)).await;
    let mut c = h.plain();
    c.line().await;
    let r = c.cmd("s1", "STARTTLS").await;
    assert!(r.contains("s1 OK"), "{r}");
    // No ClientHello; the autologout timer is 30 minutes, the handshake's 1 s.
    closed_within(c.io.get_mut(), Duration::from_secs(20)).await;
}

#[tokio::test]
async fn a_client_silent_on_the_implicit_tls_port_is_closed_at_the_handshake_deadline() {
    let h = start_with(true, |c| c.tls_handshake_timeout = Duration::from_secs(1)).await;
    let mut pipe = h.pipe();
    closed_within(&mut pipe, Duration::from_secs(20)).await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_stalled_handshake() {
    let h = start_with(false, |c| {
        c.tls_handshake_timeout = Duration::from_secs(3600)
    })
    .await;
    let mut c = h.plain();
    c.line().await;
    let r = c.cmd("s1", "STARTTLS").await;
    assert!(r.contains("s1 OK"), "{r}");
    h.shutdown.trigger();
    closed_within(c.io.get_mut(), Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_slow_drip_command_is_cut_at_the_command_deadline() {
    let h = start_with(false, |c| c.deadlines.command = Duration::from_secs(2)).await;
    let mut c = h.plain();
    c.line().await;
    // One byte every half second of a command that never ends: each read is far
    // inside the 30-minute autologout, only the command deadline can cut it.
    let cut = tokio::time::timeout(Duration::from_secs(20), async {
        for b in b"a1 NOOP and on and on and on and on and on and on"
            .iter()
            .cycle()
        {
            if c.io.get_mut().write_all(&[*b]).await.is_err() {
                return;
            }
            let mut byte = [0u8; 1];
            let read = tokio::time::timeout(Duration::from_millis(500), c.io.read(&mut byte));
            if let Ok(Ok(0) | Err(_)) = read.await {
                return; // closed by the server
            }
        }
    });
    cut.await.expect("the drip was never cut");
}

#[tokio::test]
async fn a_literal_over_the_pre_login_limit_is_refused_before_it_is_sent() {
    let h = start(false).await;
    let mut c = h.plain();
    c.line().await;
    // Synchronizing literal: the server must answer now, without the 100000 bytes.
    c.send("l1 LOGIN {100000}").await;
    let r = String::from_utf8(c.line().await).unwrap();
    assert!(r.starts_with("l1 BAD [TOOBIG]"), "{r}");
    // A small literal is fine before login, and the session goes on.
    c.send("l2 LOGIN {4}").await;
    let r = String::from_utf8(c.line().await).unwrap();
    assert!(r.starts_with("+ "), "{r}");
    c.send("user pass").await;
    let r = c.until("l2").await;
    assert!(r.contains("l2 NO [PRIVACYREQUIRED]"), "{r}");
}

#[tokio::test]
async fn after_login_the_large_literal_limit_applies() {
    let h = start(false).await;
    let mut c = h.starttls().await;
    // Before login over TLS too, 20 KiB is over the limit.
    c.send("b1 SELECT {20000}").await;
    let r = String::from_utf8(c.line().await).unwrap();
    assert!(r.starts_with("b1 BAD [TOOBIG]"), "{r}");
    let r = c.cmd("b2", &format!("LOGIN {USER} {PASSWORD}")).await;
    assert!(r.contains("b2 OK"), "{r}");
    c.send("b3 SELECT {20000}").await;
    let r = String::from_utf8(c.line().await).unwrap();
    assert!(r.starts_with("+ "), "the literal is welcome now: {r}");
    let name = "x".repeat(20000);
    c.send(&name).await;
    let r = c.until("b3").await;
    assert!(r.contains("b3 NO"), "no such mailbox, but read: {r}");
    let r = c.cmd("b4", "SELECT INBOX").await;
    assert!(r.contains("b4 OK"), "{r}");
}

// ----- the selected mailbox -----

#[tokio::test]
async fn login_select_fetch_store_expunge_logout() {
    let h = start(false).await;
    let mut c = h.starttls().await;

    let r = c.cmd("b1", "CAPABILITY").await;
    assert!(
        r.contains("AUTH=PLAIN") && !r.contains("STARTTLS") && !r.contains("LOGINDISABLED"),
        "{r}"
    );
    let r = c.cmd("b2", &format!("LOGIN {USER} wrong")).await;
    assert!(
        r.starts_with("b2 NO [AUTHENTICATIONFAILED] Authentication failed."),
        "{r}"
    );
    let r = c.cmd("b3", &format!("LOGIN {USER} {PASSWORD}")).await;
    assert!(r.starts_with("b3 OK [CAPABILITY"), "{r}");
    let r = c.cmd("b3a", "FETCH 1 FLAGS").await;
    assert!(r.starts_with("b3a BAD [CLIENTBUG]"), "not selected: {r}");

    let r = c.cmd("b4", "SELECT INBOX").await;
    for want in [
        "* 2 EXISTS\r\n",
        "* 0 RECENT\r\n",
        "* FLAGS (",
        "* OK [PERMANENTFLAGS (",
        "* OK [UIDVALIDITY ",
        "* OK [UIDNEXT 3]",
        "* OK [UNSEEN 1]",
        "b4 OK [READ-WRITE]",
    ] {
        assert!(r.contains(want), "missing {want:?} in {r}");
    }

    let r = c
        .cmd("b5", "FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .await;
    assert!(
        r.contains(
            "* 1 FETCH (FLAGS () BODY[HEADER.FIELDS (SUBJECT)] {20}\r\nSubject: Bonjour\r\n\r\n)"
        ),
        "{r}"
    );

    let r = c.cmd("b6", "FETCH 1 (FLAGS BODY[])").await;
    assert_eq!(body_of(&r, "BODY[] "), MSG1, "{r}");
    assert!(r.contains("\\Seen"), "non-PEEK fetch sets \\Seen: {r}");
    assert!(inbox_flags(&h, 1).await.contains(&"\\Seen".to_owned()));

    let r = c
        .cmd("b7", "UID FETCH 1:* (RFC822.SIZE INTERNALDATE)")
        .await;
    assert!(
        r.contains(&format!(
            "* 1 FETCH (UID 1 RFC822.SIZE {} INTERNALDATE \"14-Nov-2023 22:13:20 +0000\")",
            MSG1.len()
        )),
        "{r}"
    );
    assert!(r.contains("* 2 FETCH (UID 2 RFC822.SIZE"), "{r}");

    let r = c.cmd("b8", "FETCH 2 (BODY[TEXT]<1.3> RFC822.HEADER)").await;
    assert_eq!(body_of(&r, "BODY[TEXT]<1> "), b"ell", "{r}");
    assert!(r.contains("b8 OK"), "{r}");

    let r = c.cmd("b9", "FETCH 3 FLAGS").await;
    assert!(r.starts_with("b9 BAD"), "{r}");

    let r = c.cmd("c3", "STORE 1 +FLAGS (\\Deleted)").await;
    assert!(r.contains("* 1 FETCH (FLAGS (\\Seen \\Deleted))"), "{r}");
    let r = c.cmd("c4", "UID STORE 2 +FLAGS.SILENT (\\Flagged)").await;
    assert!(!r.contains("FETCH"), "{r}");
    let r = c.cmd("c5", "EXPUNGE").await;
    assert!(r.contains("* 1 EXPUNGE\r\n") && r.contains("c5 OK"), "{r}");
    let r = c.cmd("c6", "FETCH 1:* (UID FLAGS)").await;
    assert!(
        r.contains("* 1 FETCH (UID 2 FLAGS (\\Seen \\Flagged))"),
        "{r}"
    );

    let r = c.cmd("c7", "CLOSE").await;
    assert!(r.starts_with("c7 OK"), "{r}");
    let r = c.cmd("c8", "FETCH 1 FLAGS").await;
    assert!(r.starts_with("c8 BAD [CLIENTBUG]"), "{r}");

    let r = c.cmd("z1", "LOGOUT").await;
    assert!(r.contains("* BYE") && r.contains("z1 OK"), "{r}");
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn sequence_sets_are_checked_on_ranges_not_expanded() {
    let h = start(false).await;
    let mut c = h.session().await;
    c.cmd("s1", "SELECT INBOX").await;
    let r = c.cmd("s2", "FETCH 1:4294967295 FLAGS").await;
    assert!(r.starts_with("s2 BAD"), "past the last message: {r}");
    let r = c.cmd("s3", "UID FETCH 1:4294967295 (FLAGS)").await;
    assert!(
        r.contains("* 2 FETCH (UID 2 FLAGS (\\Seen))") && r.contains("s3 OK"),
        "{r}"
    );
    let r = c
        .cmd("s4", "UID STORE 3:4294967295 +FLAGS (\\Flagged)")
        .await;
    assert!(r.contains("s4 OK") && !r.contains("FETCH"), "{r}");
}

mod commands;
mod down;
mod review;
mod rfc;
