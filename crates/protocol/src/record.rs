//! Typed records: the envelope, every kind's body, ids and keys, and the signing builder.

use std::fmt;
use std::str::FromStr;

use crate::{cbor, sign, validate, Error, PROTOCOL_VERSION};

/// Formats 32 bytes as 64 lowercase hex digits, the one text form of ids and keys.
fn fmt_hex32(bytes: &[u8; 32], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut buf = [0u8; 64];
    // Cannot fail: the buffer is exactly twice the input.
    hex::encode_to_slice(bytes, &mut buf).map_err(|_| fmt::Error)?;
    f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
}

/// Parses 64 hex digits (either case) into 32 bytes.
pub(crate) fn parse_hex32(s: &str) -> Result<[u8; 32], Error> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return Err(Error::InvalidHex(64));
    }
    hex::decode_to_slice(s, &mut out).map_err(|_| Error::InvalidHex(64))?;
    Ok(out)
}

macro_rules! hex32_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
            /// Wraps raw bytes.
            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt_hex32(&self.0, f)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                fmt_hex32(&self.0, f)?;
                f.write_str(")")
            }
        }
        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                parse_hex32(s).map(Self)
            }
        }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex32_type!(
    /// A record's id: BLAKE3-256 of its exact record bytes. Text form: 64 lowercase hex digits.
    RecordId
);
hex32_type!(
    /// An author's Ed25519 public key (32 bytes, as signed). Text form: 64 lowercase hex digits.
    AuthorKey
);

impl RecordId {
    /// The id of the given record bytes.
    pub fn of(record_bytes: &[u8]) -> Self {
        Self(*blake3::hash(record_bytes).as_bytes())
    }
}

/// Where a record travels and is indexed. Text forms: `meta`, `producer/<key hex>`,
/// `group/<group record id hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Topic {
    /// Profiles, group creations and attestations about keys.
    Meta,
    /// Everything aimed at one producer: reviews, petitions, endorsements, responses.
    Producer(AuthorKey),
    /// A group's membership records: joins and admits.
    Group(RecordId),
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Meta => f.write_str("meta"),
            Topic::Producer(k) => write!(f, "producer/{k}"),
            Topic::Group(g) => write!(f, "group/{g}"),
        }
    }
}

impl FromStr for Topic {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidTopic(s.chars().take(80).collect());
        if s == "meta" {
            return Ok(Topic::Meta);
        }
        // Only lowercase hex is canonical in topics, so one topic has one spelling.
        let lower_hex = |h: &str| h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if let Some(h) = s.strip_prefix("producer/") {
            if lower_hex(h) {
                return parse_hex32(h)
                    .map(|b| Topic::Producer(AuthorKey(b)))
                    .map_err(|_| bad());
            }
        } else if let Some(h) = s.strip_prefix("group/") {
            if lower_hex(h) {
                return parse_hex32(h)
                    .map(|b| Topic::Group(RecordId(b)))
                    .map_err(|_| bad());
            }
        }
        Err(bad())
    }
}

/// The record kinds, by their wire names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Kind {
    /// `profile`
    Profile,
    /// `review`
    Review,
    /// `group`
    Group,
    /// `join`
    Join,
    /// `admit`
    Admit,
    /// `petition`
    Petition,
    /// `endorsement`
    Endorsement,
    /// `retraction`
    Retraction,
    /// `response`
    Response,
    /// `attestation`
    Attestation,
}

impl Kind {
    /// Every kind, in wire-name order of the spec.
    pub const ALL: [Kind; 10] = [
        Kind::Profile,
        Kind::Review,
        Kind::Group,
        Kind::Join,
        Kind::Admit,
        Kind::Petition,
        Kind::Endorsement,
        Kind::Retraction,
        Kind::Response,
        Kind::Attestation,
    ];

    /// The wire name (`kind` field).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Profile => "profile",
            Kind::Review => "review",
            Kind::Group => "group",
            Kind::Join => "join",
            Kind::Admit => "admit",
            Kind::Petition => "petition",
            Kind::Endorsement => "endorsement",
            Kind::Retraction => "retraction",
            Kind::Response => "response",
            Kind::Attestation => "attestation",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::UnknownKind(s.chars().take(40).collect()))
    }
}

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $var),+ }
        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// The wire text.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                match s {
                    $($s => Ok($name::$var),)+
                    _ => Err(Error::InvalidField { field: stringify!($name), reason: "unknown value" }),
                }
            }
        }
    };
}

