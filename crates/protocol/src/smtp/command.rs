//! SMTP/LMTP commands: parsing a command line (server side) and rendering it
//! (client side), RFC 5321 §4.1, with ESMTP parameters (RFC 1870 SIZE, RFC 6152
//! 8BITMIME, RFC 3030 CHUNKING/BINARYMIME, RFC 6531 SMTPUTF8, RFC 4954 AUTH).

use super::codes;
use super::reply::Reply;
use crate::Secret;
use crate::address::{AddressError, ForwardPath, ReversePath, split_path};

/// Why a command line was refused; [`CommandError::reply`] gives the wire reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Unknown verb: 500 5.5.1.
    #[error("unknown command {0:?}")]
    Unknown(String),
    /// Bad arguments: 501 5.5.4.
    #[error("syntax error: {0}")]
    Syntax(&'static str),
    /// Bad path in MAIL/RCPT: 501 5.1.7 / 5.1.3.
    #[error("bad {} address: {source}", if *.sender { "sender" } else { "recipient" })]
    Address { sender: bool, source: AddressError },
    /// Bad or unknown MAIL/RCPT parameter: 555 5.5.4.
    #[error("bad parameter: {0}")]
    Param(String),
}

impl CommandError {
    /// The reply the server sends for this error.
    pub fn reply(&self) -> Reply {
        match self {
            CommandError::Unknown(_) => codes::unknown_command(),
            CommandError::Syntax(_) => codes::bad_arguments(),
            CommandError::Address { sender, .. } => codes::bad_address(*sender),
            // RFC 5321 §4.1.1.11
            CommandError::Param(_) => codes::param_not_impl(),
        }
    }
}

/// An ESMTP parameter `KEYWORD[=value]`; the keyword is stored in upper case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub keyword: String,
    pub value: Option<String>,
}

/// The BODY parameter (RFC 6152, RFC 3030).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
    BinaryMime,
}

impl Body {
    fn as_str(self) -> &'static str {
        match self {
            Body::SevenBit => "7BIT",
            Body::EightBitMime => "8BITMIME",
            Body::BinaryMime => "BINARYMIME",
        }
    }
}

/// MAIL FROM parameters; the known ones are parsed, the rest kept in `other`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub smtputf8: bool,
    pub other: Vec<Param>,
}

/// One SMTP or LMTP command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Lhlo(String),
    Mail {
        from: ReversePath,
        params: MailParams,
    },
    Rcpt {
        to: ForwardPath,
        params: Vec<Param>,
    },
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy(String),
    Expn(String),
    Help(Option<String>),
    StartTls,
    /// `initial` is the base64 initial response as sent; `Some("")` is the
    /// empty response, sent as `=` (RFC 4954 §4).
    Auth {
        mechanism: String,
        initial: Option<Secret<String>>,
    },
}

fn no_args(rest: &str, cmd: Command) -> Result<Command, CommandError> {
    if rest.trim().is_empty() {
        Ok(cmd)
    } else {
        Err(CommandError::Syntax("no arguments allowed"))
    }
}

fn required(rest: &str, what: &'static str) -> Result<String, CommandError> {
    let s = rest.trim();
    if s.is_empty() {
        Err(CommandError::Syntax(what))
    } else {
        Ok(s.to_owned())
    }
}

/// RFC 5321 §4.1.2 esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
fn valid_keyword(k: &str) -> bool {
    k.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// RFC 5321 §4.1.2 esmtp-value = 1*(%d33-60 / %d62-126), UTF-8 allowed (RFC 6531 §3.3).
fn valid_value(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| (c.is_ascii_graphic() && c != '=') || (!c.is_ascii() && !c.is_control()))
}

fn parse_params(s: &str) -> Result<Vec<Param>, CommandError> {
    if !s.is_empty() && !s.starts_with(' ') {
        return Err(CommandError::Syntax("expected a space after the path"));
    }
    s.split(' ')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (p, None),
            };
            if !valid_keyword(k) || v.is_some_and(|v| !valid_value(v)) {
                return Err(CommandError::Param(p.chars().take(64).collect()));
            }
            Ok(Param {
                keyword: k.to_ascii_uppercase(),
                value: v.map(str::to_owned),
            })
        })
        .collect()
}

