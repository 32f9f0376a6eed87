//! facteur-protocol: sans-IO codecs for SMTP (with LMTP) and POP3, SASL helpers, mail address parsing and modified UTF-7 names.
//!
//! Nothing here does IO. Byte framing ([`mod@line`]), SMTP ([`smtp`]) and POP3 ([`pop3`])
//! are plain state machines; the tokio-util adapters live in `codec`, behind the
//! `codec` feature.

pub mod address;
pub mod deadline;
pub mod line;
pub mod pop3;
pub mod sasl;
pub mod secret;
pub mod smtp;
pub mod transcript;
pub mod utf7;

#[cfg(feature = "codec")]
pub mod codec;

pub use secret::Secret;
