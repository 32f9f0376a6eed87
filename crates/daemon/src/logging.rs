//! Logs: `tracing` to stderr as text or JSON lines (`[log] format`), filtered by
//! `FACTEUR_LOG` (a bare level raises facteur's own targets only; a directive string
//! is used as is) or else `RUST_LOG`; and `clean`, which escapes control characters
//! in peer-supplied values so one event stays one line. Behind `clean`, the
//! writer itself ([`OneLine`]) escapes any CR, LF or other control character
//! inside an event, so a value logged without `clean` (an error text that
//! quotes a peer) cannot forge a line either.

use std::fmt;

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// The `[log]` table every agent's config embeds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct LogConfig {
    /// `"text"` (the default): one human-readable line per event;
    /// `"json"`: one JSON object per line, the event's fields at the top level.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Libraries whose chatter is about their own machinery, not mail: kept at `warn`
/// (rustls at `error`: what it warns about is the peer's doing, e.g. an IP as SNI).
const QUIET: [(&str, LevelFilter); 6] = [
    ("h2", LevelFilter::WARN),
    ("hyper", LevelFilter::WARN),
    ("tower", LevelFilter::WARN),
    ("sled", LevelFilter::WARN),
    ("rustls", LevelFilter::ERROR),
    ("tonic", LevelFilter::WARN),
];

/// The filter directives for `FACTEUR_LOG` and `RUST_LOG` as read from the
/// environment: a bare level in `FACTEUR_LOG` applies to the `facteur*` targets
/// (every facteur crate and binary; a target matches by prefix), the rest staying
/// at `info` or quieter; anything else in `FACTEUR_LOG` and all of `RUST_LOG` are
/// raw directives.
pub fn directives(facteur_log: Option<&str>, rust_log: Option<&str>) -> String {
    let facteur_log = facteur_log.map(str::trim).filter(|s| !s.is_empty());
    match facteur_log {
        Some(raw) => match raw.parse::<LevelFilter>() {
            Ok(level) if !raw.contains('=') => for_level(level),
            _ => raw.to_owned(),
        },
        None => match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
            Some(raw) => raw.to_owned(),
            None => for_level(LevelFilter::INFO),
        },
    }
}

/// facteur at `level`, other crates at `info` (or `level` if quieter), the noisy
/// ones at their quiet level (or `level` if quieter still).
fn for_level(level: LevelFilter) -> String {
    let mut out = format!("{},facteur={level}", level.min(LevelFilter::INFO));
    for (target, quiet) in QUIET {
        out.push_str(&format!(",{target}={}", level.min(quiet)));
    }
    out.to_lowercase()
}

/// Install the global subscriber once (after the config is read); later calls do nothing.
pub fn init(config: &LogConfig) {
    let filter = directives(
        std::env::var("FACTEUR_LOG").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .parse_lossy(filter);
    // Colours only for a person at a terminal, never in log files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || OneLine {
            inner: std::io::stderr(),
            keep_escapes: ansi,
        });
    let _ = match config.format {
        LogFormat::Text => builder.with_ansi(ansi).with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// A log writer that keeps each event on one line: tracing-subscriber formats
/// an event and writes it with one `write_all`; every CR, LF (but the last) and
/// other control character in it is written as an escape (`\r`, `\n`,
/// `\u{1b}`). ESC is kept when colours are on (a terminal).
pub struct OneLine<W> {
    pub inner: W,
    pub keep_escapes: bool,
}

impl<W: std::io::Write> std::io::Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let body = buf.strip_suffix(b"\n").unwrap_or(buf);
        let unsafe_byte =
            |b: u8| (b < 0x20 && b != b'\t' && !(b == 0x1b && self.keep_escapes)) || b == 0x7f;
        if !body.iter().any(|&b| unsafe_byte(b)) {
            self.inner.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut out = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b if unsafe_byte(b) => out.extend_from_slice(format!("\\u{{{b:x}}}").as_bytes()),
                b => out.push(b),
            }
        }
        if body.len() < buf.len() {
            out.push(b'\n');
        }
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A peer-supplied value fit for a log line: control characters (CR, LF, ESC…)
/// and the Unicode line separators are written as escapes (`\r`, `\n`, `\u{1b}`),
/// so a username or address cannot start a forged log line.
pub fn clean(value: &str) -> Clean<'_> {
    Clean(value)
}

