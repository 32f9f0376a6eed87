//! The dev stack: writes `var/` (dev CA, per-agent configs, dev users) and starts
//! the real binaries — the dev DNS and, per domain, an MDA, MTA, MSA and MAA on the
//! domain's own loopback address — then waits for each one's ready line.
//!
//! `cargo xtask up` and the end-to-end tests both start the chain through this
//! one module, so what the tests check is what a student runs. [`dovecot`] runs
//! real Dovecot instances beside it for the interop tests, [`postfix`] real
//! Postfix instances, and [`mailcheck`] has what their rows check in a message.

pub mod demo;
pub mod dovecot;
pub mod lab;
pub mod mailcheck;
pub mod postfix;
pub mod stack;

pub use dovecot::{Dovecot, DovecotSpec};
pub use postfix::{Postfix, PostfixSpec};
pub use stack::{Domain, Ports, Stack, StackSpec};

/// Where the test binaries' sibling `facteur-*` binaries are: a test runs from
/// `target/debug/deps/<name>-<hash>`, the agents sit in `target/debug`.
pub fn bin_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(std::path::Path::parent)
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}
