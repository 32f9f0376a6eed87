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
