//! The one error type of the protocol crate.

/// Why bytes or a record were refused. Every variant names the fault, so a node can map it to
/// a peer penalty and tests can match on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The wire form is larger than the protocol allows.
    #[error("record too large: {size} bytes, at most {max}")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not the CBOR structure the protocol requires.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The CBOR is well formed but not in the one canonical (deterministic) encoding.
    #[error("non-canonical encoding")]
    NonCanonical,
    /// The `v` field names a protocol version this code does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u64),
    /// The `kind` field names no known kind.
    #[error("unknown kind {0:?}")]
    UnknownKind(String),
    /// A required map key is absent.
    #[error("missing field {0:?}")]
    MissingField(&'static str),
    /// A map key the kind does not define.
    #[error("unexpected field {0:?}")]
    UnexpectedField(String),
    /// A field holds the wrong CBOR type or an out-of-domain value.
    #[error("invalid field {field:?}: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A text field is empty, too long or holds control characters.
    #[error("invalid text in {field:?}: {reason}")]
    InvalidText {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A rating outside 1..=5.
    #[error("rating {0} out of range 1..=5")]
    RatingOutOfRange(u64),
    /// `created_at` lies further in the future than the allowed skew.
    #[error("created_at {created_at} is in the future (now {now}, skew {skew_ms} ms)")]
    FromTheFuture {
        /// The record's creation time (ms).
        created_at: u64,
        /// The validator's clock (ms).
        now: u64,
        /// The allowed skew (ms).
        skew_ms: u64,
    },
    /// The topic is not the one the body implies.
    #[error("topic {found:?} does not match the body (expected {expected:?})")]
    TopicMismatch {
        /// The topic the record carries.
        found: String,
        /// The topic its body implies.
        expected: String,
    },
    /// The topic string is not of a known form.
    #[error("invalid topic {0:?}")]
    InvalidTopic(String),
    /// The author key is not a canonical encoding of a curve point.
    #[error("author key is not a canonical point encoding")]
    NonCanonicalKey,
    /// The author key is a point of small order (a "weak" key).
    #[error("author key has small order")]
    SmallOrderKey,
    /// The signature's R is not a canonical point encoding, or of small order.
    #[error("signature R is non-canonical or of small order")]
    InvalidSignatureR,
    /// The signature's S is not reduced modulo the group order.
    #[error("signature S is not canonical (S >= L)")]
    NonCanonicalSignature,
    /// The signature does not verify.
    #[error("invalid signature")]
    InvalidSignature,
    /// A hex string of the wrong length or alphabet.
    #[error("invalid hex: expected {0} hex digits")]
    InvalidHex(usize),
    /// An amount string that is not `DIGITS[.DD]CUR`.
    #[error("invalid amount {0:?}: expected e.g. 3000EUR or 12.50USD")]
    InvalidAmount(String),
}

impl Error {
    /// A short stable code for the fault (used in test vectors, API errors and logs).
    pub fn code(&self) -> &'static str {
        match self {
            Error::TooLarge { .. } => "too-large",
            Error::Malformed(_) => "malformed",
            Error::NonCanonical => "non-canonical",
            Error::UnsupportedVersion(_) => "unsupported-version",
            Error::UnknownKind(_) => "unknown-kind",
            Error::MissingField(_) => "missing-field",
            Error::UnexpectedField(_) => "unexpected-field",
            Error::InvalidField { .. } => "invalid-field",
            Error::InvalidText { .. } => "invalid-text",
            Error::RatingOutOfRange(_) => "rating-out-of-range",
            Error::FromTheFuture { .. } => "from-the-future",
            Error::TopicMismatch { .. } => "topic-mismatch",
            Error::InvalidTopic(_) => "invalid-topic",
            Error::NonCanonicalKey => "non-canonical-key",
            Error::SmallOrderKey => "small-order-key",
            Error::InvalidSignatureR => "invalid-signature-r",
            Error::NonCanonicalSignature => "non-canonical-signature",
            Error::InvalidSignature => "invalid-signature",
            Error::InvalidHex(_) => "invalid-hex",
            Error::InvalidAmount(_) => "invalid-amount",
        }
    }
}
