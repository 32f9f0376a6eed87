//! Mail addresses: domains, address literals, local parts, mailboxes and SMTP paths
//! (RFC 5321 §4.1.2 and §4.1.3, RFC 5322 §3.4.1, RFC 6531 for UTF-8).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("empty domain")]
    EmptyDomain,
    #[error("domain longer than 255 octets")]
    DomainTooLong,
    #[error("domain label empty or longer than 63 octets")]
    BadLabel,
    #[error("invalid character in domain")]
    BadDomainChar,
    #[error("invalid address literal")]
    BadLiteral,
    #[error("empty local part")]
    EmptyLocalPart,
    #[error("local part longer than 64 octets")]
    LocalPartTooLong,
    #[error("invalid local part")]
    BadLocalPart,
    #[error("missing @ in mailbox")]
    MissingAt,
    #[error("path must be enclosed in angle brackets")]
    MissingBrackets,
    #[error("invalid source route")]
    BadRoute,
    #[error("path longer than 256 octets")]
    PathTooLong,
    #[error("unexpected characters after the address")]
    Trailing,
}

/// RFC 5321 §4.5.3.1.1.
const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2.
const MAX_DOMAIN: usize = 255;
/// RFC 1035 §2.3.4.
const MAX_LABEL: usize = 63;
/// RFC 5321 §4.5.3.1.3 (brackets included).
const MAX_PATH: usize = 256;

/// A domain name: LDH labels, or UTF-8 U-labels (RFC 6531). Stored with ASCII
/// letters lowercased, so equality and hashing ignore ASCII case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// Parses a domain (no trailing dot).
    pub fn parse(s: &str) -> Result<Domain, AddressError> {
        if s.is_empty() {
            return Err(AddressError::EmptyDomain);
        }
        if s.len() > MAX_DOMAIN {
            return Err(AddressError::DomainTooLong);
        }
        for label in s.split('.') {
            // RFC 5321 §4.1.2: sub-domain = Let-dig [Ldh-str]
            if label.is_empty() || label.len() > MAX_LABEL {
                return Err(AddressError::BadLabel);
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(AddressError::BadDomainChar);
            }
            let ok = label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || is_utf8_non_ascii(c));
            if !ok {
                return Err(AddressError::BadDomainChar);
            }
        }
        Ok(Domain(s.to_ascii_lowercase()))
    }

    /// The domain, ASCII letters in lower case.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when every label is an LDH label (no U-label).
    pub fn is_ascii(&self) -> bool {
        self.0.is_ascii()
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Domain {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Domain::parse(s)
    }
}

fn is_utf8_non_ascii(c: char) -> bool {
    !c.is_ascii() && !c.is_control() && !c.is_whitespace()
}

/// An address literal (RFC 5321 §4.1.3): `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
/// General address literals (`[tag:...]`) are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressLiteral(IpAddr);

impl AddressLiteral {
    /// Parses the bracketed form.
    pub fn parse(s: &str) -> Result<AddressLiteral, AddressError> {
        let inner = s
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .ok_or(AddressError::BadLiteral)?;
        let ip = match inner.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner[5..]
                .parse::<Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| AddressError::BadLiteral)?,
            _ => inner
                .parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| AddressError::BadLiteral)?,
        };
        Ok(AddressLiteral(ip))
    }

    /// The IP address.
    pub fn ip(&self) -> IpAddr {
        self.0
    }
}

impl From<IpAddr> for AddressLiteral {
    fn from(ip: IpAddr) -> Self {
        AddressLiteral(ip)
    }
}

impl fmt::Display for AddressLiteral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(ip) => write!(f, "[{ip}]"),
            IpAddr::V6(ip) => write!(f, "[IPv6:{ip}]"),
        }
    }
}

/// The part after the `@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Domain(Domain),
    Literal(AddressLiteral),
}

impl Host {
    /// Parses a domain or a bracketed address literal.
    pub fn parse(s: &str) -> Result<Host, AddressError> {
        if s.starts_with('[') {
            AddressLiteral::parse(s).map(Host::Literal)
        } else {
            Domain::parse(s).map(Host::Domain)
        }
    }

    /// The domain, if this is not an address literal.
    pub fn domain(&self) -> Option<&Domain> {
        match self {
            Host::Domain(d) => Some(d),
            Host::Literal(_) => None,
        }
    }

    /// True unless this is a domain with U-labels.
    pub fn is_ascii(&self) -> bool {
        match self {
            Host::Domain(d) => d.is_ascii(),
            Host::Literal(_) => true,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => d.fmt(f),
            Host::Literal(l) => l.fmt(f),
        }
    }
}

