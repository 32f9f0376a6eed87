//! Line ends of Maildir files: Dovecot saves mail with bare LF line ends
//! (`mail_save_crlf = no`, its default, and the `,W=` field of the file name
//! gives the size with CRLF) and serves it with CRLF, the line end of
//! RFC 5322 and IMAP; a message read from such a file gets the CRLF its
//! server gave it.

/// `bytes` with every LF not preceded by CR made CRLF (CRLF files, such as
/// facteur's own, come back unchanged, without a copy).
pub fn to_crlf(bytes: Vec<u8>) -> Vec<u8> {
    let bare = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
        .count();
    if bare == 0 {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len() + bare);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_lf_becomes_crlf() {
        assert_eq!(
            to_crlf(b"Subject: x\n\nbody\n".to_vec()),
            b"Subject: x\r\n\r\nbody\r\n"
        );
        assert_eq!(to_crlf(b"\nA\r\nB\nC".to_vec()), b"\r\nA\r\nB\r\nC");
        // A lone CR is not a line end to rewrite; CRLF stays as it is.
        assert_eq!(to_crlf(b"a\rb\r\n".to_vec()), b"a\rb\r\n");
        assert_eq!(to_crlf(Vec::new()), b"");
    }
}
