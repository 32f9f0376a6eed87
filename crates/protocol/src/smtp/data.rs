//! The one end-of-data detector of the project: SMTP DATA transparency
//! (RFC 5321 §4.5.2) on the server side, dot-stuffing on the client side.
//!
//! SMTP smuggling (CVE-2023-51764, -51765, -51766) relies on a receiver that ends
//! the message at `LF.LF`, `CR.CR` or `LF.CRLF`. Here the message ends **only** at
//! `CRLF.CRLF` (the start of the data counts as following a CRLF). A bare CR or
//! bare LF anywhere does not end it; the decoder keeps reading to the true end and
//! then reports [`DataEnd::BareLineEnding`] so the whole message is refused. Past
//! the size limit it also keeps reading (discarding) to the true end and reports
//! [`DataEnd::TooBig`], so the tail is never taken for commands (chasquid's
//! dotreader idea). State between calls is a handful of bytes.

/// How a message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataEnd {
    /// `CRLF.CRLF` seen, message valid.
    Complete,
    /// The message went over the size limit; its content was discarded.
    TooBig,
    /// The message held a bare CR or LF; it must be refused.
    BareLineEnding,
}

/// The result of one [`DataDecoder::decode`] call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataStep {
    /// Input bytes consumed; bytes after the end of data are left unconsumed.
    pub consumed: usize,
    /// Un-stuffed message bytes (CRLF kept). Empty once over the size limit.
    pub out: Vec<u8>,
    /// Set when the end of data was reached.
    pub end: Option<DataEnd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (after CRLF, or at the start of data).
    LineStart,
    /// Inside a line.
    Mid,
    /// Inside a line, a CR held back.
    Cr,
    /// A `.` at the start of a line, held back.
    Dot,
    /// `.` then CR at the start of a line, held back.
    DotCr,
}

/// Server side: un-stuffs DATA and finds its end, under a size cap.
#[derive(Debug, Clone)]
pub struct DataDecoder {
    max_size: u64,
    size: u64,
    state: State,
    bare: bool,
    too_big: bool,
    done: bool,
}

impl DataDecoder {
    /// A decoder for a message of at most `max_size` octets (after un-stuffing).
    pub fn new(max_size: u64) -> Self {
        DataDecoder {
            max_size,
            size: 0,
            state: State::LineStart,
            bare: false,
            too_big: false,
            done: false,
        }
    }

    /// Message octets seen so far (counted even past the limit).
    pub fn size(&self) -> u64 {
        self.size
    }

    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.size > self.max_size {
            self.too_big = true;
        }
        if !self.too_big {
            out.extend_from_slice(bytes);
        }
    }

    /// Consumes `input` up to and including the end of data, if it is there.
    /// Once the end was returned, further calls consume nothing.
    pub fn decode(&mut self, input: &[u8]) -> DataStep {
        let mut out = Vec::with_capacity(input.len().min(64 * 1024));
        if self.done {
            return DataStep::default();
        }
        for (i, &b) in input.iter().enumerate() {
            // Reprocessing loop: a held-back byte may turn out to be content,
            // and the current byte is then looked at in the Mid state.
            let mut state = self.state;
            loop {
                match (state, b) {
                    (State::LineStart, b'.') => {
                        state = State::Dot;
                    }
                    (State::LineStart | State::Mid, b'\r') => state = State::Cr,
                    (State::LineStart | State::Mid, b'\n') => {
                        // Bare LF: content, never a line start.
                        self.bare = true;
                        self.emit(&mut out, b"\n");
                        state = State::Mid;
                    }
                    (State::LineStart | State::Mid, _) => {
                        self.emit(&mut out, &[b]);
                        state = State::Mid;
                    }
                    (State::Cr, b'\n') => {
                        self.emit(&mut out, b"\r\n");
                        state = State::LineStart;
                    }
                    (State::Cr, _) => {
                        // Bare CR: content; look at `b` again mid-line.
                        self.bare = true;
                        self.emit(&mut out, b"\r");
                        state = State::Mid;
                        continue;
                    }
                    (State::Dot, b'\r') => state = State::DotCr,
                    (State::Dot, _) => {
                        // RFC 5321 §4.5.2: a leading dot followed by more
                        // characters is removed; look at `b` again mid-line.
                        state = State::Mid;
                        continue;
                    }
                    (State::DotCr, b'\n') => {
                        // RFC 5321 §4.5.2: CRLF "." CRLF ends the data.
                        self.state = State::LineStart;
                        self.done = true;
                        let end = if self.bare {
                            DataEnd::BareLineEnding
                        } else if self.too_big {
                            DataEnd::TooBig
                        } else {
                            DataEnd::Complete
                        };
                        return DataStep {
                            consumed: i + 1,
                            out,
                            end: Some(end),
                        };
                    }
                    (State::DotCr, _) => {
                        // ".\r" then something else: the dot was stuffing, the
                        // CR is bare; look at `b` again mid-line.
                        self.bare = true;
                        self.emit(&mut out, b"\r");
                        state = State::Mid;
                        continue;
                    }
                }
                break;
            }
            self.state = state;
        }
        DataStep {
            consumed: input.len(),
            out,
            end: None,
        }
    }
}

