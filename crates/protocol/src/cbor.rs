//! Canonical CBOR (RFC 8949 §4.2.1, "core deterministic encoding") for records, and the
//! `[record, signature]` wire array.
//!
//! Encoding goes through `ciborium::Value` with map keys sorted by their encoded bytes
//! (shorter text keys first, then bytewise), definite lengths and shortest integer heads.
//! Decoding accepts only that one encoding: the bytes are decoded into a typed [`Record`],
//! encoded again, and must come back identical. So every record has exactly one byte form,
//! and unknown or duplicate keys, indefinite lengths, floats and tags are all refused.

use std::ops::Range;

use ciborium::value::{Integer, Value};

use crate::record::*;
use crate::Error;

/// Encodes a record canonically. The bytes are what gets hashed and signed.
pub fn encode_record(record: &Record) -> Vec<u8> {
    let body = encode_body(&record.body);
    let value = map(vec![
        ("v", uint(record.v)),
        ("kind", text(record.kind().as_str())),
        ("author", Value::Bytes(record.author.0.to_vec())),
        ("created_at", uint(record.created_at)),
        ("topic", text(&record.topic.to_string())),
        ("body", body),
    ]);
    to_bytes(&value)
}

/// Decodes canonical record bytes into a typed record. Refuses any other encoding of the
/// same content with [`Error::NonCanonical`]. Context-free rules are checked separately
/// ([`crate::validate::check_record`]).
pub fn decode_record(bytes: &[u8]) -> Result<Record, Error> {
    let value: Value = ciborium::de::from_reader(bytes)
        .map_err(|e| Error::Malformed(format!("cbor: {}", short(&e.to_string()))))?;
    let record = record_from_value(value)?;
    if encode_record(&record) != bytes {
        return Err(Error::NonCanonical);
    }
    Ok(record)
}

/// Builds the wire form: the CBOR array `[record (bstr), signature (bstr, 64 bytes)]`.
pub fn encode_wire(record_bytes: &[u8], signature: &[u8; 64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(record_bytes.len() + 72);
    out.push(0x82);
    write_head(&mut out, 2, record_bytes.len() as u64);
    out.extend_from_slice(record_bytes);
    out.extend_from_slice(&[0x58, 64]);
    out.extend_from_slice(signature);
    out
}

/// Splits canonical wire bytes into the record's byte range and the signature. The heads must
/// be the shortest ones and nothing may follow the array.
pub fn split_wire(wire: &[u8]) -> Result<(Range<usize>, [u8; 64]), Error> {
    let bad = |why: &str| Error::Malformed(format!("wire: {why}"));
    if wire.first() != Some(&0x82) {
        return Err(bad("expected an array of 2"));
    }
    let (len, head_end) = read_bstr_head(wire, 1)?;
    let rec_end = head_end
        .checked_add(len)
        .filter(|e| *e <= wire.len())
        .ok_or_else(|| bad("truncated record"))?;
    let (sig_len, sig_start) = read_bstr_head(wire, rec_end)?;
    if sig_len != 64 {
        return Err(bad("signature must be 64 bytes"));
    }
    let sig_end = sig_start + 64;
    if wire.len() < sig_end {
        return Err(bad("truncated signature"));
    }
    if wire.len() > sig_end {
        return Err(bad("trailing bytes"));
    }
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&wire[sig_start..sig_end]);
    Ok((head_end..rec_end, sig))
}

/// Splits records in wire form written one after another (a CBOR sequence, RFC 8742) into
/// each record's wire bytes, in order; at most `max` of them. Each piece is framed as a wire
/// (an array of two byte strings, the second of 64 bytes); what is inside is checked when
/// the piece is decoded. An error names the piece and its byte offset.
pub fn split_sequence(bytes: &[u8], max: usize) -> Result<Vec<&[u8]>, Error> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if out.len() >= max {
            return Err(Error::Malformed(format!(
                "more than {max} records in one sequence"
            )));
        }
        let rest = &bytes[at..];
        let bad = |why: String| {
            Error::Malformed(format!("record {} (at byte {at}): {why}", out.len() + 1))
        };
        if rest.first() != Some(&0x82) {
            return Err(bad("expected a wire record (an array of 2)".into()));
        }
        let (len, head_end) = read_bstr_head(rest, 1).map_err(|e| bad(e.to_string()))?;
        let rec_end = head_end
            .checked_add(len)
            .filter(|e| *e <= rest.len())
            .ok_or_else(|| bad("truncated record".into()))?;
        let (sig_len, sig_start) = read_bstr_head(rest, rec_end).map_err(|e| bad(e.to_string()))?;
        let end = sig_start
            .checked_add(sig_len)
            .filter(|e| *e <= rest.len() && sig_len == 64)
            .ok_or_else(|| bad("truncated or wrong-sized signature".into()))?;
        out.push(&rest[..end]);
        at += end;
    }
    Ok(out)
}

