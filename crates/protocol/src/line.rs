//! `LineFramer`: splits a byte stream into lines under a size cap, and stays framed past it.
//!
//! Like imap-codec's fragmentizer: a line longer than the cap yields one
//! [`LineError::TooLong`], then everything up to and including the next LF is
//! discarded and framing resumes. Framing is lazy (done in [`LineFramer::next_line`]),
//! so bytes that follow a command switching to a raw mode (SMTP `DATA`/`BDAT`)
//! stay untouched and can be taken back with [`LineFramer::take_remaining`].

/// Why a line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line (with its line ending) was longer than the cap; it was discarded.
    #[error("line too long")]
    TooLong,
}

/// Splits bytes into lines. `max` counts the whole line *including* its line
/// ending, as RFC 5321 §4.5.3.1.4 and RFC 2449 §4 count their limits.
///
/// Memory: as long as the caller drains [`next_line`](Self::next_line) after each
/// [`push`](Self::push), the buffer never holds more than `max` + one read.
#[derive(Debug, Clone)]
pub struct LineFramer {
    max: usize,
    buf: Vec<u8>,
    discarding: bool,
}

impl LineFramer {
    /// A framer refusing lines longer than `max` octets (CRLF included).
    pub fn new(max: usize) -> Self {
        LineFramer {
            max: max.max(2),
            buf: Vec::new(),
            discarding: false,
        }
    }

    /// The cap, in octets including CRLF.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Appends bytes read from the peer.
    pub fn push(&mut self, mut data: &[u8]) {
        if self.discarding {
            match data.iter().position(|&b| b == b'\n') {
                None => return,
                Some(i) => {
                    self.discarding = false;
                    data = &data[i + 1..];
                }
            }
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete line without its line ending (LF, or CRLF), `None` if
    /// more input is needed.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, LineError>> {
        if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=i).collect();
            let too_long = line.len() > self.max;
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if too_long {
                return Some(Err(LineError::TooLong));
            }
            return Some(Ok(line));
        }
        if self.buf.len() > self.max {
            // The line can only get longer: report it once, drop it, and skip
            // the rest of it as it arrives.
            self.buf.clear();
            self.discarding = true;
            return Some(Err(LineError::TooLong));
        }
        None
    }

    /// Is a line under way: bytes buffered, or the rest of an overlong line still
    /// being skipped? (A request deadline runs while it is.)
    pub fn in_line(&self) -> bool {
        !self.buf.is_empty() || self.discarding
    }

    /// Bytes pending in the buffer (a STARTTLS/STLS must find none).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes every pending byte out of the framer (for a switch to a raw mode).
    pub fn take_remaining(&mut self) -> Vec<u8> {
        self.discarding = false;
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(f: &mut LineFramer) -> Vec<Result<Vec<u8>, LineError>> {
        std::iter::from_fn(|| f.next_line()).collect()
    }

    #[test]
    fn splits_on_lf_and_strips_cr() {
        let mut f = LineFramer::new(100);
        f.push(b"ab\r\ncd\nef");
        assert_eq!(lines(&mut f), vec![Ok(b"ab".to_vec()), Ok(b"cd".to_vec())]);
        assert_eq!(f.buffered(), 2);
        f.push(b"\r\n");
        assert_eq!(lines(&mut f), vec![Ok(b"ef".to_vec())]);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn overlong_line_yields_one_error_and_resyncs() {
        let mut f = LineFramer::new(10);
        f.push(b"0123456789abcdef");
        assert_eq!(lines(&mut f), vec![Err(LineError::TooLong)]);
        assert_eq!(f.buffered(), 0);
        assert!(f.in_line(), "the rest of the long line is still to come");
        f.push(b"more junk");
        assert_eq!(lines(&mut f), vec![]);
        assert_eq!(f.buffered(), 0, "discarded bytes are not kept");
        f.push(b"junk\r\nNOOP\r\n");
        assert_eq!(lines(&mut f), vec![Ok(b"NOOP".to_vec())]);
    }

    #[test]
    fn limit_counts_crlf() {
        let mut f = LineFramer::new(6);
        f.push(b"1234\r\n12345\r\n");
        assert_eq!(
            lines(&mut f),
            vec![Ok(b"1234".to_vec()), Err(LineError::TooLong)]
        );
    }

    #[test]
    fn take_remaining_returns_raw_bytes() {
        let mut f = LineFramer::new(100);
        f.push(b"DATA\r\nhello\n.\n");
        assert_eq!(f.next_line(), Some(Ok(b"DATA".to_vec())));
        assert_eq!(f.take_remaining(), b"hello\n.\n".to_vec());
        assert_eq!(f.buffered(), 0);
    }
}
