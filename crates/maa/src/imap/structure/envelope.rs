//! ENVELOPE (RFC 9051 §7.5.2) from an entity's header: fields as sent,
//! addresses parsed, sender and reply-to defaulting to from.

use imap_next::imap_types::envelope::{Address, Envelope};

use super::address::{Addr, parse_addresses};
use super::header::field;
use super::{Entity, nstring};

fn address(a: &Addr) -> Address<'static> {
    let n = |v: &Option<Vec<u8>>| nstring(v.as_deref().filter(|v| !v.is_empty()));
    Address {
        name: n(&a.name),
        adl: n(&a.adl),
        mailbox: nstring(a.mailbox.as_deref()),
        host: nstring(a.host.as_deref()),
    }
}

impl Entity<'_> {
    /// ENVELOPE of the message whose header this entity has.
    pub(crate) fn envelope(&self) -> Envelope<'static> {
        let h = self.header;
        let raw = |name| field(h, name);
        let list = |name| {
            raw(name)
                .map(|v| parse_addresses(&v))
                .unwrap_or_default()
                .iter()
                .map(address)
                .collect::<Vec<_>>()
        };
        let from = list("from");
        let mut sender = list("sender");
        let mut reply_to = list("reply-to");
        if sender.is_empty() {
            sender = from.clone();
        }
        if reply_to.is_empty() {
            reply_to = from.clone();
        }
        Envelope {
            date: nstring(raw("date").as_deref()),
            subject: nstring(raw("subject").as_deref()),
            from,
            sender,
            reply_to,
            to: list("to"),
            cc: list("cc"),
            bcc: list("bcc"),
            in_reply_to: nstring(raw("in-reply-to").as_deref()),
            message_id: nstring(raw("message-id").as_deref()),
        }
    }
}