/// Reads a byte-string head at `pos`; returns (length, offset of the content).
fn read_bstr_head(b: &[u8], pos: usize) -> Result<(usize, usize), Error> {
    let bad = |why: &str| Error::Malformed(format!("wire: {why}"));
    let first = *b.get(pos).ok_or_else(|| bad("truncated"))?;
    if first >> 5 != 2 {
        return Err(bad("expected a byte string"));
    }
    let info = first & 0x1f;
    let (len, next) = match info {
        0..=23 => (u64::from(info), pos + 1),
        24 => (
            u64::from(*b.get(pos + 1).ok_or_else(|| bad("truncated"))?),
            pos + 2,
        ),
        25 => {
            let hi = *b.get(pos + 1).ok_or_else(|| bad("truncated"))?;
            let lo = *b.get(pos + 2).ok_or_else(|| bad("truncated"))?;
            (u64::from(u16::from_be_bytes([hi, lo])), pos + 3)
        }
        // Records are a few KiB at most: longer heads are never needed.
        _ => return Err(bad("byte string head too long")),
    };
    let minimal = match info {
        24 => len >= 24,
        25 => len > 0xff,
        _ => true,
    };
    if !minimal {
        return Err(Error::NonCanonical);
    }
    Ok((len as usize, next))
}

fn write_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}

fn to_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    // Writing into a Vec cannot fail, and the value holds no floats or tags.
    if ciborium::ser::into_writer(value, &mut out).is_err() {
        out.clear();
    }
    out
}

