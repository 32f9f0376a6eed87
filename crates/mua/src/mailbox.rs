//! `list` and `read N`: the local Maildir that `fetch --maildir` fills, one line
//! per message (number, new or read, date, sender, subject, size), then one
//! message shown as `show` does, marked read, its attachments saved on request.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use mail_parser::{MessageParser, MimeHeaders};

use crate::maildir::{Entry, Maildir};

/// How much of a message `list` reads for its headers.
const HEAD: u64 = 64 * 1024;

/// The header block of a message file: its first bytes up to the blank line.
fn head(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .take(HEAD)
        .read_to_end(&mut buf)?;
    let end = header_end(&buf).unwrap_or(buf.len());
    buf.truncate(end);
    buf.extend_from_slice(b"\r\n\r\n");
    Ok(buf)
}

fn header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n"))
}

/// One `list` line.
pub fn line(n: usize, entry: &Entry) -> anyhow::Result<String> {
    let head = head(&entry.path)?;
    let parsed = MessageParser::default().parse_headers(&head);
    let (from, subject, date) = match &parsed {
        Some(m) => (
            m.from()
                .and_then(|a| a.first())
                .map(|a| a.name().or(a.address()).unwrap_or_default().to_owned())
                .unwrap_or_default(),
            m.subject().unwrap_or_default().to_owned(),
            m.date()
                .map(|d| {
                    format!(
                        "{:04}-{:02}-{:02} {:02}:{:02}",
                        d.year, d.month, d.day, d.hour, d.minute
                    )
                })
                .unwrap_or_default(),
        ),
        None => Default::default(),
    };
    Ok(format!(
        "{n:>4} {} {date:<16} {:<24} {} ({})",
        if entry.seen { ' ' } else { 'N' },
        clip(&from, 24),
        clip(&subject, 60),
        human(entry.size)
    ))
}

fn clip(s: &str, max: usize) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() <= max {
        return s;
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn human(size: u64) -> String {
    match size {
        s if s < 1024 => format!("{s} B"),
        s if s < 1024 * 1024 => format!("{:.1} KiB", s as f64 / 1024.0),
        s => format!("{:.1} MiB", s as f64 / (1024.0 * 1024.0)),
    }
}

/// `list`: every message of the Maildir, oldest first.
pub fn list(root: &Path) -> anyhow::Result<String> {
    let md = Maildir::open(root)?;
    let all = md.entries()?;
    let mut out = String::new();
    let unread = all.iter().filter(|e| !e.seen).count();
    for (i, e) in all.iter().enumerate() {
        out.push_str(&line(i + 1, e)?);
        out.push('\n');
    }
    out.push_str(&format!(
        "{} message(s), {unread} unread, in {}\n",
        all.len(),
        root.display()
    ));
    Ok(out)
}

/// A file name for an attachment: its last path component, no leading dot or
/// control characters (a sender must not choose where it lands).
pub fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        "attachment".to_owned()
    } else {
        cleaned
    }
}

/// Write `data` as `dir/name`, never over an existing file (`name (1)`, …).
fn save_new(dir: &Path, name: &str, data: &[u8]) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_owned(), format!(".{e}")),
        _ => (name.to_owned(), String::new()),
    };
    for i in 0..1000 {
        let candidate = if i == 0 {
            dir.join(name)
        } else {
            dir.join(format!("{stem} ({i}){ext}"))
        };
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&candidate)
        {
            Ok(mut f) => {
                f.write_all(data)
                    .with_context(|| format!("writing {}", candidate.display()))?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", candidate.display())),
        }
    }
    anyhow::bail!("{}: too many files named {name}", dir.display())
}

/// What `read` did: the text to print and the attachments saved.
pub struct Opened {
    pub text: String,
    pub saved: Vec<(PathBuf, usize)>,
}

/// `read N`: the message shown (raw with `raw`), marked read; its attachments
/// saved into `save` when given.
pub fn read(root: &Path, n: usize, raw: bool, save: Option<&Path>) -> anyhow::Result<Opened> {
    let md = Maildir::open(root)?;
    let entry = md.get(n)?;
    let bytes =
        std::fs::read(&entry.path).with_context(|| format!("reading {}", entry.path.display()))?;
    let text = if raw {
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        crate::show::render(&bytes).with_context(|| format!("message {n}"))?
    };
    let mut saved = Vec::new();
    if let Some(dir) = save {
        let message = MessageParser::default()
            .parse(&bytes)
            .with_context(|| format!("message {n} is not a mail message"))?;
        for a in message.attachments() {
            let name = safe_name(a.attachment_name().unwrap_or("attachment"));
            let data = a.contents();
            saved.push((save_new(dir, &name, data)?, data.len()));
        }
    }
    md.mark_seen(&entry)?;
    Ok(Opened { text, saved })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_cannot_escape_the_directory() {
        assert_eq!(safe_name("../../.ssh/authorized_keys"), "authorized_keys");
        assert_eq!(safe_name("..\\win.ini"), "win.ini");
        assert_eq!(safe_name(".bashrc"), "bashrc");
        assert_eq!(safe_name("a\nb.txt"), "a_b.txt");
        assert_eq!(safe_name(""), "attachment");
        assert_eq!(safe_name("plan.pdf"), "plan.pdf");
    }

    #[test]
    fn list_then_read_saves_attachments_without_overwriting() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Mail");
        let md = Maildir::create(&root).unwrap();
        let draft = crate::compose::Draft {
            from: "Pierre <pierre@paris.test>".into(),
            to: vec!["andre@lyon.test".into()],
            subject: Some("Plan".into()),
            body: "Voici le plan.".into(),
            attachments: vec![crate::compose::Attachment {
                name: "plan.pdf".into(),
                content_type: "application/pdf".into(),
                data: b"%PDF-1.4 plan".to_vec(),
            }],
            date: 86_400,
            message_id: "p@paris.test".into(),
            ..Default::default()
        };
        md.deliver(&crate::compose::compose(&draft).unwrap())
            .unwrap();
        let listing = list(&root).unwrap();
        assert!(
            listing.contains("   1 N 1970-01-02 00:00 Pierre"),
            "{listing}"
        );
        assert!(listing.contains("Plan"), "{listing}");
        assert!(listing.contains("1 message(s), 1 unread"), "{listing}");
        let out = dir.path().join("saved");
        let r = read(&root, 1, false, Some(&out)).unwrap();
        assert!(r.text.contains("Voici le plan."), "{}", r.text);
        assert_eq!(r.saved.len(), 1);
        assert_eq!(std::fs::read(&r.saved[0].0).unwrap(), b"%PDF-1.4 plan");
        let again = read(&root, 1, false, Some(&out)).unwrap();
        assert!(
            again.saved[0].0.ends_with("plan (1).pdf"),
            "{:?}",
            again.saved
        );
        assert!(list(&root).unwrap().contains("1 message(s), 0 unread"));
        assert!(read(&root, 2, false, None).is_err());
    }
}
