//! The sync protocol's messages on the wire (CBOR, specified in `docs/PROTOCOL.md` §13).
//!
//! ```text
//! request  = [0, [part...]]            reconcile
//!          / [1, [bstr(32)...]]        fetch these records
//!          / [2, query: text, kinds: uint, limit: uint]   search (protocol 1.2)
//! response = [0, [part...]]            reconcile answer
//!          / [1, [bstr...]]            records (verbatim wire bytes)
//!          / [2, code: text, message: text]
//!          / [3, scope: uint, [hit...]]                   found
//! hit      = [kind: uint, wire: bstr, count: uint]
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
//!
//! Messages come from peers, so decoding reads them as a stream of CBOR heads
//! (`ciborium_ll`) straight into the typed messages, with no generic value tree in between:
//! every count and length is checked against the input left and the message's limits
//! ([`MAX_PARTS`], [`MAX_IDS`], [`MAX_FETCH`], 73-byte bounds) before anything is allocated
//! for it, and the grammar above has a fixed depth, so nesting costs nothing. A decoded
//! request holds at most about 4 MB whatever its bytes say. Encoding writes the same bytes
//! the grammar implies (shortest heads, definite lengths), sized exactly beforehand.

use ciborium_ll::{simple, Decoder, Header};

use super::reconcile::{Bound, Id, Mode, Part, FP_LEN, KEY_LEN, PREFIX_LEN};

/// Largest request, in bytes.
pub const MAX_REQUEST: usize = 1024 * 1024;
/// Largest response, in bytes: a full fetch (1,024 records of at most 4 KiB) and framing.
pub const MAX_RESPONSE: usize = 5 * 1024 * 1024;
/// Most ids in one fetch request, and most records in one answer to it.
pub const MAX_FETCH: usize = 1024;
/// Most parts in one reconciliation message.
pub const MAX_PARTS: usize = 20_000;
/// Most ids and id prefixes in one reconciliation message, all parts together.
pub const MAX_IDS: usize = 32_768;
/// Longest search query, in bytes.
pub const MAX_QUERY: usize = 256;
/// Most hits in one search answer.
pub const MAX_HITS: usize = 100;

/// What a search looks for (a bit set in [`Request::Search`]): the kinds of [`Hit`].
pub mod kinds {
    /// Profiles, by their name.
    pub const PROFILE: u8 = 1;
    /// Groups, by their name.
    pub const GROUP: u8 = 2;
    /// Petitions (proposals and campaigns too), by their title.
    pub const PETITION: u8 = 4;
    /// Products, by their code.
    pub const PRODUCT: u8 = 8;
    /// Everything.
    pub const ALL: u8 = PROFILE | GROUP | PETITION | PRODUCT;
}

/// What a search hit is: one of the bits of [`kinds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HitKind {
    /// A profile: the record is the profile.
    Profile,
    /// A group: the record is the group.
    Group,
    /// A petition: the record is the petition.
    Petition,
    /// A product: the record is a review or a petition that names it.
    Product,
}

impl HitKind {
    /// Its number on the wire (the bit of [`kinds`]).
    pub fn to_u8(self) -> u8 {
        match self {
            HitKind::Profile => kinds::PROFILE,
            HitKind::Group => kinds::GROUP,
            HitKind::Petition => kinds::PETITION,
            HitKind::Product => kinds::PRODUCT,
        }
    }

    /// From its number on the wire.
    pub fn from_u8(n: u8) -> Option<Self> {
        Some(match n {
            kinds::PROFILE => HitKind::Profile,
            kinds::GROUP => HitKind::Group,
            kinds::PETITION => HitKind::Petition,
            kinds::PRODUCT => HitKind::Product,
            _ => return None,
        })
    }
}

/// One search result: a signed record, as the responder stores it, and its count there
/// (endorsers of a petition, members of a group, reviews of a product; 0 for a profile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// What was found.
    pub kind: HitKind,
    /// The record's wire form (§8), verbatim.
    pub wire: Vec<u8>,
    /// Its count on the responder.
    pub count: u64,
}

/// Whose records a search answer covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The responder keeps every topic: a hit missing from its answer is not on the network
    /// as far as it knows.
    Everything,
    /// The responder keeps only the topics it follows (and `meta`).
    Followed,
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A reconciliation message from the initiator.
    Reconcile(Vec<Part>),
    /// Send these records.
    Fetch(Vec<Id>),
    /// Find records whose words start with the query's words (PROTOCOL.md §13.5).
    Search {
        /// The words looked for (at most [`MAX_QUERY`] bytes), or an id prefix.
        query: String,
        /// A bit set of [`kinds`].
        kinds: u8,
        /// Most hits wanted (at most [`MAX_HITS`]).
        limit: u16,
    },
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
    /// The answer to a search.
    Found {
        /// What the responder keeps.
        scope: Scope,
        /// At most [`MAX_HITS`].
        hits: Vec<Hit>,
        /// The current profiles of the producers the hits concern (wire forms, at most
        /// [`MAX_HITS`]), so the asker can name them; omitted from the encoding when empty.
        profiles: Vec<Vec<u8>>,
    },
}

