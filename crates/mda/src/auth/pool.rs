//! The argon2 pool: a fixed number of threads, each owning one memory block
//! that it reuses for every verification, fed by a bounded channel. argon2
//! never runs on the async workers, at most `workers` verifications run at
//! once, and memory is `workers` blocks however many logins arrive (allocating
//! and freeing 19 MiB per login let the MDA grow to gigabytes).

use std::sync::{Arc, Mutex};

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

/// Verified against when the user does not exist, so that an unknown user costs
/// the same argon2 work as a known one. argon2's default parameters (checked
/// by a test), like every hash `user add` writes; its password is unknown.
pub(crate) const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$yhMpncBQXUY4oDigEytIfg$syClDvkH8iNHVy42RS/Uhm+tnnewT16JoLEoqAWyFaY";

/// Why a stored hash could not be checked.
#[derive(thiserror::Error, Debug)]
pub enum VerifyError {
    #[error("unusable stored hash: {0}")]
    Corrupt(String),
    #[error("stored hash needs {need} KiB of argon2 memory, more than the {max} KiB allowed")]
    TooCostly { need: u32, max: u32 },
    #[error("argon2: {0}")]
    Argon2(#[from] argon2::Error),
    #[error("too many verifications waiting")]
    Busy,
    #[error("the argon2 pool has stopped")]
    Stopped,
}

impl From<argon2::password_hash::Error> for VerifyError {
    fn from(e: argon2::password_hash::Error) -> Self {
        Self::Corrupt(e.to_string())
    }
}

/// Check `password` against the PHC string `phc`, computing into `blocks`
/// (grown to the hash's memory size if needed, never shrunk) and comparing
/// the outputs in constant time.
pub(crate) fn verify_with(
    blocks: &mut Vec<Block>,
    phc: &str,
    password: &[u8],
    max_kib: u32,
) -> Result<bool, VerifyError> {
    let hash = PasswordHash::new(phc)?;
    let algorithm = Algorithm::try_from(hash.algorithm)?;
    let version = hash
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let params = Params::try_from(&hash)?;
    if params.m_cost() > max_kib {
        return Err(VerifyError::TooCostly {
            need: params.m_cost(),
            max: max_kib,
        });
    }
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return Err(VerifyError::Corrupt("no salt or no hash".into()));
    };
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf)?;
    let need = params.block_count();
    if blocks.len() < need {
        blocks.resize(need, Block::default());
    }
    let mut out = [0u8; 64];
    let out = out
        .get_mut(..expected.len())
        .ok_or_else(|| VerifyError::Corrupt("hash too long".into()))?;
    Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt,
        out,
        &mut blocks[..],
    )?;
    Ok(bool::from(out.ct_eq(expected.as_bytes())))
}

struct Job {
    phc: String,
    password: String,
    reply: oneshot::Sender<Result<bool, VerifyError>>,
}

/// Handle to the pool; cheap to clone. The threads stop when every handle is gone.
#[derive(Clone)]
pub struct Pool {
    jobs: mpsc::Sender<Job>,
    /// Kept so the channel stays open even with no worker (only in tests).
    _queue: Arc<Mutex<mpsc::Receiver<Job>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

impl Pool {
    /// Start `workers` threads (0 = one per core) with room for `queue` waiting jobs.
    pub fn start(workers: usize, queue: usize, max_kib: u32) -> std::io::Result<Self> {
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            workers
        };
        Self::with_threads(workers, queue, max_kib)
    }