/// The local part of a mailbox. Holds the *unquoted* content; `Display` renders
/// a dot-string when possible and a quoted-string otherwise (RFC 5321 §4.1.2).
/// Compared case-sensitively (RFC 5321 §2.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalPart(String);

/// RFC 5322 §3.2.3 atext, plus UTF-8 per RFC 6531 §3.3.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || is_utf8_non_ascii(c)
}

/// RFC 5321 §4.1.2 qtextSMTP / quoted-pairSMTP content, plus UTF-8 (RFC 6531).
fn is_quotable(c: char) -> bool {
    (' '..='~').contains(&c) || is_utf8_non_ascii(c)
}

fn is_dot_string(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

fn render_local(s: &str) -> String {
    if is_dot_string(s) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl LocalPart {
    /// Builds a local part from its unquoted content.
    pub fn new(content: &str) -> Result<LocalPart, AddressError> {
        if content.is_empty() {
            return Err(AddressError::EmptyLocalPart);
        }
        if !content.chars().all(is_quotable) {
            return Err(AddressError::BadLocalPart);
        }
        // RFC 5321 §4.5.3.1.1: 64 octets, counted on the wire form.
        if render_local(content).len() > MAX_LOCAL_PART {
            return Err(AddressError::LocalPartTooLong);
        }
        Ok(LocalPart(content.to_owned()))
    }

    /// Parses the wire form (dot-string or quoted-string), all of `s`.
    pub fn parse(s: &str) -> Result<LocalPart, AddressError> {
        let (lp, rest) = parse_local_prefix(s)?;
        if !rest.is_empty() {
            return Err(AddressError::BadLocalPart);
        }
        Ok(lp)
    }

    /// The unquoted content.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the content is ASCII.
    pub fn is_ascii(&self) -> bool {
        self.0.is_ascii()
    }
}

impl fmt::Display for LocalPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_local(&self.0))
    }
}

/// Parses a local part at the start of `s`, returning it and the rest.
fn parse_local_prefix(s: &str) -> Result<(LocalPart, &str), AddressError> {
    if let Some(quoted) = s.strip_prefix('"') {
        let mut content = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    let lp = LocalPart::new(&content)?;
                    return Ok((lp, &quoted[i + 1..]));
                }
                '\\' => match chars.next() {
                    // quoted-pairSMTP = %d92 %d32-126
                    Some((_, e)) if (' '..='~').contains(&e) => content.push(e),
                    _ => return Err(AddressError::BadLocalPart),
                },
                c if is_quotable(c) => content.push(c),
                _ => return Err(AddressError::BadLocalPart),
            }
        }
        Err(AddressError::BadLocalPart)
    } else {
        let end = s
            .char_indices()
            .find(|&(_, c)| !(is_atext(c) || c == '.'))
            .map_or(s.len(), |(i, _)| i);
        let dot = &s[..end];
        if dot.is_empty() {
            return Err(AddressError::EmptyLocalPart);
        }
        if !is_dot_string(dot) {
            return Err(AddressError::BadLocalPart);
        }
        if dot.len() > MAX_LOCAL_PART {
            return Err(AddressError::LocalPartTooLong);
        }
        Ok((LocalPart(dot.to_owned()), &s[end..]))
    }
}

/// `local@host` (RFC 5321 Mailbox).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    pub local: LocalPart,
    pub host: Host,
}

impl Mailbox {
    /// Parses `local@host`, without angle brackets.
    pub fn parse(s: &str) -> Result<Mailbox, AddressError> {
        let (local, rest) = parse_local_prefix(s)?;
        let host = rest.strip_prefix('@').ok_or(AddressError::MissingAt)?;
        Ok(Mailbox {
            local,
            host: Host::parse(host)?,
        })
    }

    /// The domain, unless the host is an address literal.
    pub fn domain(&self) -> Option<&Domain> {
        self.host.domain()
    }

    /// True when neither part holds UTF-8 (no SMTPUTF8 needed).
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.host.is_ascii()
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.host)
    }
}

impl std::str::FromStr for Mailbox {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mailbox::parse(s)
    }
}

/// Splits a bracketed path off the start of `s`: returns `("<...>", rest)`.
/// Angle brackets inside a quoted local part do not end the path.
pub fn split_path(s: &str) -> Result<(&str, &str), AddressError> {
    if !s.starts_with('<') {
        return Err(AddressError::MissingBrackets);
    }
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted {
            match c {
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
        } else if c == '"' {
            quoted = true;
        } else if c == '>' {
            return Ok((&s[..=i], &s[i + 1..]));
        }
    }
    Err(AddressError::MissingBrackets)
}