/// A message that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed sync message: {0}")]
pub struct DecodeError(pub &'static str);

type Result<T> = std::result::Result<T, DecodeError>;

// ---------------------------------------------------------------------------------------
// Encoding

const UINT: u8 = 0;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const NULL: u8 = 0xf6;

/// Where encoded bytes go: a buffer, or a counter that sizes the buffer first.
trait Sink {
    fn put(&mut self, b: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
}

struct Count(usize);

impl Sink for Count {
    fn put(&mut self, b: &[u8]) {
        self.0 += b.len();
    }
}

/// A head with the shortest argument (RFC 8949 §4.2.1).
fn head(s: &mut dyn Sink, major: u8, n: usize) {
    let m = major << 5;
    let n = n as u64;
    if n < 24 {
        s.put(&[m | n as u8]);
    } else if n <= 0xff {
        s.put(&[m | 24, n as u8]);
    } else if n <= 0xffff {
        s.put(&[m | 25]);
        s.put(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        s.put(&[m | 26]);
        s.put(&(n as u32).to_be_bytes());
    } else {
        s.put(&[m | 27]);
        s.put(&n.to_be_bytes());
    }
}

fn bstr(s: &mut dyn Sink, b: &[u8]) {
    head(s, BYTES, b.len());
    s.put(b);
}

/// Runs `write` once to size the message, then again into a buffer of exactly that size
/// (a 5 MiB answer costs 5 MiB, not the 8 MiB a doubling buffer would reach).
fn encoded(write: impl Fn(&mut dyn Sink)) -> Vec<u8> {
    let mut size = Count(0);
    write(&mut size);
    let mut out = Vec::with_capacity(size.0);
    write(&mut out);
    out
}

fn write_parts(s: &mut dyn Sink, parts: &[Part]) {
    head(s, ARRAY, parts.len());
    let mut prev: &[u8] = &[];
    for part in parts {
        head(s, ARRAY, if part.mode == Mode::Skip { 2 } else { 3 });
        match &part.upper {
            Bound::End => s.put(&[NULL]),
            Bound::Below(b) => {
                let shared = prev.iter().zip(b).take_while(|(x, y)| x == y).count();
                prev = b;
                head(s, ARRAY, 2);
                head(s, UINT, shared);
                bstr(s, &b[shared..]);
            }
        }
        match &part.mode {
            Mode::Skip => head(s, UINT, 0),
            Mode::Fingerprint(fp) => {
                head(s, UINT, 1);
                bstr(s, fp);
            }
            Mode::Have(h) => {
                head(s, UINT, 2);
                head(s, BYTES, h.len() * PREFIX_LEN);
                h.iter().for_each(|p| s.put(p));
            }
            Mode::Ids(ids) => {
                head(s, UINT, 3);
                head(s, BYTES, ids.len() * 32);
                ids.iter().for_each(|i| s.put(i));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Decoding

/// The items of an array being read: a definite count (already checked against the limit
/// and the input left), or an indefinite array counted as it goes.
struct Items {
    left: Option<usize>,
    seen: usize,
    max: usize,
}

/// Reads one message from a byte slice, head by head.
struct Reader<'a> {
    dec: Decoder<&'a [u8]>,
    len: usize,
}

fn cbor_error<E>(_: ciborium_ll::Error<E>) -> DecodeError {
    DecodeError("truncated or not well-formed CBOR")
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader {
            dec: Decoder::from(b),
            len: b.len(),
        }
    }

    /// Bytes of input not read yet.
    fn left(&mut self) -> usize {
        self.len.saturating_sub(self.dec.offset())
    }

    fn head(&mut self) -> Result<Header> {
        self.dec.pull().map_err(cbor_error)
    }

    fn uint(&mut self, what: &'static str) -> Result<u64> {
        match self.head()? {
            Header::Positive(n) => Ok(n),
            _ => Err(DecodeError(what)),
        }
    }

    /// The items of an array whose head was `h`: at most `max`, each taking at least
    /// `min_item` bytes of the input.
    fn items(&mut self, h: Header, max: usize, min_item: usize) -> Result<Items> {
        match h {
            Header::Array(Some(n)) => {
                if n > max {
                    return Err(DecodeError("array over its item limit"));
                }
                if n.saturating_mul(min_item) > self.left() {
                    return Err(DecodeError("array longer than the message"));
                }
                Ok(Items {
                    left: Some(n),
                    seen: 0,
                    max,
                })
            }
            Header::Array(None) => Ok(Items {
                left: None,
                seen: 0,
                max,
            }),
            _ => Err(DecodeError("expected an array")),
        }
    }

    fn array(&mut self, max: usize, min_item: usize) -> Result<Items> {
        let h = self.head()?;
        self.items(h, max, min_item)
    }

    /// Is there another item in the array?
    fn more(&mut self, items: &mut Items) -> Result<bool> {
        match items.left {
            Some(0) => Ok(false),
            Some(n) => {
                items.left = Some(n - 1);
                Ok(true)
            }
            None => match self.head()? {
                Header::Break => {
                    // Ended: asked again (an optional item looked for, then the close), it
                    // stays ended instead of reading past the break.
                    items.left = Some(0);
                    Ok(false)
                }
                h => {
                    if items.seen >= items.max {
                        return Err(DecodeError("array over its item limit"));
                    }
                    items.seen += 1;
                    // Just pulled, so the decoder's one-header buffer is empty.
                    self.dec.push(h);
                    Ok(true)
                }
            },
        }
    }

    /// The next item, which the message's shape requires.
    fn next(&mut self, items: &mut Items, what: &'static str) -> Result<()> {
        if self.more(items)? {
            Ok(())
        } else {
            Err(DecodeError(what))
        }
    }

    /// No more items.
    fn end(&mut self, items: &mut Items, what: &'static str) -> Result<()> {
        if self.more(items)? {
            Err(DecodeError(what))
        } else {
            Ok(())
        }
    }

    /// Reads a byte string of at most `max` bytes into `out`, which grows only once each
    /// (segment) length has been checked against `max` and the input left.
    fn bytes_into(&mut self, out: &mut Vec<u8>, max: usize) -> Result<()> {
        let left = self.left();
        let len = match self.head()? {
            Header::Bytes(len) => len,
            _ => return Err(DecodeError("expected a byte string")),
        };
        let start = out.len();
        let mut segments = self.dec.bytes(len);
        while let Some(mut segment) = segments.pull().map_err(cbor_error)? {
            let n = segment.left();
            let have = out.len() - start;
            if n > max.saturating_sub(have) {
                return Err(DecodeError("byte string over its limit"));
            }
            if n > left.saturating_sub(have) {
                return Err(DecodeError("byte string longer than the message"));
            }
            if n == 0 {
                continue;
            }
            out.reserve_exact(n);
            out.resize(out.len() + n, 0);
            let at = out.len() - n;
            match segment.pull(&mut out[at..]).map_err(cbor_error)? {
                Some(chunk) if chunk.len() == n => {}
                _ => return Err(DecodeError("truncated byte string")),
            }
        }
        Ok(())
    }

    /// A byte string of exactly `N` bytes, read without allocating.
    fn fixed<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let len = match self.head()? {
            Header::Bytes(len) => len,
            _ => return Err(DecodeError(what)),
        };
        if len.is_some_and(|n| n != N) {
            return Err(DecodeError(what));
        }
        let mut out = [0u8; N];
        let mut filled = 0;
        let mut segments = self.dec.bytes(len);
        while let Some(mut segment) = segments.pull().map_err(cbor_error)? {
            let n = segment.left();
            if n > N - filled {
                return Err(DecodeError(what));
            }
            if n == 0 {
                continue;
            }
            match segment
                .pull(&mut out[filled..filled + n])
                .map_err(cbor_error)?
            {
                Some(chunk) if chunk.len() == n => filled += n,
                _ => return Err(DecodeError("truncated byte string")),
            }
        }
        if filled != N {
            return Err(DecodeError(what));
        }
        Ok(out)
    }

    /// A byte string holding whole `N`-byte items, at most `room` of them, read straight
    /// into the list.
    fn list<const N: usize>(&mut self, room: usize) -> Result<Vec<[u8; N]>> {
        let left = self.left();
        let len = match self.head()? {
            Header::Bytes(len) => len,
            _ => return Err(DecodeError("expected a byte string")),
        };
        let max = room.saturating_mul(N);
        let mut out: Vec<[u8; N]> = Vec::new();
        let mut have = 0usize;
        let mut segments = self.dec.bytes(len);
        while let Some(mut segment) = segments.pull().map_err(cbor_error)? {
            let n = segment.left();
            if n > max.saturating_sub(have) {
                return Err(DecodeError("too many ids in the message"));
            }
            if n > left.saturating_sub(have) {
                return Err(DecodeError("byte string longer than the message"));
            }
            if n == 0 {
                continue;
            }
            let total = have + n;
            let items = total.div_ceil(N);
            out.reserve_exact(items - out.len());
            out.resize(items, [0; N]);
            match segment
                .pull(&mut out.as_flattened_mut()[have..total])
                .map_err(cbor_error)?
            {
                Some(chunk) if chunk.len() == n => have = total,
                _ => return Err(DecodeError("truncated byte string")),
            }
        }
        if !have.is_multiple_of(N) {
            return Err(DecodeError(
                "list length is not a multiple of the item size",
            ));
        }
        Ok(out)
    }

    fn text(&mut self) -> Result<String> {
        let left = self.left();
        let len = match self.head()? {
            Header::Text(len) => len,
            _ => return Err(DecodeError("expected a text string")),
        };
        let mut out = String::new();
        let mut buf = Vec::new();
        let mut segments = self.dec.text(len);
        while let Some(mut segment) = segments.pull().map_err(cbor_error)? {
            let n = segment.left();
            if n > left.saturating_sub(out.len()) {
                return Err(DecodeError("text longer than the message"));
            }
            if n == 0 {
                continue;
            }
            buf.clear();
            buf.resize(n, 0);
            match segment.pull(&mut buf).map_err(cbor_error)? {
                Some(chunk) if chunk.len() == n => {
                    out.reserve_exact(n);
                    out.push_str(chunk);
                }
                _ => return Err(DecodeError("text is not valid UTF-8")),
            }
        }
        Ok(out)
    }

    /// A bound: `null` (end) or `[shared, suffix]` after `prev`, which becomes it.
    fn bound(&mut self, prev: &mut Vec<u8>) -> Result<Bound> {
        match self.head()? {
            Header::Simple(simple::NULL) => Ok(Bound::End),
            h @ Header::Array(_) => {
                let mut items = self.items(h, 2, 1)?;
                self.next(&mut items, "bound is not [shared, suffix]")?;
                let shared = self.uint("bound is not [shared, suffix]")?;
                let shared = usize::try_from(shared)
                    .ok()
                    .filter(|s| *s <= prev.len())
                    .ok_or(DecodeError("bound out of range"))?;
                self.next(&mut items, "bound is not [shared, suffix]")?;
                prev.truncate(shared);
                self.bytes_into(prev, KEY_LEN - shared)
                    .map_err(|_| DecodeError("bound out of range"))?;
                self.end(&mut items, "bound is not [shared, suffix]")?;
                Ok(Bound::Below(prev.clone()))
            }
            _ => Err(DecodeError("bound is neither null nor [shared, suffix]")),
        }
    }

    /// One part; `ids` counts the ids and prefixes of the message so far.
    fn part(&mut self, prev: &mut Vec<u8>, ids: &mut usize) -> Result<Part> {
        let mut items = self.array(3, 1)?;
        self.next(&mut items, "short part")?;
        let upper = self.bound(prev)?;
        self.next(&mut items, "short part")?;
        let room = MAX_IDS - *ids;
        let mode = match self.uint("expected a part mode")? {
            0 => Mode::Skip,
            1 => {
                self.next(&mut items, "part without its payload")?;
                Mode::Fingerprint(self.fixed::<FP_LEN>("fingerprint is not 16 bytes")?)
            }
            2 => {
                self.next(&mut items, "part without its payload")?;
                let h = self.list::<PREFIX_LEN>(room)?;
                *ids += h.len();
                Mode::Have(h)
            }
            3 => {
                self.next(&mut items, "part without its payload")?;
                let i = self.list::<32>(room)?;
                *ids += i.len();
                Mode::Ids(i)
            }
            _ => return Err(DecodeError("unknown part mode")),
        };
        self.end(&mut items, "part has too many items")?;
        Ok(Part { upper, mode })
    }

    fn parts(&mut self) -> Result<Vec<Part>> {
        // `[null, 0]`, three bytes, is the smallest part.
        let mut items = self.array(MAX_PARTS, 3)?;
        let mut out = Vec::with_capacity(items.left.unwrap_or(0));
        // A bound has at most 73 bytes, so this buffer never grows.
        let mut prev = Vec::with_capacity(KEY_LEN);
        let mut ids = 0;
        while self.more(&mut items)? {
            out.push(self.part(&mut prev, &mut ids)?);
        }
        Ok(out)
    }

    fn ids(&mut self) -> Result<Vec<Id>> {
        // An id takes at least 34 bytes (`58 20` and 32).
        let mut items = self.array(MAX_FETCH, 34)?;
        let mut out = Vec::with_capacity(items.left.unwrap_or(0));
        while self.more(&mut items)? {
            out.push(self.fixed::<32>("id is not 32 bytes")?);
        }
        Ok(out)
    }

    fn records(&mut self) -> Result<Vec<Vec<u8>>> {
        let mut items = self.array(MAX_FETCH, 1)?;
        let mut out = Vec::with_capacity(items.left.unwrap_or(0));
        while self.more(&mut items)? {
            let mut w = Vec::new();
            self.bytes_into(&mut w, MAX_RESPONSE)?;
            out.push(w);
        }
        Ok(out)
    }

    fn search(&mut self, items: &mut Items, what: &'static str) -> Result<Request> {
        let query = self.text()?;
        if query.len() > MAX_QUERY {
            return Err(DecodeError("search query too long"));
        }
        self.next(items, what)?;
        let kinds = u8::try_from(self.uint("search kinds is not a small uint")?)
            .ok()
            .filter(|k| *k & !kinds::ALL == 0)
            .ok_or(DecodeError("unknown search kinds"))?;
        self.next(items, what)?;
        let limit = u16::try_from(self.uint("search limit is not a uint")?)
            .ok()
            .filter(|l| usize::from(*l) <= MAX_HITS)
            .ok_or(DecodeError("search limit over its maximum"))?;
        Ok(Request::Search {
            query,
            kinds,
            limit,
        })
    }

    fn found(&mut self, items: &mut Items, what: &'static str) -> Result<Response> {
        let scope = match self.uint("scope is not a uint")? {
            0 => Scope::Everything,
            1 => Scope::Followed,
            _ => return Err(DecodeError("unknown scope")),
        };
        self.next(items, what)?;
        // `[k, h'', 0]`, four bytes, is the smallest hit.
        let mut list = self.array(MAX_HITS, 4)?;
        let mut hits = Vec::with_capacity(list.left.unwrap_or(0));
        while self.more(&mut list)? {
            let mut hit = self.array(3, 1)?;
            self.next(&mut hit, "hit is not [kind, wire, count]")?;
            let kind = u8::try_from(self.uint("hit kind is not a uint")?)
                .ok()
                .and_then(HitKind::from_u8)
                .ok_or(DecodeError("unknown hit kind"))?;
            self.next(&mut hit, "hit is not [kind, wire, count]")?;
            let mut wire = Vec::new();
            self.bytes_into(&mut wire, MAX_RESPONSE)?;
            self.next(&mut hit, "hit is not [kind, wire, count]")?;
            let count = self.uint("hit count is not a uint")?;
            self.end(&mut hit, "hit is not [kind, wire, count]")?;
            hits.push(Hit { kind, wire, count });
        }
        let mut profiles = Vec::new();
        if self.more(items)? {
            let mut list = self.array(MAX_HITS, 1)?;
            while self.more(&mut list)? {
                let mut wire = Vec::new();
                self.bytes_into(&mut wire, MAX_RESPONSE)?;
                profiles.push(wire);
            }
        }
        Ok(Response::Found {
            scope,
            hits,
            profiles,
        })
    }

    /// Opens the message array and reads its tag.
    fn open(&mut self, max: usize, what: &'static str) -> Result<(Items, u64)> {
        if self.len > max {
            return Err(DecodeError("message too large"));
        }
        let mut items = self.array(4, 1).map_err(|_| DecodeError(what))?;
        self.next(&mut items, what)?;
        let tag = self.uint(what)?;
        Ok((items, tag))
    }

    /// Closes the message array: nothing may follow it.
    fn close(&mut self, items: &mut Items, what: &'static str) -> Result<()> {
        self.end(items, what)?;
        if self.left() != 0 {
            return Err(DecodeError("bytes after the message"));
        }
        Ok(())
    }
}

impl Request {
    /// Encodes the request.
    pub fn encode(&self) -> Vec<u8> {
        encoded(|s| match self {
            Request::Reconcile(parts) => {
                head(s, ARRAY, 2);
                head(s, UINT, 0);
                write_parts(s, parts);
            }
            Request::Fetch(ids) => {
                head(s, ARRAY, 2);
                head(s, UINT, 1);
                head(s, ARRAY, ids.len());
                ids.iter().for_each(|i| bstr(s, i));
            }
            Request::Search {
                query,
                kinds,
                limit,
            } => {
                head(s, ARRAY, 4);
                head(s, UINT, 2);
                head(s, TEXT, query.len());
                s.put(query.as_bytes());
                head(s, UINT, usize::from(*kinds));
                head(s, UINT, usize::from(*limit));
            }
        })
    }

    /// Decodes a request, refusing one over [`MAX_REQUEST`] bytes or over the limits of its
    /// kind before allocating anything for it.
    pub fn decode(b: &[u8]) -> std::result::Result<Self, DecodeError> {
        const SHAPE: &str = "request is not [tag, body]";
        let mut r = Reader::new(b);
        let (mut items, tag) = r.open(MAX_REQUEST, SHAPE)?;
        r.next(&mut items, SHAPE)?;
        let request = match tag {
            0 => Request::Reconcile(r.parts()?),
            1 => Request::Fetch(r.ids()?),
            2 => r.search(&mut items, SHAPE)?,
            _ => return Err(DecodeError("unknown request")),
        };
        r.close(&mut items, SHAPE)?;
        Ok(request)
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
        encoded(|s| match self {
            Response::Reconcile(parts) => {
                head(s, ARRAY, 2);
                head(s, UINT, 0);
                write_parts(s, parts);
            }
            Response::Records(wires) => {
                head(s, ARRAY, 2);
                head(s, UINT, 1);
                head(s, ARRAY, wires.len());
                wires.iter().for_each(|w| bstr(s, w));
            }
            Response::Error { code, message } => {
                head(s, ARRAY, 3);
                head(s, UINT, 2);
                head(s, TEXT, code.len());
                s.put(code.as_bytes());
                head(s, TEXT, message.len());
                s.put(message.as_bytes());
            }
            Response::Found {
                scope,
                hits,
                profiles,
            } => {
                head(s, ARRAY, if profiles.is_empty() { 3 } else { 4 });
                head(s, UINT, 3);
                head(s, UINT, usize::from(*scope == Scope::Followed));
                head(s, ARRAY, hits.len());
                for h in hits {
                    head(s, ARRAY, 3);
                    head(s, UINT, usize::from(h.kind.to_u8()));
                    bstr(s, &h.wire);
                    head(s, UINT, h.count as usize);
                }
                if !profiles.is_empty() {
                    head(s, ARRAY, profiles.len());
                    for p in profiles {
                        bstr(s, p);
                    }
                }
            }
        })
    }

    /// Decodes a response, refusing one over [`MAX_RESPONSE`] bytes or over the limits of
    /// its kind before allocating anything for it.
    pub fn decode(b: &[u8]) -> std::result::Result<Self, DecodeError> {
        const SHAPE: &str = "response is not [tag, body]";
        let mut r = Reader::new(b);
        let (mut items, tag) = r.open(MAX_RESPONSE, SHAPE)?;
        r.next(&mut items, SHAPE)?;
        let response = match tag {
            0 => Response::Reconcile(r.parts()?),
            1 => Response::Records(r.records()?),
            2 => {
                let code = r.text()?;
                r.next(&mut items, SHAPE)?;
                let message = r.text()?;
                Response::Error { code, message }
            }
            3 => r.found(&mut items, SHAPE)?,
            _ => return Err(DecodeError("unknown response")),
        };
        r.close(&mut items, SHAPE)?;
        Ok(response)
    }
}

/// Keeps the fixed sizes in one place for the spec.
const _: () = assert!(FP_LEN == 16 && PREFIX_LEN == 8 && KEY_LEN == 73);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    #[test]
    fn searches_beyond_their_limits_are_refused() {
        let search = |query: &str, kinds: u8, limit: u16| {
            Request::decode(
                &Request::Search {
                    query: query.into(),
                    kinds,
                    limit,
                }
                .encode(),
            )
        };
        assert!(search("café", kinds::ALL, 20).is_ok());
        assert!(search(&"a".repeat(MAX_QUERY), kinds::PROFILE, MAX_HITS as u16).is_ok());
        assert!(search(&"a".repeat(MAX_QUERY + 1), kinds::PROFILE, 1).is_err());
        assert!(search("x", 16, 1).is_err());
        assert!(search("x", kinds::ALL, MAX_HITS as u16 + 1).is_err());
        let hit = Hit {
            kind: HitKind::Group,
            wire: vec![1],
            count: 3,
        };
        let too_many = Response::Found {
            scope: Scope::Everything,
            hits: vec![hit; MAX_HITS + 1],
            profiles: Vec::new(),
        };
        assert!(Response::decode(&too_many.encode()).is_err());
        let too_many_profiles = Response::Found {
            scope: Scope::Everything,
            hits: Vec::new(),
            profiles: vec![vec![1]; MAX_HITS + 1],
        };
        assert!(Response::decode(&too_many_profiles.encode()).is_err());
        // Indefinite-length arrays, with and without the optional fourth item.
        assert_eq!(
            Response::decode(&[0x9f, 0x03, 0x00, 0x80, 0xff]),
            Ok(Response::Found {
                scope: Scope::Everything,
                hits: Vec::new(),
                profiles: Vec::new()
            })
        );
        assert_eq!(
            Response::decode(&[0x9f, 0x03, 0x00, 0x80, 0x9f, 0x41, 0x07, 0xff, 0xff]),
            Ok(Response::Found {
                scope: Scope::Everything,
                hits: Vec::new(),
                profiles: vec![vec![7]]
            })
        );
        // Profiles are an optional fourth item; a fifth is malformed.
        assert!(Response::decode(&[0x84, 0x03, 0x00, 0x80, 0x81, 0x41, 0x07]).is_ok());
        assert!(Response::decode(&[0x85, 0x03, 0x00, 0x80, 0x80, 0x80]).is_err());
        // A hit of an unknown kind (5 is two bits).
        assert!(Response::decode(&[0x83, 0x03, 0x00, 0x81, 0x83, 0x05, 0x40, 0x00]).is_err());
        assert!(Response::decode(&[0x83, 0x03, 0x00, 0x81, 0x83, 0x04, 0x40, 0x00]).is_ok());
    }

    /// The bytes of the sample messages, as the encoder that went through `ciborium::Value`
    /// wrote them: the wire must not change.
    #[test]
    fn encodings_are_pinned() {
        let reconcile = concat!(
            "8200",                             // [0,
            "84",                               //  4 parts:
            "828200440102030400",               //  [[0, h'01020304'], 0]
            "83820241090150",                   //  [[2, h'09'], 1, h'07' x 16
            "07070707070707070707070707070707", //
            "83820141030250",                   //  [[1, h'03'], 2, 16 bytes of prefixes]
            "01010101010101010202020202020202", //
            "83f6035820",                       //  [null, 3, 32 bytes of ids]
            "0303030303030303030303030303030303030303030303030303030303030303",
        );
        assert_eq!(
            hex::encode(Request::Reconcile(sample()).encode()),
            reconcile
        );
        assert_eq!(
            hex::encode(Response::error("busy", "try later").encode()),
            "8302646275737969747279206c61746572"
        );
        assert_eq!(
            hex::encode(Response::Records(vec![vec![1, 2, 3], vec![]]).encode()),
            "8201824301020340"
        );
        let fetch = Request::Fetch(vec![[5; 32]; 24]).encode();
        assert_eq!(&fetch[..5], &[0x82, 0x01, 0x98, 24, 0x58]);
    }

    /// The encoder these messages used before (through `ciborium::Value`), kept to show the
    /// direct one writes the same bytes for any message.
    mod legacy {
        use super::super::*;
        use ciborium::Value;

        fn encode(v: &Value) -> Vec<u8> {
            let mut out = Vec::new();
            ciborium::ser::into_writer(v, &mut out).unwrap();
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

        pub(super) fn request(r: &Request) -> Vec<u8> {
            encode(&match r {
                Request::Reconcile(parts) => Value::Array(vec![0.into(), parts_value(parts)]),
                Request::Fetch(ids) => Value::Array(vec![
                    1.into(),
                    Value::Array(ids.iter().map(|i| Value::Bytes(i.to_vec())).collect()),
                ]),
                Request::Search {
                    query,
                    kinds,
                    limit,
                } => Value::Array(vec![
                    2.into(),
                    Value::Text(query.clone()),
                    (*kinds).into(),
                    (*limit).into(),
                ]),
            })
        }

        pub(super) fn response(r: &Response) -> Vec<u8> {
            encode(&match r {
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
                Response::Found {
                    scope,
                    hits,
                    profiles,
                } => {
                    let mut v = vec![
                        3.into(),
                        u8::from(*scope == Scope::Followed).into(),
                        Value::Array(
                            hits.iter()
                                .map(|h| {
                                    Value::Array(vec![
                                        h.kind.to_u8().into(),
                                        Value::Bytes(h.wire.clone()),
                                        h.count.into(),
                                    ])
                                })
                                .collect(),
                        ),
                    ];
                    if !profiles.is_empty() {
                        v.push(Value::Array(
                            profiles.iter().map(|p| Value::Bytes(p.clone())).collect(),
                        ));
                    }
                    Value::Array(v)
                }
            })
        }
    }

    fn arb_mode() -> impl Strategy<Value = Mode> {
        prop_oneof![
            Just(Mode::Skip),
            any::<[u8; 16]>().prop_map(Mode::Fingerprint),
            proptest::collection::vec(any::<[u8; 8]>(), 0..40).prop_map(Mode::Have),
            proptest::collection::vec(any::<[u8; 32]>(), 0..12).prop_map(Mode::Ids),
        ]
    }

    /// Bounds drawn from a small alphabet, so that neighbours share prefixes.
    fn arb_bound() -> impl Strategy<Value = Bound> {
        prop_oneof![
            1 => Just(Bound::End),
            6 => proptest::collection::vec(0u8..3, 0..=KEY_LEN).prop_map(Bound::Below),
            2 => proptest::collection::vec(any::<u8>(), 0..=KEY_LEN).prop_map(Bound::Below),
        ]
    }

    fn arb_parts() -> impl Strategy<Value = Vec<Part>> {
        proptest::collection::vec(
            (arb_bound(), arb_mode()).prop_map(|(upper, mode)| Part { upper, mode }),
            0..30,
        )
    }

    fn arb_request() -> impl Strategy<Value = Request> {
        prop_oneof![
            arb_parts().prop_map(Request::Reconcile),
            proptest::collection::vec(any::<[u8; 32]>(), 0..40).prop_map(Request::Fetch),
            (".{0,40}", 0..=kinds::ALL, 0..=MAX_HITS as u16).prop_map(|(query, kinds, limit)| {
                Request::Search {
                    query,
                    kinds,
                    limit,
                }
            }),
        ]
    }

    fn arb_hit() -> impl Strategy<Value = Hit> {
        (
            prop::sample::select(vec![
                HitKind::Profile,
                HitKind::Group,
                HitKind::Petition,
                HitKind::Product,
            ]),
            proptest::collection::vec(any::<u8>(), 0..200),
            any::<u64>(),
        )
            .prop_map(|(kind, wire, count)| Hit { kind, wire, count })
    }

    fn arb_response() -> impl Strategy<Value = Response> {
        prop_oneof![
            arb_parts().prop_map(Response::Reconcile),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)
                .prop_map(Response::Records),
            (".{0,20}", ".{0,300}").prop_map(|(code, message)| Response::Error { code, message }),
            (
                any::<bool>(),
                proptest::collection::vec(arb_hit(), 0..6),
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..3)
            )
                .prop_map(|(all, hits, profiles)| {
                    Response::Found {
                        scope: if all {
                            Scope::Everything
                        } else {
                            Scope::Followed
                        },
                        hits,
                        profiles,
                    }
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// decode(encode(m)) == m, and the bytes are those the `ciborium::Value` encoder wrote.
        #[test]
        fn requests_round_trip_byte_for_byte(r in arb_request()) {
            let enc = r.encode();
            prop_assert_eq!(&enc, &legacy::request(&r));
            prop_assert_eq!(Request::decode(&enc).unwrap(), r);
        }

        #[test]
        fn responses_round_trip_byte_for_byte(r in arb_response()) {
            let enc = r.encode();
            prop_assert_eq!(&enc, &legacy::response(&r));
            prop_assert_eq!(Response::decode(&enc).unwrap(), r);
        }

        /// Every proper prefix of a message is an error, never a shorter message.
        #[test]
        fn every_truncation_is_an_error(r in arb_request(), s in arb_response()) {
            let enc = r.encode();
            for n in 0..enc.len() {
                prop_assert!(Request::decode(&enc[..n]).is_err(), "request cut at {}", n);
            }
            let enc = s.encode();
            for n in 0..enc.len() {
                prop_assert!(Response::decode(&enc[..n]).is_err(), "response cut at {}", n);
            }
        }

        /// Arbitrary bytes never panic either decoder.
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Request::decode(&b);
            let _ = Response::decode(&b);
        }

        /// Nor do valid messages with bytes changed, dropped or added.
        #[test]
        fn mutated_messages_never_panic(
            r in arb_request(),
            s in arb_response(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
        ) {
            for mut enc in [r.encode(), s.encode()] {
                for (at, byte, how) in &edits {
                    if enc.is_empty() {
                        break;
                    }
                    let i = at.index(enc.len());
                    match how {
                        0 => enc[i] = *byte,
                        1 => { enc.remove(i); }
                        _ => enc.insert(i, *byte),
                    }
                }
                let _ = Request::decode(&enc);
                let _ = Response::decode(&enc);
            }
        }
    }

    /// Indefinite lengths and longer-than-needed heads are well-formed CBOR of the right
    /// shape, which the old decoder took: so does this one.
    #[test]
    fn other_well_formed_encodings_are_accepted() {
        // [0, [_ [[0, (_ h'01', h'02')], 1, (_ h'07' x 16)]], [null, 0]]] with a 2-byte tag head.
        let mut b = vec![0x82, 0x18, 0x00, 0x9f];
        b.extend_from_slice(&[0x83, 0x82, 0x00, 0x5f, 0x41, 0x01, 0x41, 0x02, 0xff, 0x01]);
        b.extend_from_slice(&[0x5f, 0x48]);
        b.extend_from_slice(&[7; 8]);
        b.extend_from_slice(&[0x48]);
        b.extend_from_slice(&[7; 8]);
        b.extend_from_slice(&[0xff, 0x82, 0xf6, 0x00, 0xff]);
        assert_eq!(
            Request::decode(&b).unwrap(),
            Request::Reconcile(vec![
                Part {
                    upper: Bound::Below(vec![1, 2]),
                    mode: Mode::Fingerprint([7; 16]),
                },
                Part {
                    upper: Bound::End,
                    mode: Mode::Skip,
                },
            ])
        );
        // An error response with segmented text.
        let b = [
            0x83, 0x02, 0x7f, 0x62, b'b', b'u', 0x62, b's', b'y', 0xff, 0x60,
        ];
        assert_eq!(Response::decode(&b).unwrap(), Response::error("busy", ""));
    }

    /// What a hostile peer can say in a few bytes is refused before it costs anything.
    #[test]
    fn hostile_heads_are_refused_at_once() {
        let huge = [0xff; 8];
        let cases: Vec<(&str, Vec<u8>)> = vec![
            // [0, array of 2^64-1 parts]
            ("parts", [&[0x82, 0x00, 0x9b][..], &huge].concat()),
            // [1, array of 2^64-1 ids]
            ("ids", [&[0x82, 0x01, 0x9b][..], &huge].concat()),
            // [1, [byte string of 2^64-1 bytes]] as a response
            ("record", [&[0x82, 0x01, 0x81, 0x5b][..], &huge].concat()),
            // a part whose have-list claims 2^32 bytes
            (
                "have",
                vec![
                    0x82, 0x00, 0x81, 0x83, 0xf6, 0x02, 0x5a, 0xff, 0xff, 0xff, 0xff,
                ],
            ),
            // a bound suffix past 73 bytes
            (
                "bound",
                [
                    &[0x82, 0x00, 0x81, 0x82, 0x82, 0x00, 0x58, 74][..],
                    &[0; 74],
                    &[0x00],
                ]
                .concat(),
            ),
            // 1,025 ids announced in 1,025 bytes
            (
                "fetch",
                [&[0x82, 0x01, 0x99, 0x04, 0x01][..], &[0x40; 1020]].concat(),
            ),
        ];
        for (what, b) in cases {
            assert!(Request::decode(&b).is_err(), "{what}");
            assert!(Response::decode(&b).is_err(), "{what}");
        }
        // Nesting: the grammar has a fixed depth, so the first array too many is refused.
        let mut deep = vec![0x82, 0x00];
        deep.extend(std::iter::repeat_n(0x81, 100_000));
        assert_eq!(
            Request::decode(&deep),
            Err(DecodeError("bound is not [shared, suffix]"))
        );
        // Indefinite arrays are counted as they go.
        let mut many = vec![0x82, 0x01, 0x9f];
        for _ in 0..=MAX_FETCH {
            many.extend_from_slice(&[0x58, 0x20]);
            many.extend_from_slice(&[0; 32]);
        }
        many.push(0xff);
        assert_eq!(
            Request::decode(&many),
            Err(DecodeError("array over its item limit"))
        );
        // Too many ids and prefixes across the parts of one message.
        let parts: Vec<Part> = (0..3)
            .map(|i| Part {
                upper: if i == 2 {
                    Bound::End
                } else {
                    Bound::Below(vec![i])
                },
                mode: Mode::Have(vec![[0; 8]; MAX_IDS / 2]),
            })
            .collect();
        assert_eq!(
            Request::decode(&Request::Reconcile(parts).encode()),
            Err(DecodeError("too many ids in the message"))
        );
        // Nothing may follow the message, and nothing else may stand for the end bound.
        let mut trailing = Request::Fetch(vec![]).encode();
        trailing.push(0);
        assert!(Request::decode(&trailing).is_err());
        assert!(Request::decode(&[0x82, 0x00, 0x81, 0x82, 0xf7, 0x00]).is_err());
        // Tags are not part of the grammar.
        assert!(Request::decode(&[0xc2, 0x82, 0x01, 0x80]).is_err());
        assert!(Request::decode(&[0x82, 0xc2, 0x41, 0x01, 0x80]).is_err());
    }

    /// The largest messages the limits allow still decode.
    #[test]
    fn messages_at_the_limits_decode() {
        let ids = Request::Fetch(vec![[9; 32]; MAX_FETCH]);
        assert_eq!(Request::decode(&ids.encode()).unwrap(), ids);
        let parts: Vec<Part> = (0..MAX_PARTS)
            .map(|i| Part {
                upper: if i + 1 == MAX_PARTS {
                    Bound::End
                } else {
                    Bound::Below((i as u32).to_be_bytes().to_vec())
                },
                mode: if i == 0 {
                    Mode::Have(vec![[1; 8]; MAX_IDS])
                } else {
                    Mode::Skip
                },
            })
            .collect();
        let r = Request::Reconcile(parts);
        let enc = r.encode();
        assert!(enc.len() <= MAX_REQUEST, "{}", enc.len());
        assert_eq!(Request::decode(&enc).unwrap(), r);
    }
}
