//! The daemon shell with a toy line protocol over real sockets: per-IP connection
//! limits, the idle timeout, the command deadline (slow drip), the TLS handshake
//! deadline, the shutdown goodbye and drain, and the STARTTLS injection guard —
//! the parts every agent's listener relies on.
#![allow(clippy::unwrap_used)] // test helpers: a failure here is a failed test

use std::time::Duration;

use facteur_daemon::Shutdown;
use facteur_daemon::conn::{ConnOptions, Endpoint, Session, Step, serve_sessions};
use facteur_daemon::listener::{ConnLimits, bind};
use facteur_protocol::deadline::{Phase, Progress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Greets with `hi`, echoes each line, `tls` answers `go` and asks for STARTTLS,
/// `bye` closes.
struct Echo {
    out: Vec<u8>,
    pending: Vec<u8>,
    lines: u64,
}

impl Session for Echo {
    async fn input(&mut self, bytes: &[u8]) -> Step {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.lines += 1;
            match line.as_slice() {
                b"bye\n" => {
                    self.out.extend_from_slice(b"bye\n");
                    return Step::Close;
                }
                b"tls\n" => {
                    // Like SMTP's 220 and POP3's +OK: the client waits for this.
                    self.out.extend_from_slice(b"go\n");
                    return Step::StartTls;
                }
                _ => self.out.extend_from_slice(&line),
            }
        }
        Step::Continue
    }
    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
    fn progress(&self) -> Progress {
        Progress {
            phase: if self.pending.is_empty() {
                Phase::Idle
            } else {
                Phase::Command
            },
            completed: self.lines,
        }
    }
    fn buffered_input(&self) -> usize {
        self.pending.len()
    }
    fn tls_started(&mut self) {}
    fn timeout_reply(&self) -> Vec<u8> {
        b"timeout\n".to_vec()
    }
    fn shutdown_reply(&self) -> Vec<u8> {
        b"shutting down\n".to_vec()
    }
}

async fn start(
    limits: ConnLimits,
) -> (std::net::SocketAddr, Shutdown, tokio::task::JoinHandle<()>) {
    start_with(limits, None).await
}

async fn start_with(
    limits: ConnLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (std::net::SocketAddr, Shutdown, tokio::task::JoinHandle<()>) {
    start_endpoint(limits, tls, false).await
}

async fn start_endpoint(
    limits: ConnLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    implicit_tls: bool,
) -> (std::net::SocketAddr, Shutdown, tokio::task::JoinHandle<()>) {
    let listener = bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let opts = ConnOptions::new(&limits, tls, 1024);
    let endpoint = Endpoint {
        protocol: "echo",
        limits,
        busy: b"busy\n",
        implicit_tls,
    };
    let sd = shutdown.clone();
    let task = tokio::spawn(serve_sessions(listener, endpoint, opts, sd, |_, _| Echo {
        out: b"hi\n".to_vec(),
        pending: Vec::new(),
        lines: 0,
    }));
    (addr, shutdown, task)
}

/// Everything the server sends until it closes (bounded by a timeout).
async fn read_to_end(c: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn read_some(c: &mut TcpStream) -> String {
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
        .await
        .expect("an answer")
        .expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn a_second_connection_from_the_same_ip_over_the_limit_is_refused() {
    let limits = ConnLimits {
        max_per_ip: 1,
        ..ConnLimits::default()
    };
    let (addr, shutdown, _task) = start(limits).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_some(&mut first).await, "hi\n");
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_to_end(&mut second).await, "busy\n");
    // The first one is unaffected, and once it leaves the slot is free again.
    first.write_all(b"ping\nbye\n").await.unwrap();
    assert_eq!(read_to_end(&mut first).await, "ping\nbye\n");
    // The slot is given back when the server's task for the first connection
    // ends, a moment after the client saw EOF: retry briefly.
    let mut greeted = false;
    for _ in 0..50 {
        let mut third = TcpStream::connect(addr).await.unwrap();
        if read_some(&mut third).await == "hi\n" {
            greeted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(greeted, "the slot was never given back");
    shutdown.trigger();
}

#[tokio::test]
async fn a_silent_peer_gets_the_timeout_goodbye_and_is_closed() {
    let limits = ConnLimits {
        idle_timeout_secs: 1,
        ..ConnLimits::default()
    };
    let (addr, shutdown, _task) = start(limits).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_to_end(&mut c).await, "hi\ntimeout\n");
    shutdown.trigger();
}

#[tokio::test]
async fn shutdown_says_goodbye_to_live_connections_and_the_server_returns() {
    let (addr, shutdown, task) = start(ConnLimits::default()).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_some(&mut c).await, "hi\n");
    shutdown.trigger();
    assert_eq!(read_to_end(&mut c).await, "shutting down\n");
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the server drains and returns")
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

/// A dev CA and a certificate for `localhost`, as acceptor and connector.
fn dev_tls(dir: &std::path::Path) -> (tokio_rustls::TlsAcceptor, tokio_rustls::TlsConnector) {
    let ip = "127.0.0.1".parse().unwrap();
    let certs = facteur_daemon::devpki::ensure(dir, &[("example.test", ip)]).unwrap();
    let files = facteur_daemon::tls::TlsFiles {
        cert: certs[0].cert.clone(),
        key: certs[0].key.clone(),
    };
    let acceptor = facteur_daemon::tls::acceptor(&files).unwrap().unwrap();
    let connector = facteur_daemon::tls::connector(&dir.join("ca.pem")).unwrap();
    (acceptor, connector)
}

#[tokio::test]
async fn starttls_upgrades_a_clean_connection_but_closes_one_with_pipelined_input_cve_2011_0411() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, connector) = dev_tls(dir.path());
    let (addr, shutdown, _task) = start_with(ConnLimits::default(), Some(acceptor)).await;

    // Control: nothing pipelined, the handshake happens and the session goes on in TLS.
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_some(&mut c).await, "hi\n");
    c.write_all(b"tls\n").await.unwrap();
    assert_eq!(read_some(&mut c).await, "go\n");
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, c).await.expect("TLS handshake");
    tls.write_all(b"secret\nbye\n").await.unwrap();
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, b"secret\nbye\n");

    // Attack: a line pipelined after the request, in the clear, closes the connection.
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_some(&mut c).await, "hi\n");
    c.write_all(b"tls\ninjected\n").await.unwrap();
    assert_eq!(read_to_end(&mut c).await, "go\n");
    shutdown.trigger();
}

