//! The sync protocol's messages on the wire (CBOR, specified in `docs/PROTOCOL.md` §13).
//!
//! ```text
//! request  = [0, [part...]]            reconcile
//!          / [1, [bstr(32)...]]        fetch these records
//! response = [0, [part...]]            reconcile answer
//!          / [1, [bstr...]]            records (verbatim wire bytes)
//!          / [2, code: text, message: text]
//! part     = [bound, 0]                skip
//!          / [bound, 1, bstr(16)]      fingerprint
//!          / [bound, 2, bstr(8 n)]     have: id prefixes
//!          / [bound, 3, bstr(32 n)]    ids
//! bound    = null                      end
//!          / [shared: uint, suffix: bstr]
//! ```
//!
//! A bound's bytes are the first `shared` bytes of the previous part's bound followed by
//! `suffix` (the first part's previous bound is empty), so neighbouring bounds cost a few
//! bytes each.

use ciborium::Value;

use super::reconcile::{Bound, Id, Mode, Part, FP_LEN, KEY_LEN, PREFIX_LEN};

/// Largest request, in bytes.
pub const MAX_REQUEST: usize = 1024 * 1024;
/// Largest response, in bytes: a full fetch (1,024 records of at most 4 KiB) and framing.
pub const MAX_RESPONSE: usize = 5 * 1024 * 1024;
/// Most ids in one fetch request.
pub const MAX_FETCH: usize = 1024;

/// A request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A reconciliation message from the initiator.
    Reconcile(Vec<Part>),
    /// Send these records.
    Fetch(Vec<Id>),
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The responder's reconciliation message.
    Reconcile(Vec<Part>),
    /// Records, verbatim (those of the requested ids that the responder holds).
    Records(Vec<Vec<u8>>),
    /// The request was refused.
    Error {
        /// Stable code (`malformed`, `busy`, `internal`).
        code: String,
        /// For people.
        message: String,
    },
}

/// A message that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed sync message: {0}")]
pub struct DecodeError(pub &'static str);

fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = ciborium::ser::into_writer(v, &mut out);
    out
}

fn parts_value(parts: &[Part]) -> Value {
    let mut prev: &[u8] = &[];
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        let bound = match &part.upper {
            Bound::End => Value::Null,
            Bound::Below(b) => {
                let shared = prev.iter().zip(b).take_while(|(x, y)| x == y).count();
                prev = b;
                Value::Array(vec![
                    Value::Integer(shared.into()),
                    Value::Bytes(b[shared..].to_vec()),
                ])
            }
        };
        let mut v = vec![bound];
        match &part.mode {
            Mode::Skip => v.push(Value::Integer(0.into())),
            Mode::Fingerprint(fp) => {
                v.push(Value::Integer(1.into()));
                v.push(Value::Bytes(fp.to_vec()));
            }
            Mode::Have(h) => {
                v.push(Value::Integer(2.into()));
                v.push(Value::Bytes(h.concat()));
            }
            Mode::Ids(ids) => {
                v.push(Value::Integer(3.into()));
                v.push(Value::Bytes(ids.concat()));
            }
        }
        out.push(Value::Array(v));
    }
    Value::Array(out)
}

fn uint(v: &Value) -> Result<u64, DecodeError> {
    match v {
        Value::Integer(i) => u64::try_from(*i).map_err(|_| DecodeError("negative integer")),
        _ => Err(DecodeError("expected an integer")),
    }
}

fn bytes(v: &Value) -> Result<&[u8], DecodeError> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => Err(DecodeError("expected a byte string")),
    }
}

fn array(v: &Value) -> Result<&[Value], DecodeError> {
    match v {
        Value::Array(a) => Ok(a),
        _ => Err(DecodeError("expected an array")),
    }
}

fn chunks<const N: usize>(b: &[u8]) -> Result<Vec<[u8; N]>, DecodeError> {
    if !b.len().is_multiple_of(N) {
        return Err(DecodeError(
            "list length is not a multiple of the item size",
        ));
    }
    Ok(b.chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            a
        })
        .collect())
}

fn parts_from(v: &Value) -> Result<Vec<Part>, DecodeError> {
    let mut prev: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for p in array(v)? {
        let p = array(p)?;
        let (bound, mode) = match p {
            [b, m, ..] => (b, uint(m)?),
            _ => return Err(DecodeError("short part")),
        };
        let upper = match bound {
            Value::Null => Bound::End,
            b => {
                let [shared, suffix] = array(b)? else {
                    return Err(DecodeError("bound is not [shared, suffix]"));
                };
                let shared = uint(shared)? as usize;
                let suffix = bytes(suffix)?;
                if shared > prev.len() || shared + suffix.len() > KEY_LEN {
                    return Err(DecodeError("bound out of range"));
                }
                let mut b = prev[..shared].to_vec();
                b.extend_from_slice(suffix);
                prev = b.clone();
                Bound::Below(b)
            }
        };
        let payload = || match p {
            [_, _, x] => bytes(x),
            _ => Err(DecodeError("part without its payload")),
        };
        let mode = match (mode, p.len()) {
            (0, 2) => Mode::Skip,
            (1, 3) => {
                let fp = payload()?;
                Mode::Fingerprint(
                    fp.try_into()
                        .map_err(|_| DecodeError("fingerprint is not 16 bytes"))?,
                )
            }
            (2, 3) => Mode::Have(chunks::<PREFIX_LEN>(payload()?)?),
            (3, 3) => Mode::Ids(chunks::<32>(payload()?)?),
            _ => return Err(DecodeError("unknown part mode")),
        };
        out.push(Part { upper, mode });
    }
    Ok(out)
}

