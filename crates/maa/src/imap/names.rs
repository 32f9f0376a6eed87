//! Mailbox names between the wire and the store: UTF-8 in the store; on the
//! wire modified UTF-7 (RFC 3501 §5.1.3) for IMAP4rev1 clients, UTF-8 once a
//! client has enabled IMAP4rev2 or UTF8=ACCEPT. `INBOX` is case-insensitive.
//! Also LIST patterns (`*`, `%`) on the hierarchy delimiter `/`.

use imap_next::imap_types::mailbox::{ListMailbox, Mailbox};

/// Hierarchy delimiter announced in LIST.
pub(super) const DELIMITER: char = '/';

/// The store's name for a mailbox the client named; `None` if it is not
/// valid (bad modified UTF-7, not UTF-8).
pub(super) fn from_wire(mailbox: &Mailbox<'_>, utf8: bool) -> Option<String> {
    match mailbox {
        Mailbox::Inbox => Some("INBOX".to_owned()),
        Mailbox::Other(other) => decode(other.as_ref(), utf8),
    }
}

/// A name or pattern from the wire, decoded.
pub(super) fn decode(bytes: &[u8], utf8: bool) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    if s.eq_ignore_ascii_case("INBOX") {
        return Some("INBOX".to_owned());
    }
    if utf8 {
        Some(s.to_owned())
    } else {
        facteur_protocol::utf7::decode(bytes).ok()
    }
}

/// A store name as the client gets it.
pub(super) fn to_wire(name: &str, utf8: bool) -> Option<Mailbox<'static>> {
    if name == "INBOX" {
        return Some(Mailbox::Inbox);
    }
    let encoded = if utf8 {
        name.to_owned()
    } else {
        facteur_protocol::utf7::encode(name)
    };
    Mailbox::try_from(encoded).ok()
}

/// The bytes of a LIST pattern.
pub(super) fn pattern_bytes<'a>(p: &'a ListMailbox<'_>) -> &'a [u8] {
    match p {
        ListMailbox::Token(t) => t.as_ref(),
        ListMailbox::String(s) => s.as_ref(),
    }
}

/// LIST pattern matching: `*` matches anything, `%` anything but the delimiter.
pub(super) fn wildcard(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.as_bytes(), name.as_bytes());
    // dp[j]: pattern[..i] matches name[..j]
    let mut dp = vec![false; name.len() + 1];
    dp[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        match p {
            b'*' | b'%' => {
                // `*`: any k <= j with dp[k]; `%`: and no delimiter in name[k..j].
                let mut reach = false;
                for j in 0..=name.len() {
                    if p == b'%' && j > 0 && name[j - 1] == DELIMITER as u8 {
                        reach = false;
                    }
                    reach |= dp[j];
                    next[j] = reach;
                }
            }
            c => {
                for j in 1..=name.len() {
                    next[j] = dp[j - 1] && name[j - 1] == c;
                }
            }
        }
        dp = next;
    }
    dp[name.len()]
}

/// Does `pattern` (reference + mailbox pattern) match the store name `name`?
/// `INBOX` matches case-insensitively.
pub(super) fn matches(pattern: &str, name: &str) -> bool {
    if name == "INBOX" {
        let upper = pattern.to_ascii_uppercase();
        wildcard(&upper, name)
    } else {
        wildcard(pattern, name)
    }
}

/// The parent names of `name` (`a/b/c` → `a`, `a/b`).
pub(super) fn parents(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices(DELIMITER).map(move |(i, _)| &name[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_wildcards() {
        assert!(wildcard("*", "INBOX"));
        assert!(wildcard("*", "a/b"));
        assert!(wildcard("%", "Sent"));
        assert!(!wildcard("%", "a/b"));
        assert!(wildcard("a/%", "a/b"));
        assert!(wildcard("INBOX", "INBOX"));
        assert!(!wildcard("INB", "INBOX"));
        assert!(wildcard("I*X", "INBOX"));
        assert!(matches("inbox", "INBOX"));
        assert!(!matches("sent", "Sent"));
    }

    #[test]
    fn parents_of_a_nested_name() {
        assert_eq!(parents("a/b/c").collect::<Vec<_>>(), vec!["a", "a/b"]);
        assert_eq!(parents("a").count(), 0);
    }
}
