//! Maildir file names: the unique base name (`<secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>`),
//! the `:2,<flags>` info part, and the letters of the system flags.

use crate::mail::has_flag;

/// System flags and their Maildir letters (sorted by letter).
pub const FLAG_LETTERS: [(char, &str); 5] = [
    ('D', "\\Draft"),
    ('F', "\\Flagged"),
    ('R', "\\Answered"),
    ('S', "\\Seen"),
    ('T', "\\Deleted"),
];

/// A unique base name as the Maildir spec and Dovecot write them. `host` is
/// escaped (`/` as `\057`, `:` as `\072`) so the name stays one path component
/// with no info separator.
pub fn unique(secs: u64, usecs: u32, pid: u32, seq: u64, host: &str, size: u64) -> String {
    let mut h = String::with_capacity(host.len());
    for c in host.chars() {
        match c {
            '/' => h.push_str("\\057"),
            ':' => h.push_str("\\072"),
            c if c.is_control() || c == '\\' => h.push_str(&format!("\\{:03o}", u32::from(c))),
            c => h.push(c),
        }
    }
    if h.is_empty() {
        h.push_str("localhost");
    }
    format!("{secs}.M{usecs}P{pid}Q{seq}.{h},S={size}")
}

/// A file name split into its base name and its info (the part after `:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName<'a> {
    pub base: &'a str,
    /// The `2,` info's flag letters, if the name has that info.
    pub letters: Option<&'a str>,
}

/// Splits a file name of new/ or cur/ (`base` or `base:2,FLAGS`; Dovecot also
/// accepts `;` as the separator on systems where `:` is not allowed).
pub fn parse(name: &str) -> FileName<'_> {
    match name.rsplit_once([':', ';']) {
        Some((base, info)) => FileName {
            base,
            letters: info.strip_prefix("2,"),
        },
        None => FileName {
            base: name,
            letters: None,
        },
    }
}

/// The `S=<size>` field of a base name, if any (the exact file size).
pub fn size_field(base: &str) -> Option<u64> {
    base.split(',')
        .skip(1)
        .find_map(|f| f.strip_prefix("S="))?
        .parse()
        .ok()
}

/// The seconds a base name starts with (its delivery time), for ordering.
pub fn leading_secs(base: &str) -> u64 {
    base.split('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Info letters for flags: system-flag letters plus keyword letters, sorted,
/// each once (`keyword_letter` gives `a`..`z` for a keyword, or `None`).
pub fn letters(flags: &[String], mut keyword_letter: impl FnMut(&str) -> Option<char>) -> String {
    let mut out: Vec<char> = Vec::new();
    for f in flags {
        let letter = FLAG_LETTERS
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(f))
            .map(|(l, _)| *l)
            .or_else(|| (!f.starts_with('\\')).then(|| keyword_letter(f)).flatten());
        if let Some(l) = letter
            && !out.contains(&l)
        {
            out.push(l);
        }
    }
    out.sort_unstable();
    out.into_iter().collect()
}

/// Flags from info letters: system flags by letter, keywords by their
/// `dovecot-keywords` name (`keyword_name(0)` for `a`); unknown letters
/// (such as `P`, passed, which IMAP has no flag for) are left out.
pub fn flags(letters: &str, keyword_name: impl Fn(usize) -> Option<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in letters.chars() {
        let flag = if l.is_ascii_lowercase() {
            keyword_name(usize::from(l as u8 - b'a'))
        } else {
            FLAG_LETTERS
                .iter()
                .find(|(c, _)| *c == l)
                .map(|(_, f)| (*f).to_owned())
        };
        if let Some(f) = flag
            && !has_flag(&out, &f)
        {
            out.push(f);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unique_names() {
        assert_eq!(
            unique(1700000000, 42, 77, 3, "mx.lyon.test", 1234),
            "1700000000.M42P77Q3.mx.lyon.test,S=1234"
        );
        assert_eq!(unique(1, 2, 3, 4, "a/b:c", 5), "1.M2P3Q4.a\\057b\\072c,S=5");
        assert_eq!(unique(1, 2, 3, 4, "", 5), "1.M2P3Q4.localhost,S=5");
    }

    #[test]
    fn parsing() {
        let n = parse("1700000000.M42P77Q3.host,S=1234:2,FS");
        assert_eq!(n.base, "1700000000.M42P77Q3.host,S=1234");
        assert_eq!(n.letters, Some("FS"));
        assert_eq!(size_field(n.base), Some(1234));
        assert_eq!(leading_secs(n.base), 1700000000);
        let n = parse("1.2.host");
        assert_eq!((n.base, n.letters), ("1.2.host", None));
        assert_eq!(size_field(n.base), None);
        // Dovecot's size fields: S= exact, W= virtual.
        assert_eq!(size_field("1.M1P1.h,S=10,W=12"), Some(10));
        let n = parse("1.h;2,");
        assert_eq!((n.base, n.letters), ("1.h", Some("")));
        // An experimental info other than 2, carries no flags.
        assert_eq!(parse("1.h:1,xyz").letters, None);
    }

    #[test]
    fn flag_letters() {
        let kw = |k: &str| match k {
            "$Label1" => Some('a'),
            "Junk" => Some('c'),
            _ => None,
        };
        assert_eq!(
            letters(
                &v(&["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]),
                kw
            ),
            "DFRST"
        );
        assert_eq!(
            letters(&v(&["Junk", "\\seen", "$Label1", "\\Seen"]), kw),
            "Sac"
        );
        assert_eq!(letters(&v(&["unknown"]), kw), "");
        let names = |i: usize| ["$Label1", "x", "Junk"].get(i).map(|s| s.to_string());
        assert_eq!(
            flags("DFRSTac", names),
            v(&[
                "\\Draft",
                "\\Flagged",
                "\\Answered",
                "\\Seen",
                "\\Deleted",
                "$Label1",
                "Junk"
            ])
        );
        assert_eq!(flags("PSz", names), v(&["\\Seen"]));
    }
}
