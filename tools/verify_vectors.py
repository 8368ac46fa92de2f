#!/usr/bin/env python3
"""Independent verifier for the Chorus v1 test vectors.

Written from docs/PROTOCOL.md only (no reference to the Rust sources), in pure
Python 3.11 with the standard library, to show that the spec is sufficient for
a second implementation.  It contains:

  * a strict CBOR decoder for the subset of PROTOCOL.md section 2, plus the
    canonical-form check (decode, re-encode, compare bytes);
  * BLAKE3 (unkeyed, 32-byte output) from the BLAKE3 paper's compression function;
  * Ed25519 verification per section 7.3 (S < L, canonical y, RFC 8032 5.1.3
    decoding, small-order rejection, cofactored equation);
  * the record rules of sections 3-6, the wire form of section 8 and the clock
    rule of section 5.1 step 6.

Usage: python3 tools/verify_vectors.py [path/to/test-vectors.json]
"""

import hashlib
import json
import pathlib
import sys

MAX_WIRE_BYTES = 4096
DEFAULT_SKEW_MS = 600_000
SIG_PREFIX = b"chorus/v1/record"


class Invalid(Exception):
    """A record is invalid; `reason` is a section 5.4 style error name."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# --------------------------------------------------------------------------- BLAKE3

M32 = 0xFFFFFFFF
B3_IV = [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
         0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19]
B3_PERM = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8]
CHUNK_START, CHUNK_END, PARENT, ROOT = 1, 2, 4, 8
CHUNK_LEN, BLOCK_LEN = 1024, 64


def _g(s, a, b, c, d, mx, my):
    s[a] = (s[a] + s[b] + mx) & M32
    x = s[d] ^ s[a]; s[d] = ((x >> 16) | (x << 16)) & M32
    s[c] = (s[c] + s[d]) & M32
    x = s[b] ^ s[c]; s[b] = ((x >> 12) | (x << 20)) & M32
    s[a] = (s[a] + s[b] + my) & M32
    x = s[d] ^ s[a]; s[d] = ((x >> 8) | (x << 24)) & M32
    s[c] = (s[c] + s[d]) & M32
    x = s[b] ^ s[c]; s[b] = ((x >> 7) | (x << 25)) & M32


def b3_compress(cv, block, counter, block_len, flags):
    """The BLAKE3 compression function; returns all 16 output words."""
    m = [int.from_bytes(block[4 * i:4 * i + 4], "little") for i in range(16)]
    s = list(cv) + B3_IV[:4] + [counter & M32, (counter >> 32) & M32, block_len, flags]
    for r in range(7):
        _g(s, 0, 4, 8, 12, m[0], m[1]); _g(s, 1, 5, 9, 13, m[2], m[3])
        _g(s, 2, 6, 10, 14, m[4], m[5]); _g(s, 3, 7, 11, 15, m[6], m[7])
        _g(s, 0, 5, 10, 15, m[8], m[9]); _g(s, 1, 6, 11, 12, m[10], m[11])
        _g(s, 2, 7, 8, 13, m[12], m[13]); _g(s, 3, 4, 9, 14, m[14], m[15])
        if r < 6:
            m = [m[i] for i in B3_PERM]
    for i in range(8):
        s[i] ^= s[i + 8]
        s[i + 8] ^= cv[i]
    return s


def _b3_chunk(chunk, index, root):
    """Chaining value of one chunk (or the root output if it is the only chunk)."""
    blocks = [chunk[i:i + BLOCK_LEN] for i in range(0, len(chunk), BLOCK_LEN)] or [b""]
    cv = B3_IV
    for n, blk in enumerate(blocks):
        flags = (CHUNK_START if n == 0 else 0) | (CHUNK_END if n == len(blocks) - 1 else 0)
        if root and n == len(blocks) - 1:
            flags |= ROOT
        cv = b3_compress(cv, blk.ljust(BLOCK_LEN, b"\0"), index, len(blk), flags)[:8]
    return cv


def _b3_tree(data, first_chunk, root):
    """CV of the subtree covering `data`; the left subtree takes the largest
    power-of-two number of chunks that leaves at least one chunk to the right."""
    n_chunks = max(1, -(-len(data) // CHUNK_LEN))
    if n_chunks == 1:
        return _b3_chunk(data, first_chunk, root)
    left = 1 << ((n_chunks - 1).bit_length() - 1)
    lcv = _b3_tree(data[:left * CHUNK_LEN], first_chunk, False)
    rcv = _b3_tree(data[left * CHUNK_LEN:], first_chunk + left, False)
    block = b"".join(w.to_bytes(4, "little") for w in lcv + rcv)
    return b3_compress(B3_IV, block, 0, BLOCK_LEN, PARENT | (ROOT if root else 0))[:8]


def blake3(data):
    return b"".join(w.to_bytes(4, "little") for w in _b3_tree(bytes(data), 0, True))


def blake3_self_test():
    known = {
        b"": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
        b"abc": "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
    }
    for msg, want in known.items():
        got = blake3(msg).hex()
        if got != want:
            raise SystemExit(f"BLAKE3 self-test failed for {msg!r}: {got}")


# --------------------------------------------------------------------------- Ed25519

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, -1, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENTITY = (0, 1, 1, 0)  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z


def pt_add(p1, p2):
    """Complete twisted Edwards addition (RFC 8032 5.1.4); also used for doubling."""
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * 2 * D * t2 % P
    d = z1 * 2 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def pt_neg(p1):
    x, y, z, t = p1
    return (-x % P, y, z, -t % P)


def pt_mul(k, p1):
    q = IDENTITY
    while k:
        if k & 1:
            q = pt_add(q, p1)
        p1 = pt_add(p1, p1)
        k >>= 1
    return q


def pt_is_identity(p1):
    x, y, z, _ = p1
    return x % P == 0 and (y - z) % P == 0


def y_is_canonical(enc):
    """Section 7.3 byte test: non-canonical iff y (sign bit cleared) is in [p, 2^255-1]."""
    return not ((enc[31] & 0x7F) == 0x7F and all(b == 0xFF for b in enc[1:31]) and enc[0] >= 0xED)


def pt_decode(enc):
    """RFC 8032 5.1.3 point decoding; returns None if there is no such point."""
    if len(enc) != 32:
        return None
    n = int.from_bytes(enc, "little")
    y, sign = n & ((1 << 255) - 1), n >> 255
    if y >= P:
        return None
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if v * x * x % P == u:
        pass
    elif v * x * x % P == (-u) % P:
        x = x * SQRT_M1 % P
    else:
        return None
    if x == 0 and sign == 1:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


B_POINT = pt_decode(bytes.fromhex("58" + "66" * 31))


def check_point(enc, what, reasons):
    """Section 7.3 check 2 for A (author) or R; returns the decoded point."""
    if not y_is_canonical(enc):
        raise Invalid(reasons[0], f"{what}: y >= p")
    pt = pt_decode(enc)
    if pt is None:
        raise Invalid(reasons[1], f"{what}: not on the curve")
    if pt_is_identity(pt_mul(8, pt)):
        raise Invalid(reasons[2], f"{what}: small order")
    return pt


def ed25519_verify(a_bytes, sig, msg):
    """Section 7.3: raises Invalid unless sig is valid by a_bytes on msg."""
    if len(sig) != 64:
        raise Invalid("Malformed", "signature is not 64 bytes")
    r_bytes, s_bytes = sig[:32], sig[32:]
    s = int.from_bytes(s_bytes, "little")
    if s >= L:
        raise Invalid("NonCanonicalSignature", "S >= L")
    a = check_point(a_bytes, "author", ("NonCanonicalKey", "NonCanonicalKey", "SmallOrderKey"))
    r = check_point(r_bytes, "R", ("InvalidSignatureR",) * 3)
    k = int.from_bytes(hashlib.sha512(r_bytes + a_bytes + msg).digest(), "little") % L
    diff = pt_add(pt_mul(s, B_POINT), pt_neg(pt_add(r, pt_mul(k, a))))
    if not pt_is_identity(pt_mul(8, diff)):
        raise Invalid("InvalidSignature", "[8]([S]B - R - [k]A) != identity")


# --------------------------------------------------------------------------- CBOR

def _head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | ai]) + n.to_bytes(size, "big")
    raise ValueError("integer too large")


def cbor_encode(v):
    """Canonical encoder for the data model: int, bytes, str, list, dict(str -> ...)."""
    if isinstance(v, bool):
        raise TypeError("bool is not a CBOR uint here")
    if isinstance(v, int):
        return _head(0, v)
    if isinstance(v, bytes):
        return _head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode("utf-8")
        return _head(3, len(b)) + b
    if isinstance(v, list):
        return _head(4, len(v)) + b"".join(cbor_encode(x) for x in v)
    if isinstance(v, dict):
        items = sorted((cbor_encode(k), cbor_encode(x)) for k, x in v.items())
        return _head(5, len(items)) + b"".join(k + x for k, x in items)
    raise TypeError(type(v))


class CborReader:
    """Decodes only uint, bstr, text, array and map with definite lengths (and null, where
    `nulls` allows it: in a bundle, never in a record)."""

    def __init__(self, data, nulls=False):
        self.data, self.pos, self.nulls = data, 0, nulls

    def take(self, n):
        if self.pos + n > len(self.data):
            raise Invalid("Malformed", "truncated CBOR")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def item(self, depth=0):
        if depth > 8:
            raise Invalid("Malformed", "nesting too deep")
        ib = self.take(1)[0]
        if ib == 0xF6 and self.nulls:
            return None
        major, ai = ib >> 5, ib & 0x1F
        if major not in (0, 2, 3, 4, 5):
            raise Invalid("Malformed", f"major type {major} not allowed")
        if ai < 24:
            n = ai
        elif ai <= 27:
            n = int.from_bytes(self.take(1 << (ai - 24)), "big")
        elif ai == 31 and major in (2, 3, 4, 5):
            # Well-formed CBOR, but not the one encoding (section 2 rule 2): the canonical
            # comparison of section 2 refuses it, so it is NonCanonical (section 5.4).
            raise Invalid("NonCanonical", "indefinite length")
        else:
            raise Invalid("Malformed", f"additional info {ai} is not well-formed here")
        if major == 0:
            return n
        if major == 2:
            return bytes(self.take(n))
        if major == 3:
            try:
                return bytes(self.take(n)).decode("utf-8")
            except UnicodeDecodeError:
                raise Invalid("Malformed", "text is not valid UTF-8") from None
        if major == 4:
            return [self.item(depth + 1) for _ in range(n)]
        out = {}
        for _ in range(n):
            key = self.item(depth + 1)
            if not isinstance(key, str):
                raise Invalid("Malformed", "map key is not text")
            if key in out:
                raise Invalid("UnexpectedField", f"duplicate key {key!r}")
            out[key] = self.item(depth + 1)
        return out


def cbor_decode_one(data, nulls=False):
    r = CborReader(data, nulls)
    value = r.item()
    if r.pos != len(data):
        raise Invalid("NonCanonical", "trailing bytes after the CBOR item")
    return value


# --------------------------------------------------------------------------- record rules

REQ, OPT = True, False
ROLES = {"consumer", "producer", "watchdog"}
ADMISSIONS = {"open", "approval"}
VARIANTS = {"demand", "proposal", "campaign"}
STATUSES = {"acknowledged", "in-progress", "accepted", "declined", "done"}
VERDICTS = {"valid": "record", "invalid": "record", "verified-count": "record", "one-actor": "keys"}
CODE_CHARS = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")

# Each body: key -> (type, required, argument). Types: text (arg = byte limit, §5.2 rules),
# enum (arg = allowed values), code (product code), uint (arg = (lo, hi) or None),
# bstr32, amount, product, keys. Key order here is the canonical order of section 4.
BODIES = {
    "profile": {"name": ("text", REQ, 100), "role": ("enum", REQ, ROLES),
                "about": ("text", OPT, 500)},
    "review": {"text": ("text", REQ, 2000), "title": ("text", OPT, 200),
               "rating": ("uint", REQ, None), "product": ("product", REQ, None)},
    "group": {"name": ("text", REQ, 100), "charter": ("text", OPT, 1000),
              "admission": ("enum", REQ, ADMISSIONS)},
    "join": {"group": ("bstr32", REQ, None)},
    "admit": {"group": ("bstr32", REQ, None), "member": ("bstr32", REQ, None)},
    "petition": {"goal": ("amount", OPT, None), "text": ("text", REQ, 2000),
                 "group": ("bstr32", OPT, None), "title": ("text", REQ, 200),
                 "product": ("code", OPT, None), "variant": ("enum", REQ, VARIANTS),
                 "deadline": ("uint", OPT, None), "producer": ("bstr32", REQ, None),
                 "threshold": ("uint", REQ, (1, 10**9))},
    "endorsement": {"pledge": ("amount", OPT, None), "comment": ("text", OPT, 500),
                    "petition": ("bstr32", REQ, None)},
    "retraction": {"target": ("bstr32", REQ, None)},
    "response": {"root": ("bstr32", OPT, None), "text": ("text", REQ, 2000),
                 "status": ("enum", REQ, STATUSES), "target": ("bstr32", REQ, None)},
    "attestation": {"keys": ("keys", OPT, None), "note": ("text", OPT, 500),
                    "root": ("bstr32", OPT, None), "count": ("uint", OPT, None),
                    "record": ("bstr32", OPT, None), "verdict": ("enum", REQ, set(VERDICTS))},
}
AMOUNT = {"value": ("uint", REQ, (1, 10**15)), "currency": ("currency", REQ, None)}
PRODUCT = {"code": ("code", REQ, None), "producer": ("bstr32", REQ, None)}
RECORD = {"v": "uint", "body": "map", "kind": "text", "topic": "text",
          "author": "bstr32", "created_at": "uint"}


def is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_keys(m, table, where):
    if not isinstance(m, dict):
        raise Invalid("InvalidField", f"{where} is not a map")
    for k in m:
        if k not in table:
            raise Invalid("UnexpectedField", f"{where}.{k}")
    for k, spec in table.items():
        required = spec[1] if isinstance(spec, tuple) else True
        if required and k not in m:
            raise Invalid("MissingField", f"{where}.{k}")


def check_text(s, limit, where):
    """Section 5.2 text rules."""
    if not isinstance(s, str):
        raise Invalid("InvalidField", f"{where} is not text")
    n = len(s.encode("utf-8"))
    if not 1 <= n <= limit:
        raise Invalid("InvalidText", f"{where}: {n} bytes, limit 1..{limit}")
    for ch in s:
        c = ord(ch)
        if (c < 0x20 and ch not in "\n\t") or 0x7F <= c <= 0x9F or c == 0xFEFF:
            raise Invalid("InvalidText", f"{where}: forbidden code point U+{c:04X}")


def check_code(s, where):
    if not isinstance(s, str):
        raise Invalid("InvalidField", f"{where} is not text")
    b = s.encode("utf-8")
    if not 1 <= len(b) <= 64 or not set(b) <= CODE_CHARS:
        raise Invalid("InvalidField", f"{where}: not a product code")


def check_field(v, typ, arg, where):
    if typ == "text":
        check_text(v, arg, where)
    elif typ == "enum":
        if not isinstance(v, str) or v not in arg:
            raise Invalid("InvalidField", f"{where}: {v!r} not one of {sorted(arg)}")
    elif typ == "code":
        check_code(v, where)
    elif typ == "uint":
        if not is_uint(v):
            raise Invalid("InvalidField", f"{where} is not a uint")
        if arg and not arg[0] <= v <= arg[1]:
            raise Invalid("InvalidField", f"{where}={v} outside {arg[0]}..{arg[1]}")
    elif typ == "bstr32":
        if not isinstance(v, bytes) or len(v) != 32:
            raise Invalid("InvalidField", f"{where} is not a 32-byte string")
    elif typ == "currency":
        if not isinstance(v, str) or len(v) != 3 or not all("A" <= c <= "Z" for c in v):
            raise Invalid("InvalidField", f"{where}: not 3 letters A-Z")
    elif typ in ("amount", "product"):
        table = AMOUNT if typ == "amount" else PRODUCT
        check_keys(v, table, where)
        for k, (t, _, a) in table.items():
            check_field(v[k], t, a, f"{where}.{k}")
    elif typ == "keys":
        if not isinstance(v, list) or not 1 <= len(v) <= 64:
            raise Invalid("InvalidField", f"{where}: need an array of 1..64 keys")
        for i, key in enumerate(v):
            check_field(key, "bstr32", None, f"{where}[{i}]")
        if any(a >= b for a, b in zip(v, v[1:])):
            raise Invalid("InvalidField", f"{where}: not strictly ascending")
    else:
        raise AssertionError(typ)


def check_body(kind, body, created_at):
    table = BODIES[kind]
    check_keys(body, table, "body")
    for k, (typ, _, arg) in table.items():
        if k in body:
            check_field(body[k], typ, arg, f"body.{k}")
    if kind == "review" and not 1 <= body["rating"] <= 5:
        raise Invalid("RatingOutOfRange", f"rating {body['rating']}")
    if kind == "petition":
        if ("goal" in body) != (body["variant"] == "campaign"):
            if "goal" in body:
                raise Invalid("UnexpectedField", "goal outside a campaign")
            raise Invalid("MissingField", "campaign without goal")
        if "deadline" in body and not body["deadline"] > created_at:
            raise Invalid("InvalidField", "deadline <= created_at")
    if kind == "attestation":
        if ("keys" in body) == ("record" in body):
            raise Invalid("InvalidField", "need exactly one of keys, record")
        subject = "keys" if "keys" in body else "record"
        verdict = body["verdict"]
        if VERDICTS[verdict] != subject:
            raise Invalid("InvalidField", f"verdict {verdict} does not fit subject {subject}")
        if verdict == "verified-count" and not ("count" in body and "root" in body):
            raise Invalid("InvalidField", "verified-count needs count and root")


def parse_topic(t):
    """Section 6: returns ('meta', None) or (prefix, 32 bytes); raises InvalidTopic."""
    if t == "meta":
        return ("meta", None)
    for prefix in ("producer", "group"):
        rest = t[len(prefix) + 1:]
        if t.startswith(prefix + "/") and len(rest) == 64 and all(c in "0123456789abcdef" for c in rest):
            return (prefix, bytes.fromhex(rest))
    raise Invalid("InvalidTopic", repr(t))


def check_topic(rec):
    kind, body, topic = rec["kind"], rec["body"], parse_topic(rec["topic"])
    want = {
        "profile": lambda: ("meta", None), "group": lambda: ("meta", None),
        "review": lambda: ("producer", body["product"]["producer"]),
        "petition": lambda: ("producer", body["producer"]),
        "response": lambda: ("producer", rec["author"]),
        "join": lambda: ("group", body["group"]), "admit": lambda: ("group", body["group"]),
    }.get(kind, lambda: None)()
    if want is not None and topic != want:
        raise Invalid("TopicMismatch", f"{kind} on {rec['topic']}")
    if kind == "endorsement" and topic[0] != "producer":
        raise Invalid("TopicMismatch", "endorsement not on a producer topic")
    if kind == "attestation" and "keys" in body and topic != ("meta", None):
        raise Invalid("TopicMismatch", "attestation about keys not on meta")
    # retraction, attestation about a record: any valid topic (section 6, middle column)


def decode_record(rec_bytes):
    """Sections 2-4: strict decode, data-model checks, canonical re-encoding check."""
    rec = cbor_decode_one(rec_bytes)
    if not isinstance(rec, dict):
        raise Invalid("Malformed", "record is not a map")
    check_keys(rec, RECORD, "record")
    if not is_uint(rec["v"]):
        raise Invalid("InvalidField", "v is not a uint")
    if rec["v"] != 1:
        raise Invalid("UnsupportedVersion", f"v = {rec['v']}")
    for k, typ in RECORD.items():
        if typ == "map" and not isinstance(rec[k], dict):
            raise Invalid("InvalidField", f"{k} is not a map")
        if typ == "text" and not isinstance(rec[k], str):
            raise Invalid("InvalidField", f"{k} is not text")
        if typ in ("uint", "bstr32"):
            check_field(rec[k], typ, None, k)
    if rec["kind"] not in BODIES:
        raise Invalid("UnknownKind", repr(rec["kind"]))
    check_body(rec["kind"], rec["body"], rec["created_at"])
    if cbor_encode(rec) != rec_bytes:
        raise Invalid("NonCanonical", "re-encoding differs from the input")
    return rec


# --------------------------------------------------------------------------- wire form & verdict

def split_wire(w):
    """Section 8: returns (record bytes, signature)."""
    def need(n, what):
        if len(w) < n:
            raise Invalid("Malformed", f"truncated {what}")
    need(1, "wire")
    if w[0] != 0x82:
        raise Invalid("Malformed", "wire is not an array of 2")
    need(2, "record head")
    h = w[1]
    if 0x40 <= h <= 0x57:
        n, pos = h - 0x40, 2
    elif h == 0x58:
        need(3, "record head"); n, pos = w[2], 3
        if n < 24:
            raise Invalid("NonCanonical", "non-shortest record head")
    elif h == 0x59:
        need(4, "record head"); n, pos = int.from_bytes(w[2:4], "big"), 4
        if n <= 0xFF:
            raise Invalid("NonCanonical", "non-shortest record head")
    else:
        raise Invalid("Malformed", f"bad record head 0x{h:02x}")
    need(pos + n, "record bytes")
    rec, pos = w[pos:pos + n], pos + n
    need(pos + 2, "signature head")
    if w[pos:pos + 3] == b"\x59\x00\x40":
        raise Invalid("NonCanonical", "non-shortest signature head")
    if w[pos:pos + 2] != b"\x58\x40":
        raise Invalid("Malformed", "signature head is not 58 40")
    pos += 2
    need(pos + 64, "signature")
    sig, pos = w[pos:pos + 64], pos + 64
    if pos != len(w):
        raise Invalid("Malformed", "trailing bytes after the signature")
    return bytes(rec), bytes(sig)


def verify_wire(w, now, skew=DEFAULT_SKEW_MS):
    """Section 5.1 verdict; returns (record bytes, signature, record, id) or raises Invalid."""
    if len(w) > MAX_WIRE_BYTES:
        raise Invalid("TooLarge", f"{len(w)} bytes")
    rec_bytes, sig = split_wire(w)
    rec = decode_record(rec_bytes)
    check_topic(rec)
    if rec["created_at"] > now + skew:
        raise Invalid("FromTheFuture", f"created_at {rec['created_at']} > now + skew")
    rid = blake3(rec_bytes)
    ed25519_verify(rec["author"], sig, SIG_PREFIX + rid)
    return rec_bytes, sig, rec, rid


def to_json(v):
    """Section 10 `decoded` form: byte strings as lowercase hex."""
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_json(x) for x in v]
    return v


def kebab(name):
    return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")


def check_vector(vec):
    """Returns (ok, message) for one test vector."""
    try:
        rec_bytes, sig, rec, rid = verify_wire(bytes.fromhex(vec["wire"]), vec["now"])
    except Invalid as e:
        if vec["valid"]:
            return False, f"expected valid, got {e}"
        msg = f"invalid ({e}); expected error: {vec.get('error')}"
        if kebab(e.reason) != vec.get("error"):
            msg += "  [warning: different reason]"
        return True, msg
    if not vec["valid"]:
        return False, f"expected invalid ({vec.get('error')}), but it verified"
    problems = []
    if rec_bytes.hex() != vec["record"]:
        problems.append("record bytes differ")
    if sig.hex() != vec["signature"]:
        problems.append("signature differs")
    if rec["author"].hex() != vec["public_key"]:
        problems.append("author != public_key")
    if rid.hex() != vec["id"]:
        problems.append(f"id {rid.hex()} != {vec['id']}")
    if to_json(rec) != vec["decoded"]:
        problems.append(f"decoded differs: {json.dumps(to_json(rec), sort_keys=True)}")
    return (not problems), "; ".join(problems) or "valid"


# --------------------------------------------------------------------------- bundles (section 14)

def merkle_leaf(i):
    return blake3(b"\x00" + i)


def merkle_root(ids):
    level = [merkle_leaf(i) for i in sorted(set(ids))]
    if not level:
        return bytes(32)
    while len(level) > 1:
        level = [blake3(b"\x01" + level[k] + level[k + 1]) if k + 1 < len(level) else level[k]
                 for k in range(0, len(level), 2)]
    return level[0]


def verify_bundle(data):
    """Section 14.2: returns (count, root, first_reached_at, pledged total, withdrawn_at) or
    raises Invalid naming the culprit."""
    b = cbor_decode_one(data, nulls=True)
    want = {"v", "root", "count", "petition", "responses", "retractions", "withdrawals",
            "attestations", "endorsements", "first_reached_at"}
    if not isinstance(b, dict) or set(b) != want or b["v"] != 2:
        raise Invalid("Malformed", "not a version-2 bundle")
    far = 1 << 62
    _, _, pet, pid = verify_wire(b["petition"], far)
    if pet["kind"] != "petition":
        raise Invalid("Foreign", "the petition is not a petition")
    body = pet["body"]
    seen = {pid}
    parts = {}
    for part in ("endorsements", "retractions", "withdrawals", "responses", "attestations"):
        parts[part] = []
        for w in b[part]:
            _, _, rec, rid = verify_wire(w, far)
            if rid in seen:
                raise Invalid("Duplicate", rid.hex())
            seen.add(rid)
            parts[part].append((rec, rid))
    withdrawn_at = None
    for rec, rid in parts["withdrawals"]:
        if rec["kind"] != "retraction" or rec["body"]["target"] != pid or rec["author"] != pet["author"]:
            raise Invalid("Foreign", rid.hex() + " is not its author's withdrawal")
        withdrawn_at = rec["created_at"] if withdrawn_at is None else min(withdrawn_at, rec["created_at"])
    closes = [t for t in (body.get("deadline"), withdrawn_at) if t is not None]
    close = min(closes) if closes else None
    goal = body.get("goal")
    retracted = {rec["body"].get("target") for rec, _ in parts["retractions"] if rec["kind"] == "retraction"}
    history, by_id = [], {}
    for rec, rid in parts["endorsements"]:
        if rec["kind"] != "endorsement" or rec["body"]["petition"] != pid or rec["topic"] != pet["topic"]:
            raise Invalid("Foreign", rid.hex())
        pledge = rec["body"].get("pledge")
        if goal is not None and pledge is not None and pledge["currency"] != goal["currency"]:
            raise Invalid("Foreign", rid.hex() + " pledges in another currency than the campaign's")
        by_id[rid] = rec
        if close is not None and rec["created_at"] > close:
            if rid in retracted:
                continue
            raise Invalid("Foreign", rid.hex() + " created after the petition closed")
        value = pledge["value"] if goal is not None and pledge is not None else 0
        history.append((rec["created_at"], rid, rec["author"], value))
    for rec, rid in parts["retractions"]:
        target = by_id.get(rec["body"].get("target")) if rec["kind"] == "retraction" else None
        if target is None or target["author"] != rec["author"]:
            raise Invalid("Foreign", rid.hex())
        if close is None or rec["created_at"] <= close:
            history.append((rec["created_at"], rid, rec["author"], None))
    for rec, rid in parts["responses"]:
        if rec["kind"] != "response" or rec["body"]["target"] != pid or rec["author"] != body["producer"]:
            raise Invalid("Foreign", rid.hex())
    for rec, rid in parts["attestations"]:
        if rec["kind"] != "attestation" or rec["body"].get("record") != pid:
            raise Invalid("Foreign", rid.hex())
    # Replay in (created_at, id) order: each record makes its author's state its own.
    standing, total, first = {}, 0, None
    for at, rid, author, value in sorted(history, key=lambda h: (h[0], h[1])):
        if author in standing:
            total -= standing.pop(author)[1]
        if value is not None:
            standing[author] = (rid, value)
            total += value
        if first is None and len(standing) >= body["threshold"] and (goal is None or total >= goal["value"]):
            first = at
    counted = [rid for rid, _ in standing.values()]
    root = merkle_root(counted)
    if len(counted) != b["count"]:
        raise Invalid("CountMismatch", f"claims {b['count']}, records give {len(counted)}")
    if root != b["root"]:
        raise Invalid("RootMismatch", root.hex())
    if first != b["first_reached_at"]:
        raise Invalid("FirstReachedMismatch", f"claims {b['first_reached_at']}, history gives {first}")
    return len(counted), root, first, total, withdrawn_at


# --------------------------------------------------------------------------- kind rules (section 9.1)

def kind_rule(rec, target):
    """Section 9.1: the code of the first kind rule `rec` breaks, given the record it points
    at, or None."""
    kind, tkind, tbody = rec["kind"], target["kind"], target["body"]
    if kind == "join":
        return None if tkind == "group" else "not_a_group"
    if kind == "admit":
        if tkind != "group":
            return "not_a_group"
        return None if rec["author"] == target["author"] else "not_founder"
    if kind == "endorsement":
        if tkind != "petition":
            return "not_a_petition"
        if rec["topic"] != target["topic"]:
            return "wrong_topic"
        goal, pledge = tbody.get("goal"), rec["body"].get("pledge")
        if tbody.get("variant") == "campaign" and goal and pledge and pledge["currency"] != goal["currency"]:
            return "currency_mismatch"
        return None
    if kind == "retraction":
        if rec["author"] != target["author"]:
            return "not_yours"
        if tkind == "retraction":
            return "not_retractable"
        return None if rec["topic"] == target["topic"] else "wrong_topic"
    if kind == "response":
        if tkind == "petition":
            producer = tbody["producer"]
        elif tkind == "review":
            producer = tbody["product"]["producer"]
        else:
            return "not_answerable"
        return None if rec["author"] == producer else "not_producer"
    return None


def check_rule_vectors(root):
    cases = json.loads((root / "docs" / "test-rules.json").read_text(encoding="utf-8"))
    far = 1 << 62
    failed = 0
    for case in cases:
        _, _, target, tid = verify_wire(bytes.fromhex(case["target"]), far)
        _, _, rec, _ = verify_wire(bytes.fromhex(case["record"]), far)
        body = rec["body"]
        points_at = body.get("group") or body.get("petition") or body.get("target")
        got = kind_rule(rec, target) if points_at == tid else "does-not-point-at-its-target"
        if got == case["error"]:
            print(f"ok   rule {case['name']}" + (f"  ({got})" if got else ""))
        else:
            failed += 1
            print(f"FAIL rule {case['name']}: {got}, expected {case['error']}")
    print(f"kind rules: {len(cases) - failed} passed, {failed} failed")
    return failed == 0


def verify_proof(proof):
    h = merkle_leaf(bytes.fromhex(proof["endorsement"]))
    for step in proof["path"]:
        s = bytes.fromhex(step["hash"])
        h = blake3(b"\x01" + s + h) if step["left"] else blake3(b"\x01" + h + s)
    return h.hex() == proof["root"]


def tampering_is_caught(bundle, step, what):
    """Every `step`-th byte of `bundle`, flipped, makes it invalid."""
    for i in range(0, len(bundle), step):
        t = bytearray(bundle)
        t[i] ^= 1
        try:
            verify_bundle(bytes(t))
        except (Invalid, KeyError, TypeError, AttributeError, ValueError, IndexError):
            continue
        raise AssertionError(f"{what} byte {i} altered unnoticed")


def check_bundle_vectors(root):
    bundle = (root / "docs" / "test-bundle.cbor").read_bytes()
    proof = json.loads((root / "docs" / "test-proof.json").read_text(encoding="utf-8"))
    count, r, _, _, _ = verify_bundle(bundle)
    assert count == proof["count"] and r.hex() == proof["root"], "bundle and proof disagree"
    assert verify_proof(proof), "the proof does not hold"
    bad = dict(proof, endorsement="00" * 32)
    assert not verify_proof(bad), "a forged proof holds"
    tampering_is_caught(bundle, 5, "bundle")
    print(f"ok   bundle: {count} endorsers, root {r.hex()}; proof holds; tampering caught")
    campaign = (root / "docs" / "test-bundle-campaign.cbor").read_bytes()
    want = json.loads((root / "docs" / "test-bundle-campaign.json").read_text(encoding="utf-8"))
    count, r, first, total, withdrawn_at = verify_bundle(campaign)
    got = {"count": count, "root": r.hex(), "first_reached_at": first, "pledged": total,
           "withdrawn_at": withdrawn_at}
    assert got == want, f"campaign bundle: {got} != {want}"
    tampering_is_caught(campaign, 3, "campaign bundle")
    print(f"ok   campaign bundle: {count} backers, {total / 100:.2f} pledged, first reached at "
          f"{first}, withdrawn at {withdrawn_at}; tampering caught")


def main(argv):
    blake3_self_test()
    root = pathlib.Path(__file__).resolve().parent.parent
    path = pathlib.Path(argv[1]) if len(argv) > 1 else root / "docs" / "test-vectors.json"
    vectors = json.loads(path.read_text(encoding="utf-8"))
    passed = failed = other_reason = 0
    for vec in vectors:
        ok, msg = check_vector(vec)
        if ok:
            passed += 1
            other_reason += "[warning: different reason]" in msg
            print(f"ok   {vec['name']}" + ("" if vec["valid"] else f"  ({msg})"))
        else:
            failed += 1
            print(f"FAIL {vec['name']}: {msg}")
    if other_reason:
        print(f"warning: {other_reason} invalid vector(s) refused for another reason than `error`")
    print(f"{passed} passed, {failed} failed")
    if len(argv) <= 1:
        check_bundle_vectors(root)
        if not check_rule_vectors(root):
            failed += 1
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
