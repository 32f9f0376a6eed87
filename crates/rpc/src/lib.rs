//! The agents' gRPC contracts, generated from `proto/`, and small conversions.
//!
//! Nothing else lives here: the agents own their logic, this crate only owns the
//! wire types so that every agent speaks the same contract.
#![allow(unreachable_pub, clippy::unwrap_used)]

/// Generated code, nested as the proto packages are (`facteur.relay.v1`, ...).
pub mod facteur {
    pub mod relay {
        pub mod v1 {
            tonic::include_proto!("facteur.relay.v1");
        }
    }
    pub mod delivery {
        pub mod v1 {
            tonic::include_proto!("facteur.delivery.v1");
        }
    }
    pub mod mailbox {
        pub mod v1 {
            tonic::include_proto!("facteur.mailbox.v1");
        }
    }
}

/// MTA → MDA: delivery of a queued message into mailboxes.
pub use facteur::delivery::v1 as delivery;
/// MAA/MSA → MDA: mailbox access and password checks.
pub use facteur::mailbox::v1 as mailbox;
/// MSA → MTA: submission of a message to the queue.
pub use facteur::relay::v1 as relay;

/// Size of the message chunks every streaming RPC sends (well under gRPC's 4 MiB frame cap).
pub const CHUNK_SIZE: usize = 64 * 1024;

impl relay::MailReply {
    /// A reply from its parts.
    pub fn new(code: u32, enhanced: &str, text: &str) -> Self {
        Self {
            code,
            enhanced: enhanced.to_owned(),
            text: text.replace(['\r', '\n'], " "),
        }
    }
    /// 2xx: accepted.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
    /// 5xx: never going to work.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
}

/// Conversions between the wire's `MailReply` and the protocol's `Reply`, and the
/// one mapping from a failed gRPC call to a mail reply.
pub mod replies {
    use facteur_protocol::smtp::reply::Reply;

    use crate::relay::MailReply;

    impl From<&Reply> for MailReply {
        fn from(r: &Reply) -> Self {
            MailReply::new(
                u32::from(r.code()),
                &r.enhanced().map(|e| e.to_string()).unwrap_or_default(),
                &r.text(),
            )
        }
    }

    /// The SMTP reply a `MailReply` stands for; a malformed one becomes 451.
    pub fn to_reply(r: &MailReply) -> Reply {
        match u16::try_from(r.code) {
            Ok(code) if (200..600).contains(&code) => {
                Reply::new(code, r.enhanced.as_str(), &r.text)
            }
            _ => Reply::new(451, "4.3.0", "Temporary local problem"),
        }
    }

    /// A failed call to another agent, as the reply the peer sees, with a generic
    /// sentence; the cause goes to the log. Unavailable agents and unknown
    /// failures are transient (451: the client keeps the message and retries);
    /// only the callee's explicit verdicts (bad arguments, too big) are permanent.
    pub fn from_status(what: &str, status: &tonic::Status) -> Reply {
        tracing::warn!(call = %what, code = ?status.code(), message = %status.message(), "agent call failed");
        match status.code() {
            tonic::Code::InvalidArgument => Reply::new(501, "5.5.4", "Invalid arguments"),
            tonic::Code::OutOfRange => Reply::new(552, "5.3.4", "Message size exceeds fixed limit"),
            tonic::Code::ResourceExhausted => {
                Reply::new(452, "4.3.1", "Insufficient system storage")
            }
            _ => Reply::new(451, "4.4.1", "Temporary failure, try again later"),
        }
    }
}