    fn with_threads(workers: usize, queue: usize, max_kib: u32) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(&rx, max_kib))?;
        }
        Ok(Self { jobs, _queue: rx })
    }

    /// Verify in the pool.
    pub async fn verify(&self, phc: String, password: String) -> Result<bool, VerifyError> {
        self.submit(phc, password)?
            .await
            .map_err(|_| VerifyError::Stopped)?
    }

    /// Queue a job; `Busy` when the queue is full rather than waiting without bound.
    fn submit(
        &self,
        phc: String,
        password: String,
    ) -> Result<oneshot::Receiver<Result<bool, VerifyError>>, VerifyError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .try_send(Job {
                phc,
                password,
                reply,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => VerifyError::Busy,
                mpsc::error::TrySendError::Closed(_) => VerifyError::Stopped,
            })?;
        Ok(answer)
    }
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>, max_kib: u32) {
    // The one block this thread owns, reused by every verification.
    let mut blocks = Vec::new();
    loop {
        // The lock is held only while waiting for a job, never while hashing.
        let job = match rx.lock() {
            Ok(mut rx) => rx.blocking_recv(),
            Err(_) => return,
        };
        let Some(job) = job else { return };
        let r = verify_with(&mut blocks, &job.phc, job.password.as_bytes(), max_kib);
        let _ = job.reply.send(r);
    }
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};

    use super::*;

    const MAX: u32 = 256 * 1024;

    fn phc(params: Params, alg: Algorithm, version: Version, pw: &str) -> String {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::new(alg, version, params)
            .hash_password(pw.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    fn small(m: u32, t: u32, p: u32, len: usize) -> Params {
        Params::new(m, t, p, Some(len)).unwrap()
    }

    #[test]
    fn agrees_with_argon2s_own_verify_password() {
        let hashes = [
            phc(
                Params::default(),
                Algorithm::Argon2id,
                Version::V0x13,
                "secret",
            ),
            phc(
                small(64, 1, 1, 32),
                Algorithm::Argon2id,
                Version::V0x13,
                "secret",
            ),
            phc(
                small(256, 3, 2, 16),
                Algorithm::Argon2i,
                Version::V0x13,
                "secret",
            ),
            phc(
                small(128, 2, 4, 64),
                Algorithm::Argon2d,
                Version::V0x10,
                "secret",
            ),
            DUMMY_PHC.to_owned(),
        ];
        // One memory block for all of them, reused in every order of sizes.
        let mut blocks = Vec::new();
        for h in hashes.iter().chain(hashes.iter().rev()) {
            let parsed = PasswordHash::new(h).unwrap();
            for pw in ["secret", "Secret", "", "secret ", "facteur"] {
                let theirs = Argon2::default()
                    .verify_password(pw.as_bytes(), &parsed)
                    .is_ok();
                let ours = verify_with(&mut blocks, h, pw.as_bytes(), MAX).unwrap();
                assert_eq!(ours, theirs, "{h} / {pw:?}");
                assert_eq!(ours, pw == "secret" && h != DUMMY_PHC, "{h} / {pw:?}");
            }
        }
        assert_eq!(blocks.len(), Params::default().block_count());
    }

    #[test]
    fn the_dummy_hash_costs_what_a_new_hash_costs() {
        let dummy = PasswordHash::new(DUMMY_PHC).unwrap();
        let fresh = phc(
            Params::default(),
            Algorithm::default(),
            Version::default(),
            "x",
        );
        let fresh = PasswordHash::new(&fresh).unwrap();
        assert_eq!(dummy.algorithm, fresh.algorithm);
        assert_eq!(dummy.version, fresh.version);
        assert_eq!(dummy.params, fresh.params);
    }

    #[test]
    fn bad_and_costly_hashes_are_errors() {
        let mut blocks = Vec::new();
        for bad in [
            "",
            "plain",
            "$argon2id$v=19$m=64,t=1,p=1",
            "$scrypt$ln=4,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        ] {
            assert!(verify_with(&mut blocks, bad, b"x", MAX).is_err(), "{bad}");
        }
        let big = phc(
            small(2048, 1, 1, 32),
            Algorithm::Argon2id,
            Version::V0x13,
            "x",
        );
        assert!(matches!(
            verify_with(&mut blocks, &big, b"x", 1024),
            Err(VerifyError::TooCostly {
                need: 2048,
                max: 1024
            })
        ));
        assert!(blocks.is_empty(), "nothing allocated for refused hashes");
    }

    #[tokio::test]
    async fn the_pool_answers_concurrent_callers() {
        let pool = Pool::start(2, 64, MAX).unwrap();
        let h = phc(
            small(64, 1, 1, 32),
            Algorithm::Argon2id,
            Version::V0x13,
            "pw",
        );
        let calls = (0..40).map(|i| {
            let (pool, h) = (pool.clone(), h.clone());
            async move {
                pool.verify(h, if i % 2 == 0 { "pw" } else { "no" }.into())
                    .await
            }
        });
        let results = join_all(calls).await;
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(r.unwrap(), i % 2 == 0);
        }
    }

    #[test]
    fn a_full_queue_is_busy_not_unbounded() {
        // No thread takes jobs: the queue of two fills and stays full.
        let pool = Pool::with_threads(0, 2, MAX).unwrap();
        let _a = pool.submit(DUMMY_PHC.into(), "x".into()).unwrap();
        let _b = pool.submit(DUMMY_PHC.into(), "x".into()).unwrap();
        assert!(matches!(
            pool.submit(DUMMY_PHC.into(), "x".into()),
            Err(VerifyError::Busy)
        ));
    }

    async fn join_all<F>(fs: impl Iterator<Item = F>) -> Vec<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = fs.map(tokio::spawn).collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }
}