/// Splits `FROM:<path> params` after the verb. A space after the colon is
/// tolerated, as most servers do.
fn path_and_params<'a>(rest: &'a str, prefix: &str) -> Result<(&'a str, &'a str), CommandError> {
    let ok = rest
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix));
    if !ok {
        return Err(CommandError::Syntax("expected FROM:<path> or TO:<path>"));
    }
    let after = rest[prefix.len()..].trim_start_matches(' ');
    let sender = prefix == "FROM:";
    split_path(after).map_err(|source| CommandError::Address { sender, source })
}

fn mail_params(params: Vec<Param>) -> Result<MailParams, CommandError> {
    let mut mp = MailParams::default();
    let dup = |k: &str| CommandError::Param(format!("duplicate {k}"));
    for p in params {
        match p.keyword.as_str() {
            "SIZE" => {
                // RFC 1870 §3: size-value = 1*20DIGIT
                let n = p
                    .value
                    .as_deref()
                    .filter(|v| v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| CommandError::Param("SIZE needs a number".into()))?;
                if mp.size.replace(n).is_some() {
                    return Err(dup("SIZE"));
                }
            }
            "BODY" => {
                let v = p.value.as_deref().unwrap_or("");
                let b = if v.eq_ignore_ascii_case("7BIT") {
                    Body::SevenBit
                } else if v.eq_ignore_ascii_case("8BITMIME") {
                    Body::EightBitMime
                } else if v.eq_ignore_ascii_case("BINARYMIME") {
                    Body::BinaryMime
                } else {
                    return Err(CommandError::Param("unknown BODY value".into()));
                };
                if mp.body.replace(b).is_some() {
                    return Err(dup("BODY"));
                }
            }
            "SMTPUTF8" => {
                // RFC 6531 §3.4: SMTPUTF8 takes no value.
                if p.value.is_some() {
                    return Err(CommandError::Param("SMTPUTF8 takes no value".into()));
                }
                if mp.smtputf8 {
                    return Err(dup("SMTPUTF8"));
                }
                mp.smtputf8 = true;
            }
            _ => mp.other.push(p),
        }
    }
    Ok(mp)
}

fn render_params(out: &mut String, params: &[Param]) {
    for p in params {
        out.push(' ');
        out.push_str(&p.keyword);
        if let Some(v) = &p.value {
            out.push('=');
            out.push_str(v);
        }
    }
}

