//! Dovecot's `dovecot-keywords` file of one Maildir folder: lines `N name`,
//! keyword `N` (0..25) being the info letter `a` + N.

use std::io;
use std::path::Path;

/// The file's name in each folder directory.
pub const FILE: &str = "dovecot-keywords";

/// Keyword letters available per folder (`a`..`z`).
pub const MAX: usize = 26;

/// The keyword table of one folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keywords {
    names: Vec<Option<String>>,
}

impl Keywords {
    /// Parses the file's text; malformed lines and numbers past 25 are skipped.
    pub fn parse(text: &str) -> Self {
        let mut k = Self::default();
        for line in text.lines() {
            let Some((n, name)) = line.split_once(' ') else {
                continue;
            };
            let (Ok(n), name) = (n.parse::<usize>(), name.trim_end_matches('\r')) else {
                continue;
            };
            if n >= MAX || name.is_empty() {
                continue;
            }
            if k.names.len() <= n {
                k.names.resize(n + 1, None);
            }
            k.names[n] = Some(name.to_owned());
        }
        k
    }

    /// Reads `dir/dovecot-keywords`; a missing file is an empty table.
    pub fn load(dir: &Path) -> io::Result<Self> {
        match std::fs::read_to_string(dir.join(FILE)) {
            Ok(t) => Ok(Self::parse(&t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.names.iter().enumerate() {
            if let Some(n) = n {
                out.push_str(&format!("{i} {n}\n"));
            }
        }
        out
    }

    /// The keyword of index `i` (letter `a` + i).
    pub fn name(&self, i: usize) -> Option<String> {
        self.names.get(i).cloned().flatten()
    }

    /// The letter of a keyword already in the table (keywords compare
    /// case-insensitively, as IMAP flags do).
    pub fn letter(&self, keyword: &str) -> Option<char> {
        self.names
            .iter()
            .position(|n| {
                n.as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(keyword))
            })
            .map(|i| char::from(b'a' + i as u8))
    }

    /// The letter of a keyword, adding it to the table if there is room;
    /// `None` when all 26 letters are taken by other keywords.
    pub fn letter_or_add(&mut self, keyword: &str) -> Option<char> {
        if let Some(l) = self.letter(keyword) {
            return Some(l);
        }
        let free = match self.names.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.names.len() < MAX => {
                self.names.push(None);
                self.names.len() - 1
            }
            None => return None,
        };
        self.names[free] = Some(keyword.to_owned());
        Some(char::from(b'a' + free as u8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_render() {
        let k = Keywords::parse("0 $Label1\n2 Junk\nbad line\n30 TooFar\n1 $Forwarded\r\n");
        assert_eq!(k.name(0).as_deref(), Some("$Label1"));
        assert_eq!(k.name(1).as_deref(), Some("$Forwarded"));
        assert_eq!(k.name(2).as_deref(), Some("Junk"));
        assert_eq!(k.name(3), None);
        assert_eq!(k.letter("junk"), Some('c'));
        assert_eq!(k.render(), "0 $Label1\n1 $Forwarded\n2 Junk\n");
    }

    #[test]
    fn adding_uses_free_letters_up_to_z() {
        let mut k = Keywords::parse("1 b\n");
        assert_eq!(k.letter_or_add("first"), Some('a'));
        assert_eq!(k.letter_or_add("B"), Some('b'));
        assert_eq!(k.letter_or_add("third"), Some('c'));
        for i in 3..MAX {
            assert!(k.letter_or_add(&format!("k{i}")).is_some());
        }
        assert_eq!(k.letter("k25"), Some('z'));
        assert_eq!(k.letter_or_add("one too many"), None);
        assert_eq!(Keywords::parse(&k.render()), k);
    }

    #[test]
    fn missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Keywords::load(dir.path()).unwrap(), Keywords::default());
        std::fs::write(dir.path().join(FILE), "0 $Seen-ish\n").unwrap();
        assert_eq!(
            Keywords::load(dir.path()).unwrap().letter("$seen-ish"),
            Some('a')
        );
    }
}
