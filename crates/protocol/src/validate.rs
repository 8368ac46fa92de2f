//! Context-free validity rules and their limits (normative in `docs/PROTOCOL.md` §5).
//!
//! Rules that need other records (a response must come from the targeted producer, only a
//! group's founder admits, a retraction only by the author of its target) are the store's
//! job; everything decidable from one record alone is here.

use crate::record::*;
use crate::Error;

/// Largest accepted wire form, in bytes.
pub const MAX_WIRE_BYTES: usize = 4096;
/// Default allowed clock skew for `created_at` in the future: 10 minutes.
pub const DEFAULT_SKEW_MS: u64 = 10 * 60 * 1000;

/// Text limits in UTF-8 bytes: (field, min, max).
pub struct Limits;

impl Limits {
    /// Names (profile, group).
    pub const NAME: usize = 100;
    /// Titles (review, petition).
    pub const TITLE: usize = 200;
    /// Long texts (review, petition, response).
    pub const TEXT: usize = 2000;
    /// Short texts (profile about, comment, attestation note).
    pub const SHORT: usize = 500;
    /// Group charter.
    pub const CHARTER: usize = 1000;
    /// Product codes.
    pub const PRODUCT_CODE: usize = 64;
    /// Largest threshold.
    pub const MAX_THRESHOLD: u64 = 1_000_000_000;
    /// Largest amount, in hundredths.
    pub const MAX_AMOUNT: u64 = 1_000_000_000_000_000;
    /// Most keys in one attestation.
    pub const MAX_KEYS: usize = 64;
}

fn check_text(field: &'static str, s: &str, min: usize, max: usize) -> Result<(), Error> {
    if s.len() < min {
        return Err(Error::InvalidText {
            field,
            reason: "empty",
        });
    }
    if s.len() > max {
        return Err(Error::InvalidText {
            field,
            reason: "too long",
        });
    }
    if s.chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{feff}')
    {
        return Err(Error::InvalidText {
            field,
            reason: "control character",
        });
    }
    Ok(())
}

fn check_opt(field: &'static str, s: &Option<String>, max: usize) -> Result<(), Error> {
    s.as_deref()
        .map_or(Ok(()), |s| check_text(field, s, 1, max))
}

/// Product codes: 1..=64 bytes of `A-Z a-z 0-9 . _ -`.
pub fn check_product_code(code: &str) -> Result<(), Error> {
    let ok = !code.is_empty()
        && code.len() <= Limits::PRODUCT_CODE
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidField {
            field: "code",
            reason: "1..=64 of A-Z a-z 0-9 . _ -",
        })
    }
}

fn check_amount(field: &'static str, a: &Amount) -> Result<(), Error> {
    if a.value == 0 || a.value > Limits::MAX_AMOUNT {
        return Err(Error::InvalidField {
            field,
            reason: "amount must be in 1..=10^15 hundredths",
        });
    }
    if a.currency.len() != 3 || !a.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Error::InvalidField {
            field,
            reason: "currency must be three uppercase letters",
        });
    }
    Ok(())
}

