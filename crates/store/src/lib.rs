//! facteur's storage seam: the traits every mail and account backend
//! implements, the one-writer commit loop (`writer`), durable file writes
//! (`durable`), where a message's header ends (`header`), collecting
//! unreferenced blobs and the store's report (`housekeeping`), the embedded sled
//! backend (`sled`), Maildir++ trees for Dovecot (`maildir`) and the
//! conformance suite every backend passes
//! (`conformance`, behind the feature of that name).
//!
//! No sled type appears in the traits: a PostgreSQL backend can sit beside
//! the sled one later and run the same conformance suite.

pub mod accounts;
pub mod blobs;
pub mod durable;
pub mod header;
pub mod housekeeping;
pub mod mail;
pub mod maildir;
pub mod marks;
pub mod sled;
pub mod writer;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use accounts::AccountStore;
pub use housekeeping::{Collected, Housekeeping, StoreReport};
pub use mail::*;
pub use marks::{Mark, Marks};
pub use sled::{SledOptions, SledStore};
pub use writer::{Owned, WriteError, Writer, WriterOptions};
