//! `QueueAdmin` (proto/admin.proto): list, show, flush, delete, hold and release
//! queue entries of the running MTA; and the `postqueue -p` rendering of a list
//! that `facteur-mta queue list` prints. Privileged: served on the MTA's own
//! gRPC listener only.

use facteur_rpc::admin::queue_admin_server::QueueAdmin;
use facteur_rpc::admin::{
    FlushReply, FlushRequest, ListQueueReply, ListQueueRequest, QueueEntry, QueueIdRequest,
    QueuedRecipient, RecipientState, ShowReply,
};
use tonic::{Request, Response, Status};

use crate::queue::{Entry, Queue, QueueError, RcptStatus};

/// The service over the MTA's queue.
pub struct QueueAdminService {
    pub queue: Queue,
}

fn status(e: QueueError) -> Status {
    tracing::error!(error = %e, "queue admin");
    Status::unavailable(format!("queue: {e}"))
}

fn not_found(id: &str) -> Status {
    Status::not_found(format!("{id}: no such queue entry"))
}

/// The wire form of an entry.
pub fn to_wire(e: &Entry) -> QueueEntry {
    QueueEntry {
        id: e.id.clone(),
        arrival: e.created,
        size: e.size,
        sender: e.mail_from.clone(),
        recipients: e
            .rcpts
            .iter()
            .map(|r| {
                let (state, last) = match &r.status {
                    RcptStatus::Pending => (RecipientState::Pending, r.last_error.clone()),
                    RcptStatus::Delivered { reply } => (RecipientState::Delivered, reply.clone()),
                    RcptStatus::Failed { reply } => (RecipientState::Failed, reply.clone()),
                };
                QueuedRecipient {
                    address: r.addr.clone(),
                    state: state.into(),
                    last_reply: last,
                }
            })
            .collect(),
        next_attempt: e.next_attempt,
        held: e.held,
        attempts: e.attempts,
    }
}

impl QueueAdminService {
    async fn entry(&self, id: &str) -> Result<Entry, Status> {
        self.queue
            .get(id)
            .await
            .map_err(status)?
            .ok_or_else(|| not_found(id))
    }

    async fn set_held(&self, id: &str, held: bool) -> Result<Response<QueueEntry>, Status> {
        let e = self
            .queue
            .set_held(id, held)
            .await
            .map_err(status)?
            .ok_or_else(|| not_found(id))?;
        tracing::info!(%id, held, "queue entry {}", if held { "held" } else { "released" });
        Ok(Response::new(to_wire(&e)))
    }
}

#[tonic::async_trait]
impl QueueAdmin for QueueAdminService {
    async fn list(&self, _: Request<ListQueueRequest>) -> Result<Response<ListQueueReply>, Status> {
        let mut entries = self.queue.list().await.map_err(status)?;
        entries.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(Response::new(ListQueueReply {
            entries: entries.iter().map(to_wire).collect(),
        }))
    }

    async fn show(&self, request: Request<QueueIdRequest>) -> Result<Response<ShowReply>, Status> {
        let e = self.entry(&request.into_inner().id).await?;
        let headers = self.queue.headers(&e).await;
        Ok(Response::new(ShowReply {
            entry: Some(to_wire(&e)),
            headers,
        }))
    }

    async fn flush(&self, request: Request<FlushRequest>) -> Result<Response<FlushReply>, Status> {
        let id = request.into_inner().id;
        let id = (!id.is_empty()).then_some(id);
        let (flushed, held) = self
            .queue
            .flush(id.as_deref())
            .await
            .map_err(status)?
            .ok_or_else(|| not_found(id.as_deref().unwrap_or_default()))?;
        tracing::info!(
            id = id.as_deref().unwrap_or("*"),
            flushed,
            held,
            "queue flushed"
        );
        Ok(Response::new(FlushReply { flushed, held }))
    }

    async fn delete(
        &self,
        request: Request<QueueIdRequest>,
    ) -> Result<Response<QueueEntry>, Status> {
        let id = request.into_inner().id;
        let e = self.entry(&id).await?;
        self.queue.remove(&id).await.map_err(status)?;
        tracing::info!(%id, "queue entry deleted by the operator");
        Ok(Response::new(to_wire(&e)))
    }

