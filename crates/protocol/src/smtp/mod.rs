//! SMTP (RFC 5321) and LMTP (RFC 2033): replies, reply codes, commands, DATA
//! transparency and the sans-IO server session.

pub mod codes;
pub mod command;
pub mod data;
pub mod reply;
pub mod server;

pub use command::{Body, Command, CommandError, MailParams, Param};
pub use reply::{EnhancedCode, IntoEnhancedCode, Reply, ReplyError, ReplyParser, ReplyText};
