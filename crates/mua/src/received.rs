//! A lenient parser for `Received:` header values (RFC 5321 §4.4): the `from`,
//! `by`, `via`, `with`, `id` and `for` clauses with their comments, and the date
//! after the last `;`. It reads facteur's own format (`daemon::trace`) and what
//! other MTAs write (Postfix, Exim, Sendmail, ...); anything it cannot place is
//! simply left out.

/// One hop, as read from a Received header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    /// The name the sending host gave (HELO/EHLO), or its reverse DNS name.
    pub from: Option<String>,
    /// The sending host's address, from `[...]` in the `from` clause.
    pub from_ip: Option<String>,
    /// The receiving host.
    pub by: Option<String>,
    /// The comment after `by`, e.g. `facteur-msa` or `Postfix`.
    pub by_comment: Option<String>,
    /// The protocol, e.g. `ESMTPSA`.
    pub with: Option<String>,
    /// The receiver's queue id.
    pub id: Option<String>,
    /// The recipient, without angle brackets.
    pub for_rcpt: Option<String>,
    /// The date after the last `;`, trailing comment removed.
    pub date: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    /// The text inside a comment (nested parentheses kept).
    Comment(&'a str),
}

/// Unfold and collapse white space.
fn unfold(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Index of the last `;` outside comments.
fn last_semicolon(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut last = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if depth > 0 => escaped = true,
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ';' if depth == 0 => last = Some(i),
            _ => {}
        }
    }
    last
}

fn tokens(s: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' {
            let mut depth = 0usize;
            let mut end = s.len();
            let mut escaped = false;
            for (i, c) in chars.by_ref() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let inner = s.get(start + 1..end).unwrap_or_default();
            out.push(Token::Comment(inner.trim()));
        } else {
            let mut end = s.len();
            while let Some(&(i, c)) = chars.peek() {
                if c.is_whitespace() || c == '(' {
                    end = i;
                    break;
                }
                chars.next();
            }
            out.push(Token::Word(&s[start..end]));
        }
    }
    out
}

