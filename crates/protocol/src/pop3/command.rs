//! POP3 commands (RFC 1939 §§4-7, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH):
//! parsing (server side) and rendering (client side).

use super::response::Response;
use crate::Secret;

/// Why a command line was refused; [`CommandError::response`] is the `-ERR` to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command {0:?}")]
    Unknown(String),
    #[error("syntax error: {0}")]
    Syntax(&'static str),
}

impl CommandError {
    /// The `-ERR` response for this error (RFC 1939 §3).
    pub fn response(&self) -> Response {
        match self {
            CommandError::Unknown(_) => Response::err("Unknown command"),
            CommandError::Syntax(why) => Response::err(&format!("Syntax error: {why}")),
        }
    }
}

/// One POP3 command. Message numbers are 1-based (RFC 1939 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    /// The rest of the line after `PASS ` (passwords may hold spaces).
    Pass(Secret<String>),
    /// APOP name digest (RFC 1939 §7); the digest is 32 lowercase hex digits.
    Apop {
        name: String,
        digest: String,
    },
    Stat,
    List(Option<u32>),
    Retr(u32),
    Dele(u32),
    Noop,
    Rset,
    Quit,
    /// TOP msg n: headers plus `n` body lines (n may be 0).
    Top(u32, u32),
    Uidl(Option<u32>),
    Capa,
    Stls,
    /// AUTH mechanism [initial-response] (RFC 5034 §4); `Some("")` is sent as `=`.
    Auth {
        mechanism: String,
        initial: Option<Secret<String>>,
    },
}

fn number(s: &str, allow_zero: bool) -> Result<u32, CommandError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::Syntax("expected a number"));
    }
    let n: u32 = s
        .parse()
        .map_err(|_| CommandError::Syntax("number out of range"))?;
    if n == 0 && !allow_zero {
        // RFC 1939 §3: message numbers start at 1.
        return Err(CommandError::Syntax("message numbers start at 1"));
    }
    Ok(n)
}

fn args(rest: &str, min: usize, max: usize) -> Result<Vec<&str>, CommandError> {
    let v: Vec<&str> = rest.split(' ').filter(|a| !a.is_empty()).collect();
    if v.len() < min {
        return Err(CommandError::Syntax("missing argument"));
    }
    if v.len() > max {
        return Err(CommandError::Syntax("too many arguments"));
    }
    Ok(v)
}

