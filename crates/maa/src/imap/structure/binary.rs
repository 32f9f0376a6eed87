//! `BINARY[section]` (RFC 3516): a leaf part's content with its
//! Content-Transfer-Encoding undone (mail-parser's decoders).

use std::borrow::Cow;
use std::num::NonZeroU32;

use super::header::field;
use super::mime::parse_cte;
use super::{Entity, Kind};

impl<'a> Entity<'a> {
    /// The decoded bytes of `BINARY[section]` (empty section: the whole message,
    /// undecoded), `Ok(None)` when the section names no part.
    pub(crate) fn binary(
        &self,
        whole: &'a [u8],
        section: &[NonZeroU32],
    ) -> Result<Option<Cow<'a, [u8]>>, BinaryError> {
        if section.is_empty() {
            return Ok(Some(Cow::Borrowed(whole)));
        }
        let Some(part) = self.find(section) else {
            return Ok(None);
        };
        if !matches!(part.kind, Kind::Leaf) {
            return Ok(Some(Cow::Borrowed(part.body)));
        }
        let cte = field(part.header, "content-transfer-encoding")
            .and_then(|v| parse_cte(&v))
            .unwrap_or_default()
            .to_ascii_lowercase();
        match cte.as_slice() {
            b"" | b"7bit" | b"8bit" | b"binary" => Ok(Some(Cow::Borrowed(part.body))),
            b"base64" => mail_parser::decoders::base64::base64_decode(part.body)
                .map(|v| Some(Cow::Owned(v)))
                .ok_or(BinaryError::Corrupt),
            b"quoted-printable" => {
                mail_parser::decoders::quoted_printable::quoted_printable_decode(part.body)
                    .map(|v| Some(Cow::Owned(v)))
                    .ok_or(BinaryError::Corrupt)
            }
            other => Err(BinaryError::UnknownCte(
                String::from_utf8_lossy(other).into_owned(),
            )),
        }
    }
}

/// Why a BINARY fetch cannot be answered (RFC 3516 §4.3: `NO [UNKNOWN-CTE]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BinaryError {
    /// The part's Content-Transfer-Encoding is not one we decode.
    #[error("unknown Content-Transfer-Encoding {0:?}")]
    UnknownCte(String),
    /// The part's content does not decode with its transfer encoding.
    #[error("content does not decode with its Content-Transfer-Encoding")]
    Corrupt,
}
