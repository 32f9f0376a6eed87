//! `why <address | queue ID>`: why a message was refused, deferred or bounced,
//! told in plain words (English or French) from the agents' own records: the
//! replies in their transcripts (`[transcript]`, the files of `var/transcripts/`)
//! and the notes they wrote there (DNS answers, failed attempts).
//!
//! Each finding names the agent, the dialogue line that decided, the reason in
//! plain words and the RFC that says why.

use std::path::Path;

use anyhow::Context;
use facteur_daemon::transcript::{Dir, Record};

/// The reasons `why` knows, from the reply or note that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    UnknownUser,
    RelayRefused,
    MxNotFound,
    NextHopDown,
    TooBig,
    MailboxFull,
    Loop,
    Auth,
    /// Another permanent refusal.
    Refused,
    /// Another temporary failure: it will be tried again.
    Deferred,
    Accepted,
}

impl Reason {
    /// The reason of one reply line or note, if it is a decision.
    pub fn of(text: &str) -> Option<Reason> {
        let t = text.to_ascii_lowercase();
        let code = t.get(..3).filter(|c| c.bytes().all(|b| b.is_ascii_digit()));
        Some(if t.contains("5.1.1") || t.contains("user unknown") {
            Reason::UnknownUser
        } else if t.contains("relay") && (t.contains("5.7.1") || t.contains("denied")) {
            Reason::RelayRefused
        } else if t.contains("5.7.8") || t.contains("[auth]") || t.contains("authenticationfailed")
        {
            Reason::Auth
        } else if t.contains("5.2.2") || t.contains("mailbox full") || t.contains("quota") {
            Reason::MailboxFull
        } else if t.contains("5.3.4") || code == Some("552") {
            Reason::TooBig
        } else if t.contains("5.4.6") || t.contains("loop") {
            Reason::Loop
        } else if t.starts_with("dns ! ") && !t.contains('[') {
            Reason::MxNotFound
        } else if t.starts_with("attempt failed") || t.contains("4.4.1") {
            Reason::NextHopDown
        } else if t.starts_with('5') && code.is_some() {
            Reason::Refused
        } else if t.starts_with('4') && code.is_some() {
            Reason::Deferred
        } else if t.starts_with("250") || t.starts_with("+ok") {
            Reason::Accepted
        } else {
            return None;
        })
    }

    /// The plain words, and the RFC.
    pub fn explain(self, fr: bool) -> &'static str {
        match (self, fr) {
            (Reason::UnknownUser, false) => {
                "unknown user: the recipient's server has no such mailbox (RFC 5321 §4.2.2, 550 / 5.1.1; RFC 3463); the sender gets a bounce (RFC 3464)"
            }
            (Reason::UnknownUser, true) => {
                "utilisateur inconnu : le serveur du destinataire n'a pas cette boîte aux lettres (RFC 5321 §4.2.2, 550 / 5.1.1 ; RFC 3463) ; l'expéditeur reçoit un avis de non-remise (RFC 3464)"
            }
            (Reason::RelayRefused, false) => {
                "relay refused: this server only takes mail for its own domains from unauthenticated clients (RFC 5321 §3.6.2, no open relay)"
            }
            (Reason::RelayRefused, true) => {
                "relais refusé : sans authentification, ce serveur ne prend que le courrier de ses propres domaines (RFC 5321 §3.6.2, pas de relais ouvert)"
            }
            (Reason::MxNotFound, false) => {
                "MX not found: DNS gave no mail server for the recipient's domain (RFC 5321 §5.1); the message waits, then bounces"
            }
            (Reason::MxNotFound, true) => {
                "MX introuvable : le DNS ne donne aucun serveur de messagerie pour le domaine du destinataire (RFC 5321 §5.1) ; le message attend, puis revient à l'expéditeur"
            }
            (Reason::NextHopDown, false) => {
                "next hop down: the next server did not answer; the message stays in the queue and is tried again (RFC 5321 §4.5.4.1)"
            }
            (Reason::NextHopDown, true) => {
                "serveur suivant injoignable : il n'a pas répondu ; le message reste dans la file et sera réessayé (RFC 5321 §4.5.4.1)"
            }
            (Reason::TooBig, false) => {
                "too big: the message is over the server's size limit (RFC 1870, 552 / 5.3.4)"
            }
            (Reason::TooBig, true) => {
                "trop gros : le message dépasse la taille que le serveur accepte (RFC 1870, 552 / 5.3.4)"
            }
            (Reason::MailboxFull, false) => {
                "mailbox full: the recipient's mailbox is over its quota (RFC 3463 5.2.2, 552 in RFC 5321 §4.2.2); the sender gets a bounce"
            }
            (Reason::MailboxFull, true) => {
                "boîte aux lettres pleine : la boîte du destinataire a dépassé son quota (RFC 3463 5.2.2, 552 dans la RFC 5321 §4.2.2) ; l'expéditeur reçoit un avis de non-remise"
            }
            (Reason::Loop, false) => {
                "mail loop: the message went through too many servers (its Received lines), so it was stopped (RFC 5321 §6.3, 554 / 5.4.6)"
            }
            (Reason::Loop, true) => {
                "boucle : le message est passé par trop de serveurs (ses lignes Received), il a été arrêté (RFC 5321 §6.3, 554 / 5.4.6)"
            }
            (Reason::Auth, false) => {
                "wrong password: the server refused the login (RFC 4954 §6, 535 / 5.7.8; POP3 [AUTH], RFC 3206; IMAP AUTHENTICATIONFAILED, RFC 5530)"
            }
            (Reason::Auth, true) => {
                "mauvais mot de passe : le serveur a refusé la connexion (RFC 4954 §6, 535 / 5.7.8 ; POP3 [AUTH], RFC 3206 ; IMAP AUTHENTICATIONFAILED, RFC 5530)"
            }
            (Reason::Refused, false) => "refused for good (a 5xx reply, RFC 5321 §4.2.1)",
            (Reason::Refused, true) => "refus définitif (réponse 5xx, RFC 5321 §4.2.1)",
            (Reason::Deferred, false) => {
                "deferred: a temporary failure (a 4xx reply), tried again later (RFC 5321 §4.2.1)"
            }
            (Reason::Deferred, true) => {
                "différé : échec temporaire (réponse 4xx), réessayé plus tard (RFC 5321 §4.2.1)"
            }
            (Reason::Accepted, false) => "accepted",
            (Reason::Accepted, true) => "accepté",
        }
    }
}