/// The first `[...]` address literal in `s`, `IPv6:` prefix removed.
fn bracketed_ip(s: &str) -> Option<String> {
    let open = s.find('[')?;
    let close = open + s[open..].find(']')?;
    let ip = &s[open + 1..close];
    let ip = ip
        .strip_prefix("IPv6:")
        .or_else(|| ip.strip_prefix("ipv6:"))
        .unwrap_or(ip);
    (!ip.is_empty()).then(|| ip.to_owned())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Clause {
    None,
    From,
    By,
    Via,
    With,
    Id,
    For,
}

/// Parse one Received header value (the part after `Received:`).
pub fn parse(value: &str) -> Received {
    let value = unfold(value);
    let (clauses, date) = match last_semicolon(&value) {
        Some(i) => (&value[..i], Some(value[i + 1..].trim())),
        None => (value.as_str(), None),
    };
    let mut r = Received {
        date: date.map(strip_trailing_comment).filter(|d| !d.is_empty()),
        ..Received::default()
    };
    let mut clause = Clause::None;
    // Whether the current clause already has its value.
    let mut filled = false;
    for token in tokens(clauses) {
        match token {
            Token::Word(w) => {
                let keyword = match w.to_ascii_lowercase().as_str() {
                    "from" => Some(Clause::From),
                    "by" => Some(Clause::By),
                    "via" => Some(Clause::Via),
                    "with" => Some(Clause::With),
                    "id" => Some(Clause::Id),
                    "for" => Some(Clause::For),
                    _ => None,
                };
                // A keyword starts a clause unless it is the value the current
                // clause is waiting for (`from by` is odd but possible).
                if let Some(k) = keyword.filter(|_| filled || clause == Clause::None) {
                    clause = k;
                    filled = false;
                    continue;
                }
                if filled {
                    continue;
                }
                filled = true;
                let w = w.trim_end_matches(',').to_owned();
                match clause {
                    Clause::From => {
                        if w.starts_with('[') {
                            r.from_ip = bracketed_ip(&w);
                        }
                        r.from = Some(w);
                    }
                    Clause::By => r.by = Some(w),
                    Clause::With => r.with = Some(w),
                    Clause::Id => r.id = Some(w),
                    Clause::For => {
                        r.for_rcpt =
                            Some(w.trim_start_matches('<').trim_end_matches('>').to_owned());
                    }
                    Clause::Via | Clause::None => {}
                }
            }
            Token::Comment(c) => match clause {
                Clause::From if r.from_ip.is_none() => r.from_ip = bracketed_ip(c),
                Clause::By if r.by_comment.is_none() && !c.is_empty() => {
                    r.by_comment = Some(c.to_owned());
                }
                _ => {}
            },
        }
    }
    r
}

fn strip_trailing_comment(date: &str) -> String {
    let d = date.trim();
    match (d.ends_with(')'), d.rfind('(')) {
        (true, Some(open)) if open > 0 => d[..open].trim_end().to_owned(),
        _ => d.to_owned(),
    }
}

impl Received {
    /// One line for `trace`:
    /// `client.example [127.0.0.1] → mail.paris.test (facteur-msa) with ESMTPSA id X for <r> at <date>`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        match (&self.from, &self.from_ip) {
            (Some(f), Some(ip)) if !f.contains(ip.as_str()) => {
                s.push_str(&format!("{f} [{ip}]"));
            }
            (Some(f), _) => s.push_str(f),
            (None, Some(ip)) => s.push_str(&format!("[{ip}]")),
            (None, None) => s.push_str("(local)"),
        }
        s.push_str(" → ");
        s.push_str(self.by.as_deref().unwrap_or("?"));
        if let Some(c) = &self.by_comment {
            s.push_str(&format!(" ({c})"));
        }
        if let Some(w) = &self.with {
            s.push_str(&format!(" with {w}"));
        }
        if let Some(id) = &self.id {
            s.push_str(&format!(" id {id}"));
        }
        if let Some(f) = &self.for_rcpt {
            s.push_str(&format!(" for <{f}>"));
        }
        if let Some(d) = &self.date {
            s.push_str(&format!(" at {d}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn our_own_format() {
        // exactly what daemon::trace::Hop::received writes, minus the field name
        let v = " from client.example ([127.0.0.9])\r\n\tby mail.paris.test (facteur-msa) \
                 with ESMTPSA id Q1\r\n\tfor <andre@lyon.test>;\r\n\tThu, 1 Jan 1970 00:00:00 +0000\r\n";
        let r = parse(v);
        assert_eq!(
            r,
            Received {
                from: some("client.example"),
                from_ip: some("127.0.0.9"),
                by: some("mail.paris.test"),
                by_comment: some("facteur-msa"),
                with: some("ESMTPSA"),
                id: some("Q1"),
                for_rcpt: some("andre@lyon.test"),
                date: some("Thu, 1 Jan 1970 00:00:00 +0000"),
            }
        );
        assert_eq!(
            r.describe(),
            "client.example [127.0.0.9] → mail.paris.test (facteur-msa) with ESMTPSA id Q1 \
             for <andre@lyon.test> at Thu, 1 Jan 1970 00:00:00 +0000"
        );
        // gRPC hop: no IP, no recipient
        let r = parse(
            "from facteur-msa\r\n\tby mail.paris.test (facteur-mta) with gRPC id 7;\r\n\tMon, 2 Feb 2026 10:00:00 +0100",
        );
        assert_eq!(r.from, some("facteur-msa"));
        assert_eq!(r.from_ip, None);
        assert_eq!(r.by_comment, some("facteur-mta"));
        assert_eq!(r.with, some("gRPC"));
        assert_eq!(r.id, some("7"));
    }

    #[test]
    fn postfix_format() {
        let v = "from mail.example.com (mail.example.com [203.0.113.5])\r\n\
                 \t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n\
                 \t(No client certificate requested)\r\n\
                 \tby mx.example.org (Postfix) with ESMTPS id 4ABC123DEF\r\n\
                 \tfor <user@example.org>; Mon, 23 Nov 2026 17:36:42 +0000 (UTC)";
        let r = parse(v);
        assert_eq!(r.from, some("mail.example.com"));
        assert_eq!(r.from_ip, some("203.0.113.5"));
        assert_eq!(r.by, some("mx.example.org"));
        assert_eq!(r.by_comment, some("Postfix"));
        assert_eq!(r.with, some("ESMTPS"));
        assert_eq!(r.id, some("4ABC123DEF"));
        assert_eq!(r.for_rcpt, some("user@example.org"));
        assert_eq!(r.date, some("Mon, 23 Nov 2026 17:36:42 +0000"));
        assert_eq!(
            r.describe(),
            "mail.example.com [203.0.113.5] → mx.example.org (Postfix) with ESMTPS \
             id 4ABC123DEF for <user@example.org> at Mon, 23 Nov 2026 17:36:42 +0000"
        );
    }

    #[test]
    fn odd_and_broken_values_do_not_panic() {
        let r = parse(
            "by mx.example.org (Postfix, from userid 1000)\r\n\tid 5DEF; Tue, 1 Dec 2026 08:00:00 +0000",
        );
        assert_eq!(r.from, None);
        assert_eq!(r.by_comment, some("Postfix, from userid 1000"));
        assert_eq!(r.id, some("5DEF"));
        assert!(r.describe().starts_with("(local) → mx.example.org"));
        let r = parse("from [IPv6:::1] by h; date");
        assert_eq!(r.from_ip, some("::1"));
        assert_eq!(r.describe(), "[IPv6:::1] → h at date");
        for v in [
            "",
            ";",
            "(((",
            "from",
            "from (x; y) by",
            "))) by ( ;",
            "for <> ; ;",
        ] {
            let _ = parse(v).describe();
        }
    }
}
