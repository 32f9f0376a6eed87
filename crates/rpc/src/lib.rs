//! The agents' gRPC contracts, generated from `proto/`, and small conversions.
//!
//! Nothing else lives here: the agents own their logic, this crate only owns the
//! wire types (and their one translation to the storage seam's types, `convert`)
//! so that every agent speaks the same contract.
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
    pub mod admin {
        pub mod v1 {
            tonic::include_proto!("facteur.admin.v1");
        }
    }
}

pub mod convert;

/// Operator → MTA (`QueueAdmin`) and MDA (`Accounts`): live administration.
pub use facteur::admin::v1 as admin;
/// MTA → MDA: delivery of a queued message into mailboxes.
pub use facteur::delivery::v1 as delivery;
/// MAA/MSA → MDA: mailbox access and password checks.
pub use facteur::mailbox::v1 as mailbox;
/// MSA → MTA: submission of a message to the queue.
pub use facteur::relay::v1 as relay;

/// Metadata key of a `Mailbox` refusal (FAILED_PRECONDITION) because the
/// mailboxes are served by another server (the MDA files into a Maildir):
/// the MAA shows the status message to the user as `NO [UNAVAILABLE]`.
pub const MAILBOXES_ELSEWHERE: &str = "facteur-mailboxes-elsewhere";

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
            // The next hop's disk is full (the MTA's queue reserve): 452 4.3.1.
            tonic::Code::ResourceExhausted => facteur_protocol::smtp::codes::insufficient_storage(),
            _ => Reply::new(451, "4.4.1", "Temporary failure, try again later"),
        }
    }
}

/// Reading a streamed message (`Relay.Submit`, `Delivery.Deliver`) the one way the
/// contract allows: the envelope first, then chunks, then the end marker whose
/// size must match. Both receivers use this, so the rule lives in one place.
pub mod stream {
    use tonic::{Status, Streaming};

    use crate::{delivery, mailbox, relay};

    /// One part of a streamed message, whatever the RPC.
    pub enum Piece<E> {
        Envelope(E),
        Chunk(Vec<u8>),
        End(u64),
    }

    /// A request type of a message-streaming RPC.
    pub trait Part: Sized {
        type Envelope;
        fn piece(self) -> Option<Piece<Self::Envelope>>;
    }

    impl Part for relay::SubmitRequest {
        type Envelope = relay::Envelope;
        fn piece(self) -> Option<Piece<relay::Envelope>> {
            use relay::submit_request::Part as P;
            Some(match self.part? {
                P::Envelope(e) => Piece::Envelope(e),
                P::Chunk(c) => Piece::Chunk(c),
                P::End(e) => Piece::End(e.size),
            })
        }
    }

    impl Part for delivery::DeliverRequest {
        type Envelope = delivery::DeliveryEnvelope;
        fn piece(self) -> Option<Piece<delivery::DeliveryEnvelope>> {
            use delivery::deliver_request::Part as P;
            Some(match self.part? {
                P::Envelope(e) => Piece::Envelope(e),
                P::Chunk(c) => Piece::Chunk(c),
                P::End(e) => Piece::End(e.size),
            })
        }
    }

    impl Part for mailbox::AppendRequest {
        type Envelope = mailbox::AppendStart;
        fn piece(self) -> Option<Piece<mailbox::AppendStart>> {
            use mailbox::append_request::Part as P;
            Some(match self.part? {
                P::Start(s) => Piece::Envelope(s),
                P::Chunk(c) => Piece::Chunk(c),
                P::End(e) => Piece::End(e.size),
            })
        }
    }

    /// The envelope, which must come first.
    pub async fn envelope<P: Part>(stream: &mut Streaming<P>) -> Result<P::Envelope, Status> {
        match stream.message().await?.and_then(Part::piece) {
            Some(Piece::Envelope(e)) => Ok(e),
            _ => Err(Status::invalid_argument("the envelope must come first")),
        }
    }

    /// The chunks of a message, read until its end marker.
    pub struct Body<'a, P> {
        stream: &'a mut Streaming<P>,
        received: u64,
        done: bool,
    }

    impl<'a, P: Part> Body<'a, P> {
        /// Read the body that follows the envelope on `stream`.
        pub fn new(stream: &'a mut Streaming<P>) -> Self {
            Self {
                stream,
                received: 0,
                done: false,
            }
        }

        /// The next chunk, or `None` once the end marker arrived and matched. A
        /// stream that stops without the marker (the sender gave up) or whose
        /// marker disagrees with what arrived is an error: keep nothing then.
        pub async fn next(&mut self) -> Result<Option<Vec<u8>>, Status> {
            if self.done {
                return Ok(None);
            }
            let Some(part) = self.stream.message().await? else {
                return Err(Status::cancelled(
                    "the transfer ended without its end marker",
                ));
            };
            match part.piece() {
                Some(Piece::Chunk(c)) => {
                    self.received += c.len() as u64;
                    Ok(Some(c))
                }
                Some(Piece::End(size)) if size == self.received => {
                    if self.stream.message().await?.is_some() {
                        return Err(Status::invalid_argument("data after the end marker"));
                    }
                    self.done = true;
                    Ok(None)
                }
                Some(Piece::End(size)) => Err(Status::invalid_argument(format!(
                    "end marker says {size} bytes, {} arrived",
                    self.received
                ))),
                _ => Err(Status::invalid_argument("a second envelope")),
            }
        }

        /// Bytes received so far.
        pub fn received(&self) -> u64 {
            self.received
        }
    }
}
