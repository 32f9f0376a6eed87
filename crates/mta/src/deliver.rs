//! The delivery loop: takes due messages from the queue and hands each recipient
//! to the transport its domain routes to (`routing`): an MDA over gRPC
//! `Delivery` (local domains by default), an LMTP server, a smarthost, or the
//! domain's MX (other domains by default); then records the outcome per
//! recipient: delivered, failed (bounce), or retry later with backoff.
//!
//! A store error after a delivery never causes a resend: the attempt's
//! outcome stays in memory (`unsaved`) and wins over the stored entry; the
//! loop retries saving it (not delivering it) until the save succeeds. Only a
//! restart in that window forgets it; the MDA's idempotency key (`key:id`)
//! still files a local message once, a remote MX may see it twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use facteur_daemon::Shutdown;
use facteur_daemon::logging::{addr, addrs, clean};
use facteur_daemon::metrics::{self, Outcome as Counted};
use facteur_daemon::smtp_client::{SmtpClient, SmtpClientError, Timeouts};
use facteur_daemon::trace::now_unix;
use facteur_daemon::transcript::{Proto, Recording, Transcripts};
use facteur_protocol::address::{ForwardPath, Mailbox, ReversePath};
use facteur_protocol::smtp::command::{Body, Command, MailParams};
use facteur_protocol::smtp::reply::Reply;
use facteur_rpc::delivery::delivery_client::DeliveryClient;
use facteur_rpc::delivery::{DeliverRequest, DeliveryEnvelope, deliver_request};
use facteur_rpc::relay::MessageEnd;
use facteur_rpc::replies;
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use tonic::transport::Channel;

use crate::bounce;
use crate::config::MtaConfig;
use crate::dns::{DnsError, Exchanger, MxResolver};
use crate::queue::{Entry, Envelope, Queue, RcptStatus};
use crate::routing::{HostPort, Routing, Transport};

/// The outcome for one recipient of one attempt.
enum Outcome {
    Delivered(String),
    Failed(String),
    Deferred(String),
}

impl Outcome {
    /// The reply text the outcome carries.
    fn text(&self) -> &str {
        match self {
            Outcome::Delivered(t) | Outcome::Failed(t) | Outcome::Deferred(t) => t,
        }
    }
}

fn outcome_of(reply: &Reply) -> Outcome {
    let text = format!("{} {}", reply.code(), reply.text().replace('\n', " "));
    let text = match reply.enhanced() {
        Some(e) if !text.contains(&e.to_string()) => {
            format!("{} {} {}", reply.code(), e, reply.text().replace('\n', " "))
        }
        _ => text,
    };
    if reply.is_positive() {
        Outcome::Delivered(text)
    } else if reply.is_permanent() {
        Outcome::Failed(text)
    } else {
        Outcome::Deferred(text)
    }
}

fn all_of(rcpts: &[String], outcome: impl Fn() -> Outcome) -> Vec<(String, Outcome)> {
    rcpts.iter().map(|r| (r.clone(), outcome())).collect()
}

/// No next hop found: bounce (the domain takes no mail) or try again later.
fn dns_failure(rcpts: &[String], e: DnsError) -> Vec<(String, Outcome)> {
    match e {
        DnsError::Permanent(e) => all_of(rcpts, || Outcome::Failed(format!("550 5.1.2 {e}"))),
        DnsError::Transient(e) => all_of(rcpts, || Outcome::Deferred(format!("451 4.4.3 {e}"))),
    }
}

pub struct Deliverer {
    pub queue: Queue,
    pub config: Arc<MtaConfig>,
    pub routing: Arc<Routing>,
    pub dns: MxResolver,
    pub tls: TlsConnector,
    /// Where each delivery attempt's dialogue (and DNS answers) is recorded.
    pub transcripts: Transcripts,
    in_flight: Mutex<HashSet<String>>,
    /// Attempts whose outcome could not be saved: `(entry, done)`. They are
    /// never delivered again from the stale stored state; the loop retries
    /// the save (update, or remove when done) instead.
    unsaved: Mutex<HashMap<String, (Entry, bool)>>,
}

