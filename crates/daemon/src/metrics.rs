//! The metrics every agent records (names fixed by issue 18) and the recorder
//! behind them: `metrics` macros here, `metrics-exporter-prometheus` rendering
//! them; [`crate::metrics_http`] serves them.
//!
//! Every series carries the global label `agent` (msa, mta, mda, maa); the other
//! labels take a handful of fixed values (never a user name or an address), so
//! the number of series stays bounded. Until an agent installs the recorder
//! (`metrics_listen` set) every call here is a no-op.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// `{outcome}`: messages accepted/refused at intake, delivered/deferred/bounced per recipient.
pub const MESSAGES: &str = "facteur_messages_total";
/// Messages in the MTA's queue.
pub const QUEUE_MESSAGES: &str = "facteur_queue_messages";
/// Age of the oldest message in the MTA's queue.
pub const QUEUE_OLDEST: &str = "facteur_queue_oldest_seconds";
/// `{protocol}`: client sessions open (smtp, submission, lmtp, pop3, imap).
pub const SESSIONS: &str = "facteur_sessions_open";
/// `{result}`: password checks, success or failure.
pub const AUTH: &str = "facteur_auth_total";
/// How long a store operation took (filing a message, a `Mailbox` call).
pub const STORE_SECONDS: &str = "facteur_store_seconds";
/// `{part}`: bytes of the MDA's store on disk (`blobs` after each
/// collection; `metadata` and `blobs` at each `store check`).
pub const STORE_BYTES: &str = "facteur_store_bytes";
/// Blobs, and their bytes, removed by the MDA's collections.
pub const BLOBS_COLLECTED: &str = "facteur_blobs_collected_total";
pub const BLOB_BYTES_COLLECTED: &str = "facteur_blob_bytes_collected_total";
/// How long one delivery attempt took (MTA, per attempt).
pub const DELIVERY_SECONDS: &str = "facteur_delivery_seconds";

/// Histogram buckets, in seconds: a store call is milliseconds, a remote
/// delivery attempt up to minutes.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// What happened to a message (one per message at intake, one per recipient after).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Refused,
    Delivered,
    Deferred,
    Bounced,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Refused => "refused",
            Outcome::Delivered => "delivered",
            Outcome::Deferred => "deferred",
            Outcome::Bounced => "bounced",
        }
    }
}

/// Count `n` messages (or recipients) with `outcome`.
pub fn messages(outcome: Outcome, n: u64) {
    counter!(MESSAGES, "outcome" => outcome.as_str()).increment(n);
}

/// Count one password check.
pub fn auth(success: bool) {
    let result = if success { "success" } else { "failure" };
    counter!(AUTH, "result" => result).increment(1);
}

/// Record how long a store operation took since `start`.
pub fn store_since(start: Instant) {
    histogram!(STORE_SECONDS).record(start.elapsed().as_secs_f64());
}

/// Record how long one delivery attempt took.
pub fn delivery(took: Duration) {
    histogram!(DELIVERY_SECONDS).record(took.as_secs_f64());
}

/// Count what one blob collection removed, and the blob bytes left.
pub fn collected(removed: u64, removed_bytes: u64, kept_bytes: u64) {
    counter!(BLOBS_COLLECTED).increment(removed);
    counter!(BLOB_BYTES_COLLECTED).increment(removed_bytes);
    gauge!(STORE_BYTES, "part" => "blobs").set(kept_bytes as f64);
}

/// Set the store size gauges (from a full check).
pub fn store_bytes(metadata: u64, blobs: u64) {
    gauge!(STORE_BYTES, "part" => "metadata").set(metadata as f64);
    gauge!(STORE_BYTES, "part" => "blobs").set(blobs as f64);
}

/// Set the queue gauges: how many messages, and how old the oldest is.
pub fn queue(messages: usize, oldest: Duration) {
    gauge!(QUEUE_MESSAGES).set(messages as f64);
    gauge!(QUEUE_OLDEST).set(oldest.as_secs_f64());
}

/// One open session in [`SESSIONS`]; dropping it (however the connection ends,
/// its task aborted included) closes it.
#[derive(Debug)]
pub struct SessionGuard(&'static str);

impl SessionGuard {
    /// Open a session of the listener named `listener` (`pop3s` counts as pop3, ...).
    pub fn open(listener: &str) -> Self {
        let protocol = protocol_of(listener);
        gauge!(SESSIONS, "protocol" => protocol).increment(1.0);
        Self(protocol)
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        gauge!(SESSIONS, "protocol" => self.0).decrement(1.0);
    }
}

/// The `protocol` label of a listener: implicit-TLS ports count with their protocol.
fn protocol_of(listener: &str) -> &'static str {
    match listener {
        "smtp" => "smtp",
        "submission" | "submissions" => "submission",
        "lmtp" => "lmtp",
        "pop3" | "pop3s" => "pop3",
        "imap" | "imaps" => "imap",
        _ => "other",
    }
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the Prometheus recorder for `agent` (once per process; later calls
/// return the same handle) and describe the metrics.
pub fn install(agent: &'static str) -> Result<PrometheusHandle, BuildError> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .add_global_label("agent", agent)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)?
        .install_recorder()?;
    describe();
    // Messages and sessions show as 0 before the first event, so a scrape finds them.
    for outcome in [Outcome::Accepted, Outcome::Refused] {
        messages(outcome, 0);
    }
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        MESSAGES,
        "Messages by outcome: accepted/refused at intake, delivered/deferred/bounced per recipient"
    );
    describe_gauge!(QUEUE_MESSAGES, "Messages in the MTA queue");
    describe_gauge!(
        QUEUE_OLDEST,
        Unit::Seconds,
        "Age of the oldest message in the MTA queue"
    );
    describe_gauge!(SESSIONS, "Client sessions open, per protocol");
    describe_counter!(AUTH, "Password checks by result");
    describe_histogram!(
        STORE_SECONDS,
        Unit::Seconds,
        "Store operations: filing a message, a Mailbox call"
    );
    describe_histogram!(
        DELIVERY_SECONDS,
        Unit::Seconds,
        "Delivery attempts (one per destination and attempt)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_ports_count_with_their_protocol() {
        assert_eq!(protocol_of("submissions"), "submission");
        assert_eq!(protocol_of("pop3s"), "pop3");
        assert_eq!(protocol_of("imaps"), "imap");
        assert_eq!(protocol_of("smtp"), "smtp");
    }
}