/// One decision about the target: where, what was said, and why.
#[derive(Debug, Clone)]
pub struct Finding {
    pub when_ms: u64,
    pub agent: String,
    pub host: String,
    pub kind: String,
    pub peer: String,
    /// The command that asked (`RCPT TO:<…>`, `PASS ********`, …) when there is one.
    pub asked: Option<String>,
    /// The reply or note that decided.
    pub said: String,
    pub reason: Reason,
}

/// Every finding about `target` (an address or a queue ID) in `records`, oldest first.
pub fn findings(records: &[Record], target: &str) -> Vec<Finding> {
    let target_lc = target.to_ascii_lowercase();
    let address = target.contains('@');
    let mut out = Vec::new();
    for r in records {
        let about_queue = !address
            && (r.queue_ids.iter().any(|q| q.eq_ignore_ascii_case(target))
                || r.lines
                    .iter()
                    .any(|l| l.text.to_ascii_lowercase().contains(&target_lc)));
        let mut asked: Option<String> = None;
        let mut push = |asked: Option<String>, said: &str, reason: Reason| {
            out.push(Finding {
                when_ms: r.start_ms,
                agent: r.agent.clone(),
                host: r.host.clone(),
                kind: r.kind.clone(),
                peer: r.peer.clone(),
                asked,
                said: said.to_owned(),
                reason,
            });
        };
        for l in &r.lines {
            let lc = l.text.to_ascii_lowercase();
            match l.dir {
                Dir::Client => {
                    // A command that names the target: its reply decides.
                    let names = address
                        && (lc.contains(&format!("rcpt to:<{target_lc}>"))
                            || lc.contains(&format!("mail from:<{target_lc}>"))
                            || lc == format!("user {target_lc}")
                            || lc.contains(&format!(" login {target_lc} ")));
                    if names {
                        asked = Some(l.text.clone());
                    } else if asked
                        .as_deref()
                        .is_some_and(|a| a.to_ascii_uppercase().starts_with("USER "))
                        && lc.starts_with("pass ")
                    {
                        // POP3: PASS answers for the USER before it.
                        asked = Some(format!("{} / {}", asked.unwrap_or_default(), l.text));
                    } else if !about_queue {
                        asked = None;
                    }
                }
                Dir::Server => {
                    // The last line of a reply (`250 …`, not `250-…`), `+OK`/`-ERR`,
                    // or a tagged IMAP answer.
                    let last = l.text.get(3..4) == Some(" ")
                        || l.text.starts_with("+OK")
                        || l.text.starts_with("-ERR")
                        || l.text.contains("AUTHENTICATIONFAILED");
                    if !last {
                        continue;
                    }
                    // POP3's USER is answered +OK whoever it names: PASS decides.
                    let user_only = asked.as_deref().is_some_and(|a| {
                        a.to_ascii_uppercase().starts_with("USER ") && !a.contains(" / ")
                    });
                    if user_only && l.text.starts_with("+OK") {
                        continue;
                    }
                    if let Some(a) = asked.take() {
                        let reason = Reason::of(&l.text).unwrap_or(if l.text.starts_with("-ERR") {
                            Reason::Refused
                        } else {
                            Reason::Accepted
                        });
                        let reason = if l.text.starts_with("-ERR") && a.contains("PASS") {
                            Reason::Auth
                        } else {
                            reason
                        };
                        push(Some(a), &l.text, reason);
                    } else if about_queue
                        && let Some(reason) = Reason::of(&l.text)
                        && reason != Reason::Accepted
                    {
                        push(None, &l.text, reason);
                    }
                }
                Dir::Note => {
                    let concerns = about_queue
                        || (address
                            && r.lines
                                .iter()
                                .any(|x| x.text.to_ascii_lowercase().contains(&target_lc)));
                    if concerns
                        && let Some(reason) = Reason::of(&l.text)
                        && reason != Reason::Accepted
                    {
                        push(None, &l.text, reason);
                    }
                }
            }
        }
    }
    out.sort_by_key(|f| f.when_ms);
    out
}

