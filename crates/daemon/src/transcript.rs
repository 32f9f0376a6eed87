//! Transcript records: each agent's bounded record of what crossed the wire on
//! a connection (the sans-IO `facteur_protocol::transcript` makes the lines),
//! appended as one JSON object per line to the agent's transcript file by a
//! writer thread, and read back by `cargo xtask demo` and `facteur-mua trace`.
//!
//! Off by default (`[transcript] enabled`); the dev stack turns it on. Bounded
//! three ways: lines per record ([`Limits`]), records waiting for the writer (a
//! full queue drops the record and counts it, never blocks a session), and the
//! file (past `max_bytes` it becomes `FILE.1` and a new one starts). The file is
//! created 0600: it names users and peers.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

use facteur_protocol::transcript::Transcript;
pub use facteur_protocol::transcript::{Dir, Limits, Line, Proto};
use serde::{Deserialize, Serialize};

/// The `[transcript]` table every agent's config embeds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct TranscriptConfig {
    /// Keep a record of every connection (or one in `sample`).
    pub enabled: bool,
    /// The file (needed when `enabled`; kept apart from the queue and the store,
    /// whose directories belong to them).
    pub file: PathBuf,
    /// Record one connection in `sample` (1: all of them).
    pub sample: u64,
    /// Past this size the file is rotated to `FILE.1` (one old file is kept).
    pub max_bytes: u64,
}

impl Default for TranscriptConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            file: PathBuf::new(),
            sample: 1,
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

impl TranscriptConfig {
    /// The file the records go to.
    pub fn path(&self) -> std::io::Result<PathBuf> {
        if self.file.as_os_str().is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "transcript.enabled needs transcript.file",
            ));
        }
        Ok(self.file.clone())
    }
}

/// One connection (or one hand-over) as it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// `facteur-msa`, `facteur-mta`, ...
    pub agent: String,
    /// The agent's host name, e.g. `mail.paris.test`.
    pub host: String,
    /// What the connection was: `submission`, `smtp`, `lmtp`, `pop3`, `imap`,
    /// `smtp-out`, `lmtp-out`, `grpc-out`, ...
    pub kind: String,
    /// The other end (`ip:port`, or a URL for gRPC).
    pub peer: String,
    /// This end.
    pub local: String,
    /// When the connection started and ended, milliseconds since the Unix epoch.
    pub start_ms: u64,
    pub end_ms: u64,
    /// The messages that crossed (their Message-ID).
    pub message_ids: Vec<String>,
    /// The header of the message as it crossed here (each hop adds its own
    /// Received line; the envelope is in the lines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// Queue IDs this agent gave or used, when it knows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queue_ids: Vec<String>,
    pub lines: Vec<Line>,
    /// Lines left out (over the per-record limit).
    #[serde(default)]
    pub dropped: usize,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Records waiting for the writer thread.
const QUEUE: usize = 1024;

/// An agent's transcript sink; cheap to clone. [`Transcripts::off`] records nothing.
#[derive(Clone, Default)]
pub struct Transcripts {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    agent: String,
    host: String,
    sample: u64,
    seen: AtomicU64,
    limits: Limits,
    tx: SyncSender<Record>,
}

impl std::fmt::Debug for Transcripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcripts")
            .field("enabled", &self.inner.is_some())
            .finish()
    }
}

impl Transcripts {
    /// Records nothing.
    pub fn off() -> Self {
        Self::default()
    }