impl Deliverer {
    pub fn new(
        queue: Queue,
        config: Arc<MtaConfig>,
        routing: Arc<Routing>,
        dns: MxResolver,
        tls: TlsConnector,
        transcripts: Transcripts,
    ) -> Self {
        Self {
            queue,
            config,
            routing,
            dns,
            tls,
            transcripts,
            in_flight: Mutex::new(HashSet::new()),
            unsaved: Mutex::new(HashMap::new()),
        }
    }

    /// Save an attempt's outcome: remove a finished entry, else update it. On
    /// failure the outcome is kept in memory (see the module header).
    async fn save(&self, entry: Entry, done: bool) -> bool {
        let result = if done {
            self.queue.remove(&entry.id).await
        } else {
            self.queue.update(&entry).await
        };
        let mut unsaved = self.unsaved.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                unsaved.remove(&entry.id);
                true
            }
            Err(e) => {
                tracing::error!(id = %entry.id, error = %e, "saving the queue entry failed; kept in memory");
                unsaved.insert(entry.id.clone(), (entry, done));
                false
            }
        }
    }

    /// Retry saving an outcome kept in memory; true if `id` had one.
    async fn retry_save(&self, id: &str) -> bool {
        let kept = self
            .unsaved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned();
        match kept {
            Some((entry, done)) => {
                self.save(entry, done).await;
                true
            }
            None => false,
        }
    }

    /// Run until shutdown: deliver what is due, then sleep until the next due
    /// time or a new message arrives.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let limit = Arc::new(Semaphore::new(self.config.queue.concurrency.max(1)));
        let tracker = tokio_util::task::TaskTracker::new();
        loop {
            let now = now_unix();
            match self
                .queue
                .due(now, self.config.queue.concurrency.max(1) * 4)
                .await
            {
                Ok(due) => {
                    for listed in due {
                        if self.retry_save(&listed.id).await {
                            continue;
                        }
                        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
                            return;
                        };
                        let fresh = self
                            .in_flight
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(listed.id.clone());
                        if !fresh {
                            continue;
                        }
                        // The list may be stale by now (waiting for a permit lets other
                        // attempts finish): work from the queue's current record only.
                        let entry = match self.queue.get(&listed.id).await {
                            Ok(Some(e)) if !e.held && e.next_attempt <= now_unix() => e,
                            other => {
                                if let Err(e) = other {
                                    tracing::error!(error = %e, "reading a queue entry failed");
                                }
                                self.in_flight
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .remove(&listed.id);
                                continue;
                            }
                        };
                        let me = Arc::clone(&self);
                        let span = tracing::info_span!("deliver", id = %entry.id);
                        tracker.spawn(tracing::Instrument::instrument(
                            async move {
                                let id = entry.id.clone();
                                me.attempt(entry).await;
                                me.in_flight
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .remove(&id);
                                drop(permit);
                                me.queue.kick();
                            },
                            span,
                        ));
                    }
                }
                Err(e) => tracing::error!(error = %e, "reading the queue failed"),
            }
            let wait = match self.queue.next_due().await {
                Ok(Some(t)) if t > now => Duration::from_secs((t - now).clamp(1, 60) as u64),
                Ok(Some(_)) => Duration::from_secs(1),
                _ => Duration::from_secs(60),
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.queue.kicked() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracker.close();
        // Attempts in flight end on their own timeouts; their state is saved per
        // attempt, so stopping now loses nothing.
        let _ = tokio::time::timeout(Duration::from_secs(10), tracker.wait()).await;
    }

    /// One delivery attempt for every pending recipient of `entry`.
    async fn attempt(&self, mut entry: Entry) {
        if !self.queue.spooled(&entry).await {
            // The spool file goes first when a message is removed: this one
            // was finished and only its index entry is left.
            tracing::info!(id = %entry.id, "spool file gone: removing the entry");
            self.save(entry, true).await;
            return;
        }
        // One delivery per transport; MX needs a lookup per domain, the other
        // transports take recipients of any domain in one go.
        let mut by_route: BTreeMap<(Transport, String), Vec<String>> = BTreeMap::new();
        for r in entry
            .rcpts
            .iter()
            .filter(|r| r.status == RcptStatus::Pending)
        {
            let domain = r
                .addr
                .rsplit_once('@')
                .map_or("", |(_, d)| d)
                .to_ascii_lowercase();
            let transport = self
                .routing
                .routes
                .route(&domain, self.config.is_local(&domain));
            let scope = if transport == Transport::Mx {
                domain
            } else {
                String::new()
            };
            by_route
                .entry((transport, scope))
                .or_default()
                .push(r.addr.clone());
        }
        let mut results: Vec<(String, Outcome, String)> = Vec::new();
        for ((transport, domain), rcpts) in by_route {
            let start = std::time::Instant::now();
            let (relay, outcomes) = self.deliver_via(&entry, &transport, &domain, &rcpts).await;
            metrics::delivery(start.elapsed());
            results.extend(outcomes.into_iter().map(|(a, o)| (a, o, relay.clone())));
        }
        // One line per recipient and attempt, as Postfix's `to=<…>, relay=…,
        // delay=…, status=…`; `delay` is the seconds since the message was queued.
        let delay = now_unix().saturating_sub(entry.created);
        let attempt = entry.attempts + 1;
        for (rcpt, outcome, relay) in results {
            let Some(r) = entry.rcpts.iter_mut().find(|r| r.addr == rcpt) else {
                continue;
            };
            let to = addr(&rcpt);
            match outcome {
                Outcome::Delivered(reply) => {
                    tracing::info!(id = %entry.id, %to, %relay, delay, attempt, status = %"sent", reply = %clean(&reply), "delivered");
                    metrics::messages(Counted::Delivered, 1);
                    r.status = RcptStatus::Delivered { reply };
                }
                Outcome::Failed(reply) => {
                    tracing::info!(id = %entry.id, %to, %relay, delay, attempt, status = %"bounced", reply = %clean(&reply), "failed");
                    metrics::messages(Counted::Bounced, 1);
                    r.status = RcptStatus::Failed { reply };
                }
                Outcome::Deferred(reply) => {
                    tracing::info!(id = %entry.id, %to, %relay, delay, attempt, status = %"deferred", reply = %clean(&reply), "deferred");
                    metrics::messages(Counted::Deferred, 1);
                    r.last_error = reply;
                }
            }
        }
        let now = now_unix();
        if !entry.is_done() && now - entry.created > self.config.queue.max_age_secs as i64 {
            for r in entry
                .rcpts
                .iter_mut()
                .filter(|r| r.status == RcptStatus::Pending)
            {
                metrics::messages(Counted::Bounced, 1);
                r.status = RcptStatus::Failed {
                    reply: format!("delivery time expired: {}", r.last_error),
                };
            }
        }
        // Done, and the bounce (if any) safely queued: only then may it go. A
        // failed bounce keeps the entry for the next attempt (the bounce's key
        // makes the retry queue it once).
        if entry.is_done() && self.bounce(&entry).await {
            self.save(entry, true).await;
            return;
        }
        entry.attempts += 1;
        let schedule = &self.config.queue.retry_secs;
        let idx = (entry.attempts as usize).saturating_sub(1);
        let delay = schedule
            .get(idx)
            .or(schedule.last())
            .copied()
            .unwrap_or(300);
        entry.next_attempt = now + delay as i64;
        self.save(entry, false).await;
    }

    /// Queue a DSN for the failed recipients (never for a bounce: RFC 5321 §6.1).
    /// False if it could not be queued.
    async fn bounce(&self, entry: &Entry) -> bool {
        let failures: Vec<bounce::Failure<'_>> = entry
            .rcpts
            .iter()
            .filter_map(|r| match &r.status {
                RcptStatus::Failed { reply } => Some(bounce::Failure {
                    rcpt: &r.addr,
                    reply,
                }),
                _ => None,
            })
            .collect();
        if failures.is_empty() || entry.mail_from.is_empty() {
            return true;
        }
        let headers = self.queue.headers(entry).await;
        let message = bounce::dsn(
            &self.config.hostname,
            &entry.id,
            &entry.mail_from,
            entry.created,
            &failures,
            &headers,
        );
        let result = async {
            // The returned headers are body text here (text/rfc822-headers): 8-bit
            // at most; only a UTF-8 recipient address needs SMTPUTF8.
            let envelope = Envelope {
                key: Some(format!("bounce-{}", entry.id)),
                mail_from: String::new(),
                rcpts: vec![entry.mail_from.clone()],
                smtputf8: !entry.mail_from.is_ascii(),
                eight_bit: !message.is_ascii(),
                created: 0,
            };
            let mut w = self.queue.writer(u64::MAX, envelope).await?;
            w.write(&message).await?;
            self.queue.commit(w).await
        }
        .await;
        match result {
            Ok((id, _)) => {
                tracing::info!(id = %entry.id, bounce = %id, "bounce queued");
                true
            }
            Err(e) => {
                tracing::error!(id = %entry.id, error = %e, "queueing the bounce failed");
                false
            }
        }
    }

    /// The one dispatch on the transport (`domain` matters for `mx:` only).
    async fn deliver_via(
        &self,
        entry: &Entry,
        transport: &Transport,
        domain: &str,
        rcpts: &[String],
    ) -> (String, Vec<(String, Outcome)>) {
        tracing::info!(id = %entry.id, %transport, rcpts = %addrs(rcpts), "delivering");
        let (relay, outcomes) = match transport {
            Transport::Grpc(url) => {
                let relay = format!("grpc:{}", url.as_deref().unwrap_or(&self.config.mda.url));
                match self.routing.delivery(url.as_deref()) {
                    Some(mda) => {
                        let outcomes = self.deliver_grpc(mda, entry, rcpts, &relay).await;
                        (Some(relay), outcomes)
                    }
                    None => (
                        Some(relay),
                        all_of(rcpts, || {
                            Outcome::Deferred("451 4.3.0 no client for this transport".into())
                        }),
                    ),
                }
            }
            Transport::Lmtp(hop) => self.deliver_host(entry, hop, rcpts, true).await,
            Transport::Smtp(hop) => self.deliver_host(entry, hop, rcpts, false).await,
            Transport::Mx => self.deliver_mx(entry, domain, rcpts).await,
        };
        (relay.unwrap_or_else(|| transport.to_string()), outcomes)
    }

    /// Hand the message to an MDA over gRPC, streamed from the spool.
    async fn deliver_grpc(
        &self,
        mda: DeliveryClient<Channel>,
        entry: &Entry,
        rcpts: &[String],
        relay: &str,
    ) -> Vec<(String, Outcome)> {
        let mut rec = self
            .start_record(entry, Proto::Smtp, "grpc-out", relay)
            .await;
        if let Some(rec) = rec.as_mut() {
            let to: Vec<String> = rcpts.iter().map(|r| format!("<{r}>")).collect();
            rec.note(&format!(
                "gRPC Delivery.Deliver → {relay}: key {}:{}, MAIL FROM:<{}>, RCPT TO:{} ({} octets)",
                entry.key,
                entry.id,
                entry.mail_from,
                to.join(","),
                entry.size
            ));
        }
        let outcomes = self.deliver_grpc_call(mda, entry, rcpts).await;
        if let Some(mut rec) = rec {
            for (rcpt, outcome) in &outcomes {
                rec.note(&format!("gRPC reply ← <{rcpt}>: {}", outcome.text()));
            }
            rec.finish();
        }
        outcomes
    }

    /// A transcript record for one attempt at `entry`, tagged with its queue ID
    /// and Message-ID (read from the spooled header).
    async fn start_record(
        &self,
        entry: &Entry,
        proto: Proto,
        kind: &str,
        peer: &str,
    ) -> Option<Recording> {
        let mut rec = self
            .transcripts
            .start(proto, kind, peer, &self.config.hostname)?;
        rec.queue_id(&entry.id);
        let head = self.queue.headers(entry).await;
        if let Some(id) = facteur_protocol::transcript::message_id(&head) {
            rec.message_id(&id);
            rec.header_bytes(&head);
        }
        Some(rec)
    }

    async fn deliver_grpc_call(
        &self,
        mda: DeliveryClient<Channel>,
        entry: &Entry,
        rcpts: &[String],
    ) -> Vec<(String, Outcome)> {
        let all = |o: &dyn Fn() -> Outcome| rcpts.iter().map(|r| (r.clone(), o())).collect();
        let mut file = match self.queue.open_message(entry).await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(id = %entry.id, error = %e, "spool file missing");
                return all(&|| Outcome::Deferred("451 4.3.0 spool file unreadable".into()));
            }
        };
        let envelope = DeliverRequest {
            part: Some(deliver_request::Part::Envelope(DeliveryEnvelope {
                message_key: format!("{}:{}", entry.key, entry.id),
                mail_from: entry.mail_from.clone(),
                rcpt_to: rcpts.to_vec(),
            })),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let _ = tx.send(envelope).await;
        tokio::spawn(async move {
            let mut buf = vec![0u8; facteur_rpc::CHUNK_SIZE];
            let mut size = 0u64;
            loop {
                let part = match file.read(&mut buf).await {
                    // Only a clean end of file sends the end marker; on a read
                    // error the stream just stops and the MDA files nothing.
                    Ok(0) => deliver_request::Part::End(MessageEnd { size }),
                    Ok(n) => {
                        size += n as u64;
                        deliver_request::Part::Chunk(buf[..n].to_vec())
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reading the spool file failed");
                        return;
                    }
                };
                let last = matches!(part, deliver_request::Part::End(_));
                if tx.send(DeliverRequest { part: Some(part) }).await.is_err() || last {
                    return;
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        match mda.clone().deliver(stream).await {
            Ok(reply) => {
                let results = reply.into_inner().results;
                rcpts
                    .iter()
                    .map(|rcpt| {
                        let outcome = results
                            .iter()
                            .find(|r| &r.rcpt_to == rcpt)
                            .and_then(|r| r.reply.as_ref())
                            .map_or_else(
                                || Outcome::Deferred("451 4.3.0 no result from the MDA".into()),
                                |r| outcome_of(&replies::to_reply(r)),
                            );
                        (rcpt.clone(), outcome)
                    })
                    .collect()
            }
            Err(status) => {
                let reply = replies::from_status("Delivery.Deliver", &status);
                let text = format!("{} {}", reply.code(), reply.text());
                all(&|| Outcome::Deferred(text.clone()))
            }
        }
    }

    /// Relay to the domain's MX hosts over SMTP, most preferred first.
    async fn deliver_mx(
        &self,
        entry: &Entry,
        domain: &str,
        rcpts: &[String],
    ) -> (Option<String>, Vec<(String, Outcome)>) {
        // RFC 5321 §5.1: an address literal is the host to connect to, no DNS.
        let literal = domain
            .starts_with('[')
            .then(|| facteur_protocol::address::AddressLiteral::parse(domain));
        let exchangers = match literal {
            Some(Ok(lit)) => Ok(vec![Exchanger {
                host: lit.ip().to_string(),
                addrs: vec![lit.ip()],
            }]),
            Some(Err(e)) => Err(DnsError::Permanent(format!(
                "bad address literal {domain}: {e}"
            ))),
            None => self.dns.exchangers(domain).await,
        };
        let asked = if literal.is_some() {
            format!("no DNS: {domain} is an address literal (RFC 5321 §5.1)")
        } else {
            format!("DNS ? MX {domain} (then A/AAAA of each exchanger)")
        };
        // Internal addresses only where allowed (`relay.allow_networks`): a
        // user or a DNS zone must not aim the MTA into the local network.
        let mut refused = Vec::new();
        let exchangers = exchangers.map(|x| {
            x.into_iter()
                .filter_map(|mut m| {
                    m.addrs.retain(|ip| {
                        let ok = self.routing.may_connect(*ip);
                        if !ok {
                            refused.push(format!("{} [{ip}]", m.host));
                        }
                        ok
                    });
                    (!m.addrs.is_empty()).then_some(m)
                })
                .collect::<Vec<_>>()
        });
        if let Ok(x) = &exchangers
            && x.is_empty()
            && !refused.is_empty()
        {
            let why = format!(
                "550 5.7.1 {domain} leads only to internal addresses ({}), not relayed (relay.allow_networks)",
                refused.join(", ")
            );
            tracing::info!(id = %entry.id, domain = %clean(domain), refused = %clean(&refused.join(", ")), "internal destination refused");
            if let Some(mut rec) = self
                .start_record(entry, Proto::Smtp, "smtp-out", domain)
                .await
            {
                rec.note(&asked);
                rec.note(&format!("policy ! {why}"));
                rec.finish();
            }
            return (None, all_of(rcpts, || Outcome::Failed(why.clone())));
        }
        match exchangers {
            Ok(x) => {
                let answer: Vec<String> = x
                    .iter()
                    .map(|m| {
                        let ips: Vec<String> = m.addrs.iter().map(ToString::to_string).collect();
                        format!("{} [{}]", m.host, ips.join(", "))
                    })
                    .collect();
                let notes = [asked, format!("DNS ! {}", answer.join("; "))];
                self.deliver_to(entry, &x, self.config.relay.port, rcpts, false, &notes)
                    .await
            }
            Err(e) => {
                if let Some(mut rec) = self
                    .start_record(entry, Proto::Smtp, "smtp-out", domain)
                    .await
                {
                    rec.note(&asked);
                    rec.note(&format!("DNS ! {e}"));
                    rec.finish();
                }
                (None, dns_failure(rcpts, e))
            }
        }
    }

    /// Deliver to one configured host (`lmtp:` or `smtp:` transport), no MX lookup.
    async fn deliver_host(
        &self,
        entry: &Entry,
        hop: &HostPort,
        rcpts: &[String],
        lmtp: bool,
    ) -> (Option<String>, Vec<(String, Outcome)>) {
        let addrs = match hop.host.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(vec![ip]),
            Err(_) => self.dns.addresses(&hop.host).await,
        };
        match addrs {
            Ok(addrs) => {
                let host = [Exchanger {
                    host: hop.host.clone(),
                    addrs,
                }];
                let notes = [format!(
                    "transport: {} {}:{}",
                    if lmtp { "lmtp" } else { "smtp" },
                    hop.host,
                    hop.port
                )];
                self.deliver_to(entry, &host, hop.port, rcpts, lmtp, &notes)
                    .await
            }
            Err(e) => (None, dns_failure(rcpts, e)),
        }
    }

    /// Try each address of each host in turn until one takes the transaction;
    /// each recipient's reply becomes its outcome.
    async fn deliver_to(
        &self,
        entry: &Entry,
        hosts: &[Exchanger],
        port: u16,
        rcpts: &[String],
        lmtp: bool,
        notes: &[String],
    ) -> (Option<String>, Vec<(String, Outcome)>) {
        let mut last = String::from("451 4.4.1 no exchanger answered");
        for mx in hosts {
            for ip in &mx.addrs {
                let addr = SocketAddr::new(*ip, port);
                // Postfix's form: `mail.lyon.test[127.0.0.3]:2525`.
                let relay = format!("{}[{ip}]:{port}", mx.host);
                match self
                    .relay_recorded(entry, &mx.host, addr, rcpts, lmtp, notes)
                    .await
                {
                    Ok(replies) => {
                        let outcomes = rcpts
                            .iter()
                            .cloned()
                            .zip(replies.iter().map(outcome_of))
                            .collect();
                        return (Some(relay), outcomes);
                    }
                    Err(e) if !e.is_transient() => {
                        // The server's own reply, so the bounce carries its status code.
                        let text = match &e {
                            SmtpClientError::Refused { reply, .. } => reply.replace('\n', " "),
                            other => other.to_string(),
                        };
                        return (Some(relay), all_of(rcpts, || Outcome::Failed(text.clone())));
                    }
                    Err(e) => {
                        tracing::info!(id = %entry.id, host = %clean(&mx.host), %addr, lmtp, error = %clean(&e.to_string()), "next hop failed");
                        last = format!("451 4.4.1 {}: {e}", mx.host);
                    }
                }
            }
        }
        (None, all_of(rcpts, || Outcome::Deferred(last.clone())))
    }

    /// [`Deliverer::relay_via`], with the attempt's transcript recorded.
    async fn relay_recorded(
        &self,
        entry: &Entry,
        host: &str,
        addr: SocketAddr,
        rcpts: &[String],
        lmtp: bool,
        notes: &[String],
    ) -> Result<Vec<Reply>, SmtpClientError> {
        let (proto, kind) = if lmtp {
            (Proto::Lmtp, "lmtp-out")
        } else {
            (Proto::Smtp, "smtp-out")
        };
        let peer = format!("{host}[{}]:{}", addr.ip(), addr.port());
        let tap = self
            .start_record(entry, proto, kind, &peer)
            .await
            .map(|mut rec| {
                for n in notes {
                    rec.note(n);
                }
                rec.note(&format!("connect to {addr}"));
                Arc::new(std::sync::Mutex::new(rec))
            });
        let result = self
            .relay_via(entry, host, addr, rcpts, lmtp, tap.clone())
            .await;
        if let Some(rec) = tap.and_then(|t| Arc::try_unwrap(t).ok()) {
            let mut rec = rec
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(e) = &result {
                rec.note(&format!("attempt failed: {e}"));
            }
            rec.finish();
        }
        result
    }

    async fn relay_via(
        &self,
        entry: &Entry,
        host: &str,
        addr: SocketAddr,
        rcpts: &[String],
        lmtp: bool,
        tap: Option<facteur_daemon::smtp_client::Tap>,
    ) -> Result<Vec<Reply>, SmtpClientError> {
        let timeouts = Timeouts {
            command: Duration::from_secs(self.config.relay.command_timeout_secs.max(1)),
            tls_handshake: Duration::from_secs(self.config.relay.tls_handshake_timeout_secs.max(1)),
            ..Timeouts::default()
        };
        let mut client =
            SmtpClient::connect_from(addr, self.config.relay.source_address, timeouts).await?;
        if let Some(tap) = tap {
            client.record(tap);
        }
        client.hello(&self.config.hostname, lmtp).await?;
        // The same TLS policy to every SMTP next hop, MX or smarthost; LMTP
        // (usually a hop on the same host) uses TLS when offered, never requires it.
        if client.supports("STARTTLS") {
            client.starttls(&self.tls, host).await?;
            client.hello(&self.config.hostname, lmtp).await?;
        } else if self.config.relay.require_tls && !lmtp {
            client.quit().await;
            return Err(SmtpClientError::Malformed(format!(
                "{host} does not offer STARTTLS and TLS is required"
            )));
        }
        // RFC 6531 §3.4: SMTPUTF8 is needed when the envelope or the header really
        // holds UTF-8, not merely because the sender declared it.
        let utf8 = !entry.mail_from.is_ascii()
            || rcpts.iter().any(|r| !r.is_ascii())
            || (entry.smtputf8 && !self.queue.headers(entry).await.is_ascii());
        if utf8 && !client.supports("SMTPUTF8") {
            // RFC 6531 §3.4: never downgrade silently; the sender is told.
            client.quit().await;
            return Err(SmtpClientError::Refused {
                stage: "MAIL",
                reply: format!("553 5.6.7 {host} does not support SMTPUTF8"),
                code: 553,
            });
        }
        let from = if entry.mail_from.is_empty() {
            ReversePath::Null
        } else {
            match Mailbox::parse(&entry.mail_from) {
                Ok(m) => ReversePath::Mailbox(m),
                Err(e) => {
                    return Err(SmtpClientError::Refused {
                        stage: "MAIL",
                        reply: format!("550 5.1.7 bad sender address: {e}"),
                        code: 550,
                    });
                }
            }
        };
        let params = MailParams {
            size: client.supports("SIZE").then_some(entry.size),
            smtputf8: utf8,
            // RFC 6152: declare 8-bit content when the next hop takes it.
            body: (entry.eight_bit && client.supports("8BITMIME")).then_some(Body::EightBitMime),
            ..MailParams::default()
        };
        let mail = Command::Mail { from, params };
        let mut commands = Vec::with_capacity(rcpts.len());
        for r in rcpts {
            let to = Mailbox::parse(r).map_err(|e| SmtpClientError::Refused {
                stage: "RCPT",
                reply: format!("550 5.1.3 bad recipient address: {e}"),
                code: 550,
            })?;
            commands.push(Command::Rcpt {
                to: ForwardPath::Mailbox(to),
                params: Vec::new(),
            });
        }
        let file = self
            .queue
            .open_message(entry)
            .await
            .map_err(|e| SmtpClientError::Io(std::io::Error::other(e.to_string())))?;
        let replies = client.transaction(&mail, &commands, file, lmtp).await?;
        client.quit().await;
        Ok(replies)
    }
}