text_enum!(
    /// What a profile says its author is.
    Role { /// A consumer.
    Consumer = "consumer", /// A producer (the only role whose key may answer feedback).
    Producer = "producer", /// A watchdog group.
    Watchdog = "watchdog" }
);
text_enum!(
    /// How a group admits members.
    Admission { /// Anyone who joins is a member.
    Open = "open", /// A join counts only once the group's founder admits the member.
    Approval = "approval" }
);
text_enum!(
    /// A producer's answer to a petition or review.
    ResponseStatus { /// Seen.
    Acknowledged = "acknowledged", /// Being worked on.
    InProgress = "in-progress", /// Will be done.
    Accepted = "accepted", /// Will not be done.
    Declined = "declined", /// Done.
    Done = "done" }
);
text_enum!(
    /// A watchdog's verdict.
    Verdict { /// The subject record was checked and is valid.
    Valid = "valid", /// The subject record is forged, malformed or breaks a kind rule.
    Invalid = "invalid", /// The subject petition's count was recomputed: see `count` and `root`.
    VerifiedCount = "verified-count", /// The subject keys look like one actor (sybil pattern).
    OneActor = "one-actor" }
);

/// Who profiles itself as what.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Profile {
    /// Display name.
    pub name: String,
    /// Consumer, producer or watchdog.
    pub role: Role,
    /// Free text.
    pub about: Option<String>,
}

/// A product: its producer's key and a product code (EAN/GTIN or slug).
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ProductRef {
    /// The producer's key.
    pub producer: AuthorKey,
    /// Code: 1..=64 bytes of `A-Z a-z 0-9 . _ -`.
    pub code: String,
}

impl fmt::Display for ProductRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.producer, self.code)
    }
}

/// The text form `PRODUCERKEY/CODE` (PROTOCOL.md §11).
impl FromStr for ProductRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let (key, code) = s.split_once('/').ok_or(Error::InvalidField {
            field: "product",
            reason: "expected PRODUCERKEY/CODE",
        })?;
        let producer: AuthorKey = key.parse()?;
        validate::check_product_code(code)?;
        Ok(ProductRef {
            producer,
            code: code.to_string(),
        })
    }
}

/// A rating of a product.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Review {
    /// The product reviewed.
    pub product: ProductRef,
    /// 1..=5.
    pub rating: u8,
    /// Optional headline.
    pub title: Option<String>,
    /// The review.
    pub text: String,
}

/// A group of consumers; its id is the id of this record.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Group {
    /// Name.
    pub name: String,
    /// What the group is for.
    pub charter: Option<String>,
    /// Open or approval.
    pub admission: Admission,
}

/// The author asks to be a member of a group.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Join {
    /// The group's id.
    pub group: RecordId,
}

/// A group's founder admits a member (approval groups).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Admit {
    /// The group's id.
    pub group: RecordId,
    /// The admitted key.
    pub member: AuthorKey,
}

/// An amount of money in hundredths of a currency unit: `{value: 300000, currency: "EUR"}` is
/// 3000.00 EUR. A promise, never a payment.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Amount {
    /// Hundredths of the currency unit, > 0.
    pub value: u64,
    /// Three uppercase ASCII letters (ISO 4217 shape).
    pub currency: String,
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.value / 100;
        let cents = self.value % 100;
        if cents == 0 {
            write!(f, "{whole}{}", self.currency)
        } else {
            write!(f, "{whole}.{cents:02}{}", self.currency)
        }
    }
}

impl FromStr for Amount {
    type Err = Error;
    /// Parses `3000EUR`, `12.5USD`, `12.50 USD`, and a decimal comma: `5,00EUR` (one comma
    /// and no point; a comma is never a thousands separator).
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidAmount(s.chars().take(40).collect());
        let t = s.trim();
        let split = t.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(bad)?;
        let (num, cur) = t.split_at(split);
        let num = num.trim();
        let comma;
        let num = if !num.contains('.') && num.matches(',').count() == 1 {
            comma = num.replace(',', ".");
            comma.as_str()
        } else {
            num
        };
        let currency = cur.trim().to_ascii_uppercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(bad());
        }
        let (whole, frac) = match num.split_once('.') {
            Some((w, f)) => (w, f),
            None => (num, ""),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 2 {
            return Err(bad());
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let whole: u64 = whole.parse().map_err(|_| bad())?;
        let cents: u64 = match frac.len() {
            0 => 0,
            1 => frac.parse::<u64>().map_err(|_| bad())? * 10,
            _ => frac.parse().map_err(|_| bad())?,
        };
        let value = whole
            .checked_mul(100)
            .and_then(|v| v.checked_add(cents))
            .filter(|v| *v > 0)
            .ok_or_else(bad)?;
        Ok(Amount { value, currency })
    }
}

