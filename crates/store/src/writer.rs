//! The one writer of a database: a dedicated thread owns the state, takes
//! requests from a channel, applies a batch of them, makes the batch durable
//! once (group commit), and only then answers every request in it.
//!
//! This is the fix for the deadlock of blocking sled transactions on the async
//! workers (spacejam/sled#1301): nothing but this thread ever writes, so there
//! are no concurrent transactions, and no async worker ever blocks on a write.
//! Callers on an async task use [`Writer::call`]; callers already on a blocking
//! thread (`spawn_blocking`) use [`Writer::call_blocking`].
//!
//! The shape is PostgreSQL's WAL writer / LMDB's single write transaction: a
//! request that arrives while a batch is being synced waits for the next batch,
//! so under load one sync covers many requests.

use std::io;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// State owned by a [`Writer`]: knows how to make what the requests did durable.
pub trait Owned: Send + 'static {
    /// Runs before the requests of a batch are applied; an error fails the
    /// whole batch before anything is applied. Used to make durable what the
    /// callers wrote before sending their requests (e.g. fsync the directory
    /// of message files that the new metadata will point at).
    fn before_batch(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Makes everything applied so far durable (flush and fsync). Called once
    /// per batch; a state with nothing new to sync returns at once.
    fn sync(&mut self) -> io::Result<()>;
}

/// Why a request got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The batch could not be made durable; nothing in it is acknowledged.
    #[error("could not make the write durable: {0}")]
    Sync(Arc<io::Error>),
    /// The writer thread is gone (stopped, or a request panicked).
    #[error("the store writer has stopped")]
    Stopped,
}

impl WriteError {
    /// The I/O error behind a failed sync.
    pub fn io(&self) -> Option<&io::Error> {
        match self {
            WriteError::Sync(e) => Some(e),
            WriteError::Stopped => None,
        }
    }
}

/// Answers one request once its batch is durable (or failed).
type Reply = Box<dyn FnOnce(Result<(), WriteError>) + Send>;

/// One request: applied on the writer thread, or failed without running.
trait Request<S>: Send {
    fn apply(self: Box<Self>, state: &mut S) -> Reply;
    fn fail(self: Box<Self>, error: WriteError);
}

struct Call<F, A> {
    f: F,
    answer: A,
}

impl<S, R, F, A> Request<S> for Call<F, A>
where
    R: Send + 'static,
    F: FnOnce(&mut S) -> R + Send,
    A: FnOnce(Result<R, WriteError>) + Send + 'static,
{
    fn apply(self: Box<Self>, state: &mut S) -> Reply {
        let Call { f, answer } = *self;
        let r = f(state);
        Box::new(move |synced: Result<(), WriteError>| answer(synced.map(|()| r)))
    }
    fn fail(self: Box<Self>, error: WriteError) {
        (self.answer)(Err(error));
    }
}

type Job<S> = Box<dyn Request<S>>;

/// Handle to the writer thread; cheap to clone. The thread stops when every
/// handle is dropped, after answering what it already took.
pub struct Writer<S> {
    tx: mpsc::SyncSender<Job<S>>,
    thread: Arc<Joiner>,
}

impl<S> Clone for Writer<S> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            thread: Arc::clone(&self.thread),
        }
    }
}

impl<S> std::fmt::Debug for Writer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

/// Options of a writer.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Thread name (shows in `top -H` and backtraces).
    pub name: String,
    /// Requests waiting at most; callers wait for room beyond it (backpressure).
    pub queue: usize,
    /// Requests applied in one batch at most, so one sync never waits too long.
    pub max_batch: usize,
}

impl WriterOptions {
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            queue: 1024,
            max_batch: 256,
        }
    }
}

/// Joins the thread when the last handle goes away, so a reopen in the same
/// process finds the files released.
struct Joiner(std::sync::Mutex<Option<JoinHandle<()>>>);

impl Drop for Joiner {
    fn drop(&mut self) {
        let handle = self.0.get_mut().map(Option::take).unwrap_or(None);
        if let Some(h) = handle {
            // The sender lives in the same `Writer`s that held us, so the
            // channel is closed by now and the thread ends after its batch.
            // A writer dropped from its own thread cannot join itself.
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

impl<S: Owned> Writer<S> {
    /// Starts the writer thread owning `state`.
    pub fn spawn(opts: WriterOptions, state: S) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Job<S>>(opts.queue.max(1));
        let max_batch = opts.max_batch.max(1);
        let handle = std::thread::Builder::new()
            .name(opts.name.clone())
            .spawn(move || run(state, rx, max_batch))?;
        Ok(Self {
            tx,
            thread: Arc::new(Joiner(std::sync::Mutex::new(Some(handle)))),
        })
    }

    fn job<R: Send + 'static>(
        f: impl FnOnce(&mut S) -> R + Send + 'static,
        answer: impl FnOnce(Result<R, WriteError>) + Send + 'static,
    ) -> Job<S> {
        Box::new(Call { f, answer })
    }

    /// Runs `f` on the writer thread and returns its result once the batch it
    /// was applied in is durable. Blocks: call it from a blocking thread.
    pub fn call_blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut S) -> R + Send + 'static,
    ) -> Result<R, WriteError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job = Self::job(f, move |r| {
            let _ = tx.send(r);
        });
        self.tx.send(job).map_err(|_| WriteError::Stopped)?;
        rx.recv().unwrap_or(Err(WriteError::Stopped))
    }

    /// Like [`Writer::call_blocking`], for async callers: never blocks a worker
    /// (the channel send may wait for room, so it runs on a blocking thread
    /// only when the queue is full).
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut S) -> R + Send + 'static,
    ) -> Result<R, WriteError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Self::job(f, move |r| {
            let _ = tx.send(r);
        });
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(WriteError::Stopped),
            Err(mpsc::TrySendError::Full(job)) => {
                let sender = self.tx.clone();
                tokio::task::spawn_blocking(move || sender.send(job))
                    .await
                    .map_err(|_| WriteError::Stopped)?
                    .map_err(|_| WriteError::Stopped)?;
            }
        }
        rx.await.unwrap_or(Err(WriteError::Stopped))
    }
}

