//! SASL helpers shared by SMTP AUTH (RFC 4954) and POP3 AUTH (RFC 5034): base64
//! (RFC 4648 §4) and the PLAIN (RFC 4616) and LOGIN messages.

use crate::Secret;

/// Why a SASL message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("invalid base64")]
    Base64,
    #[error("malformed PLAIN message")]
    Plain,
    #[error("credentials are not valid UTF-8")]
    Utf8,
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn sextet(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Strict base64 decoding: padding required, no whitespace (RFC 4954 §4).
pub fn base64_decode(s: &str) -> Result<Vec<u8>, SaslError> {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return Err(SaslError::Base64);
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let chunks = bytes.len() / 4;
    for (ci, chunk) in bytes.chunks(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && ci + 1 != chunks) {
            return Err(SaslError::Base64);
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | sextet(c).ok_or(SaslError::Base64)?;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Ok(out)
}

/// Credentials carried by a PLAIN message or a LOGIN exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The identity to act as, when different from `authcid`.
    pub authzid: Option<String>,
    /// The identity whose password is given.
    pub authcid: String,
    pub password: Secret<String>,
}

/// Decodes a PLAIN message (already base64-decoded):
/// `[authzid] NUL authcid NUL passwd` (RFC 4616 §2).
pub fn decode_plain(message: &[u8]) -> Result<Credentials, SaslError> {
    let mut parts = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Plain);
    };
    // RFC 4616 §2: authcid and passwd are non-empty.
    if authcid.is_empty() || passwd.is_empty() {
        return Err(SaslError::Plain);
    }
    let utf8 = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| SaslError::Utf8);
    Ok(Credentials {
        authzid: if authzid.is_empty() {
            None
        } else {
            Some(utf8(authzid)?)
        },
        authcid: utf8(authcid)?,
        password: Secret::new(utf8(passwd)?),
    })
}

/// The base64 PLAIN initial response for these credentials (client side).
pub fn encode_plain(authzid: Option<&str>, authcid: &str, password: &str) -> Secret<String> {
    let mut msg = Vec::new();
    msg.extend_from_slice(authzid.unwrap_or("").as_bytes());
    msg.push(0);
    msg.extend_from_slice(authcid.as_bytes());
    msg.push(0);
    msg.extend_from_slice(password.as_bytes());
    Secret::new(base64_encode(&msg))
}

/// Decodes one base64 SASL line to UTF-8 text (LOGIN user name or password).
pub fn decode_text(b64: &str) -> Result<String, SaslError> {
    String::from_utf8(base64_decode(b64)?).map_err(|_| SaslError::Utf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes());
        }
        for bad in ["Zg", "Zg=", "Z===", "Zg==Zg==", "Zm9v\r\n", "Zm 9", "*"] {
            assert_eq!(base64_decode(bad), Err(SaslError::Base64), "{bad:?}");
        }
    }

    #[test]
    fn plain() {
        // RFC 4616 §4 example
        let c = decode_plain(b"\0tim\0tanstaaftanstaaf").unwrap();
        assert_eq!(c.authzid, None);
        assert_eq!(c.authcid, "tim");
        assert_eq!(c.password.expose(), "tanstaaftanstaaf");
        let c = decode_plain(b"Ursel\0Kurt\0xipj3plmq").unwrap();
        assert_eq!(c.authzid.as_deref(), Some("Ursel"));
        for bad in [
            &b"tim"[..],
            b"\0tim",
            b"\0\0pw",
            b"\0tim\0",
            b"a\0b\0c\0d",
            b"\0\xff\0pw",
        ] {
            assert!(decode_plain(bad).is_err());
        }
        let enc = encode_plain(None, "tim", "tanstaaftanstaaf");
        assert_eq!(enc.expose(), "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
    }

    proptest! {
        #[test]
        fn base64_round_trips(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(base64_decode(&base64_encode(&data)).unwrap(), data);
        }

        #[test]
        fn base64_decode_never_panics(s in "\\PC{0,40}") {
            let _ = base64_decode(&s);
        }
    }
}