fn uint(n: u64) -> Value {
    Value::Integer(Integer::from(n))
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// A map with text keys in canonical order: by encoded length, then bytewise.
fn map(mut entries: Vec<(&str, Value)>) -> Value {
    entries.sort_by(|a, b| (a.0.len(), a.0.as_bytes()).cmp(&(b.0.len(), b.0.as_bytes())));
    Value::Map(entries.into_iter().map(|(k, v)| (text(k), v)).collect())
}

fn opt_text(entries: &mut Vec<(&'static str, Value)>, key: &'static str, v: &Option<String>) {
    if let Some(s) = v {
        entries.push((key, text(s)));
    }
}

fn amount_value(a: &Amount) -> Value {
    map(vec![
        ("value", uint(a.value)),
        ("currency", text(&a.currency)),
    ])
}

fn encode_body(body: &Body) -> Value {
    let mut e: Vec<(&'static str, Value)> = Vec::new();
    match body {
        Body::Profile(p) => {
            e.push(("name", text(&p.name)));
            e.push(("role", text(p.role.as_str())));
            opt_text(&mut e, "about", &p.about);
        }
        Body::Review(r) => {
            e.push((
                "product",
                map(vec![
                    ("producer", Value::Bytes(r.product.producer.0.to_vec())),
                    ("code", text(&r.product.code)),
                ]),
            ));
            e.push(("rating", uint(u64::from(r.rating))));
            opt_text(&mut e, "title", &r.title);
            e.push(("text", text(&r.text)));
        }
        Body::Group(g) => {
            e.push(("name", text(&g.name)));
            opt_text(&mut e, "charter", &g.charter);
            e.push(("admission", text(g.admission.as_str())));
        }
        Body::Join(j) => e.push(("group", Value::Bytes(j.group.0.to_vec()))),
        Body::Admit(a) => {
            e.push(("group", Value::Bytes(a.group.0.to_vec())));
            e.push(("member", Value::Bytes(a.member.0.to_vec())));
        }
        Body::Petition(p) => {
            e.push(("producer", Value::Bytes(p.producer.0.to_vec())));
            opt_text(&mut e, "product", &p.product);
            if let Some(g) = p.group {
                e.push(("group", Value::Bytes(g.0.to_vec())));
            }
            e.push(("title", text(&p.title)));
            e.push(("text", text(&p.text)));
            e.push(("threshold", uint(p.threshold)));
            if let Some(d) = p.deadline {
                e.push(("deadline", uint(d)));
            }
            let variant = match &p.variant {
                PetitionVariant::Demand => "demand",
                PetitionVariant::Proposal => "proposal",
                PetitionVariant::Campaign { goal } => {
                    e.push(("goal", amount_value(goal)));
                    "campaign"
                }
            };
            e.push(("variant", text(variant)));
        }
        Body::Endorsement(en) => {
            e.push(("petition", Value::Bytes(en.petition.0.to_vec())));
            opt_text(&mut e, "comment", &en.comment);
            if let Some(p) = &en.pledge {
                e.push(("pledge", amount_value(p)));
            }
        }
        Body::Retraction(r) => e.push(("target", Value::Bytes(r.target.0.to_vec()))),
        Body::Response(r) => {
            e.push(("target", Value::Bytes(r.target.0.to_vec())));
            e.push(("status", text(r.status.as_str())));
            e.push(("text", text(&r.text)));
            if let Some(root) = r.root {
                e.push(("root", Value::Bytes(root.to_vec())));
            }
        }
        Body::Attestation(a) => {
            match &a.subject {
                Subject::Record(id) => e.push(("record", Value::Bytes(id.0.to_vec()))),
                Subject::Keys(keys) => e.push((
                    "keys",
                    Value::Array(keys.iter().map(|k| Value::Bytes(k.0.to_vec())).collect()),
                )),
            }
            e.push(("verdict", text(a.verdict.as_str())));
            if let Some(c) = a.count {
                e.push(("count", uint(c)));
            }
            if let Some(root) = a.root {
                e.push(("root", Value::Bytes(root.to_vec())));
            }
            opt_text(&mut e, "note", &a.note);
        }
    }
    map(e)
}

/// The entries of one CBOR map, taken out by name; whatever is left is an unexpected field.
struct Fields(Vec<(String, Value)>);

impl Fields {
    fn from_value(v: Value, what: &'static str) -> Result<Self, Error> {
        let Value::Map(entries) = v else {
            return Err(Error::InvalidField {
                field: what,
                reason: "expected a map",
            });
        };
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            match k {
                Value::Text(k) => out.push((k, v)),
                _ => {
                    return Err(Error::InvalidField {
                        field: what,
                        reason: "map keys must be text",
                    })
                }
            }
        }
        Ok(Fields(out))
    }

    fn take(&mut self, key: &'static str) -> Option<Value> {
        let pos = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.swap_remove(pos).1)
    }

    fn req(&mut self, key: &'static str) -> Result<Value, Error> {
        self.take(key).ok_or(Error::MissingField(key))
    }

    fn finish(self) -> Result<(), Error> {
        match self.0.into_iter().next() {
            None => Ok(()),
            Some((k, _)) => Err(Error::UnexpectedField(short(&k))),
        }
    }

    fn uint(&mut self, key: &'static str) -> Result<u64, Error> {
        as_uint(self.req(key)?, key)
    }
    fn opt_uint(&mut self, key: &'static str) -> Result<Option<u64>, Error> {
        self.take(key).map(|v| as_uint(v, key)).transpose()
    }
    fn text(&mut self, key: &'static str) -> Result<String, Error> {
        as_text(self.req(key)?, key)
    }
    fn opt_text(&mut self, key: &'static str) -> Result<Option<String>, Error> {
        self.take(key).map(|v| as_text(v, key)).transpose()
    }
    fn b32(&mut self, key: &'static str) -> Result<[u8; 32], Error> {
        as_b32(self.req(key)?, key)
    }
    fn opt_b32(&mut self, key: &'static str) -> Result<Option<[u8; 32]>, Error> {
        self.take(key).map(|v| as_b32(v, key)).transpose()
    }
    fn parsed<T: std::str::FromStr<Err = Error>>(&mut self, key: &'static str) -> Result<T, Error> {
        self.text(key)?.parse().map_err(|_| Error::InvalidField {
            field: key,
            reason: "unknown value",
        })
    }
}

fn as_uint(v: Value, field: &'static str) -> Result<u64, Error> {
    match v {
        Value::Integer(i) => u64::try_from(i).map_err(|_| Error::InvalidField {
            field,
            reason: "expected an unsigned integer",
        }),
        _ => Err(Error::InvalidField {
            field,
            reason: "expected an unsigned integer",
        }),
    }
}

fn as_text(v: Value, field: &'static str) -> Result<String, Error> {
    match v {
        Value::Text(s) => Ok(s),
        _ => Err(Error::InvalidField {
            field,
            reason: "expected text",
        }),
    }
}

fn as_b32(v: Value, field: &'static str) -> Result<[u8; 32], Error> {
    match v {
        Value::Bytes(b) => b.try_into().map_err(|_| Error::InvalidField {
            field,
            reason: "expected 32 bytes",
        }),
        _ => Err(Error::InvalidField {
            field,
            reason: "expected a byte string",
        }),
    }
}

fn amount_from(v: Value, field: &'static str) -> Result<Amount, Error> {
    let mut f = Fields::from_value(v, field)?;
    let a = Amount {
        value: f.uint("value")?,
        currency: f.text("currency")?,
    };
    f.finish()?;
    Ok(a)
}

fn record_from_value(v: Value) -> Result<Record, Error> {
    let mut f = Fields::from_value(v, "record")?;
    let version = f.uint("v")?;
    if version != crate::PROTOCOL_VERSION {
        return Err(Error::UnsupportedVersion(version));
    }
    let kind: Kind = f.text("kind")?.parse()?;
    let author = AuthorKey(f.b32("author")?);
    let created_at = f.uint("created_at")?;
    let topic: Topic = f.text("topic")?.parse()?;
    let body = body_from_value(kind, f.req("body")?)?;
    f.finish()?;
    Ok(Record {
        v: version,
        author,
        created_at,
        topic,
        body,
    })
}

fn body_from_value(kind: Kind, v: Value) -> Result<Body, Error> {
    let mut f = Fields::from_value(v, "body")?;
    let body = match kind {
        Kind::Profile => Body::Profile(Profile {
            name: f.text("name")?,
            role: f.parsed("role")?,
            about: f.opt_text("about")?,
        }),
        Kind::Review => {
            let mut p = Fields::from_value(f.req("product")?, "product")?;
            let product = ProductRef {
                producer: AuthorKey(p.b32("producer")?),
                code: p.text("code")?,
            };
            p.finish()?;
            let rating = f.uint("rating")?;
            let rating = u8::try_from(rating)
                .ok()
                .filter(|r| (1..=5).contains(r))
                .ok_or(Error::RatingOutOfRange(rating))?;
            Body::Review(Review {
                product,
                rating,
                title: f.opt_text("title")?,
                text: f.text("text")?,
            })
        }
        Kind::Group => Body::Group(Group {
            name: f.text("name")?,
            charter: f.opt_text("charter")?,
            admission: f.parsed("admission")?,
        }),
        Kind::Join => Body::Join(Join {
            group: RecordId(f.b32("group")?),
        }),
        Kind::Admit => Body::Admit(Admit {
            group: RecordId(f.b32("group")?),
            member: AuthorKey(f.b32("member")?),
        }),
        Kind::Petition => {
            let variant_name = f.text("variant")?;
            let variant = match variant_name.as_str() {
                "demand" => PetitionVariant::Demand,
                "proposal" => PetitionVariant::Proposal,
                "campaign" => PetitionVariant::Campaign {
                    goal: amount_from(f.req("goal")?, "goal")?,
                },
                _ => {
                    return Err(Error::InvalidField {
                        field: "variant",
                        reason: "unknown value",
                    })
                }
            };
            Body::Petition(Petition {
                producer: AuthorKey(f.b32("producer")?),
                product: f.opt_text("product")?,
                group: f.opt_b32("group")?.map(RecordId),
                title: f.text("title")?,
                text: f.text("text")?,
                threshold: f.uint("threshold")?,
                deadline: f.opt_uint("deadline")?,
                variant,
            })
        }
        Kind::Endorsement => Body::Endorsement(Endorsement {
            petition: RecordId(f.b32("petition")?),
            comment: f.opt_text("comment")?,
            pledge: f
                .take("pledge")
                .map(|v| amount_from(v, "pledge"))
                .transpose()?,
        }),
        Kind::Retraction => Body::Retraction(Retraction {
            target: RecordId(f.b32("target")?),
        }),
        Kind::Response => Body::Response(Response {
            target: RecordId(f.b32("target")?),
            status: f.parsed("status")?,
            text: f.text("text")?,
            root: f.opt_b32("root")?,
        }),
        Kind::Attestation => {
            let subject = match (f.take("record"), f.take("keys")) {
                (Some(r), None) => Subject::Record(RecordId(as_b32(r, "record")?)),
                (None, Some(Value::Array(keys))) => Subject::Keys(
                    keys.into_iter()
                        .map(|k| as_b32(k, "keys").map(AuthorKey))
                        .collect::<Result<_, _>>()?,
                ),
                (None, Some(_)) => {
                    return Err(Error::InvalidField {
                        field: "keys",
                        reason: "expected an array",
                    })
                }
                _ => {
                    return Err(Error::InvalidField {
                        field: "subject",
                        reason: "exactly one of record or keys",
                    })
                }
            };
            Body::Attestation(Attestation {
                subject,
                verdict: f.parsed("verdict")?,
                count: f.opt_uint("count")?,
                root: f.opt_b32("root")?,
                note: f.opt_text("note")?,
            })
        }
    };
    f.finish()?;
    Ok(body)
}

/// The record as JSON, byte strings as lowercase hex: the `decoded` form of the test vectors
/// and of `chorus show --json`.
pub fn record_to_json(record_bytes: &[u8]) -> Result<serde_json::Value, Error> {
    let value: Value = ciborium::de::from_reader(record_bytes)
        .map_err(|e| Error::Malformed(format!("cbor: {}", short(&e.to_string()))))?;
    Ok(value_to_json(&value))
}

fn value_to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Integer(i) => match u64::try_from(*i) {
            Ok(u) => J::from(u),
            Err(_) => J::from(i128::from(*i) as f64),
        },
        Value::Bytes(b) => J::String(hex::encode(b)),
        Value::Text(s) => J::String(s.clone()),
        Value::Bool(b) => J::Bool(*b),
        Value::Null => J::Null,
        Value::Array(a) => J::Array(a.iter().map(value_to_json).collect()),
        Value::Map(m) => J::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::Text(s) => s.clone(),
                        other => value_to_json(other).to_string(),
                    };
                    (key, value_to_json(v))
                })
                .collect(),
        ),
        _ => J::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequence_of_wires_splits_in_order_and_a_broken_one_is_named() {
        let a = encode_wire(&[1, 2, 3], &[9u8; 64]);
        let b = encode_wire(&[4; 30], &[8u8; 64]);
        let seq = [a.clone(), b.clone(), a.clone()].concat();
        assert_eq!(
            split_sequence(&seq, 10).unwrap(),
            vec![&a[..], &b[..], &a[..]]
        );
        assert!(split_sequence(&[], 10).unwrap().is_empty());
        assert!(
            split_sequence(&seq, 2).is_err(),
            "more than the most allowed"
        );
        let cut = &seq[..seq.len() - 1];
        let e = split_sequence(cut, 10).unwrap_err().to_string();
        assert!(
            e.contains("record 3") && e.contains(&format!("byte {}", a.len() + b.len())),
            "{e}"
        );
        let mut garbage = a.clone();
        garbage.push(0x01);
        assert!(split_sequence(&garbage, 10)
            .unwrap_err()
            .to_string()
            .contains("record 2"));
    }

    #[test]
    fn wire_heads_must_be_minimal() {
        // Record of 3 bytes with a one-byte length head (0x58 0x03): not minimal.
        let mut wire = vec![0x82, 0x58, 3, 1, 2, 3, 0x58, 64];
        wire.extend_from_slice(&[0u8; 64]);
        assert_eq!(split_wire(&wire), Err(Error::NonCanonical));
        let mut ok = vec![0x82, 0x43, 1, 2, 3, 0x58, 64];
        ok.extend_from_slice(&[9u8; 64]);
        let (range, sig) = split_wire(&ok).unwrap();
        assert_eq!(range, 2..5);
        assert_eq!(sig, [9u8; 64]);
        assert_eq!(encode_wire(&[1, 2, 3], &[9u8; 64]), ok);
    }

    #[test]
    fn wire_rejects_truncation_and_trailing_bytes() {
        let mut ok = vec![0x82, 0x43, 1, 2, 3, 0x58, 64];
        ok.extend_from_slice(&[9u8; 64]);
        for n in 0..ok.len() {
            assert!(split_wire(&ok[..n]).is_err(), "prefix {n}");
        }
        let mut long = ok.clone();
        long.push(0);
        assert!(split_wire(&long).is_err());
    }

    #[test]
    fn map_keys_sort_by_length_then_bytes() {
        let v = map(vec![
            ("created_at", uint(1)),
            ("v", uint(1)),
            ("kind", uint(1)),
            ("body", uint(1)),
        ]);
        let Value::Map(m) = v else { panic!() };
        let keys: Vec<_> = m
            .iter()
            .map(|(k, _)| k.as_text().unwrap().to_string())
            .collect();
        assert_eq!(keys, ["v", "body", "kind", "created_at"]);
    }
}