    async fn hold(&self, request: Request<QueueIdRequest>) -> Result<Response<QueueEntry>, Status> {
        self.set_held(&request.into_inner().id, true).await
    }

    async fn release(
        &self,
        request: Request<QueueIdRequest>,
    ) -> Result<Response<QueueEntry>, Status> {
        self.set_held(&request.into_inner().id, false).await
    }
}

/// `postqueue -p`'s layout: a header line, per entry the id (with `!` when
/// held), size, arrival time and sender, then its pending recipients indented,
/// each deferred one under its `(reason)`; a total line. Times in UTC.
pub fn render_list(entries: &[QueueEntry]) -> String {
    use std::fmt::Write;
    if entries.is_empty() {
        return "Mail queue is empty\n".to_owned();
    }
    let mut out =
        String::from("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
    let mut bytes = 0u64;
    // Ids are longer than Postfix's: the column grows so sizes stay aligned.
    let width = entries
        .iter()
        .map(|e| e.id.len())
        .max()
        .unwrap_or(0)
        .max(10);
    for e in entries {
        bytes += e.size;
        let id = format!("{:<width$}{}", e.id, if e.held { "!" } else { " " });
        let sender = if e.sender.is_empty() {
            "MAILER-DAEMON"
        } else {
            &e.sender
        };
        let _ = writeln!(
            out,
            "{id:<11} {:>8} {} {sender}",
            e.size,
            arrival(e.arrival)
        );
        for r in &e.recipients {
            if r.state() != RecipientState::Pending {
                continue;
            }
            if !r.last_reply.is_empty() {
                let _ = writeln!(out, "{:>20}({})", "", r.last_reply);
            }
            let _ = writeln!(out, "{:>41}{}", "", r.address);
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "-- {} Kbytes in {} Request{}.",
        bytes.div_ceil(1024),
        entries.len(),
        if entries.len() == 1 { "" } else { "s" }
    );
    out
}

/// `Thu Jan  1 00:00:00` (the 20 characters of postqueue's arrival column), UTC.
fn arrival(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    format!(
        "{} {} {day:>2} {:02}:{:02}:{:02}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rcpt(addr: &str, state: RecipientState, last: &str) -> QueuedRecipient {
        QueuedRecipient {
            address: addr.into(),
            state: state.into(),
            last_reply: last.into(),
        }
    }

    #[test]
    fn arrival_times_are_postqueue_shaped() {
        assert_eq!(arrival(0), "Thu Jan  1 00:00:00");
        // 2024-02-29 13:05:09 UTC, a Thursday.
        assert_eq!(arrival(1_709_211_909), "Thu Feb 29 13:05:09");
        assert_eq!(arrival(1_735_689_599), "Tue Dec 31 23:59:59");
    }

    #[test]
    fn an_empty_queue_says_so() {
        assert_eq!(render_list(&[]), "Mail queue is empty\n");
    }

    #[test]
    fn the_list_is_shaped_like_postqueue_p() {
        let entries = [
            QueueEntry {
                id: "0065A1B2C3D4E5F6A7".into(),
                arrival: 0,
                size: 1500,
                sender: "pierre@paris.test".into(),
                recipients: vec![
                    rcpt(
                        "andre@lyon.test",
                        RecipientState::Pending,
                        "451 4.4.1 refused",
                    ),
                    rcpt("x@lyon.test", RecipientState::Pending, ""),
                    rcpt("done@lyon.test", RecipientState::Delivered, "250 ok"),
                ],
                next_attempt: 60,
                held: false,
                attempts: 1,
            },
            QueueEntry {
                id: "B".into(),
                arrival: 0,
                size: 100,
                sender: String::new(),
                recipients: vec![rcpt("pierre@paris.test", RecipientState::Pending, "")],
                next_attempt: 0,
                held: true,
                attempts: 0,
            },
        ];
        let want = "\
-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
0065A1B2C3D4E5F6A7      1500 Thu Jan  1 00:00:00 pierre@paris.test
                    (451 4.4.1 refused)
                                         andre@lyon.test
                                         x@lyon.test

B                 !      100 Thu Jan  1 00:00:00 MAILER-DAEMON
                                         pierre@paris.test

-- 2 Kbytes in 2 Requests.
";
        assert_eq!(render_list(&entries), want);
    }
}