/// Strips the brackets of a path and a source route `@a,@b:`, which RFC 5321
/// §4.1.1.3 and Appendix C say to accept and ignore.
fn path_inner(s: &str) -> Result<&str, AddressError> {
    if s.len() > MAX_PATH {
        return Err(AddressError::PathTooLong); // RFC 5321 §4.5.3.1.3
    }
    let (path, rest) = split_path(s)?;
    if !rest.is_empty() {
        return Err(AddressError::Trailing);
    }
    let inner = &path[1..path.len() - 1];
    if inner.starts_with('@') {
        let colon = inner.find(':').ok_or(AddressError::BadRoute)?;
        for hop in inner[..colon].split(',') {
            let d = hop.strip_prefix('@').ok_or(AddressError::BadRoute)?;
            Domain::parse(d).map_err(|_| AddressError::BadRoute)?;
        }
        let rest = &inner[colon + 1..];
        if rest.is_empty() {
            return Err(AddressError::BadRoute);
        }
        return Ok(rest);
    }
    Ok(inner)
}

/// Parses a bracketed mailbox `<user@host>` (source route ignored).
pub fn parse_path(s: &str) -> Result<Mailbox, AddressError> {
    Mailbox::parse(path_inner(s)?)
}

/// The MAIL FROM path: `<>` or a mailbox (RFC 5321 §4.1.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReversePath {
    Null,
    Mailbox(Mailbox),
}

impl ReversePath {
    /// Parses the bracketed form.
    pub fn parse(s: &str) -> Result<ReversePath, AddressError> {
        let inner = path_inner(s)?;
        if inner.is_empty() {
            return Ok(ReversePath::Null);
        }
        Mailbox::parse(inner).map(ReversePath::Mailbox)
    }

    /// The mailbox, unless this is the null path.
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            ReversePath::Null => None,
            ReversePath::Mailbox(m) => Some(m),
        }
    }

    /// True when no UTF-8 is involved.
    pub fn is_ascii(&self) -> bool {
        self.mailbox().is_none_or(Mailbox::is_ascii)
    }
}

impl fmt::Display for ReversePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => f.write_str("<>"),
            ReversePath::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

/// The RCPT TO path: `<Postmaster>` or a mailbox (RFC 5321 §4.1.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ForwardPath {
    Postmaster,
    Mailbox(Mailbox),
}

impl ForwardPath {
    /// Parses the bracketed form; `<Postmaster>` is case-insensitive.
    pub fn parse(s: &str) -> Result<ForwardPath, AddressError> {
        let inner = path_inner(s)?;
        if inner.eq_ignore_ascii_case("postmaster") {
            return Ok(ForwardPath::Postmaster);
        }
        Mailbox::parse(inner).map(ForwardPath::Mailbox)
    }

    /// The mailbox, unless this is the bare `<Postmaster>`.
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            ForwardPath::Postmaster => None,
            ForwardPath::Mailbox(m) => Some(m),
        }
    }

    /// True when no UTF-8 is involved.
    pub fn is_ascii(&self) -> bool {
        self.mailbox().is_none_or(Mailbox::is_ascii)
    }
}