/// Every record in the transcript files of `dir` (`*.jsonl`, with their `.1`).
pub fn read_dir(dir: &Path) -> anyhow::Result<Vec<Record>> {
    let mut records = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading the transcripts in {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            records.extend(facteur_daemon::transcript::read(&path)?);
        }
    }
    Ok(records)
}

/// The findings as text: the refusals and failures; if there are none, how
/// many times the target was accepted.
pub fn render(target: &str, all: &[Finding], fr: bool) -> String {
    let found: Vec<&Finding> = all
        .iter()
        .filter(|f| f.reason != Reason::Accepted)
        .collect();
    if found.is_empty() && !all.is_empty() {
        return if fr {
            format!(
                "{target} : accepté à chacune des {} étapes notées, aucun refus\n",
                all.len()
            )
        } else {
            format!(
                "{target}: accepted at each of the {} steps recorded, no refusal\n",
                all.len()
            )
        };
    }
    if found.is_empty() {
        return if fr {
            format!(
                "rien sur {target} dans les transcriptions des agents (sont-elles activées ? [transcript] enabled)\n"
            )
        } else {
            format!(
                "nothing about {target} in the agents' transcripts (are they on? [transcript] enabled)\n"
            )
        };
    }
    let mut out = String::new();
    for f in found {
        let secs = f.when_ms / 1000 % 86_400;
        out.push_str(&format!(
            "{:02}:{:02}:{:02} UTC  {} ({}, {}, {})\n",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            f.agent,
            f.host,
            f.kind,
            f.peer
        ));
        if let Some(a) = &f.asked {
            out.push_str(&format!("  C: {a}\n"));
        }
        // A reply starts with its code (SMTP), +OK/-ERR (POP3) or a tag (IMAP,
        // then a command asked); anything else is the agent's own note.
        let reply = f.asked.is_some()
            || f.said
                .starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-');
        let prefix = if !reply { " *" } else { "S:" };
        out.push_str(&format!("  {prefix} {}\n", f.said));
        out.push_str(&format!("  → {}\n", f.reason.explain(fr)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_notes_name_their_reason() {
        let cases = [
            (
                "550 5.1.1 <nobody@lyon.test>: Recipient address rejected: User unknown",
                Reason::UnknownUser,
            ),
            (
                "554 5.7.1 <x@paris.test>: Relay access denied",
                Reason::RelayRefused,
            ),
            ("535 5.7.8 Authentication credentials invalid", Reason::Auth),
            ("-ERR [AUTH] Authentication failed", Reason::Auth),
            (
                "a2 NO [AUTHENTICATIONFAILED] Authentication failed",
                Reason::Auth,
            ),
            ("552 5.3.4 Message size exceeds fixed limit", Reason::TooBig),
            (
                "gRPC reply ← <andre@lyon.test>: 552 5.2.2 <andre@lyon.test> mailbox full",
                Reason::MailboxFull,
            ),
            ("554 5.4.6 Too many hops: mail loop", Reason::Loop),
            (
                "DNS ! no MX or A record for nowhere.test",
                Reason::MxNotFound,
            ),
            (
                "attempt failed: i/o: Connection refused (os error 111)",
                Reason::NextHopDown,
            ),
            ("451 4.3.0 try later", Reason::Deferred),
            ("250 2.0.0 Ok", Reason::Accepted),
        ];
        for (text, reason) in cases {
            assert_eq!(Reason::of(text), Some(reason), "{text}");
        }
        assert_eq!(Reason::of("DNS ! mail.lyon.test [127.0.0.3]"), None);
        assert_eq!(Reason::of("TLS started"), None);
    }
}
