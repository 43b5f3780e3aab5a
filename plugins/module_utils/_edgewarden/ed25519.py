# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Ed25519 signature verification (RFC 8032, PureEdDSA) in pure Python.

Verification only: devices check signatures, they never sign. Python's standard library
has no Ed25519 and device images often have no openssl binary, so the arithmetic is done
here with Python integers. It is not constant-time, which does not matter for
verification: every input (key, signature, message) is public.

Strictness, so that one message has one valid signature encoding per key:
- point encodings with y >= p, or x = 0 with the sign bit set, are rejected;
- S must be below the group order L (RFC 8032 5.1.7, against malleability);
- a public key of small order (the identity and its torsion friends) is rejected;
- the check is ``encode([S]B - [k]A) == R`` (cofactorless, as ref10 and libsodium),
  which also refuses a non-canonical R.
The message is hashed in a stream, so a large artifact never has to fit in memory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

P = 2 ** 255 - 19
L = 2 ** 252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
# The base point B: y = 4/5, x even (RFC 8032 5.1)
_BY = (4 * pow(5, P - 2, P)) % P

KEY_BYTES = 32
SIGNATURE_BYTES = 64
# DER SubjectPublicKeyInfo of an Ed25519 key (RFC 8410): this prefix, then the 32 key bytes
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PEM = re.compile(r"-----BEGIN PUBLIC KEY-----(.*?)-----END PUBLIC KEY-----", re.S)
CHUNK = 1024 * 1024


class InvalidKey(ValueError):
    """The public key bytes or text are not an Ed25519 public key."""


class InvalidSignature(ValueError):
    """The signature bytes or text are not an Ed25519 signature."""


def _recover_x(y, sign):
    """x from y and the sign bit (RFC 8032 5.1.3), or None when y is not on the curve."""
    if y >= P:
        return None
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x = (u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P)) % P
    vxx = (v * x * x) % P
    if vxx == u:
        pass
    elif vxx == (-u) % P:
        x = (x * SQRT_M1) % P
    else:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return x


def decode_point(data):
    """Extended coordinates (X, Y, Z, T) of a 32-byte point encoding, or None when invalid."""
    if len(data) != 32:
        return None
    value = int.from_bytes(data, "little")
    sign = value >> 255
    y = value & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, (x * y) % P)


def encode_point(point):
    x, y, z, _t = point
    zinv = pow(z, P - 2, P)
    x = (x * zinv) % P
    y = (y * zinv) % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _add(p1, p2):
    # RFC 8032 5.1.4, extended coordinates
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = ((y1 - x1) * (y2 - x2)) % P
    b = ((y1 + x1) * (y2 + x2)) % P
    c = (2 * D * t1 * t2) % P
    d = (2 * z1 * z2) % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return ((e * f) % P, (g * h) % P, (f * g) % P, (e * h) % P)


def _double(p1):
    x1, y1, z1, _t1 = p1
    a = (x1 * x1) % P
    b = (y1 * y1) % P
    c = (2 * z1 * z1) % P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1)
    g = a - b
    f = c + g
    return ((e * f) % P, (g * h) % P, (f * g) % P, (e * h) % P)


def _negate(point):
    x, y, z, t = point
    return ((-x) % P, y, z, (-t) % P)


IDENTITY = (0, 1, 1, 0)
BASE = (_recover_x(_BY, 0), _BY, 1, (_recover_x(_BY, 0) * _BY) % P)


def _is_identity(point):
    x, y, z, _t = point
    return x % P == 0 and (y - z) % P == 0


def _double_scalar_mult(s, p1, k, p2):
    """[s]p1 + [k]p2 in one pass (Straus/Shamir): about half the work of two ladders."""
    both = _add(p1, p2)
    result = IDENTITY
    for bit in range(max(s.bit_length(), k.bit_length()) - 1, -1, -1):
        result = _double(result)
        sb = (s >> bit) & 1
        kb = (k >> bit) & 1
        if sb and kb:
            result = _add(result, both)
        elif sb:
            result = _add(result, p1)
        elif kb:
            result = _add(result, p2)
    return result


def is_small_order(point):
    """True for the 8 points of order dividing 8: a key that verifies far too much."""
    return _is_identity(_double(_double(_double(point))))


def verify_stream(public_key, signature, chunks):
    """True when ``signature`` (64 bytes) is valid for the message given as byte chunks."""
    public_key = bytes(public_key)
    signature = bytes(signature)
    if len(public_key) != KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    a_point = decode_point(public_key)
    if a_point is None or is_small_order(a_point):
        return False
    r_bytes = signature[:32]
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    if decode_point(r_bytes) is None:
        return False
    digest = hashlib.sha512()
    digest.update(r_bytes)
    digest.update(public_key)
    for chunk in chunks:
        digest.update(chunk)
    k = int.from_bytes(digest.digest(), "little") % L
    check = _double_scalar_mult(s, BASE, k, _negate(a_point))
    return encode_point(check) == r_bytes


def verify(public_key, signature, message):
    return verify_stream(public_key, signature, [bytes(message)])


def file_chunks(path, size=CHUNK):
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(size)
            if not chunk:
                return
            yield chunk


def verify_file(public_key, signature, path):
    return verify_stream(public_key, signature, file_chunks(path))


def _decode_text(text, length):
    """``length`` bytes from base64 or hex text, or None."""
    compact = "".join(text.split())
    if len(compact) == 2 * length and re.match(r"^[0-9a-fA-F]+$", compact):
        return bytes.fromhex(compact)
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == length else None


def parse_public_key(data):
    """The 32 raw key bytes from PEM (SubjectPublicKeyInfo), raw bytes, base64 or hex text."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    data = bytes(data)
    if len(data) == KEY_BYTES and not data.strip().startswith(b"-----"):
        return data
    if len(data) == len(SPKI_PREFIX) + KEY_BYTES and data.startswith(SPKI_PREFIX):
        return data[len(SPKI_PREFIX):]
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidKey("not an Ed25519 public key (binary data of %d bytes)" % len(data))
    match = _PEM.search(text)
    if match:
        der = _decode_text(match.group(1), len(SPKI_PREFIX) + KEY_BYTES)
        if der is None or not der.startswith(SPKI_PREFIX):
            raise InvalidKey("PEM public key is not an Ed25519 key (expected OID 1.3.101.112)")
        key = der[len(SPKI_PREFIX):]
    else:
        key = _decode_text(text, KEY_BYTES)
        if key is None:
            raise InvalidKey("not an Ed25519 public key: expected PEM, or 32 bytes raw, base64 or hex")
    if decode_point(key) is None:
        raise InvalidKey("Ed25519 public key is not a point on the curve")
    return key


def parse_signature(data):
    """The 64 raw signature bytes from raw bytes, base64 or hex text."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    data = bytes(data)
    if len(data) == SIGNATURE_BYTES:
        return data
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidSignature("not an Ed25519 signature (binary data of %d bytes, expected 64)" % len(data))
    sig = _decode_text(text, SIGNATURE_BYTES)
    if sig is None:
        raise InvalidSignature("not an Ed25519 signature: expected 64 bytes raw, base64 or hex")
    return sig
