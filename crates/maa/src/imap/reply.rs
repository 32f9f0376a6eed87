//! Status responses, response codes named once with their RFC, and the one place
//! where an MDA error ([`MdaError`]) becomes a wire reply: the client sees a
//! generic sentence, the cause goes to the log.

use std::borrow::Cow;

use imap_next::imap_types::core::{Tag, Text};
use imap_next::imap_types::response::{Code, CodeOther, Status, StatusBody, StatusKind, Tagged};

use crate::mda::MdaError;

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

/// `NO` with a text made at run time (cleaned by [`text`]).
pub(super) fn no_text(
    tag: Tag<'static>,
    code: Option<Code<'static>>,
    t: String,
) -> Status<'static> {
    Status::Tagged(Tagged {
        tag,
        body: StatusBody {
            kind: StatusKind::No,
            code,
            text: text(t),
        },
    })
}

/// A tagged status with a code and no fixed text.
pub(super) fn bad_code(tag: Tag<'static>, code: Code<'static>, t: &'static str) -> Status<'static> {
    tagged(tag, StatusKind::Bad, Some(code), t)
}

pub(super) fn bad(tag: Tag<'static>, t: &'static str) -> Status<'static> {
    tagged(tag, StatusKind::Bad, None, t)
}

/// `BAD` to a command that needs a login, before it (RFC 9051 §6).
pub(super) fn login_first(tag: Tag<'static>) -> Status<'static> {
    bad(tag, "Command not valid in this state (log in first).")
}

/// `BAD [CLIENTBUG]` to a selected-state command with no mailbox selected
/// (RFC 9051 §6.4: a command in the wrong state is a protocol error).
pub(super) fn not_selected(tag: Tag<'static>) -> Status<'static> {
    bad_code(tag, clientbug(), "No mailbox selected.")
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

/// RFC 5530: the mailbox exists already (CREATE, RENAME).
pub(super) fn alreadyexists() -> Code<'static> {
    other("ALREADYEXISTS")
}

/// RFC 6154 §5.3: an unknown special-use attribute in CREATE.
pub(super) fn useattr() -> Code<'static> {
    other("USEATTR")
}

/// RFC 5530: over the user's quota, or the store is full.
pub(super) fn overquota() -> Code<'static> {
    Code::OverQuota
}

/// RFC 5530: a client bug (a command this state refuses).
pub(super) fn clientbug() -> Code<'static> {
    other("CLIENTBUG")
}

/// RFC 5530: the request is too large (a literal over the limit, a set over the mailbox).
pub(super) fn toobig() -> Code<'static> {
    Code::TooBig
}

/// How a failed MDA call answers a tagged command. `target`: the mailbox
/// named is the target of APPEND/COPY/MOVE, so a missing one is `[TRYCREATE]`
/// (RFC 9051 §6.3.12). The one place where [`MdaError`] meets the wire: the
/// client gets a generic sentence, the cause goes to the log.
pub(super) fn mda_error(
    tag: Tag<'static>,
    what: &str,
    error: &MdaError,
    target: bool,
) -> Status<'static> {
    match error {
        MdaError::NoSuchMailbox(m) => {
            tracing::debug!(what, mailbox = %facteur_daemon::logging::clean(&m.to_string()), "MDA: no such mailbox");
            if target {
                no(tag, Some(Code::TryCreate), "Mailbox doesn't exist.")
            } else {
                no(tag, Some(nonexistent()), "Mailbox doesn't exist.")
            }
        }
        MdaError::Exists(m) => {
            tracing::debug!(what, mailbox = %facteur_daemon::logging::clean(&m.to_string()), "MDA: exists");
            no(tag, Some(alreadyexists()), "Mailbox already exists.")
        }
        MdaError::NotAllowed(e) => {
            tracing::debug!(what, error = %e, "MDA: not allowed");
            no(tag, Some(cannot()), "Not allowed.")
        }
        MdaError::Invalid(e) => {
            tracing::info!(what, error = %e, "MDA: invalid argument");
            no(tag, Some(cannot()), "Invalid arguments.")
        }
        MdaError::Full => {
            tracing::warn!(what, "MDA: store full");
            no(
                tag,
                Some(overquota()),
                "Mail storage is full, try again later.",
            )
        }
        MdaError::Elsewhere(e) => no_text(tag, Some(unavailable()), e.clone()),
        MdaError::Unavailable(e) => {
            tracing::error!(what, error = %e, "MDA call failed");
            no(
                tag,
                Some(unavailable()),
                "Internal error occurred, try again later.",
            )
        }
    }
}
