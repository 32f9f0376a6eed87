//! The SMTP client against a hostile server over real sockets: a server that
//! answers STARTTLS with 220 and then never speaks TLS is dropped at the
//! handshake deadline instead of holding a delivery for ever.
#![allow(clippy::unwrap_used)] // test code: a failure here is a failed test

use std::time::Duration;

use facteur_daemon::smtp_client::{SmtpClient, SmtpClientError, Timeouts};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[tokio::test]
async fn a_server_stalling_after_starttls_fails_the_client_at_the_handshake_deadline() {
    let dir = tempfile::tempdir().unwrap();
    facteur_daemon::devpki::ensure(
        dir.path(),
        &[("example.test", "127.0.0.1".parse().unwrap())],
    )
    .unwrap();
    let connector = facteur_daemon::tls::connector(&dir.path().join("ca.pem")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut io = BufReader::new(tcp);
        io.get_mut()
            .write_all(b"220 stall.test ESMTP\r\n")
            .await
            .unwrap();
        let mut line = String::new();
        io.read_line(&mut line).await.unwrap(); // EHLO
        io.get_mut()
            .write_all(b"250-stall.test\r\n250 STARTTLS\r\n")
            .await
            .unwrap();
        line.clear();
        io.read_line(&mut line).await.unwrap(); // STARTTLS
        io.get_mut()
            .write_all(b"220 2.0.0 go ahead\r\n")
            .await
            .unwrap();
        // Then nothing, ever: keep the socket open until the test ends.
        let _ = held_tx.send(io);
        std::future::pending::<()>().await;
    });
    let timeouts = Timeouts {
        tls_handshake: Duration::from_secs(1),
        ..Timeouts::default()
    };
    let mut client = SmtpClient::connect(addr, timeouts).await.unwrap();
    client.hello("client.test", false).await.unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        client.starttls(&connector, "localhost"),
    )
    .await
    .expect("the client waited past its handshake deadline");
    assert!(
        matches!(result, Err(SmtpClientError::Timeout("TLS handshake"))),
        "{result:?}"
    );
    drop(held_rx);
}

/// RFC 2033 §4.2: after the data an LMTP server answers once per accepted
/// recipient, in RCPT order; the client hands back one reply per recipient,
/// the RCPT refusal for a refused one, so each maps onto its own state.
#[tokio::test]
async fn lmtp_gives_one_reply_per_recipient_after_the_data() {
    use facteur_protocol::address::{ForwardPath, Mailbox, ReversePath};
    use facteur_protocol::smtp::command::{Command, MailParams};

    let listener = TcpListener::bind("127.85.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut io = BufReader::new(tcp);
        let mut seen = Vec::new();
        io.get_mut()
            .write_all(b"220 lmtp.test LMTP\r\n")
            .await
            .unwrap();
        let mut rcpt = 0;
        loop {
            let mut line = String::new();
            if io.read_line(&mut line).await.unwrap() == 0 {
                break;
            }
            seen.push(line.trim_end().to_owned());
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("LHLO") {
                b"250-lmtp.test\r\n250 8BITMIME\r\n"
            } else if upper.starts_with("MAIL") {
                b"250 2.1.0 ok\r\n"
            } else if upper.starts_with("RCPT") {
                rcpt += 1;
                if rcpt == 2 {
                    b"550 5.1.1 no such user\r\n"
                } else {
                    b"250 2.1.5 ok\r\n"
                }
            } else if upper.starts_with("DATA") {
                io.get_mut().write_all(b"354 go\r\n").await.unwrap();
                loop {
                    let mut l = String::new();
                    io.read_line(&mut l).await.unwrap();
                    if l == ".\r\n" {
                        break;
                    }
                }
                b"250 2.0.0 <a@x.test> delivered\r\n452 4.2.2 <c@x.test> over quota\r\n"
            } else if upper.starts_with("QUIT") {
                io.get_mut().write_all(b"221 bye\r\n").await.unwrap();
                break;
            } else {
                b"500 what\r\n"
            };
            io.get_mut().write_all(reply).await.unwrap();
        }
        seen
    });
    let mut client = SmtpClient::connect(addr, Timeouts::default())
        .await
        .unwrap();
    client.hello("client.test", true).await.unwrap();
    let mail = Command::Mail {
        from: ReversePath::Mailbox(Mailbox::parse("s@x.test").unwrap()),
        params: MailParams::default(),
    };
    let rcpts: Vec<Command> = ["a@x.test", "b@x.test", "c@x.test"]
        .iter()
        .map(|r| Command::Rcpt {
            to: ForwardPath::Mailbox(Mailbox::parse(r).unwrap()),
            params: Vec::new(),
        })
        .collect();
    let replies = client
        .transaction(&mail, &rcpts, &b"Subject: t\r\n\r\nhi\r\n"[..], true)
        .await
        .unwrap();
    let codes: Vec<u16> = replies.iter().map(|r| r.code()).collect();
    assert_eq!(codes, [250, 550, 452], "{replies:?}");
    client.quit().await;
    let seen = server.await.unwrap();
    assert!(seen[0].starts_with("LHLO client.test"), "{seen:?}");
}