/// What a petition asks for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PetitionVariant {
    /// A plain demand.
    Demand,
    /// A feature proposed for the product's specification (co-design).
    Proposal,
    /// A funding campaign: it succeeds only if pledges reach the goal.
    Campaign {
        /// The funding goal.
        goal: Amount,
    },
}

/// A demand aimed at a producer, alone or on behalf of a group.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Petition {
    /// The targeted producer.
    pub producer: AuthorKey,
    /// Optional product code of that producer.
    pub product: Option<String>,
    /// Optional group the petition speaks for.
    pub group: Option<RecordId>,
    /// Headline.
    pub title: String,
    /// The demand.
    pub text: String,
    /// Endorsements needed, > 0.
    pub threshold: u64,
    /// Optional deadline (ms since the Unix epoch); endorsements created after it don't count.
    pub deadline: Option<u64>,
    /// Demand, proposal or campaign.
    pub variant: PetitionVariant,
}

/// One person's support of a petition; the latest per (author, petition) wins.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Endorsement {
    /// The petition's id.
    pub petition: RecordId,
    /// Optional comment.
    pub comment: Option<String>,
    /// Optional pledge (campaigns).
    pub pledge: Option<Amount>,
}

/// Withdraws one of the author's own records (endorsement, review, petition, ...).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Retraction {
    /// The retracted record's id.
    pub target: RecordId,
}

/// A producer's signed answer to a petition or review aimed at it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Response {
    /// The petition or review answered.
    pub target: RecordId,
    /// Status.
    pub status: ResponseStatus,
    /// Text.
    pub text: String,
    /// Optional Merkle root of the endorsement set the producer acknowledges.
    pub root: Option<[u8; 32]>,
}

/// What an attestation is about.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Subject {
    /// One record (often a petition).
    Record(RecordId),
    /// A set of keys (1..=64, strictly ascending).
    Keys(Vec<AuthorKey>),
}

/// A watchdog's signed finding.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Attestation {
    /// What it is about.
    pub subject: Subject,
    /// The finding.
    pub verdict: Verdict,
    /// Optional count (e.g. verified endorsements).
    pub count: Option<u64>,
    /// Optional Merkle root of the set counted.
    pub root: Option<[u8; 32]>,
    /// Optional free text.
    pub note: Option<String>,
}

/// A kind-specific body.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Body {
    /// See [`Profile`].
    Profile(Profile),
    /// See [`Review`].
    Review(Review),
    /// See [`Group`].
    Group(Group),
    /// See [`Join`].
    Join(Join),
    /// See [`Admit`].
    Admit(Admit),
    /// See [`Petition`].
    Petition(Petition),
    /// See [`Endorsement`].
    Endorsement(Endorsement),
    /// See [`Retraction`].
    Retraction(Retraction),
    /// See [`Response`].
    Response(Response),
    /// See [`Attestation`].
    Attestation(Attestation),
}

impl Body {
    /// This body's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Profile(_) => Kind::Profile,
            Body::Review(_) => Kind::Review,
            Body::Group(_) => Kind::Group,
            Body::Join(_) => Kind::Join,
            Body::Admit(_) => Kind::Admit,
            Body::Petition(_) => Kind::Petition,
            Body::Endorsement(_) => Kind::Endorsement,
            Body::Retraction(_) => Kind::Retraction,
            Body::Response(_) => Kind::Response,
            Body::Attestation(_) => Kind::Attestation,
        }
    }

    /// The topic this body implies when the body alone decides it; `None` for kinds whose
    /// topic is that of the record they point at (endorsement, retraction, attestation about
    /// a record).
    pub fn implied_topic(&self, author: &AuthorKey) -> Option<Topic> {
        match self {
            Body::Profile(_) | Body::Group(_) => Some(Topic::Meta),
            Body::Review(r) => Some(Topic::Producer(r.product.producer)),
            Body::Join(j) => Some(Topic::Group(j.group)),
            Body::Admit(a) => Some(Topic::Group(a.group)),
            Body::Petition(p) => Some(Topic::Producer(p.producer)),
            Body::Response(_) => Some(Topic::Producer(*author)),
            // About keys, not a record: nothing to follow, so `meta` (PROTOCOL.md §6).
            Body::Attestation(Attestation {
                subject: Subject::Keys(_),
                ..
            }) => Some(Topic::Meta),
            Body::Endorsement(_) | Body::Retraction(_) | Body::Attestation(_) => None,
        }
    }

    /// The record this body points at, if any (endorsed petition, retracted or answered
    /// record, group joined, attested record).
    pub fn target(&self) -> Option<RecordId> {
        match self {
            Body::Join(j) => Some(j.group),
            Body::Admit(a) => Some(a.group),
            Body::Endorsement(e) => Some(e.petition),
            Body::Retraction(r) => Some(r.target),
            Body::Response(r) => Some(r.target),
            Body::Attestation(Attestation {
                subject: Subject::Record(id),
                ..
            }) => Some(*id),
            _ => None,
        }
    }
}

