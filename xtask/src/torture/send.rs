//! The senders of the torture run: each one loops until told to stop, opening
//! an SMTP session through a random door (submission with STARTTLS + AUTH on
//! either domain's MSA, or port 25 of either MTA for its local users), sending a
//! few messages on it, each with a fresh unique id, and writing every attempt
//! and every 250 after DATA into the shared [`Ledger`].
//!
//! A message is acknowledged for a recipient only by a 250 to the end of its
//! data; any other reply, a timeout or a dropped connection leaves it
//! unacknowledged, and the next message gets a new id (never a retry of the
//! same id), so every acknowledged (id, recipient) must be filed exactly once.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use facteur_daemon::smtp_client::{SmtpClient, SmtpClientError, Timeouts};
use facteur_protocol::Secret;
use facteur_protocol::address::{ForwardPath, Mailbox, ReversePath};
use facteur_protocol::smtp::{Command, MailParams};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio_rustls::TlsConnector;

use super::check::Ledger;

/// The name senders give in EHLO and in their Message-IDs.
const HELO: &str = "torture.test";

/// Where the senders connect: both domains' MSA and MTA, and the dev CA.
pub(crate) struct Doors {
    pub(crate) paris: Ipv4Addr,
    pub(crate) lyon: Ipv4Addr,
    pub(crate) submission_port: u16,
    pub(crate) smtp_port: u16,
    pub(crate) connector: TlsConnector,
    pub(crate) password: Secret<String>,
    /// Per-step deadlines of every session (connect, each command, end of data).
    pub(crate) timeouts: Timeouts,
    /// Pause between two messages of one sender.
    pub(crate) pause: Duration,
}

const PARIS_USERS: [&str; 2] = ["pierre@paris.test", "jacques@paris.test"];
const LYON_USERS: [&str; 1] = ["andre@lyon.test"];
const ALL_USERS: [&str; 3] = ["pierre@paris.test", "jacques@paris.test", "andre@lyon.test"];

/// One way in, with who may send and who may receive through it.
#[derive(Debug, Clone, Copy)]
enum Route {
    /// Submission (STARTTLS + AUTH PLAIN as the sender) to a domain's MSA:
    /// recipients in both domains.
    Submission { lyon: bool },
    /// Port 25 of a domain's MTA, from the other domain's users (a sender of
    /// its own domain must submit: `reject_spoofed_local_senders`), to that
    /// domain's users.
    Inbound { lyon: bool },
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::Submission { lyon: false } => "submission paris",
            Route::Submission { lyon: true } => "submission lyon",
            Route::Inbound { lyon: false } => "port25 paris",
            Route::Inbound { lyon: true } => "port25 lyon",
        }
    }

    fn senders(self) -> &'static [&'static str] {
        match self {
            Route::Submission { lyon: false } => &PARIS_USERS,
            Route::Submission { lyon: true } => &LYON_USERS,
            Route::Inbound { lyon: false } => &LYON_USERS,
            Route::Inbound { lyon: true } => &PARIS_USERS,
        }
    }

    fn recipients(self) -> &'static [&'static str] {
        match self {
            Route::Submission { .. } => &ALL_USERS,
            Route::Inbound { lyon: false } => &PARIS_USERS,
            Route::Inbound { lyon: true } => &LYON_USERS,
        }
    }
}

