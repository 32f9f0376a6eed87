//! Where a message's header ends (after the empty line that closes it, CRLF
//! or bare LF), in bytes in hand or in a stored blob: one rule for the store's
//! header index and for the header-only fetches of the MDA and the MAA.

use crate::mail::{BlobId, BlobStore, StoreError};

/// How much of a blob one read takes while looking for the header's end.
const PROBE: u64 = 16 * 1024;

/// The offset just after the empty line ending the header, if `bytes` hold it.
pub fn header_end(bytes: &[u8]) -> Option<usize> {
    header_end_from(bytes, 0)
}

/// [`header_end`], knowing that `bytes[..from]` holds no end: only the bytes
/// from there (and the two before, for an empty line across) are searched.
fn header_end_from(bytes: &[u8], from: usize) -> Option<usize> {
    if from == 0 {
        if bytes.starts_with(b"\r\n") {
            return Some(2);
        }
        if bytes.starts_with(b"\n") {
            return Some(1);
        }
    }
    let start = from.saturating_sub(2).min(bytes.len());
    let tail = &bytes[start..];
    let lf = tail.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    let crlf = tail.windows(3).position(|w| w == b"\n\r\n").map(|p| p + 3);
    lf.into_iter().chain(crlf).min().map(|p| start + p)
}

/// The header of a stored message of `size` bytes, its empty line included:
/// read a piece at a time until the header ends (the whole message if it
/// never does), so a header fetch reads the header, not the message.
pub fn read_header<S: BlobStore + ?Sized>(
    store: &S,
    blob: &BlobId,
    size: u64,
) -> Result<Vec<u8>, StoreError> {
    let mut head: Vec<u8> = Vec::new();
    while (head.len() as u64) < size {
        let at = head.len() as u64;
        let piece = store.get(blob, Some(at..(at + PROBE).min(size)))?;
        if piece.is_empty() {
            break; // the blob is shorter than its recorded size
        }
        let from = head.len();
        head.extend_from_slice(&piece);
        if let Some(end) = header_end_from(&head, from) {
            head.truncate(end);
            break;
        }
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_ends_at_the_first_empty_line() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(header_end(b"A: b\n\nbody"), Some(6));
        assert_eq!(header_end(b"A: b\n\r\nbody"), Some(7));
        assert_eq!(header_end(b"\r\nbody"), Some(2));
        assert_eq!(header_end(b"\nbody"), Some(1));
        assert_eq!(header_end(b"A: b\r\n"), None);
        assert_eq!(header_end(b""), None);
    }

    #[test]
    fn a_search_from_an_offset_finds_an_end_across_it() {
        let msg = b"A: b\r\nC: d\r\n\r\nbody";
        // Any offset before the end is complete.
        for from in 0..14 {
            assert_eq!(header_end_from(msg, from), Some(14), "from {from}");
        }
    }

    struct Mem(Vec<u8>);
    impl BlobStore for Mem {
        fn put(&self, _: &[u8]) -> Result<BlobId, StoreError> {
            unreachable!("read-only")
        }
        fn get(
            &self,
            _: &BlobId,
            range: Option<std::ops::Range<u64>>,
        ) -> Result<Vec<u8>, StoreError> {
            let r = range.unwrap_or(0..self.0.len() as u64);
            let end = (r.end as usize).min(self.0.len());
            let start = (r.start as usize).min(end);
            Ok(self.0[start..end].to_vec())
        }
    }

    #[test]
    fn a_stored_header_is_read_up_to_its_end_only() {
        let id = BlobId("x".to_owned());
        // A header longer than one probe, its empty line across two reads.
        let mut msg = vec![b'a'; PROBE as usize - 1];
        msg.extend_from_slice(b"\r\n\r\nbody");
        let head = read_header(&Mem(msg.clone()), &id, msg.len() as u64).unwrap();
        assert_eq!(head, msg[..msg.len() - 4]);
        // No empty line: the header is the whole message.
        let msg = b"A: b\r\nno end".to_vec();
        let head = read_header(&Mem(msg.clone()), &id, msg.len() as u64).unwrap();
        assert_eq!(head, msg);
        let head = read_header(&Mem(Vec::new()), &id, 10).unwrap();
        assert!(head.is_empty());
    }
}
