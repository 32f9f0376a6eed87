//! Status responses, response codes named once with their RFC, and the one place
//! where an MDA (gRPC) error becomes a wire reply: the client sees a generic
//! sentence, the cause goes to the log.

use std::borrow::Cow;

use imap_next::imap_types::core::{Tag, Text};
use imap_next::imap_types::response::{Code, CodeOther, Status, StatusBody, StatusKind, Tagged};

/// Text that is valid by construction (no CR/LF, not empty). Falls back to a
/// neutral word instead of panicking if a caller ever breaks that.
pub(super) fn text(s: impl Into<Cow<'static, str>>) -> Text<'static> {
    let s: Cow<'static, str> = s.into();
    let clean = s.replace(['\r', '\n'], " ");
    Text::try_from(clean).unwrap_or_else(|_| Text::unvalidated("..."))
}

fn body(kind: StatusKind, code: Option<Code<'static>>, t: &'static str) -> StatusBody<'static> {
    StatusBody {
        kind,
        code,
        text: text(t),
    }
}

pub(super) fn tagged(
    tag: Tag<'static>,
    kind: StatusKind,
    code: Option<Code<'static>>,
    t: &'static str,
) -> Status<'static> {
    Status::Tagged(Tagged {
        tag,
        body: body(kind, code, t),
    })
}

pub(super) fn ok(
    tag: Tag<'static>,
    code: Option<Code<'static>>,
    t: &'static str,
) -> Status<'static> {
    tagged(tag, StatusKind::Ok, code, t)
}

pub(super) fn no(
    tag: Tag<'static>,
    code: Option<Code<'static>>,
    t: &'static str,
) -> Status<'static> {
    tagged(tag, StatusKind::No, code, t)
}

pub(super) fn bad(tag: Tag<'static>, t: &'static str) -> Status<'static> {
    tagged(tag, StatusKind::Bad, None, t)
}

/// `* OK [code] text`
pub(super) fn untagged_ok(code: Option<Code<'static>>, t: &'static str) -> Status<'static> {
    Status::Untagged(body(StatusKind::Ok, code, t))
}

/// `* BAD text` (a command whose tag we could not read).
pub(super) fn untagged_bad(t: &'static str) -> Status<'static> {
    Status::Untagged(body(StatusKind::Bad, None, t))
}

/// `* BYE text`
pub(super) fn bye(t: &'static str) -> Status<'static> {
    Status::Bye(imap_next::imap_types::response::Bye {
        code: None,
        text: text(t),
    })
}

/// A response code imap-types has no variant for.
fn other(code: &'static str) -> Code<'static> {
    Code::Other(CodeOther::unvalidated(code.as_bytes()))
}

/// RFC 5530: authentication credentials are wrong.
pub(super) fn authenticationfailed() -> Code<'static> {
    other("AUTHENTICATIONFAILED")
}

/// RFC 5530: the operation is refused on a connection without TLS.
pub(super) fn privacyrequired() -> Code<'static> {
    other("PRIVACYREQUIRED")
}

/// RFC 5530: temporary failure of a subsystem (the MDA).
pub(super) fn unavailable() -> Code<'static> {
    other("UNAVAILABLE")
}

/// RFC 5530: the mailbox does not exist.
pub(super) fn nonexistent() -> Code<'static> {
    other("NONEXISTENT")
}

/// RFC 5530: the server cannot do this (not implemented here).
pub(super) fn cannot() -> Code<'static> {
    other("CANNOT")
}

/// RFC 5530: the client has no right to do this (read-only mailbox).
pub(super) fn noperm() -> Code<'static> {
    other("NOPERM")
}

/// How a failed MDA call answers a tagged command.
pub(super) fn mda_error(tag: Tag<'static>, what: &str, status: &tonic::Status) -> Status<'static> {
    match status.code() {
        tonic::Code::NotFound => {
            tracing::debug!(what, error = %status.message(), "MDA: not found");
            no(tag, Some(nonexistent()), "Mailbox doesn't exist.")
        }
        tonic::Code::PermissionDenied => {
            tracing::info!(what, error = %status.message(), "MDA: permission denied");
            no(tag, Some(noperm()), "Permission denied.")
        }
        tonic::Code::InvalidArgument => {
            tracing::info!(what, error = %status.message(), "MDA: invalid argument");
            no(tag, None, "Invalid arguments.")
        }
        _ => {
            tracing::error!(what, code = ?status.code(), error = %status.message(), "MDA call failed");
            no(
                tag,
                Some(unavailable()),
                "Internal error occurred, try again later.",
            )
        }
    }
}