impl Command {
    /// Parses one command line (without CRLF); keywords are case-insensitive (RFC 1939 §3).
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        let split = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
        let kw = &line[..split];
        if kw.is_empty() || kw.len() > 8 || !kw.iter().all(u8::is_ascii_alphabetic) {
            return Err(CommandError::Unknown(
                String::from_utf8_lossy(kw).chars().take(16).collect(),
            ));
        }
        let kw = String::from_utf8_lossy(kw).to_ascii_uppercase();
        let rest = line.get(split + 1..).unwrap_or_default();
        let rest = std::str::from_utf8(rest)
            .map_err(|_| CommandError::Syntax("arguments are not valid UTF-8"))?;
        if rest.chars().any(char::is_control) {
            return Err(CommandError::Syntax("control character in arguments"));
        }
        let opt_msg = |rest: &str| -> Result<Option<u32>, CommandError> {
            Ok(match args(rest, 0, 1)?.first() {
                None => None,
                Some(a) => Some(number(a, false)?),
            })
        };
        let one_msg =
            |rest: &str| -> Result<u32, CommandError> { number(args(rest, 1, 1)?[0], false) };
        let none = |rest: &str, c: Command| -> Result<Command, CommandError> {
            args(rest, 0, 0).map(|_| c)
        };
        match kw.as_str() {
            "USER" => Ok(Command::User(args(rest, 1, 1)?[0].to_owned())),
            "PASS" => {
                if rest.is_empty() {
                    return Err(CommandError::Syntax("missing password"));
                }
                Ok(Command::Pass(Secret::new(rest.to_owned())))
            }
            "APOP" => {
                let a = args(rest, 2, 2)?;
                let digest = a[1];
                if digest.len() != 32 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(CommandError::Syntax("APOP digest must be 32 hex digits"));
                }
                Ok(Command::Apop {
                    name: a[0].to_owned(),
                    digest: digest.to_ascii_lowercase(),
                })
            }
            "STAT" => none(rest, Command::Stat),
            "LIST" => Ok(Command::List(opt_msg(rest)?)),
            "RETR" => Ok(Command::Retr(one_msg(rest)?)),
            "DELE" => Ok(Command::Dele(one_msg(rest)?)),
            "NOOP" => none(rest, Command::Noop),
            "RSET" => none(rest, Command::Rset),
            "QUIT" => none(rest, Command::Quit),
            "TOP" => {
                let a = args(rest, 2, 2)?;
                Ok(Command::Top(number(a[0], false)?, number(a[1], true)?))
            }
            "UIDL" => Ok(Command::Uidl(opt_msg(rest)?)),
            "CAPA" => none(rest, Command::Capa),
            "STLS" => none(rest, Command::Stls),
            "AUTH" => {
                let a = args(rest, 1, 2)?;
                let initial = a.get(1).map(|i| {
                    Secret::new(if *i == "=" {
                        String::new()
                    } else {
                        (*i).to_owned()
                    })
                });
                Ok(Command::Auth {
                    mechanism: a[0].to_ascii_uppercase(),
                    initial,
                })
            }
            _ => Err(CommandError::Unknown(kw.chars().take(16).collect())),
        }
    }

    /// The command line, CRLF included (client side).
    pub fn to_line(&self) -> Vec<u8> {
        let mut s = match self {
            Command::User(u) => format!("USER {u}"),
            Command::Pass(p) => format!("PASS {}", p.expose()),
            Command::Apop { name, digest } => format!("APOP {name} {digest}"),
            Command::Stat => "STAT".into(),
            Command::List(None) => "LIST".into(),
            Command::List(Some(n)) => format!("LIST {n}"),
            Command::Retr(n) => format!("RETR {n}"),
            Command::Dele(n) => format!("DELE {n}"),
            Command::Noop => "NOOP".into(),
            Command::Rset => "RSET".into(),
            Command::Quit => "QUIT".into(),
            Command::Top(m, n) => format!("TOP {m} {n}"),
            Command::Uidl(None) => "UIDL".into(),
            Command::Uidl(Some(n)) => format!("UIDL {n}"),
            Command::Capa => "CAPA".into(),
            Command::Stls => "STLS".into(),
            Command::Auth { mechanism, initial } => match initial {
                None => format!("AUTH {mechanism}"),
                Some(i) if i.expose().is_empty() => format!("AUTH {mechanism} ="),
                Some(i) => format!("AUTH {mechanism} {}", i.expose()),
            },
        };
        s.push_str("\r\n");
        s.into_bytes()
    }

    /// True when a `+OK` to this command is followed by a multi-line body
    /// (RFC 1939 §5, RFC 2449 §5): LIST/UIDL without argument, RETR, TOP, CAPA.
    pub fn expects_multiline(&self) -> bool {
        matches!(
            self,
            Command::List(None)
                | Command::Uidl(None)
                | Command::Retr(_)
                | Command::Top(..)
                | Command::Capa
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1939_examples() {
        let cases: Vec<(&[u8], Command)> = vec![
            (b"USER mrose", Command::User("mrose".into())),
            (b"PASS secret", Command::Pass(Secret::new("secret".into()))),
            (
                b"PASS with spaces ",
                Command::Pass(Secret::new("with spaces ".into())),
            ),
            (
                b"APOP mrose c4c9334bac560ecc979e58001b3e22fb",
                Command::Apop {
                    name: "mrose".into(),
                    digest: "c4c9334bac560ecc979e58001b3e22fb".into(),
                },
            ),
            (b"STAT", Command::Stat),
            (b"LIST", Command::List(None)),
            (b"LIST 2", Command::List(Some(2))),
            (b"RETR 1", Command::Retr(1)),
            (b"DELE 1", Command::Dele(1)),
            (b"NOOP", Command::Noop),
            (b"RSET", Command::Rset),
            (b"QUIT", Command::Quit),
            (b"TOP 1 10", Command::Top(1, 10)),
            (b"TOP 1 0", Command::Top(1, 0)),
            (b"UIDL", Command::Uidl(None)),
            (b"uidl 2", Command::Uidl(Some(2))),
            (b"CAPA", Command::Capa),
            (b"stls", Command::Stls),
            (
                b"AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial: Some(Secret::new("dGVzdAB0ZXN0AHRlc3Q=".into())),
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(Command::parse(line), Ok(want), "{line:?}");
        }
    }

    #[test]
    fn errors() {
        for l in [&b""[..], b"FOO", b"RETRIEVE 1", b"\xff"] {
            assert!(
                matches!(Command::parse(l), Err(CommandError::Unknown(_))),
                "{l:?}"
            );
        }
        for l in [
            &b"RETR"[..],
            b"RETR 0",
            b"RETR -1",
            b"RETR +1",
            b"RETR 1 2",
            b"RETR 99999999999",
            b"LIST x",
            b"TOP 1",
            b"TOP 0 1",
            b"STAT now",
            b"USER",
            b"USER a b",
            b"PASS",
            b"APOP mrose xyz",
            b"USER a\x00b",
            b"USER \xff",
        ] {
            assert!(
                matches!(Command::parse(l), Err(CommandError::Syntax(_))),
                "{l:?}"
            );
        }
        assert_eq!(
            CommandError::Unknown("X".into()).response().to_bytes(),
            b"-ERR Unknown command\r\n"
        );
    }

    fn arb_command() -> impl Strategy<Value = Command> {
        let word = "[!-~]{1,20}";
        let n = 1u32..;
        prop_oneof![
            word.prop_map(Command::User),
            "[ -~]{0,19}[!-~]".prop_map(|p| Command::Pass(Secret::new(p))),
            (word, "[0-9a-f]{32}").prop_map(|(name, digest)| Command::Apop { name, digest }),
            Just(Command::Stat),
            proptest::option::of(n.clone()).prop_map(Command::List),
            n.clone().prop_map(Command::Retr),
            n.clone().prop_map(Command::Dele),
            Just(Command::Noop),
            Just(Command::Rset),
            Just(Command::Quit),
            (n.clone(), any::<u32>()).prop_map(|(m, l)| Command::Top(m, l)),
            proptest::option::of(n).prop_map(Command::Uidl),
            Just(Command::Capa),
            Just(Command::Stls),
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
            prop_assert_eq!(Command::parse(&line[..line.len() - 2]), Ok(c));
        }

        #[test]
        fn parse_never_panics(line in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = Command::parse(&line);
        }
    }
}
