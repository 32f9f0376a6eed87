//! LMTP (RFC 2033) into the MDA: how Postfix (or any LMTP client) delivers here.
//! One reply per accepted recipient after the data, as the RFC requires.

use facteur_daemon::smtp_server::{Client, SmtpHandler};
use facteur_protocol::address::{ForwardPath, ReversePath};
use facteur_protocol::smtp::codes;
use facteur_protocol::smtp::command::{MailParams, Param};
use facteur_protocol::smtp::reply::Reply;

use crate::filing::Filing;
use crate::store::{BlobStore, MailStore, Marks};

/// One LMTP connection's transaction state.
pub struct LmtpHandler<S> {
    filing: Filing<S>,
    from: Option<String>,
    rcpts: Vec<String>,
    message: Vec<u8>,
}

impl<S> LmtpHandler<S> {
    pub fn new(filing: Filing<S>) -> Self {
        Self {
            filing,
            from: None,
            rcpts: Vec::new(),
            message: Vec::new(),
        }
    }
}

/// The idempotency key of an LMTP transaction: LMTP carries none, so it is the
/// digest of the reverse-path and the message's bytes. A client that resends a
/// transaction whose replies it lost (Postfix after a dropped connection)
/// sends the same bytes and files nothing twice; another message differs in
/// its bytes (its Received fields carry the sender's queue ID and time).
fn key_of(from: &str, message: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    digest.update(from.as_bytes());
    digest.update([0u8]);
    digest.update(message);
    format!("lmtp-{}", hex::encode(digest.finalize()))
}

impl<S: MailStore + BlobStore + Marks> SmtpHandler for LmtpHandler<S> {
    async fn mail_from(&mut self, _: &Client, from: &ReversePath, _: &MailParams) -> Reply {
        self.from = Some(match from {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(m) => m.to_string(),
        });
        codes::ok()
    }

    async fn rcpt(&mut self, _: &Client, to: &ForwardPath, _: &[Param]) -> Reply {
        let ForwardPath::Mailbox(m) = to else {
            return codes::no_such_user();
        };
        let rcpt = m.to_string();
        let reply = self.filing.check_recipient(&rcpt).await;
        if reply.is_positive() {
            self.rcpts.push(rcpt);
        }
        reply
    }

    async fn data_start(&mut self, _: &Client) -> Reply {
        self.message.clear();
        codes::start_data()
    }

    async fn data_chunk(&mut self, chunk: Vec<u8>) {
        self.message.extend_from_slice(&chunk);
    }

    async fn data_end(&mut self, _: &Client) -> Vec<Reply> {
        let message = std::mem::take(&mut self.message);
        let from = self.from.take().unwrap_or_default();
        let rcpts = std::mem::take(&mut self.rcpts);
        let key = key_of(&from, &message);
        self.filing.file(&key, &from, &rcpts, message).await
    }

    fn reset(&mut self) {
        self.from = None;
        self.rcpts.clear();
        self.message = Vec::new();
    }
}