/// The signed envelope, typed. Encode with [`cbor::encode_record`]; build and sign with
/// [`RecordBuilder`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Record {
    /// Protocol version (1).
    pub v: u64,
    /// The author's public key.
    pub author: AuthorKey,
    /// Creation time, ms since the Unix epoch.
    pub created_at: u64,
    /// Where it travels.
    pub topic: Topic,
    /// Kind-specific content.
    pub body: Body,
}

impl Record {
    /// The record's kind.
    pub fn kind(&self) -> Kind {
        self.body.kind()
    }
}

/// A record in wire form, decoded and checked for structure: the exact bytes received (or
/// built), its id, typed content and signature. Signatures are checked separately
/// ([`SignedRecord::verify`] or [`crate::verify_batch`]) so they can be batched.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedRecord {
    wire: Vec<u8>,
    record_start: usize,
    record_end: usize,
    id: RecordId,
    record: Record,
    signature: [u8; 64],
}

impl SignedRecord {
    /// Decodes untrusted wire bytes: size limit, the `[record, signature]` array, the record's
    /// canonical CBOR and every context-free rule of [`validate`] except the clock and the
    /// signature. Never panics.
    pub fn from_bytes(wire: &[u8]) -> Result<Self, Error> {
        Self::from_vec(wire.to_vec())
    }

    /// As [`SignedRecord::from_bytes`], taking ownership of the buffer.
    pub fn from_vec(wire: Vec<u8>) -> Result<Self, Error> {
        if wire.len() > validate::MAX_WIRE_BYTES {
            return Err(Error::TooLarge {
                size: wire.len(),
                max: validate::MAX_WIRE_BYTES,
            });
        }
        let (range, signature) = cbor::split_wire(&wire)?;
        let record_bytes = wire
            .get(range.clone())
            .ok_or(Error::Malformed("record range".into()))?;
        let record = cbor::decode_record(record_bytes)?;
        validate::check_record(&record)?;
        let id = RecordId::of(record_bytes);
        Ok(SignedRecord {
            record_start: range.start,
            record_end: range.end,
            wire,
            id,
            record,
            signature,
        })
    }

    /// The exact wire bytes, `[record, signature]`, as received or built.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// Consumes self, handing back the wire bytes.
    pub fn into_wire(self) -> Vec<u8> {
        self.wire
    }

    /// The exact signed record bytes (inside the wire form).
    pub fn record_bytes(&self) -> &[u8] {
        // The range was checked when the value was built.
        &self.wire[self.record_start..self.record_end]
    }

    /// BLAKE3-256 of [`SignedRecord::record_bytes`].
    pub fn id(&self) -> RecordId {
        self.id
    }

    /// The typed record.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The 64-byte Ed25519 signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// The author's key.
    pub fn author(&self) -> AuthorKey {
        self.record.author
    }

    /// Verifies the signature under the protocol's rule (see [`crate::sign`]).
    pub fn verify(&self) -> Result<(), Error> {
        sign::verify(&self.record.author, &self.id, &self.signature)
    }

    /// Checks that `created_at` is at most `skew_ms` after `now` (both ms since the epoch).
    pub fn check_time(&self, now: u64, skew_ms: u64) -> Result<(), Error> {
        validate::check_time(&self.record, now, skew_ms)
    }
}

/// Builds a record and signs it.
///
/// ```
/// use chorus_protocol::{Body, Profile, RecordBuilder, Role, SigningKey};
/// let key = SigningKey::from_bytes(&[7; 32]);
/// let rec = RecordBuilder::new(Body::Profile(Profile {
///     name: "Ada".into(), role: Role::Consumer, about: None,
/// }))
/// .created_at(1_700_000_000_000)
/// .sign(&key)
/// .unwrap();
/// assert!(rec.verify().is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct RecordBuilder {
    body: Body,
    created_at: u64,
    topic: Option<Topic>,
}

