//! BODY and BODYSTRUCTURE (RFC 9051 §7.5.2, RFC 3501 §7.4.2) of an entity:
//! basic and type-specific fields, and the extension data.

use imap_next::imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
    SinglePartExtensionData, SpecificFields,
};
use imap_next::imap_types::core::{IString, NString, Vec1};

use super::header::field;
use super::mime::{parse_cte, parse_disposition, parse_languages};
use super::{Entity, Kind, Param, istring, nstring};

impl Entity<'_> {
    /// BODYSTRUCTURE (`extended`) or BODY of this entity.
    pub(crate) fn body_structure(&self, extended: bool) -> BodyStructure<'static> {
        match &self.kind {
            Kind::Multipart(children) => {
                let bodies: Vec<BodyStructure<'static>> = children
                    .iter()
                    .map(|c| c.body_structure(extended))
                    .collect();
                let bodies = Vec1::try_from(bodies).unwrap_or_else(|_| Vec1::from(empty_part()));
                BodyStructure::Multi {
                    bodies,
                    subtype: istring(&self.ctype.subtype),
                    extension_data: extended.then(|| MultiPartExtensionData {
                        parameter_list: params(&self.ctype.params),
                        tail: Some(self.disposition()),
                    }),
                }
            }
            Kind::Leaf | Kind::Message(_) => BodyStructure::Single {
                body: self.single(extended),
                extension_data: extended.then(|| SinglePartExtensionData {
                    md5: nstring(field(self.header, "content-md5").as_deref()),
                    tail: Some(self.disposition()),
                }),
            },
        }
    }

    fn single(&self, extended: bool) -> Body<'static> {
        let h = self.header;
        let mut parameter_list = params(&self.ctype.params);
        let is_text = self.ctype.is_type("text") && matches!(self.kind, Kind::Leaf);
        if is_text && self.ctype.param("charset").is_none() {
            parameter_list.push((istring(b"charset"), istring(b"us-ascii")));
        }
        let cte = field(h, "content-transfer-encoding")
            .and_then(|v| parse_cte(&v))
            .unwrap_or_else(|| b"7bit".to_vec());
        let basic = BasicFields {
            parameter_list,
            id: nstring(field(h, "content-id").as_deref()),
            description: nstring(field(h, "content-description").as_deref()),
            content_transfer_encoding: istring(&cte),
            size: u32::try_from(self.body.len()).unwrap_or(u32::MAX),
        };
        let lines =
            u32::try_from(self.body.iter().filter(|&&b| b == b'\n').count()).unwrap_or(u32::MAX);
        let specific = match &self.kind {
            Kind::Message(inner) => SpecificFields::Message {
                envelope: Box::new(inner.envelope()),
                body_structure: Box::new(inner.body_structure(extended)),
                number_of_lines: lines,
            },
            _ if is_text => SpecificFields::Text {
                subtype: istring(&self.ctype.subtype),
                number_of_lines: lines,
            },
            _ => SpecificFields::Basic {
                r#type: istring(&self.ctype.r#type),
                subtype: istring(&self.ctype.subtype),
            },
        };
        Body { basic, specific }
    }

    /// Disposition, language and location (the extension data after md5/params).
    fn disposition(&self) -> Disposition<'static> {
        let h = self.header;
        let disposition = field(h, "content-disposition")
            .and_then(|v| parse_disposition(&v))
            .map(|(t, p)| (istring(&t), params(&p)));
        let language = field(h, "content-language")
            .map(|v| parse_languages(&v))
            .unwrap_or_default()
            .iter()
            .map(|l| istring(l))
            .collect();
        Disposition {
            disposition,
            tail: Some(Language {
                language,
                tail: Some(Location {
                    location: nstring(field(h, "content-location").as_deref()),
                    extensions: Vec::new(),
                }),
            }),
        }
    }
}

/// What Dovecot writes for a multipart that has no parts (none is allowed).
fn empty_part() -> BodyStructure<'static> {
    BodyStructure::Single {
        body: Body {
            basic: BasicFields {
                parameter_list: vec![(istring(b"charset"), istring(b"us-ascii"))],
                id: NString(None),
                description: NString(None),
                content_transfer_encoding: istring(b"7bit"),
                size: 0,
            },
            specific: SpecificFields::Text {
                subtype: istring(b"plain"),
                number_of_lines: 0,
            },
        },
        extension_data: None,
    }
}

pub(super) fn params(p: &[Param]) -> Vec<(IString<'static>, IString<'static>)> {
    p.iter().map(|(k, v)| (istring(k), istring(v))).collect()
}