    /// The sink `config` asks for: off, or a writer thread appending to its file.
    pub fn open(config: &TranscriptConfig, agent: &str, host: &str) -> std::io::Result<Self> {
        if !config.enabled {
            return Ok(Self::off());
        }
        let path = config.path()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        // Fail now, at start, if the file cannot be written.
        drop(open_append(&path)?);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Record>(QUEUE);
        let max_bytes = config.max_bytes.max(4096);
        std::thread::Builder::new()
            .name("transcripts".into())
            .spawn(move || write_loop(&path, max_bytes, &rx))?;
        Ok(Self {
            inner: Some(Arc::new(Inner {
                agent: agent.to_owned(),
                host: host.to_owned(),
                sample: config.sample.max(1),
                seen: AtomicU64::new(0),
                limits: Limits::default(),
                tx,
            })),
        })
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Start recording a connection, if transcripts are on and it is sampled.
    pub fn start(
        &self,
        proto: Proto,
        kind: &str,
        peer: impl ToString,
        local: impl ToString,
    ) -> Option<Recording> {
        let inner = self.inner.as_ref()?;
        let n = inner.seen.fetch_add(1, Ordering::Relaxed);
        if n % inner.sample != 0 {
            return None;
        }
        Some(Recording {
            sink: Some(Arc::clone(inner)),
            agent: inner.agent.clone(),
            host: inner.host.clone(),
            kind: kind.to_owned(),
            peer: peer.to_string(),
            local: local.to_string(),
            start_ms: unix_ms(),
            queue_ids: Vec::new(),
            headers: Vec::new(),
            transcript: Transcript::new(proto, inner.limits),
        })
    }
}

/// One connection being recorded; [`Recording::finish`] stores it.
#[derive(Debug)]
pub struct Recording {
    /// Where [`Recording::finish`] sends it; none for a client's own transcript.
    sink: Option<Arc<Inner>>,
    agent: String,
    host: String,
    kind: String,
    peer: String,
    local: String,
    start_ms: u64,
    queue_ids: Vec<String>,
    /// Header lines known otherwise than from the wire (a gRPC hand-over).
    headers: Vec<String>,
    transcript: Transcript,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.agent)
    }
}

impl Recording {
    /// A transcript kept by the caller, not stored (`facteur-mua send --transcript`):
    /// end it with [`Recording::into_record`].
    pub fn detached(proto: Proto, agent: &str, kind: &str, peer: &str) -> Self {
        Self {
            sink: None,
            agent: agent.to_owned(),
            host: String::new(),
            kind: kind.to_owned(),
            peer: peer.to_owned(),
            local: String::new(),
            start_ms: unix_ms(),
            queue_ids: Vec::new(),
            headers: Vec::new(),
            transcript: Transcript::new(proto, Limits::default()),
        }
    }

    /// Bytes the client sent.
    pub fn client(&mut self, bytes: &[u8]) {
        self.transcript.client(bytes);
    }

    /// Bytes the server sent.
    pub fn server(&mut self, bytes: &[u8]) {
        self.transcript.server(bytes);
    }

    /// A line about what the agent did that did not cross this wire.
    pub fn note(&mut self, text: &str) {
        self.transcript.note(text);
    }

    /// A message this record concerns (by Message-ID), known from elsewhere than
    /// the wire (a gRPC hand-over).
    pub fn message_id(&mut self, id: &str) {
        self.transcript.message_id(id);
    }

    /// The message's header as it is handed over (the first bytes of the
    /// message), when no body crossed this record's wire.
    pub fn header_bytes(&mut self, head: &[u8]) {
        self.headers = facteur_protocol::transcript::header_lines(head, Limits::default().max_line);
    }

    /// A queue ID this connection's message has or got.
    pub fn queue_id(&mut self, id: &str) {
        if !self.queue_ids.iter().any(|q| q == id) {
            self.queue_ids.push(id.to_owned());
        }
    }