/// A peer-supplied address as Postfix logs it, `<…>` around the [`clean`]ed
/// value (`<>` for the null sender).
pub fn addr(value: &str) -> Addr<'_> {
    Addr(value)
}

/// See [`clean`].
pub struct Clean<'a>(&'a str);

/// See [`addr`].
pub struct Addr<'a>(&'a str);

impl fmt::Display for Addr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", Clean(self.0))
    }
}

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        let mut rest = self.0;
        while let Some(at) = rest.find(needs_escape) {
            f.write_str(&rest[..at])?;
            let mut chars = rest[at..].chars();
            if let Some(c) = chars.next() {
                for e in c.escape_default() {
                    f.write_char(e)?;
                }
            }
            rest = chars.as_str();
        }
        f.write_str(rest)
    }
}

impl fmt::Debug for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// A list of peer-supplied addresses, each as [`addr`] writes it, comma-separated.
pub fn addrs<S: AsRef<str>>(values: &[S]) -> String {
    values
        .iter()
        .map(|v| addr(v.as_ref()).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_stays_one_line() {
        use std::io::Write;
        let mut w = OneLine {
            inner: Vec::new(),
            keep_escapes: false,
        };
        w.write_all(b"INFO user=eve\r\n2026 INFO forged\x1b[2J\tok\n")
            .unwrap();
        w.write_all(b"INFO plain\n").unwrap();
        assert_eq!(
            String::from_utf8(w.inner).unwrap(),
            "INFO user=eve\\r\\n2026 INFO forged\\u{1b}[2J\tok\nINFO plain\n"
        );
    }

    #[test]
    fn a_bare_level_raises_facteur_only() {
        let d = directives(Some("debug"), None);
        assert_eq!(
            d,
            "info,facteur=debug,h2=warn,hyper=warn,tower=warn,sled=warn,rustls=error,tonic=warn"
        );
        let f: EnvFilter = d.parse().expect("valid directives");
        assert_eq!(f.max_level_hint(), Some(LevelFilter::DEBUG));
    }

    #[test]
    fn a_quiet_bare_level_quiets_everything() {
        assert_eq!(
            directives(Some("error"), None),
            "error,facteur=error,h2=error,hyper=error,tower=error,sled=error,rustls=error,tonic=error"
        );
        assert!(directives(Some("off"), None).starts_with("off,facteur=off,h2=off"));
    }

    #[test]
    fn directive_strings_pass_through() {
        assert_eq!(directives(Some("h2=debug"), None), "h2=debug");
        assert_eq!(
            directives(Some("info,facteur_mta=trace"), Some("debug")),
            "info,facteur_mta=trace"
        );
        // Not a level: passed on, EnvFilter reads it as a target.
        assert_eq!(directives(Some("facteur_mda"), None), "facteur_mda");
    }

    #[test]
    fn rust_log_is_raw_and_the_default_is_info() {
        assert_eq!(directives(None, Some("debug")), "debug");
        assert_eq!(directives(Some("  "), Some("trace")), "trace");
        assert_eq!(
            directives(None, None),
            "info,facteur=info,h2=warn,hyper=warn,tower=warn,sled=warn,rustls=error,tonic=warn"
        );
    }

    #[test]
    fn clean_escapes_control_characters_only() {
        assert_eq!(clean("pierre@paris.test").to_string(), "pierre@paris.test");
        assert_eq!(
            clean("evil\r\n2026 INFO fake: filed").to_string(),
            "evil\\r\\n2026 INFO fake: filed"
        );
        assert_eq!(clean("a\u{1b}[31mb\0").to_string(), "a\\u{1b}[31mb\\u{0}");
        assert_eq!(clean("é\u{2028}x").to_string(), "é\\u{2028}x");
        assert_eq!(addrs(&["a\nb", "c"]), "<a\\nb>,<c>");
        assert_eq!(addr("x@y\r").to_string(), "<x@y\\r>");
        assert_eq!(addr("").to_string(), "<>");
    }

    #[test]
    fn log_config_reads_text_and_json() {
        let c: LogConfig = toml::from_str("format = \"json\"").expect("json");
        assert_eq!(c.format, LogFormat::Json);
        let c: LogConfig = toml::from_str("").expect("empty");
        assert_eq!(c.format, LogFormat::Text);
        assert!(toml::from_str::<LogConfig>("format = \"xml\"").is_err());
    }
}
