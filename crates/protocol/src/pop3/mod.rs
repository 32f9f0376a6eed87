//! POP3 (RFC 1939) with CAPA (RFC 2449), STLS (RFC 2595) and AUTH (RFC 5034):
//! commands, status lines and multi-line responses.

pub mod command;
pub mod response;

pub use command::{Command, CommandError};
pub use response::{MultilineDecoder, MultilineEncoder, Response, ResponseError, Status};

/// Longest command line, CRLF included (RFC 2449 §4): use `LineFramer::new(MAX_COMMAND_LINE)`.
pub const MAX_COMMAND_LINE: usize = 255;

/// Longest status line a client accepts, CRLF included (RFC 2449 §4 says 512).
pub const MAX_RESPONSE_LINE: usize = 512;