/// Run sender `n` until `stop` is set. Its choices come from its own RNG seeded
/// from the run's seed, so a replay makes the same choices (the timing of the
/// kills against them differs).
pub(crate) async fn sender(
    n: usize,
    seed: u64,
    doors: Arc<Doors>,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let route = *[
            Route::Submission { lyon: false },
            Route::Submission { lyon: true },
            Route::Inbound { lyon: false },
            Route::Inbound { lyon: true },
        ]
        .choose(&mut rng)
        .unwrap_or(&Route::Inbound { lyon: false });
        let from = *route.senders().choose(&mut rng).unwrap_or(&ALL_USERS[0]);
        let mut client = match open(&doors, route, from).await {
            Ok(c) => c,
            Err(e) => {
                ledger.session_failed(route.label(), &category(&e));
                // Pacing while an agent is down, not synchronisation.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let batch = rng.gen_range(1..=20);
        for _ in 0..batch {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            seq += 1;
            let id = format!("t{seed:x}-{n}-{seq}");
            let count = if rng.gen_bool(0.25) { 2 } else { 1 };
            let rcpts: Vec<&str> = route
                .recipients()
                .choose_multiple(&mut rng, count)
                .copied()
                .collect();
            // Mostly small, now and then past one 64 KiB chunk.
            let size = if rng.gen_bool(0.05) {
                rng.gen_range(64_000..200_000)
            } else {
                rng.gen_range(100..4_000)
            };
            let message = compose(&id, from, &rcpts, size);
            ledger.attempt(&id, route.label(), &rcpts);
            match transact(&mut client, from, &rcpts, &message).await {
                Ok(replies) => {
                    for (rcpt, code) in rcpts.iter().zip(replies) {
                        ledger.reply(&id, rcpt, code);
                    }
                }
                Err(e) => {
                    ledger.failed(&id, &category(&e));
                    break;
                }
            }
            if !doors.pause.is_zero() {
                tokio::time::sleep(doors.pause).await;
            }
        }
        client.quit().await;
    }
}

/// Connect, EHLO, and for submission STARTTLS, EHLO again and AUTH PLAIN.
async fn open(doors: &Doors, route: Route, from: &str) -> Result<SmtpClient, SmtpClientError> {
    let (ip, domain) = match route {
        Route::Submission { lyon: true } | Route::Inbound { lyon: true } => {
            (doors.lyon, "lyon.test")
        }
        _ => (doors.paris, "paris.test"),
    };
    match route {
        Route::Inbound { .. } => {
            let addr = SocketAddr::from((ip, doors.smtp_port));
            let mut c = SmtpClient::connect(addr, doors.timeouts.clone()).await?;
            c.hello(HELO, false).await?;
            Ok(c)
        }
        Route::Submission { .. } => {
            let addr = SocketAddr::from((ip, doors.submission_port));
            let mut c = SmtpClient::connect(addr, doors.timeouts.clone()).await?;
            c.hello(HELO, false).await?;
            let name = format!("mail.{domain}");
            tokio::time::timeout(doors.timeouts.command, c.starttls(&doors.connector, &name))
                .await
                .map_err(|_| SmtpClientError::Timeout("STARTTLS handshake"))??;
            c.hello(HELO, false).await?;
            c.auth_plain(from, &doors.password).await?;
            Ok(c)
        }
    }
}

/// One transaction; the reply code per recipient (the RCPT reply when refused
/// there, else the reply to the end of data).
async fn transact(
    client: &mut SmtpClient,
    from: &str,
    rcpts: &[&str],
    message: &[u8],
) -> Result<Vec<u16>, SmtpClientError> {
    let mailbox =
        |a: &str| Mailbox::parse(a).map_err(|e| SmtpClientError::Malformed(format!("{a}: {e}")));
    let mail = Command::Mail {
        from: ReversePath::Mailbox(mailbox(from)?),
        params: MailParams {
            size: Some(message.len() as u64),
            ..MailParams::default()
        },
    };
    let rcpt_cmds = rcpts
        .iter()
        .map(|r| {
            Ok(Command::Rcpt {
                to: ForwardPath::Mailbox(mailbox(r)?),
                params: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, SmtpClientError>>()?;
    let replies = client
        .transaction(&mail, &rcpt_cmds, message, false)
        .await?;
    Ok(replies.iter().map(|r| r.code()).collect())
}

/// The message: its id in the Subject and in `X-Torture-Id`, a body of `size`
/// bytes in 76-column lines.
pub(crate) fn compose(id: &str, from: &str, rcpts: &[&str], size: usize) -> Vec<u8> {
    let date = facteur_daemon::trace::rfc5322_date(facteur_daemon::trace::now_unix());
    let mut m = format!(
        "From: <{from}>\r\nTo: {}\r\nSubject: torture {id}\r\nDate: {date}\r\nMessage-ID: <{id}@{HELO}>\r\nX-Torture-Id: {id}\r\n\r\n",
        rcpts.iter().map(|r| format!("<{r}>")).collect::<Vec<_>>().join(", "),
    )
    .into_bytes();
    let line = format!("{id} ")
        .repeat(76 / (id.len() + 1))
        .trim_end()
        .to_owned()
        + "\r\n";
    while m.len() < size {
        m.extend_from_slice(line.as_bytes());
    }
    m
}

/// A short, stable name for an error, to count them by kind.
fn category(e: &SmtpClientError) -> String {
    match e {
        SmtpClientError::Io(e) => format!("io {:?}", e.kind()),
        SmtpClientError::Timeout(what) => format!("timeout {what}"),
        SmtpClientError::Closed => "closed".into(),
        SmtpClientError::Malformed(_) => "malformed reply".into(),
        SmtpClientError::Refused { stage, code, .. } => format!("{stage} {code}"),
    }
}
