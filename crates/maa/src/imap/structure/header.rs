//! Header fields of one entity: the fields as (name, value) pairs, unfolded
//! values, and one field by name.

use super::tree::{is_blank_line, lines};

/// The header fields: name and raw value (folding included, line break excluded).
pub(super) fn fields(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = header;
    std::iter::from_fn(move || {
        loop {
            if rest.is_empty() {
                return None;
            }
            // One field: its first line plus continuation lines.
            let mut end = 0;
            for (start, line) in lines(rest) {
                if start > 0 && !line.starts_with(b" ") && !line.starts_with(b"\t") {
                    break;
                }
                end = start + line.len();
            }
            let field = &rest[..end];
            rest = &rest[end..];
            if is_blank_line(field) {
                return None;
            }
            let Some(colon) = field.iter().position(|&b| b == b':') else {
                continue; // not a header field; skipped
            };
            let name = field[..colon].trim_ascii();
            if name.is_empty() || name.iter().any(|&b| b == b' ' || b == b'\t') {
                continue;
            }
            let mut value = &field[colon + 1..];
            while let Some(v) = value
                .strip_suffix(b"\n")
                .map(|v| v.strip_suffix(b"\r").unwrap_or(v))
            {
                value = v;
            }
            return Some((name, value));
        }
    })
}

/// Remove the line breaks of a folded value (keeping the white space after them),
/// and the white space around it.
fn unfold(value: &[u8]) -> Vec<u8> {
    value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect::<Vec<u8>>()
        .trim_ascii()
        .to_vec()
}

/// The unfolded value of the first field called `name`.
pub(super) fn field(header: &[u8], name: &str) -> Option<Vec<u8>> {
    fields(header)
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| unfold(v))
}
