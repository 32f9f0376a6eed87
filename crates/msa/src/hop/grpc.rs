//! The gRPC next hop: recipients checked with `Relay.CheckRecipient`, the message
//! streamed to `Relay.Submit`; 250 only once the MTA says it is durably queued.

use facteur_protocol::smtp::codes;
use facteur_protocol::smtp::command::Body;
use facteur_protocol::smtp::reply::Reply;
use facteur_rpc::relay::relay_client::RelayClient;
use facteur_rpc::relay::{
    Envelope, MessageEnd, RecipientQuery, SubmitReply, SubmitRequest, submit_request,
};
use facteur_rpc::replies;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use facteur_daemon::transcript::{Proto, Recording, Transcripts};

use super::{Begin, GrpcHop};

struct Transfer {
    tx: mpsc::Sender<SubmitRequest>,
    call: JoinHandle<Result<tonic::Response<SubmitReply>, tonic::Status>>,
    sent: u64,
    /// The hand-over's transcript record, and the message's first bytes (for its
    /// Message-ID).
    rec: Option<Box<(Recording, Vec<u8>)>>,
}

/// How much of the message is kept to find its Message-ID.
const HEAD: usize = 16 * 1024;

pub struct Session {
    relay: RelayClient<Channel>,
    url: String,
    transcripts: Transcripts,
    transfer: Option<Transfer>,
}

impl Session {
    pub(super) fn new(hop: &GrpcHop) -> Self {
        Self {
            relay: hop.relay.clone(),
            url: hop.url.clone(),
            transcripts: hop.transcripts.clone(),
            transfer: None,
        }
    }

    pub(super) async fn rcpt(&mut self, rcpt: &str) -> Reply {
        let query = RecipientQuery {
            rcpt_to: rcpt.to_owned(),
        };
        match self.relay.clone().check_recipient(query).await {
            Ok(r) => r
                .into_inner()
                .reply
                .as_ref()
                .map_or_else(codes::local_error, replies::to_reply),
            Err(status) => replies::from_status("Relay.CheckRecipient", &status),
        }
    }

    pub(super) async fn data_start(&mut self, b: &Begin<'_>) -> Reply {
        let envelope = Envelope {
            message_key: format!("msa-{}", b.id),
            mail_from: b.from.to_owned(),
            rcpt_to: b.rcpts.to_vec(),
            smtputf8: b.params.smtputf8,
            body: match b.params.body {
                Some(Body::EightBitMime) => "8BITMIME".into(),
                Some(Body::SevenBit) => "7BIT".into(),
                _ => String::new(),
            },
            authenticated_user: b.client.user.clone().unwrap_or_default(),
            client_helo: b.client.helo.clone(),
            client_addr: b.client.peer.ip().to_string(),
            size_hint: b.params.size.unwrap_or(0),
            submitter_host: b.hostname.to_owned(),
        };
        let (tx, rx) = mpsc::channel(8);
        let first = SubmitRequest {
            part: Some(submit_request::Part::Envelope(envelope)),
        };
        if tx.send(first).await.is_err() {
            return codes::local_error();
        }
        let rec = self
            .transcripts
            .start(Proto::Smtp, "grpc-out", &self.url, b.hostname)
            .map(|mut rec| {
                let to: Vec<String> = b.rcpts.iter().map(|r| format!("<{r}>")).collect();
                rec.note(&format!(
                    "gRPC Relay.Submit → {}: key msa-{}, MAIL FROM:<{}>, RCPT TO:{}",
                    self.url,
                    b.id,
                    b.from,
                    to.join(",")
                ));
                Box::new((rec, Vec::new()))
            });
        let mut relay = self.relay.clone();
        let call = tokio::spawn(async move {
            relay
                .submit(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        });
        self.transfer = Some(Transfer {
            tx,
            call,
            sent: 0,
            rec,
        });
        codes::start_data()
    }

    pub(super) async fn send(&mut self, bytes: &[u8]) {
        let Some(t) = self.transfer.as_mut() else {
            return;
        };
        if let Some((_, head)) = t.rec.as_deref_mut() {
            let room = HEAD.saturating_sub(head.len());
            head.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        for piece in bytes.chunks(facteur_rpc::CHUNK_SIZE) {
            t.sent += piece.len() as u64;
            let req = SubmitRequest {
                part: Some(submit_request::Part::Chunk(piece.to_vec())),
            };
            if t.tx.send(req).await.is_err() {
                // The call ended early; its error is reported at the end of data.
                return;
            }
        }
    }

    pub(super) async fn data_end(&mut self) -> Reply {
        let Some(t) = self.transfer.take() else {
            return codes::local_error();
        };
        // Only a complete message gets the end marker: the MTA queues nothing without it.
        let end = SubmitRequest {
            part: Some(submit_request::Part::End(MessageEnd { size: t.sent })),
        };
        let _ = t.tx.send(end).await;
        let Transfer {
            tx,
            call,
            rec,
            sent,
            ..
        } = t;
        drop(tx);
        let (reply, queue_id) = match call.await {
            Ok(Ok(r)) => {
                // The handler logs the submission, with this queue ID (from the reply).
                let r = r.into_inner();
                let reply = Reply::new(250, "2.0.0", &format!("Ok: queued as {}", r.queue_id));
                (reply, Some(r.queue_id))
            }
            Ok(Err(status)) => (replies::from_status("Relay.Submit", &status), None),
            Err(e) => {
                tracing::error!(error = %e, "submit task failed");
                (codes::local_error(), None)
            }
        };
        if let Some((mut rec, head)) = rec.map(|b| *b) {
            if let Some(id) = facteur_protocol::transcript::message_id(&head) {
                rec.note(&format!(
                    "gRPC stream: {sent} octets of message, Message-ID: {id}"
                ));
                rec.message_id(&id);
                rec.header_bytes(&head);
            }
            if let Some(q) = &queue_id {
                rec.queue_id(q);
            }
            rec.note(&format!(
                "gRPC reply ← {}: {} {}",
                self.url,
                reply.code(),
                reply.text()
            ));
            rec.finish();
        }
        reply
    }

    pub(super) fn reset(&mut self) {
        if let Some(t) = self.transfer.take() {
            // Dropping the call cancels the stream: the MTA queues nothing.
            t.call.abort();
        }
    }
}