fn decode_value(b: &[u8], max: usize) -> Result<Vec<Value>, DecodeError> {
    if b.len() > max {
        return Err(DecodeError("message too large"));
    }
    let v: Value = ciborium::de::from_reader(b).map_err(|_| DecodeError("not well-formed CBOR"))?;
    match v {
        Value::Array(a) => Ok(a),
        _ => Err(DecodeError("message is not an array")),
    }
}

impl Request {
    /// Encodes the request.
    pub fn encode(&self) -> Vec<u8> {
        encode(&match self {
            Request::Reconcile(parts) => Value::Array(vec![0.into(), parts_value(parts)]),
            Request::Fetch(ids) => Value::Array(vec![
                1.into(),
                Value::Array(ids.iter().map(|i| Value::Bytes(i.to_vec())).collect()),
            ]),
        })
    }

    /// Decodes a request.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let a = decode_value(b, MAX_REQUEST)?;
        match a.as_slice() {
            [tag, body] => match uint(tag)? {
                0 => Ok(Request::Reconcile(parts_from(body)?)),
                1 => {
                    let ids = array(body)?;
                    if ids.len() > MAX_FETCH {
                        return Err(DecodeError("too many ids"));
                    }
                    ids.iter()
                        .map(|i| {
                            bytes(i)?
                                .try_into()
                                .map_err(|_| DecodeError("id is not 32 bytes"))
                        })
                        .collect::<Result<Vec<Id>, _>>()
                        .map(Request::Fetch)
                }
                _ => Err(DecodeError("unknown request")),
            },
            _ => Err(DecodeError("request is not [tag, body]")),
        }
    }
}

impl Response {
    /// An error response.
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        Response::Error {
            code: code.into(),
            message: message.into(),
        }
    }

    /// Encodes the response.
    pub fn encode(&self) -> Vec<u8> {
        encode(&match self {
            Response::Reconcile(parts) => Value::Array(vec![0.into(), parts_value(parts)]),
            Response::Records(wires) => Value::Array(vec![
                1.into(),
                Value::Array(wires.iter().map(|w| Value::Bytes(w.clone())).collect()),
            ]),
            Response::Error { code, message } => Value::Array(vec![
                2.into(),
                Value::Text(code.clone()),
                Value::Text(message.clone()),
            ]),
        })
    }

    /// Decodes a response.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let a = decode_value(b, MAX_RESPONSE)?;
        match a.as_slice() {
            [tag, body] => match uint(tag)? {
                0 => Ok(Response::Reconcile(parts_from(body)?)),
                1 => array(body)?
                    .iter()
                    .map(|w| bytes(w).map(<[u8]>::to_vec))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Response::Records),
                _ => Err(DecodeError("unknown response")),
            },
            [tag, Value::Text(code), Value::Text(message)] if uint(tag)? == 2 => {
                Ok(Response::Error {
                    code: code.clone(),
                    message: message.clone(),
                })
            }
            _ => Err(DecodeError("response is not [tag, body]")),
        }
    }
}

/// Keeps the fixed sizes in one place for the spec.
const _: () = assert!(FP_LEN == 16 && PREFIX_LEN == 8 && KEY_LEN == 73);

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Part> {
        vec![
            Part {
                upper: Bound::Below(vec![1, 2, 3, 4]),
                mode: Mode::Skip,
            },
            Part {
                upper: Bound::Below(vec![1, 2, 9]),
                mode: Mode::Fingerprint([7; 16]),
            },
            Part {
                upper: Bound::Below(vec![1, 3]),
                mode: Mode::Have(vec![[1; 8], [2; 8]]),
            },
            Part {
                upper: Bound::End,
                mode: Mode::Ids(vec![[3; 32]]),
            },
        ]
    }

    #[test]
    fn messages_round_trip() {
        for r in [
            Request::Reconcile(sample()),
            Request::Fetch(vec![[5; 32], [6; 32]]),
        ] {
            assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        }
        for r in [
            Response::Reconcile(sample()),
            Response::Records(vec![vec![1, 2, 3], vec![]]),
            Response::error("busy", "try later"),
        ] {
            assert_eq!(Response::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn bounds_share_prefixes() {
        let parts = sample();
        let enc = Request::Reconcile(parts).encode();
        // 4 + 1 + 1 suffix bytes, not 4 + 3 + 2.
        assert!(enc.len() < 110, "{} bytes", enc.len());
    }

    #[test]
    fn garbage_is_refused() {
        for b in [
            &b""[..],
            &[0xff],
            &[0x82, 0x00, 0x81, 0x82, 0x82, 0x05, 0x41, 0x00, 0x00], // shared > previous
            &[0x82, 0x00, 0x81, 0x82, 0xf6, 0x09],                   // unknown mode
            &[0x82, 0x00, 0x81, 0x83, 0xf6, 0x02, 0x43, 1, 2, 3],    // prefixes not 8 bytes
            &[0x82, 0x07, 0x80],                                     // unknown request
        ] {
            assert!(Request::decode(b).is_err(), "{b:?}");
        }
        let too_many = Request::Fetch(vec![[0; 32]; MAX_FETCH + 1]).encode();
        assert!(Request::decode(&too_many).is_err());
    }
}