/// Fails the test if the server has not closed `c` within `within` (generous: the
/// configured deadlines are a second or two). Returns what it sent before closing.
async fn closed_within(c: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(within, c.read_to_end(&mut out))
        .await
        .expect("the server never closed the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_client_stalling_after_starttls_is_closed_at_the_handshake_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, _) = dev_tls(dir.path());
    let limits = ConnLimits {
        tls_handshake_timeout_secs: 1,
        ..ConnLimits::default()
    };
    let (addr, shutdown, _task) = start_with(limits, Some(acceptor)).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_some(&mut c).await, "hi\n");
    c.write_all(b"tls\n").await.unwrap();
    assert_eq!(read_some(&mut c).await, "go\n");
    // No ClientHello: the server gives up on its own (the idle timer is 300 s).
    assert_eq!(closed_within(&mut c, Duration::from_secs(20)).await, "");
    shutdown.trigger();
}

#[tokio::test]
async fn a_client_silent_on_an_implicit_tls_port_is_closed_at_the_handshake_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, _) = dev_tls(dir.path());
    let limits = ConnLimits {
        tls_handshake_timeout_secs: 1,
        ..ConnLimits::default()
    };
    let (addr, shutdown, _task) = start_endpoint(limits, Some(acceptor), true).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(closed_within(&mut c, Duration::from_secs(20)).await, "");
    shutdown.trigger();
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_stalled_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, _) = dev_tls(dir.path());
    // Handshake deadlines far beyond the test's patience: only giving up on
    // shutdown lets the drain finish.
    let limits = ConnLimits {
        tls_handshake_timeout_secs: 3600,
        ..ConnLimits::default()
    };
    let (addr, shutdown, task) = start_with(limits.clone(), Some(acceptor.clone())).await;
    let one_per_ip = ConnLimits {
        max_per_ip: 1,
        ..limits
    };
    let (implicit_addr, implicit_shutdown, implicit_task) =
        start_endpoint(one_per_ip, Some(acceptor), true).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_some(&mut c).await, "hi\n");
    c.write_all(b"tls\n").await.unwrap();
    assert_eq!(read_some(&mut c).await, "go\n");
    let mut silent = TcpStream::connect(implicit_addr).await.unwrap();
    silent.write_all(&[0x16]).await.unwrap(); // a ClientHello that never finishes
    // The server holds the silent connection (in its handshake) once a second one
    // from the same IP is refused for the per-IP limit of 1.
    let mut second = TcpStream::connect(implicit_addr).await.unwrap();
    assert_eq!(read_to_end(&mut second).await, "busy\n");
    shutdown.trigger();
    implicit_shutdown.trigger();
    for task in [task, implicit_task] {
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the drain waited for a stalled TLS handshake")
            .unwrap();
    }
    assert_eq!(closed_within(&mut c, Duration::from_secs(10)).await, "");
    assert_eq!(
        closed_within(&mut silent, Duration::from_secs(10)).await,
        ""
    );
}

#[tokio::test]
async fn a_slow_drip_command_is_cut_at_the_command_deadline() {
    let limits = ConnLimits {
        command_timeout_secs: 2,
        ..ConnLimits::default()
    };
    let (addr, shutdown, _task) = start(limits).await;
    let c = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = c.into_split();
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = rd.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    });
    // One byte every half second, never a line end: each read is well within the
    // 300 s idle timer, so only the command deadline can end this.
    let drip = async {
        loop {
            if wr.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let heard = tokio::select! {
        r = reader => r.unwrap(),
        _ = drip => panic!("writing failed before the server said goodbye"),
        _ = tokio::time::sleep(Duration::from_secs(20)) => panic!("the drip was never cut"),
    };
    assert_eq!(heard, "hi\ntimeout\n");
    shutdown.trigger();
}

#[tokio::test]
async fn complete_commands_keep_a_connection_alive_past_the_command_deadline() {
    let limits = ConnLimits {
        command_timeout_secs: 1,
        ..ConnLimits::default()
    };
    let (addr, shutdown, _task) = start(limits).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_some(&mut c).await, "hi\n");
    // Each line completes well within its deadline, the session lasts longer than one.
    for i in 0..4 {
        c.write_all(format!("line{i}\n").as_bytes()).await.unwrap();
        assert_eq!(read_some(&mut c).await, format!("line{i}\n"));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    c.write_all(b"bye\n").await.unwrap();
    assert_eq!(read_to_end(&mut c).await, "bye\n");
    shutdown.trigger();
}