impl RecordBuilder {
    /// Starts a record with this body, created at time 0 unless set.
    pub fn new(body: Body) -> Self {
        RecordBuilder {
            body,
            created_at: 0,
            topic: None,
        }
    }

    /// Sets the creation time (ms since the Unix epoch).
    pub fn created_at(mut self, ms: u64) -> Self {
        self.created_at = ms;
        self
    }

    /// Sets the topic; required for endorsements, retractions and attestations (use the
    /// topic of the record they point at), implied by the body otherwise.
    pub fn topic(mut self, topic: Topic) -> Self {
        self.topic = Some(topic);
        self
    }

    fn build(self, author: AuthorKey) -> Result<Record, Error> {
        let implied = self.body.implied_topic(&author);
        let topic = match (self.topic, implied) {
            (Some(t), _) => t,
            (None, Some(t)) => t,
            (None, None) => return Err(Error::MissingField("topic")),
        };
        Ok(Record {
            v: PROTOCOL_VERSION,
            author,
            created_at: self.created_at,
            topic,
            body: self.body,
        })
    }

    /// The id and topic the record will have when `author` signs it (the id does not
    /// depend on the signature). Topic `meta` if the topic is missing.
    pub fn preview(&self, author: AuthorKey) -> (RecordId, Topic) {
        match self.clone().build(author) {
            Ok(r) => (RecordId::of(&cbor::encode_record(&r)), r.topic),
            Err(_) => (RecordId([0; 32]), Topic::Meta),
        }
    }

    /// Encodes, validates (context-free rules) and signs.
    pub fn sign(self, key: &SigningKey) -> Result<SignedRecord, Error> {
        let author = AuthorKey(key.verifying_key().to_bytes());
        let record = self.build(author)?;
        sign::sign_record(&record, key)
    }
}

pub use ed25519_dalek::SigningKey;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_and_print() {
        let a: Amount = "3000EUR".parse().unwrap();
        assert_eq!(
            a,
            Amount {
                value: 300_000,
                currency: "EUR".into()
            }
        );
        assert_eq!(a.to_string(), "3000EUR");
        let b: Amount = "12.5 usd".parse().unwrap();
        assert_eq!(b.value, 1250);
        assert_eq!(b.to_string(), "12.50USD");
        // A decimal comma, and a space before the currency (issue 20).
        for (text, value) in [("5,00EUR", 500), ("5.00 EUR", 500), ("7,5 eur", 750)] {
            let a: Amount = text.parse().unwrap();
            assert_eq!((a.value, a.currency.as_str()), (value, "EUR"), "{text}");
        }
        for bad in [
            "",
            "EUR",
            "0EUR",
            "12.345EUR",
            "-3EUR",
            "3E",
            "3EURO",
            "1.EUR1",
            "1,000EUR",
            "1,000.50EUR",
            "1,2,3EUR",
        ] {
            assert!(bad.parse::<Amount>().is_err(), "{bad}");
        }
    }

    #[test]
    fn topics_round_trip_and_reject_junk() {
        let k = AuthorKey([0xab; 32]);
        for t in [
            Topic::Meta,
            Topic::Producer(k),
            Topic::Group(RecordId([1; 32])),
        ] {
            assert_eq!(t.to_string().parse::<Topic>().unwrap(), t);
        }
        let upper = format!("producer/{}", "AB".repeat(32));
        for bad in [
            "",
            "Meta",
            "producer/",
            "producer/zz",
            upper.as_str(),
            "group/12",
        ] {
            assert!(bad.parse::<Topic>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_print_as_hex_and_parse_back() {
        let id = RecordId::of(b"abc");
        let s = id.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<RecordId>().unwrap(), id);
        assert!("xyz".parse::<RecordId>().is_err());
    }

    #[test]
    fn products_print_as_key_slash_code_and_parse_back() {
        let p = ProductRef {
            producer: AuthorKey([0xab; 32]),
            code: "gtin-4006381333931".into(),
        };
        let s = p.to_string();
        assert_eq!(s, format!("{}/gtin-4006381333931", "ab".repeat(32)));
        assert_eq!(s.parse::<ProductRef>().unwrap(), p);
        let key = "ab".repeat(32);
        for bad in [
            String::new(),
            key.clone(),
            format!("{key}/"),
            format!("{key}/no spaces"),
            "xyz/code".to_string(),
        ] {
            assert!(bad.parse::<ProductRef>().is_err(), "{bad}");
        }
    }
}
