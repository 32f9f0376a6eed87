//! The next hop of submitted mail: the MTA's gRPC `Relay` (the default) or any
//! SMTP server (`next_hop = "smtp://…"`/`"smtps://…"`). One enum, one interface,
//! driven by the submission handler in `submit`, which owns every header fix;
//! a hop only carries the envelope and the already-fixed bytes.
//!
//! Both hops answer per recipient at RCPT time and answer the message only when
//! the hop behind them has: gRPC asks `Relay.CheckRecipient` at RCPT and streams
//! `Relay.Submit` from DATA; SMTP opens the next hop's transaction at MAIL and
//! passes each of its replies through (see `hop::smtp`).

mod grpc;
mod smtp;

use std::sync::Arc;

use facteur_daemon::smtp_server::Client;
use facteur_daemon::transcript::Transcripts;
use facteur_protocol::address::{ForwardPath, ReversePath};
use facteur_protocol::smtp::command::MailParams;
use facteur_protocol::smtp::reply::Reply;
use facteur_rpc::relay::relay_client::RelayClient;
use tonic::transport::Channel;

pub use smtp::SmtpHop;

/// Where this MSA sends mail (shared by every session).
pub enum NextHop {
    Grpc(GrpcHop),
    Smtp(Arc<SmtpHop>),
}

/// The MTA's `Relay` service, and where its hand-overs are recorded.
pub struct GrpcHop {
    pub relay: RelayClient<Channel>,
    /// The MTA's URL, as the transcript names the other end.
    pub url: String,
    pub transcripts: Transcripts,
}

/// What a hop needs at the start of the message data.
pub struct Begin<'a> {
    /// This submission's id (Message-ID, Received, the MTA's message key).
    pub id: &'a str,
    pub from: &'a str,
    pub params: &'a MailParams,
    pub rcpts: &'a [String],
    pub client: &'a Client,
    pub hostname: &'a str,
}

/// One session's transaction with the next hop.
pub enum HopSession {
    Grpc(grpc::Session),
    Smtp(smtp::Session),
}

impl NextHop {
    pub fn session(&self) -> HopSession {
        match self {
            NextHop::Grpc(hop) => HopSession::Grpc(grpc::Session::new(hop)),
            NextHop::Smtp(hop) => HopSession::Smtp(smtp::Session::new(Arc::clone(hop))),
        }
    }
}

impl HopSession {
    /// MAIL FROM (already checked against the authenticated user).
    pub async fn mail(&mut self, from: &ReversePath, params: &MailParams) -> Reply {
        match self {
            HopSession::Grpc(_) => Reply::new(250, "2.1.0", "Sender OK"),
            HopSession::Smtp(s) => s.mail(from, params).await,
        }
    }

    /// RCPT TO: a positive reply means the hop takes this recipient.
    pub async fn rcpt(&mut self, to: &ForwardPath, rcpt: &str) -> Reply {
        match self {
            HopSession::Grpc(s) => s.rcpt(rcpt).await,
            HopSession::Smtp(s) => s.rcpt(to).await,
        }
    }

    /// DATA: 354 to go on, or the refusal.
    pub async fn data_start(&mut self, begin: &Begin<'_>) -> Reply {
        match self {
            HopSession::Grpc(s) => s.data_start(begin).await,
            HopSession::Smtp(s) => s.data_start().await,
        }
    }

    /// The next bytes of the fixed message; a failure is answered at the end.
    pub async fn send(&mut self, bytes: &[u8]) {
        match self {
            HopSession::Grpc(s) => s.send(bytes).await,
            HopSession::Smtp(s) => s.send(bytes).await,
        }
    }

    /// The message is complete: the hop's answer to it.
    pub async fn data_end(&mut self) -> Reply {
        match self {
            HopSession::Grpc(s) => s.data_end().await,
            HopSession::Smtp(s) => s.data_end().await,
        }
    }

    /// Drop the transaction: nothing is queued at the hop.
    pub fn reset(&mut self) {
        match self {
            HopSession::Grpc(s) => s.reset(),
            HopSession::Smtp(s) => s.reset(),
        }
    }
}
