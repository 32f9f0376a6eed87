//! Maildir++ folder names: facteur's `a/b` is the directory `.a.b` (each
//! level in modified UTF-7, `.` the separator, as Dovecot's default
//! `LAYOUT=maildir++` writes them), INBOX is the user's directory itself; and
//! the `subscriptions` file (one name per line).

use facteur_protocol::utf7;

use crate::mail::{INBOX, StoreError, normalize_mailbox};

/// The subscriptions file in the user's directory.
pub const SUBSCRIPTIONS: &str = "subscriptions";

/// The marker file Maildir++ puts in every folder directory.
pub const MAILDIRFOLDER: &str = "maildirfolder";

fn invalid(name: &str, why: &str) -> StoreError {
    StoreError::InvalidMailboxName(format!("{name} ({why})"))
}

/// A folder's name as Maildir++ stores it without the leading dot (`a.b`,
/// levels in modified UTF-7); `None` for INBOX. A level holding `.` cannot be
/// written (the separator), nor an empty level.
pub fn storage_name(folder: &str) -> Result<Option<String>, StoreError> {
    let folder = normalize_mailbox(folder)?;
    if folder == INBOX {
        return Ok(None);
    }
    let mut out = Vec::new();
    for level in folder.split('/') {
        if level.is_empty() {
            return Err(invalid(&folder, "empty level"));
        }
        if level.contains('.') {
            return Err(invalid(
                &folder,
                "'.' is the Maildir++ hierarchy separator; rename the mailbox first",
            ));
        }
        out.push(utf7::encode(level));
    }
    Ok(Some(out.join(".")))
}

/// The directory of a folder inside the user's directory (`""` for INBOX).
pub fn dir_name(folder: &str) -> Result<String, StoreError> {
    Ok(storage_name(folder)?.map_or_else(String::new, |s| format!(".{s}")))
}

/// The folder a storage name (`a.b`, no leading dot) stands for (`a/b`);
/// `None` for names that are not valid modified UTF-7 or have an empty level.
pub fn folder_of_storage(name: &str) -> Option<String> {
    let mut levels = Vec::new();
    for level in name.split('.') {
        if level.is_empty() {
            return None;
        }
        levels.push(utf7::decode(level.as_bytes()).ok()?);
    }
    let folder = levels.join("/");
    normalize_mailbox(&folder).ok()
}

/// The folder a directory entry of the user's directory stands for, if it is
/// a Maildir++ folder name (`.a.b`; not `.`/`..`).
pub fn folder_of_dir(entry: &str) -> Option<String> {
    folder_of_storage(entry.strip_prefix('.')?)
}

/// The subscriptions file's text for these folders (INBOX as `INBOX`).
pub fn render_subscriptions(folders: &[String]) -> Result<String, StoreError> {
    let mut out = String::new();
    for f in folders {
        out.push_str(&storage_name(f)?.unwrap_or_else(|| INBOX.to_owned()));
        out.push('\n');
    }
    Ok(out)
}

/// The folders of a subscriptions file: one storage name per line; Dovecot's
/// version 2 files (a `V\t2` header line, levels separated by tabs) are read
/// too, each level in modified UTF-7 as Maildir++ stores it (Dovecot 2.3
/// writes `Archiv\tRe&AOc-us`), or in UTF-8 for a tree kept with Dovecot's
/// `UTF-8` option (a level that is not valid modified UTF-7 is taken as it is).
pub fn parse_subscriptions(text: &str) -> Vec<String> {
    let mut lines = text.lines().peekable();
    let v2 = lines.peek().is_some_and(|l| l.starts_with("V\t"));
    if v2 {
        lines.next();
    }
    lines
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            if v2 {
                let name = l
                    .split('\t')
                    .map(|level| {
                        utf7::decode(level.as_bytes()).unwrap_or_else(|_| level.to_owned())
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                normalize_mailbox(&name).ok()
            } else {
                folder_of_storage(l)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_on_disk() {
        assert_eq!(dir_name("INBOX").unwrap(), "");
        assert_eq!(dir_name("inbox").unwrap(), "");
        assert_eq!(dir_name("Sent").unwrap(), ".Sent");
        assert_eq!(dir_name("a/b").unwrap(), ".a.b");
        assert_eq!(dir_name("Entwürfe").unwrap(), ".Entw&APw-rfe");
        assert_eq!(
            dir_name("Archiv/2024/日本語").unwrap(),
            ".Archiv.2024.&ZeVnLIqe-"
        );
        assert_eq!(dir_name("Tom & Jerry").unwrap(), ".Tom &- Jerry");
        assert_eq!(dir_name("INBOX/x").unwrap(), ".INBOX.x");
        assert!(dir_name("v1.2").is_err());
        assert!(dir_name("a//b").is_err());
        assert!(dir_name("").is_err());
    }

    #[test]
    fn names_back() {
        for f in [
            "Sent",
            "a/b",
            "Entwürfe",
            "Archiv/2024/日本語",
            "Tom & Jerry",
        ] {
            let d = dir_name(f).unwrap();
            assert_eq!(folder_of_dir(&d).as_deref(), Some(f), "{d}");
        }
        assert_eq!(folder_of_dir("."), None);
        assert_eq!(folder_of_dir(".."), None);
        assert_eq!(folder_of_dir("cur"), None);
        assert_eq!(folder_of_dir(".a..b"), None);
        assert_eq!(folder_of_dir(".bad&utf7"), None);
    }

    #[test]
    fn subscriptions() {
        let folders = vec![
            "INBOX".to_string(),
            "Sent".into(),
            "a/b".into(),
            "Entwürfe".into(),
        ];
        let text = render_subscriptions(&folders).unwrap();
        assert_eq!(text, "INBOX\nSent\na.b\nEntw&APw-rfe\n");
        assert_eq!(parse_subscriptions(&text), folders);
        assert_eq!(
            parse_subscriptions("V\t2\n\nINBOX\na\tb\nEntwürfe\n"),
            vec!["INBOX".to_string(), "a/b".into(), "Entwürfe".into()]
        );
        // What Dovecot 2.3 wrote after SUBSCRIBE "Archiv/Re&AOc-us" and
        // "Tom &- Jerry" (levels in modified UTF-7), and a UTF-8 tree's names.
        assert_eq!(
            parse_subscriptions(
                "V\t2\n\nINBOX\nArchiv\tRe&AOc-us\nTom &- Jerry\nTom & Jerry\nRe\tReçus\n"
            ),
            vec![
                "INBOX".to_string(),
                "Archiv/Reçus".into(),
                "Tom & Jerry".into(),
                "Tom & Jerry".into(),
                "Re/Reçus".into()
            ]
        );
    }
}