fn run<S: Owned>(mut state: S, rx: mpsc::Receiver<Job<S>>, max_batch: usize) {
    let mut batch: Vec<Job<S>> = Vec::with_capacity(max_batch);
    let mut replies: Vec<Reply> = Vec::with_capacity(max_batch);
    // Block for the first request of a batch, then take whatever else is
    // already waiting: those share the batch's one sync.
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = state.before_batch() {
            tracing::error!(error = %e, "store writer: preparing a batch failed");
            let err = WriteError::Sync(Arc::new(e));
            for job in batch.drain(..) {
                job.fail(err.clone());
            }
            continue;
        }
        for job in batch.drain(..) {
            // A request that panics (a bug) is dropped, so its caller sees
            // `Stopped`; the writer keeps serving the others.
            let applied =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.apply(&mut state)));
            match applied {
                Ok(reply) => replies.push(reply),
                Err(_) => tracing::error!("store writer: a request panicked"),
            }
        }
        let synced = state.sync().map_err(|e| {
            tracing::error!(error = %e, "store writer: sync failed; the batch is not acknowledged");
            WriteError::Sync(Arc::new(e))
        });
        for reply in replies.drain(..) {
            reply(synced.clone());
        }
    }
    // Every handle is gone: a last sync for anything applied (nothing waits).
    if let Err(e) = state.sync() {
        tracing::error!(error = %e, "store writer: final sync failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A state that counts syncs and can be told to fail them.
    struct Counter {
        applied: Vec<u32>,
        durable: usize,
        syncs: Arc<AtomicUsize>,
        fail_next: bool,
        fail_before: bool,
    }

    impl Owned for Counter {
        fn before_batch(&mut self) -> io::Result<()> {
            if std::mem::take(&mut self.fail_before) {
                return Err(io::Error::other("directory sync failed"));
            }
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            self.syncs.fetch_add(1, Ordering::SeqCst);
            // Slow enough that concurrent callers pile up behind a sync.
            std::thread::sleep(std::time::Duration::from_millis(2));
            if std::mem::take(&mut self.fail_next) {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            self.durable = self.applied.len();
            Ok(())
        }
    }

    fn writer() -> (Writer<Counter>, Arc<AtomicUsize>) {
        let syncs = Arc::new(AtomicUsize::new(0));
        let state = Counter {
            applied: Vec::new(),
            durable: 0,
            syncs: Arc::clone(&syncs),
            fail_next: false,
            fail_before: false,
        };
        (
            Writer::spawn(WriterOptions::named("test-writer"), state).unwrap(),
            syncs,
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_syncs_and_each_is_answered_after_its_sync() {
        let (w, syncs) = writer();
        let mut tasks = Vec::new();
        for i in 0..400u32 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                w.call(move |s: &mut Counter| {
                    s.applied.push(i);
                    s.applied.len()
                })
                .await
            }));
        }
        for t in tasks {
            let n = t.await.unwrap().unwrap();
            assert!(n >= 1);
        }
        // Every answer came after a sync that covered it.
        let durable = w.call(|s: &mut Counter| s.durable).await.unwrap();
        assert_eq!(durable, 400);
        let n = syncs.load(Ordering::SeqCst);
        assert!(n < 400, "group commit: {n} syncs for 400 requests");
    }

    #[test]
    fn a_failed_sync_acknowledges_nothing_in_its_batch_and_the_next_one_recovers() {
        let (w, _) = writer();
        // The sync of this request's batch fails: the request is not answered Ok.
        let err = w.call_blocking(|s: &mut Counter| {
            s.fail_next = true;
            s.applied.push(1)
        });
        assert!(
            matches!(&err, Err(WriteError::Sync(e)) if e.kind() == io::ErrorKind::StorageFull),
            "{err:?}"
        );
        // The next batch syncs again and covers what was applied before.
        w.call_blocking(|_: &mut Counter| ()).unwrap();
        assert_eq!(w.call_blocking(|s: &mut Counter| s.durable).unwrap(), 1);
    }

    #[test]
    fn a_failed_preparation_applies_nothing() {
        let (w, _) = writer();
        w.call_blocking(|s: &mut Counter| s.fail_before = true)
            .unwrap();
        let err = w.call_blocking(|s: &mut Counter| s.applied.push(1));
        assert!(matches!(err, Err(WriteError::Sync(_))), "{err:?}");
        // Nothing of the failed batch ran.
        assert_eq!(
            w.call_blocking(|s: &mut Counter| s.applied.len()).unwrap(),
            0
        );
    }

    #[test]
    fn dropping_every_handle_stops_the_thread() {
        let (w, syncs) = writer();
        w.call_blocking(|s: &mut Counter| s.applied.push(1))
            .unwrap();
        let before = syncs.load(Ordering::SeqCst);
        drop(w);
        // The final sync ran before the drop returned (the thread was joined).
        assert_eq!(syncs.load(Ordering::SeqCst), before + 1);
    }
}