impl fmt::Display for ForwardPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("<Postmaster>"),
            ForwardPath::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn domains() {
        assert_eq!(
            Domain::parse("Mail.Paris.TEST").unwrap().as_str(),
            "mail.paris.test"
        );
        assert_eq!(Domain::parse("a.B").unwrap(), Domain::parse("A.b").unwrap());
        assert!(Domain::parse("xn--caf-dma.test").is_ok());
        assert!(Domain::parse("café.test").unwrap().as_str() == "café.test");
        assert!(!Domain::parse("café.test").unwrap().is_ascii());
        for bad in ["", ".", "a..b", "a.", "-a.b", "a-.b", "a_b.c", "a b", "a@b"] {
            assert!(Domain::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Domain::parse(&"a".repeat(64)), Err(AddressError::BadLabel));
        let long = vec!["a".repeat(63); 5].join(".");
        assert_eq!(Domain::parse(&long), Err(AddressError::DomainTooLong));
    }

    #[test]
    fn literals() {
        let h = Host::parse("[127.0.0.1]").unwrap();
        assert_eq!(h.to_string(), "[127.0.0.1]");
        let h = Host::parse("[ipv6:::1]").unwrap();
        assert_eq!(h.to_string(), "[IPv6:::1]");
        for bad in [
            "[]",
            "[1.2.3]",
            "[::1]",
            "[IPv6:1.2.3.4]",
            "[x:y]",
            "[1.2.3.4",
            "[01.2.3.4]",
        ] {
            assert!(Host::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mailboxes() {
        let m = Mailbox::parse("pierre@Paris.test").unwrap();
        assert_eq!(m.to_string(), "pierre@paris.test");
        assert_eq!(m.domain().unwrap().as_str(), "paris.test");
        let q = Mailbox::parse(r#""john \"j\" doe"@x.org"#).unwrap();
        assert_eq!(q.local.as_str(), r#"john "j" doe"#);
        assert_eq!(q.to_string(), r#""john \"j\" doe"@x.org"#);
        // A quoted local part that is a valid dot-string renders unquoted.
        assert_eq!(
            Mailbox::parse(r#""abc"@x.org"#).unwrap().to_string(),
            "abc@x.org"
        );
        let u = Mailbox::parse("andré@lyon.test").unwrap();
        assert!(!u.is_ascii());
        assert!(Mailbox::parse("a@[192.0.2.1]").unwrap().domain().is_none());
        for bad in [
            "",
            "@x.org",
            "a@",
            "a",
            ".a@x.org",
            "a.@x.org",
            "a..b@x.org",
            "a b@x.org",
            "\"a@x.org",
            "a@b@c",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Mailbox::parse(&format!("{}@x.org", "a".repeat(65))),
            Err(AddressError::LocalPartTooLong)
        );
        assert!(Mailbox::parse(&format!("{}@x.org", "a".repeat(64))).is_ok());
    }

    #[test]
    fn paths() {
        assert_eq!(ReversePath::parse("<>").unwrap(), ReversePath::Null);
        assert_eq!(ReversePath::parse("<>").unwrap().to_string(), "<>");
        let p = ReversePath::parse("<@a.org,@b.org:user@c.org>").unwrap();
        assert_eq!(p.to_string(), "<user@c.org>");
        assert_eq!(
            ForwardPath::parse("<postMaster>").unwrap(),
            ForwardPath::Postmaster
        );
        assert!(matches!(
            ForwardPath::parse("<postmaster@x.org>").unwrap(),
            ForwardPath::Mailbox(_)
        ));
        assert!(ForwardPath::parse("<>").is_err());
        assert!(ForwardPath::parse("user@x.org").is_err());
        assert!(ForwardPath::parse("<user@x.org> ").is_err());
        assert!(ReversePath::parse("<@a.org:>").is_err());
        assert_eq!(
            split_path(r#"<"a>b"@x.org> SIZE=1"#).unwrap(),
            (r#"<"a>b"@x.org>"#, " SIZE=1")
        );
        let long = format!("<{}@{}>", "a".repeat(64), vec!["b".repeat(60); 4].join("."));
        assert_eq!(ReversePath::parse(&long), Err(AddressError::PathTooLong));
    }

    pub(crate) fn arb_mailbox() -> BoxedStrategy<Mailbox> {
        let local = prop_oneof![
            "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,10}(\\.[a-z0-9]{1,5}){0,2}",
            "[ -~]{1,20}",
            "[a-zé]{1,8}",
        ];
        let host = prop_oneof![
            "[a-z0-9]{1,10}(\\.[a-z0-9]([a-z0-9-]{0,5}[a-z0-9])?){0,3}".prop_map(|s| s),
            any::<[u8; 4]>().prop_map(|o| format!("[{}.{}.{}.{}]", o[0], o[1], o[2], o[3])),
            any::<[u16; 8]>().prop_map(|s| format!("[IPv6:{}]", Ipv6Addr::from(s))),
        ];
        (local, host)
            .prop_map(|(l, h)| Mailbox {
                local: LocalPart::new(&l).unwrap(),
                host: Host::parse(&h).unwrap(),
            })
            .boxed()
    }

    proptest! {
        #[test]
        fn mailbox_round_trips(m in arb_mailbox()) {
            let s = m.to_string();
            prop_assert_eq!(Mailbox::parse(&s).unwrap(), m.clone());
            prop_assert_eq!(ReversePath::parse(&format!("<{s}>")).unwrap(), ReversePath::Mailbox(m));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = Mailbox::parse(&s);
            let _ = ReversePath::parse(&s);
            let _ = ForwardPath::parse(&s);
            let _ = split_path(&s);
        }
    }
}