impl Command {
    /// Parses one command line (without CRLF). Verbs are case-insensitive.
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        let split = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
        let verb = &line[..split];
        if verb.is_empty() || !verb.iter().all(u8::is_ascii_alphabetic) {
            return Err(CommandError::Unknown(
                String::from_utf8_lossy(verb).chars().take(16).collect(),
            ));
        }
        let verb = String::from_utf8_lossy(verb).to_ascii_uppercase();
        let rest = line.get(split + 1..).unwrap_or_default();
        let rest = std::str::from_utf8(rest)
            .map_err(|_| CommandError::Syntax("arguments are not valid UTF-8"))?;
        if rest.chars().any(|c| c.is_control() && c != '\t') {
            return Err(CommandError::Syntax("control character in arguments"));
        }
        match verb.as_str() {
            "EHLO" => Ok(Command::Ehlo(required(rest, "EHLO needs a domain")?)),
            "HELO" => Ok(Command::Helo(required(rest, "HELO needs a domain")?)),
            "LHLO" => Ok(Command::Lhlo(required(rest, "LHLO needs a domain")?)),
            "MAIL" => {
                let (path, params) = path_and_params(rest, "FROM:")?;
                let from = ReversePath::parse(path).map_err(|source| CommandError::Address {
                    sender: true,
                    source,
                })?;
                let params = mail_params(parse_params(params.trim_end())?)?;
                Ok(Command::Mail { from, params })
            }
            "RCPT" => {
                let (path, params) = path_and_params(rest, "TO:")?;
                let to = ForwardPath::parse(path).map_err(|source| CommandError::Address {
                    sender: false,
                    source,
                })?;
                let params = parse_params(params.trim_end())?;
                Ok(Command::Rcpt { to, params })
            }
            "DATA" => no_args(rest, Command::Data),
            "BDAT" => {
                // RFC 3030 §2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ]
                let mut it = rest.split_whitespace();
                let size = it
                    .next()
                    .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or(CommandError::Syntax("BDAT needs a chunk size"))?;
                let last = match it.next() {
                    None => false,
                    Some(m) if m.eq_ignore_ascii_case("LAST") => true,
                    Some(_) => return Err(CommandError::Syntax("expected LAST")),
                };
                if it.next().is_some() {
                    return Err(CommandError::Syntax("too many BDAT arguments"));
                }
                Ok(Command::Bdat { size, last })
            }
            "RSET" => no_args(rest, Command::Rset),
            // RFC 5321 §4.1.1.9: NOOP may carry a string, which is ignored.
            "NOOP" => Ok(Command::Noop),
            "QUIT" => no_args(rest, Command::Quit),
            "VRFY" => Ok(Command::Vrfy(required(rest, "VRFY needs a string")?)),
            "EXPN" => Ok(Command::Expn(required(rest, "EXPN needs a string")?)),
            "HELP" => {
                let s = rest.trim();
                Ok(Command::Help((!s.is_empty()).then(|| s.to_owned())))
            }
            "STARTTLS" => no_args(rest, Command::StartTls),
            "AUTH" => {
                let mut it = rest.split_whitespace();
                let mechanism = it
                    .next()
                    .filter(|m| valid_keyword(m) || m.contains('_'))
                    .ok_or(CommandError::Syntax("AUTH needs a mechanism"))?
                    .to_ascii_uppercase();
                let initial = match it.next() {
                    None => None,
                    Some("=") => Some(Secret::new(String::new())),
                    Some(s) => Some(Secret::new(s.to_owned())),
                };
                if it.next().is_some() {
                    return Err(CommandError::Syntax("too many AUTH arguments"));
                }
                Ok(Command::Auth { mechanism, initial })
            }
            _ => Err(CommandError::Unknown(verb.chars().take(16).collect())),
        }
    }

    /// The command line, CRLF included (client side).
    pub fn to_line(&self) -> Vec<u8> {
        let mut s = match self {
            Command::Ehlo(d) => format!("EHLO {d}"),
            Command::Helo(d) => format!("HELO {d}"),
            Command::Lhlo(d) => format!("LHLO {d}"),
            Command::Mail { from, params } => {
                let mut s = format!("MAIL FROM:{from}");
                if let Some(n) = params.size {
                    s.push_str(&format!(" SIZE={n}"));
                }
                if let Some(b) = params.body {
                    s.push_str(" BODY=");
                    s.push_str(b.as_str());
                }
                if params.smtputf8 {
                    s.push_str(" SMTPUTF8");
                }
                render_params(&mut s, &params.other);
                s
            }
            Command::Rcpt { to, params } => {
                let mut s = format!("RCPT TO:{to}");
                render_params(&mut s, params);
                s
            }
            Command::Data => "DATA".into(),
            Command::Bdat { size, last } => {
                if *last {
                    format!("BDAT {size} LAST")
                } else {
                    format!("BDAT {size}")
                }
            }
            Command::Rset => "RSET".into(),
            Command::Noop => "NOOP".into(),
            Command::Quit => "QUIT".into(),
            Command::Vrfy(s) => format!("VRFY {s}"),
            Command::Expn(s) => format!("EXPN {s}"),
            Command::Help(None) => "HELP".into(),
            Command::Help(Some(s)) => format!("HELP {s}"),
            Command::StartTls => "STARTTLS".into(),
            Command::Auth { mechanism, initial } => match initial {
                None => format!("AUTH {mechanism}"),
                Some(i) if i.expose().is_empty() => format!("AUTH {mechanism} ="),
                Some(i) => format!("AUTH {mechanism} {}", i.expose()),
            },
        };
        s.push_str("\r\n");
        s.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Mailbox;
    use proptest::prelude::*;

    fn mb(s: &str) -> Mailbox {
        Mailbox::parse(s).unwrap()
    }

    #[test]
    fn parses_known_answers() {
        let cases: Vec<(&[u8], Command)> = vec![
            (b"EHLO bar.com", Command::Ehlo("bar.com".into())),
            (b"ehlo [127.0.0.1]", Command::Ehlo("[127.0.0.1]".into())),
            (b"HeLo x", Command::Helo("x".into())),
            (
                b"LHLO mail.paris.test",
                Command::Lhlo("mail.paris.test".into()),
            ),
            (
                b"MAIL FROM:<Smith@bar.com>",
                Command::Mail {
                    from: ReversePath::Mailbox(mb("Smith@bar.com")),
                    params: MailParams::default(),
                },
            ),
            (
                b"mail from: <> SIZE=1000 body=8bitmime SMTPUTF8 AUTH=<>",
                Command::Mail {
                    from: ReversePath::Null,
                    params: MailParams {
                        size: Some(1000),
                        body: Some(Body::EightBitMime),
                        smtputf8: true,
                        other: vec![Param {
                            keyword: "AUTH".into(),
                            value: Some("<>".into()),
                        }],
                    },
                },
            ),
            (
                b"RCPT TO:<@hosta.int,@jkl.org:userc@d.bar.org>",
                Command::Rcpt {
                    to: ForwardPath::Mailbox(mb("userc@d.bar.org")),
                    params: vec![],
                },
            ),
            (
                b"RCPT TO:<postmaster> NOTIFY=NEVER",
                Command::Rcpt {
                    to: ForwardPath::Postmaster,
                    params: vec![Param {
                        keyword: "NOTIFY".into(),
                        value: Some("NEVER".into()),
                    }],
                },
            ),
            (b"DATA", Command::Data),
            (b"data ", Command::Data),
            (
                b"BDAT 1000",
                Command::Bdat {
                    size: 1000,
                    last: false,
                },
            ),
            (
                b"BDAT 0 last",
                Command::Bdat {
                    size: 0,
                    last: true,
                },
            ),
            (b"RSET", Command::Rset),
            (b"NOOP anything", Command::Noop),
            (b"QUIT", Command::Quit),
            (b"VRFY Smith", Command::Vrfy("Smith".into())),
            (b"EXPN list", Command::Expn("list".into())),
            (b"HELP", Command::Help(None)),
            (b"HELP MAIL", Command::Help(Some("MAIL".into()))),
            (b"STARTTLS", Command::StartTls),
            (
                b"AUTH plain",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial: None,
                },
            ),
            (
                b"AUTH PLAIN =",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial: Some(Secret::new(String::new())),
                },
            ),
            (
                b"AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial: Some(Secret::new("AHRpbQB0YW5zdGFhZnRhbnN0YWFm".into())),
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(
                Command::parse(line),
                Ok(want),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn classifies_errors() {
        use CommandError as E;
        let unknown: &[&[u8]] = &[b"", b"FOO", b"MAIL-FROM:<>", b"\xff\xfe", b" EHLO x"];
        for l in unknown {
            assert!(matches!(Command::parse(l), Err(E::Unknown(_))), "{l:?}");
        }
        let syntax: &[&[u8]] = &[
            b"EHLO",
            b"EHLO  ",
            b"MAIL <a@b.c>",
            b"MAIL TO:<a@b.c>",
            b"DATA now",
            b"QUIT please",
            b"BDAT",
            b"BDAT x",
            b"BDAT 10 FIRST",
            b"BDAT -1",
            b"AUTH",
            b"AUTH PLAIN a b",
            b"VRFY",
            b"EHLO x\x00y",
            b"RCPT TO:\xff",
            b"MAIL FROM:<> SIZE=1\rRSET",
        ];
        for l in syntax {
            assert!(matches!(Command::parse(l), Err(E::Syntax(_))), "{l:?}");
        }
        let addr: &[&[u8]] = &[
            b"MAIL FROM:a@b.c",
            b"MAIL FROM:<a@>",
            b"RCPT TO:<>",
            b"RCPT TO:<a b@c>",
        ];
        for l in addr {
            assert!(matches!(Command::parse(l), Err(E::Address { .. })), "{l:?}");
        }
        let param: &[&[u8]] = &[
            b"MAIL FROM:<> SIZE",
            b"MAIL FROM:<> SIZE=x",
            b"MAIL FROM:<> SIZE=1 SIZE=2",
            b"MAIL FROM:<> SIZE=123456789012345678901",
            b"MAIL FROM:<> BODY=9BIT",
            b"MAIL FROM:<> SMTPUTF8=yes",
            b"MAIL FROM:<> -X=1",
            b"MAIL FROM:<> X=",
            b"RCPT TO:<a@b.c> X=a=b",
        ];
        for l in param {
            assert!(matches!(Command::parse(l), Err(E::Param(_))), "{l:?}");
        }
        assert!(matches!(
            Command::parse(b"MAIL FROM:<>SIZE=1"),
            Err(E::Syntax(_))
        ));
        assert_eq!(E::Unknown("X".into()).reply().code(), 500);
        assert_eq!(E::Syntax("x").reply().code(), 501);
        assert_eq!(E::Param("x".into()).reply().code(), 555);
    }

    #[test]
    fn renders() {
        assert_eq!(
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some(Secret::new(String::new()))
            }
            .to_line(),
            b"AUTH PLAIN =\r\n"
        );
        let c = Command::parse(b"mail from:<a@B.c> body=8bitmime size=10").unwrap();
        assert_eq!(c.to_line(), b"MAIL FROM:<a@b.c> SIZE=10 BODY=8BITMIME\r\n");
    }

    fn arb_param() -> impl Strategy<Value = Param> {
        ("X-[A-Z0-9]{1,6}", proptest::option::of("[!-<>-~]{1,10}"))
            .prop_map(|(keyword, value)| Param { keyword, value })
    }

    fn arb_command() -> impl Strategy<Value = Command> {
        let word = "[a-zA-Z0-9.\\[\\]:-]{1,20}";
        let mailbox = crate::address::tests::arb_mailbox();
        prop_oneof![
            word.prop_map(Command::Ehlo),
            word.prop_map(Command::Helo),
            word.prop_map(Command::Lhlo),
            (
                proptest::option::of(mailbox.clone()),
                proptest::option::of(any::<u64>()),
                proptest::option::of(prop_oneof![
                    Just(Body::SevenBit),
                    Just(Body::EightBitMime),
                    Just(Body::BinaryMime)
                ]),
                any::<bool>(),
                proptest::collection::vec(arb_param(), 0..3),
            )
                .prop_map(|(m, size, body, smtputf8, other)| Command::Mail {
                    from: m.map_or(ReversePath::Null, ReversePath::Mailbox),
                    params: MailParams {
                        size,
                        body,
                        smtputf8,
                        other
                    },
                }),
            (
                proptest::option::of(mailbox),
                proptest::collection::vec(arb_param(), 0..3)
            )
                .prop_map(|(m, params)| Command::Rcpt {
                    to: m.map_or(ForwardPath::Postmaster, ForwardPath::Mailbox),
                    params,
                }),
            Just(Command::Data),
            (any::<u64>(), any::<bool>()).prop_map(|(size, last)| Command::Bdat { size, last }),
            Just(Command::Rset),
            Just(Command::Noop),
            Just(Command::Quit),
            word.prop_map(Command::Vrfy),
            word.prop_map(Command::Expn),
            proptest::option::of(word).prop_map(Command::Help),
            Just(Command::StartTls),
            (
                "[A-Z][A-Z0-9-]{0,10}",
                proptest::option::of("([A-Za-z0-9+/]{4}){0,5}")
            )
                .prop_map(|(mechanism, initial)| Command::Auth {
                    mechanism,
                    initial: initial.map(Secret::new),
                }),
        ]
    }

    proptest! {
        #[test]
        fn parse_inverts_render(c in arb_command()) {
            let line = c.to_line();
            prop_assert!(line.ends_with(b"\r\n"));
            let parsed = Command::parse(&line[..line.len() - 2]);
            prop_assert_eq!(parsed, Ok(c));
        }

        #[test]
        fn parse_never_panics(line in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Command::parse(&line);
        }

        #[test]
        fn parse_never_panics_on_text(line in "(MAIL FROM:|RCPT TO:|BDAT |AUTH )\\PC{0,60}") {
            let _ = Command::parse(line.as_bytes());
        }
    }
}
