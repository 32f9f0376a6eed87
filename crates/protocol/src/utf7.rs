//! Modified UTF-7 mailbox names (RFC 3501 §5.1.3): for IMAP4rev1 clients that
//! have not enabled UTF8=ACCEPT (the store keeps names in UTF-8), and for
//! Maildir++ folder names on disk, which Dovecot writes in this encoding.
//!
//! Written here rather than taken from a crate: the one that does this,
//! utf7-imap (0.3.2, 2022), decodes infallibly (`fn(String) -> String`), so it
//! cannot reject a malformed name, and pulls in megabytes of dependencies for
//! what is about eighty lines.

/// Why a name is not valid modified UTF-7.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Utf7Error {
    /// A byte that must not appear unencoded (control, 8-bit).
    #[error("byte {0:#04x} must be encoded")]
    RawByte(u8),
    /// `&` without its closing `-`.
    #[error("unterminated '&' sequence")]
    Unterminated,
    /// A character outside the modified base64 alphabet in a shifted sequence.
    #[error("invalid base64 in '&' sequence")]
    BadBase64,
    /// Left-over bits, a lone surrogate, or printable ASCII that must not be
    /// encoded (each name has exactly one encoding).
    #[error("'&' sequence is not in canonical form")]
    NotCanonical,
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn is_direct(c: char) -> bool {
    (' '..='~').contains(&c) && c != '&'
}

/// A UTF-8 name in modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut units: Vec<u16> = Vec::new();
    let flush = |units: &mut Vec<u16>, out: &mut String| {
        if units.is_empty() {
            return;
        }
        out.push('&');
        let mut bits = 0u32;
        let mut nbits = 0u32;
        for &u in units.iter() {
            bits = (bits << 16) | u32::from(u);
            nbits += 16;
            while nbits >= 6 {
                nbits -= 6;
                out.push(char::from(ALPHABET[((bits >> nbits) & 0x3f) as usize]));
            }
        }
        if nbits > 0 {
            out.push(char::from(
                ALPHABET[((bits << (6 - nbits)) & 0x3f) as usize],
            ));
        }
        out.push('-');
        units.clear();
    };
    for c in name.chars() {
        if is_direct(c) {
            flush(&mut units, &mut out);
            out.push(c);
        } else if c == '&' {
            flush(&mut units, &mut out);
            out.push_str("&-");
        } else {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut units, &mut out);
    out
}

/// A modified UTF-7 name in UTF-8; malformed or non-canonical input is an error.
pub fn decode(name: &[u8]) -> Result<String, Utf7Error> {
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        if b != b'&' {
            if !(0x20..=0x7e).contains(&b) {
                return Err(Utf7Error::RawByte(b));
            }
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let end = name[i + 1..]
            .iter()
            .position(|&c| c == b'-')
            .map(|p| i + 1 + p)
            .ok_or(Utf7Error::Unterminated)?;
        let shifted = &name[i + 1..end];
        i = end + 1;
        if shifted.is_empty() {
            out.push('&');
            continue;
        }
        let mut units = Vec::with_capacity(shifted.len() * 6 / 16);
        let mut bits = 0u32;
        let mut nbits = 0u32;
        for &c in shifted {
            let v = ALPHABET
                .iter()
                .position(|&a| a == c)
                .ok_or(Utf7Error::BadBase64)? as u32;
            bits = (bits << 6) | v;
            nbits += 6;
            if nbits >= 16 {
                nbits -= 16;
                units.push(((bits >> nbits) & 0xffff) as u16);
            }
        }
        // At most 5 padding bits, all zero.
        if nbits >= 6 || bits & ((1 << nbits) - 1) != 0 {
            return Err(Utf7Error::NotCanonical);
        }
        for c in char::decode_utf16(units) {
            let c = c.map_err(|_| Utf7Error::NotCanonical)?;
            if is_direct(c) || c == '&' {
                return Err(Utf7Error::NotCanonical);
            }
            out.push(c);
        }
        // Two shifted sequences in a row are one, written apart.
        if name.get(i) == Some(&b'&') && name.get(i + 1) != Some(&b'-') {
            return Err(Utf7Error::NotCanonical);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names() {
        for (utf8, utf7) in [
            ("Entwürfe", "Entw&APw-rfe"),
            ("&", "&-"),
            ("Tom & Jerry", "Tom &- Jerry"),
            ("日本語", "&ZeVnLIqe-"),
            ("Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
            // RFC 3501 §5.1.3's example.
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("INBOX", "INBOX"),
            ("", ""),
            ("😀", "&2D3eAA-"),
        ] {
            assert_eq!(encode(utf8), utf7, "{utf8}");
            assert_eq!(decode(utf7.as_bytes()).as_deref(), Ok(utf8), "{utf7}");
        }
    }

    #[test]
    fn round_trips() {
        for name in [
            "Sent Items",
            "Ärger/Öl/Übel ß",
            "a&b&&c",
            "mixed 日本 and ascii ü&",
            "\u{7f}\u{1}tab\there",
            "emoji 🎉🎉 x",
        ] {
            assert_eq!(
                decode(encode(name).as_bytes()).as_deref(),
                Ok(name),
                "{name}"
            );
        }
    }

    #[test]
    fn malformed_is_refused() {
        for (bad, err) in [
            (&b"Entw&APw"[..], Utf7Error::Unterminated),
            (b"a&", Utf7Error::Unterminated),
            (b"&A*w-", Utf7Error::BadBase64),
            (b"&AP/-", Utf7Error::BadBase64),
            (b"Entw\xc3\xbcrfe", Utf7Error::RawByte(0xc3)),
            (b"tab\there", Utf7Error::RawByte(b'\t')),
            (b"&AGE-", Utf7Error::NotCanonical), // 'a', which must stay direct
            (b"&ACY-", Utf7Error::NotCanonical), // '&', which is "&-"
            (b"&APx-", Utf7Error::NotCanonical), // non-zero padding bits
            (b"&APwA-", Utf7Error::NotCanonical), // 6 bits left over
            (b"&2D0-", Utf7Error::NotCanonical), // a lone high surrogate
            (b"&3gA-", Utf7Error::NotCanonical), // a lone low surrogate
            (b"&AOk-&AOk-", Utf7Error::NotCanonical), // "&AOkA6Q-" written apart
        ] {
            assert_eq!(decode(bad), Err(err), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 12) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|k| b"&-AZaz09+,/x\x80"[((seed >> (k * 4)) % 13) as usize])
                .collect();
            if let Ok(s) = decode(&bytes) {
                // Whatever decodes is canonical: it encodes back to the same bytes.
                assert_eq!(encode(&s).as_bytes(), &bytes[..]);
            }
        }
    }
}