    /// Store the record (or drop it, counted, when the writer is behind).
    pub fn finish(mut self) {
        let Some(sink) = self.sink.take() else {
            return;
        };
        let record = self.into_record();
        match sink.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                ::metrics::counter!("facteur_transcripts_dropped_total").increment(1);
            }
        }
    }

    /// The record as it stands, ending the recording (nothing is stored).
    pub fn into_record(self) -> Record {
        let f = self.transcript.finish();
        let headers = if f.headers.is_empty() {
            self.headers
        } else {
            f.headers
        };
        Record {
            agent: self.agent,
            host: self.host,
            kind: self.kind,
            peer: self.peer,
            local: self.local,
            start_ms: self.start_ms,
            end_ms: unix_ms(),
            message_ids: f.message_ids,
            headers,
            queue_ids: self.queue_ids,
            lines: f.lines,
            dropped: f.dropped,
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// The writer thread: append each record as a line; rotate past `max_bytes`.
fn write_loop(path: &Path, max_bytes: u64, rx: &std::sync::mpsc::Receiver<Record>) {
    let rotated = rotated_path(path);
    while let Ok(record) = rx.recv() {
        let Ok(mut line) = serde_json::to_vec(&record) else {
            continue;
        };
        line.push(b'\n');
        let result = (|| {
            if std::fs::metadata(path).is_ok_and(|m| m.len() + line.len() as u64 > max_bytes) {
                std::fs::rename(path, &rotated)?;
            }
            let mut file = open_append(path)?;
            file.write_all(&line)?;
            file.flush()
        })();
        if let Err(e) = result {
            tracing::warn!(file = %path.display(), error = %e, "transcript not written");
        }
    }
}

fn rotated_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// Every record in `path` (and its rotated `.1`, older first); lines that do not
/// parse are skipped. A missing file is no records.
pub fn read(path: &Path) -> std::io::Result<Vec<Record>> {
    let mut out = Vec::new();
    for p in [rotated_path(path), path.to_owned()] {
        let file = match std::fs::File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in std::io::BufReader::new(file).lines() {
            if let Ok(record) = serde_json::from_str::<Record>(&line?) {
                out.push(record);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(path: &Path, n: usize) -> Vec<Record> {
        for _ in 0..200 {
            let records = read(path).unwrap();
            if records.len() >= n {
                return records;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("{n} records not written to {}", path.display());
    }

    #[test]
    fn records_are_appended_as_json_lines_0600_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/transcripts.jsonl");
        let config = TranscriptConfig {
            enabled: true,
            file: path.clone(),
            ..TranscriptConfig::default()
        };
        let t = Transcripts::open(&config, "facteur-msa", "mail.paris.test").unwrap();
        let mut r = t
            .start(Proto::Smtp, "submission", "127.0.0.1:5", "127.0.0.2:587")
            .unwrap();
        r.server(b"220 hi\r\n");
        r.client(b"AUTH PLAIN c2VjcmV0\r\n");
        r.queue_id("00AB");
        r.finish();
        let records = wait_for(&path, 1);
        assert_eq!(records[0].agent, "facteur-msa");
        assert_eq!(records[0].kind, "submission");
        assert_eq!(records[0].queue_ids, ["00AB"]);
        assert_eq!(records[0].lines[1].text, "AUTH PLAIN ********");
        let raw = std::fs::read_to_string(&path).unwrap();
        assert!(!raw.contains("c2VjcmV0"), "{raw}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn enabled_without_a_file_is_an_error() {
        let config = TranscriptConfig {
            enabled: true,
            ..TranscriptConfig::default()
        };
        let e = Transcripts::open(&config, "facteur-msa", "h").unwrap_err();
        assert!(e.to_string().contains("transcript.file"), "{e}");
    }

    #[test]
    fn off_records_nothing_and_sampling_records_one_in_n() {
        assert!(
            Transcripts::off()
                .start(Proto::Pop3, "pop3", "a", "b")
                .is_none()
        );
        let dir = tempfile::tempdir().unwrap();
        let config = TranscriptConfig {
            enabled: true,
            sample: 3,
            file: dir.path().join("t.jsonl"),
            ..TranscriptConfig::default()
        };
        let t = Transcripts::open(&config, "facteur-maa", "h").unwrap();
        let kept = (0..9)
            .filter_map(|_| t.start(Proto::Pop3, "pop3", "a", "b"))
            .count();
        assert_eq!(kept, 3);
    }

    #[test]
    fn the_file_rotates_and_both_halves_are_read_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let config = TranscriptConfig {
            enabled: true,
            file: path.clone(),
            max_bytes: 4096,
            ..TranscriptConfig::default()
        };
        let t = Transcripts::open(&config, "facteur-mta", "h").unwrap();
        for i in 0..40 {
            let mut r = t.start(Proto::Smtp, "smtp", i, "b").unwrap();
            r.client(format!("EHLO client-{i:03}-{}\r\n", "x".repeat(100)).as_bytes());
            r.finish();
        }
        // Rotation keeps one old file: the newest records survive, in order.
        let mut records = Vec::new();
        for _ in 0..200 {
            records = read(&path).unwrap();
            if records.last().is_some_and(|r| r.peer == "39") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(rotated_path(&path).exists());
        assert!(
            records.len() < 40 && records.len() > 10,
            "{}",
            records.len()
        );
        let peers: Vec<u32> = records.iter().map(|r| r.peer.parse().unwrap()).collect();
        assert!(peers.windows(2).all(|w| w[0] + 1 == w[1]), "{peers:?}");
        assert_eq!(peers.last(), Some(&39));
    }
}
