//! facteur's storage seam: the traits every mail and account backend
//! implements, the one-writer commit loop (`writer`), durable file writes
//! (`durable`), the embedded sled backend (`sled`) and the conformance suite
//! every backend passes (`conformance`, behind the feature of that name).
//!
//! No sled type appears in the traits: a PostgreSQL backend can sit beside
//! the sled one later and run the same conformance suite.

pub mod durable;
pub mod writer;

pub use writer::{Owned, WriteError, Writer, WriterOptions};