/// Every rule decidable from the record alone, except the clock and the signature.
pub fn check_record(r: &Record) -> Result<(), Error> {
    if r.v != crate::PROTOCOL_VERSION {
        return Err(Error::UnsupportedVersion(r.v));
    }
    match &r.body {
        Body::Profile(p) => {
            check_text("name", &p.name, 1, Limits::NAME)?;
            check_opt("about", &p.about, Limits::SHORT)?;
        }
        Body::Review(rv) => {
            check_product_code(&rv.product.code)?;
            if !(1..=5).contains(&rv.rating) {
                return Err(Error::RatingOutOfRange(rv.rating.into()));
            }
            check_opt("title", &rv.title, Limits::TITLE)?;
            check_text("text", &rv.text, 1, Limits::TEXT)?;
        }
        Body::Group(g) => {
            check_text("name", &g.name, 1, Limits::NAME)?;
            check_opt("charter", &g.charter, Limits::CHARTER)?;
        }
        Body::Join(_) | Body::Admit(_) | Body::Retraction(_) => {}
        Body::Petition(p) => {
            if let Some(code) = &p.product {
                check_product_code(code)?;
            }
            check_text("title", &p.title, 1, Limits::TITLE)?;
            check_text("text", &p.text, 1, Limits::TEXT)?;
            if p.threshold == 0 || p.threshold > Limits::MAX_THRESHOLD {
                return Err(Error::InvalidField {
                    field: "threshold",
                    reason: "must be in 1..=10^9",
                });
            }
            if let Some(d) = p.deadline {
                if d <= r.created_at {
                    return Err(Error::InvalidField {
                        field: "deadline",
                        reason: "must be after created_at",
                    });
                }
            }
            if let PetitionVariant::Campaign { goal } = &p.variant {
                check_amount("goal", goal)?;
            }
        }
        Body::Endorsement(e) => {
            check_opt("comment", &e.comment, Limits::SHORT)?;
            if let Some(p) = &e.pledge {
                check_amount("pledge", p)?;
            }
        }
        Body::Response(resp) => check_text("text", &resp.text, 1, Limits::TEXT)?,
        Body::Attestation(a) => {
            check_opt("note", &a.note, Limits::SHORT)?;
            match (&a.subject, a.verdict) {
                (Subject::Keys(keys), Verdict::OneActor) => {
                    if keys.is_empty() || keys.len() > Limits::MAX_KEYS {
                        return Err(Error::InvalidField {
                            field: "keys",
                            reason: "1..=64 keys",
                        });
                    }
                    if keys.windows(2).any(|w| w[0] >= w[1]) {
                        return Err(Error::InvalidField {
                            field: "keys",
                            reason: "keys must be strictly ascending",
                        });
                    }
                }
                (Subject::Record(_), Verdict::Valid | Verdict::Invalid) => {}
                (Subject::Record(_), Verdict::VerifiedCount) => {
                    if a.count.is_none() || a.root.is_none() {
                        return Err(Error::InvalidField {
                            field: "verdict",
                            reason: "verified-count needs count and root",
                        });
                    }
                }
                _ => {
                    return Err(Error::InvalidField {
                        field: "verdict",
                        reason: "one-actor is for keys, the others for a record",
                    })
                }
            }
        }
    }
    if let Some(expected) = r.body.implied_topic(&r.author) {
        if expected != r.topic {
            return Err(Error::TopicMismatch {
                found: r.topic.to_string(),
                expected: expected.to_string(),
            });
        }
    } else if matches!(r.body, Body::Endorsement(_)) && !matches!(r.topic, Topic::Producer(_)) {
        // An endorsement travels with its petition, which is always on a producer topic.
        return Err(Error::TopicMismatch {
            found: r.topic.to_string(),
            expected: "producer/<petition's producer>".into(),
        });
    } else if let Body::Attestation(Attestation {
        subject: Subject::Keys(_),
        ..
    }) = &r.body
    {
        // An attestation about keys has no target record to follow: it travels on `meta`.
        if r.topic != Topic::Meta {
            return Err(Error::TopicMismatch {
                found: r.topic.to_string(),
                expected: Topic::Meta.to_string(),
            });
        }
    }
    Ok(())
}

/// `created_at` may be at most `skew_ms` after `now`.
pub fn check_time(r: &Record, now: u64, skew_ms: u64) -> Result<(), Error> {
    if r.created_at > now.saturating_add(skew_ms) {
        return Err(Error::FromTheFuture {
            created_at: r.created_at,
            now,
            skew_ms,
        });
    }
    Ok(())
}

/// The whole check of untrusted wire bytes, as a verifier in any language performs it:
/// structure and canonical form, context-free rules, the clock, then the signature.
pub fn check_wire(wire: &[u8], now: u64, skew_ms: u64) -> Result<SignedRecord, Error> {
    let rec = SignedRecord::from_bytes(wire)?;
    rec.check_time(now, skew_ms)?;
    rec.verify()?;
    Ok(rec)
}