/// Client side: dot-stuffs a message for DATA (RFC 5321 §4.5.2), normalising
/// bare LF and bare CR to CRLF, in chunks.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    line_start: bool,
    cr: bool,
    empty: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer::new()
    }
}

impl DotStuffer {
    pub fn new() -> Self {
        DotStuffer {
            line_start: true,
            cr: false,
            empty: true,
        }
    }

    /// Stuffs one chunk of the message.
    pub fn encode(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + chunk.len() / 32 + 2);
        for &b in chunk {
            self.empty = false;
            if self.cr {
                self.cr = false;
                out.extend_from_slice(b"\r\n");
                self.line_start = true;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => self.cr = true,
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.line_start = true;
                }
                _ => {
                    if self.line_start && b == b'.' {
                        out.push(b'.');
                    }
                    out.push(b);
                    self.line_start = false;
                }
            }
        }
        out
    }

    /// Ends the message: closes the last line and appends `.` CRLF.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5);
        if self.cr || (!self.empty && !self.line_start) {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        *self = DotStuffer::new();
        out
    }
}

/// Dot-stuffs a whole message and appends the terminating `.` CRLF.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut s = DotStuffer::new();
    let mut out = s.encode(message);
    out.extend_from_slice(&s.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(input: &[u8], max: u64) -> (Vec<u8>, Option<DataEnd>, usize) {
        let mut d = DataDecoder::new(max);
        let s = d.decode(input);
        (s.out, s.end, s.consumed)
    }

    fn run_split(input: &[u8], max: u64, cuts: &[usize]) -> (Vec<u8>, Option<DataEnd>, usize) {
        let mut d = DataDecoder::new(max);
        let mut out = Vec::new();
        let mut consumed = 0;
        let mut end = None;
        let mut pos = 0;
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.sort_unstable();
        points.push(input.len());
        for p in points {
            if p < pos || end.is_some() {
                continue;
            }
            let s = d.decode(&input[pos..p]);
            out.extend(s.out);
            consumed += s.consumed;
            end = s.end;
            if end.is_none() {
                assert_eq!(s.consumed, p - pos);
            }
            pos = p;
        }
        (out, end, consumed)
    }

    #[test]
    fn known_answers() {
        use DataEnd::*;
        type Case<'a> = (&'a [u8], &'a [u8], Option<DataEnd>, usize);
        let cases: &[Case] = &[
            (b".\r\n", b"", Some(Complete), 3),
            (b"a\r\n.\r\nQUIT\r\n", b"a\r\n", Some(Complete), 6),
            (b"..a\r\n.\r\n", b".a\r\n", Some(Complete), 8),
            (b"a\r\n..\r\n.\r\n", b"a\r\n.\r\n", Some(Complete), 10),
            (b"a\r\n.b\r\n.\r\n", b"a\r\nb\r\n", Some(Complete), 10),
            // smuggling attempts: none of these end the message
            (
                b"a\n.\nMAIL FROM:<x@y>\n",
                b"a\n.\nMAIL FROM:<x@y>\n",
                None,
                20,
            ),
            (b"a\r\n.\nRSET\r\n", b"a\r\n\nRSET\r\n", None, 11),
            (b"a\n.\r\nRSET\r\n", b"a\n.\r\nRSET\r\n", None, 11),
            (b"a\r.\rRSET\r\n", b"a\r.\rRSET\r\n", None, 10),
            (b"a\r\n.\r.\r\n", b"a\r\n\r.\r\n", None, 8),
            // ...and once the true end comes, the message is refused
            (
                b"a\n.\nb\r\n.\r\nQUIT",
                b"a\n.\nb\r\n",
                Some(BareLineEnding),
                10,
            ),
            (b"a\r.\r\n.\r\n", b"a\r.\r\n", Some(BareLineEnding), 8),
            (b"a\rb\r\n.\r\n", b"a\rb\r\n", Some(BareLineEnding), 8),
            (b"\n.\r\n", b"\n.\r\n", None, 4),
        ];
        for &(input, out, end, consumed) in cases {
            assert_eq!(
                run(input, 1000),
                (out.to_vec(), end, consumed),
                "{}",
                String::from_utf8_lossy(input).escape_debug()
            );
        }
    }

    #[test]
    fn too_big_reads_to_the_true_end() {
        let mut input = b"0123456789\r\n".repeat(10);
        input.extend_from_slice(b".\r\nMAIL FROM:<>\r\n");
        let (out, end, consumed) = run(&input, 50);
        assert!(out.len() <= 50);
        assert_eq!(end, Some(DataEnd::TooBig));
        assert_eq!(&input[consumed..], b"MAIL FROM:<>\r\n");
        // exactly at the limit is fine
        let (out, end, _) = run(b"0123456789\r\n.\r\n", 12);
        assert_eq!((out.len(), end), (12, Some(DataEnd::Complete)));
    }

    #[test]
    fn no_more_after_end() {
        let mut d = DataDecoder::new(100);
        assert_eq!(d.decode(b".\r\n").end, Some(DataEnd::Complete));
        assert_eq!(d.decode(b"x\r\n.\r\n"), DataStep::default());
    }

    #[test]
    fn stuffing() {
        assert_eq!(dot_stuff(b""), b".\r\n");
        assert_eq!(dot_stuff(b"a"), b"a\r\n.\r\n");
        assert_eq!(dot_stuff(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(dot_stuff(b".a\n.\n"), b"..a\r\n..\r\n.\r\n");
        assert_eq!(dot_stuff(b"a\rb\r"), b"a\r\nb\r\n.\r\n");
        assert_eq!(
            dot_stuff(b"a\r\n.\r\nQUIT\r\n"),
            b"a\r\n..\r\nQUIT\r\n.\r\n"
        );
    }

    proptest! {
        #[test]
        fn splitting_never_changes_the_result(
            input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b'a')], 0..40),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
            max in 0u64..40,
        ) {
            prop_assert_eq!(run_split(&input, max, &cuts), run(&input, max));
        }

        #[test]
        fn every_split_point_agrees(
            input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b'a')], 0..24),
        ) {
            let whole = run(&input, 1000);
            for cut in 0..=input.len() {
                prop_assert_eq!(run_split(&input, 1000, &[cut]), whole.clone());
            }
        }

        #[test]
        fn ends_only_at_crlf_dot_crlf(
            input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b'a')], 0..40),
        ) {
            let (_, end, consumed) = run(&input, 1000);
            if end.is_some() {
                let framed = [b"\r\n".as_slice(), &input[..consumed]].concat();
                prop_assert!(framed.ends_with(b"\r\n.\r\n"));
                // and not earlier
                let earlier = framed[..framed.len() - 1].windows(5).any(|w| w == b"\r\n.\r\n");
                prop_assert!(!earlier);
            }
        }

        #[test]
        fn stuff_then_decode_is_normalisation(
            msg in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b'a')], 0..60),
            cuts in proptest::collection::vec(any::<usize>(), 0..4),
        ) {
            // streaming in chunks gives the same bytes as one shot
            let whole = dot_stuff(&msg);
            let mut s = DotStuffer::new();
            let mut streamed = Vec::new();
            let mut pos = 0;
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (msg.len() + 1)).collect();
            points.sort_unstable();
            points.push(msg.len());
            for p in points { streamed.extend(s.encode(&msg[pos..p])); pos = p; }
            streamed.extend(s.finish());
            prop_assert_eq!(&streamed, &whole);
            // the decoder gets back a CRLF-normalised message, complete, all consumed
            let (out, end, consumed) = run(&whole, u64::MAX);
            prop_assert_eq!(end, Some(DataEnd::Complete));
            prop_assert_eq!(consumed, whole.len());
            let mut norm = Vec::new();
            let mut i = 0;
            while i < msg.len() {
                match msg[i] {
                    b'\r' => { norm.extend_from_slice(b"\r\n"); if msg.get(i + 1) == Some(&b'\n') { i += 1; } }
                    b'\n' => norm.extend_from_slice(b"\r\n"),
                    b => norm.push(b),
                }
                i += 1;
            }
            if !norm.is_empty() && !norm.ends_with(b"\r\n") { norm.extend_from_slice(b"\r\n"); }
            prop_assert_eq!(out, norm);
        }
    }
}
