//! SASL helpers shared by SMTP AUTH (RFC 4954) and POP3 AUTH (RFC 5034): base64
//! (RFC 4648 §4) and the PLAIN (RFC 4616) and LOGIN messages.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

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

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64_encode(data: &[u8]) -> String {
    BASE64.encode(data)
}

/// Strict base64 decoding: padding required, no whitespace (RFC 4954 §4).
pub fn base64_decode(s: &str) -> Result<Vec<u8>, SaslError> {
    BASE64.decode(s).map_err(|_| SaslError::Base64)
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
