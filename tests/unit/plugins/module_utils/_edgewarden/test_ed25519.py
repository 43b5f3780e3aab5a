# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import base64

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import ed25519

# RFC 8032 section 7.1, tests 1, 2, 3 and SHA(abc): (public key, message, signature)
RFC8032 = [
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
     "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
     "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
     "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"),
]
PEM_TEST1 = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n"


def _vector(index):
    pub, msg, sig = RFC8032[index]
    return bytes.fromhex(pub), bytes.fromhex(msg), bytes.fromhex(sig)


@pytest.mark.parametrize("index", range(len(RFC8032)))
def test_rfc8032_vectors_verify(index):
    pub, msg, sig = _vector(index)
    assert ed25519.verify(pub, sig, msg)


@pytest.mark.parametrize("index", range(len(RFC8032)))
def test_streamed_message_verifies_like_one_buffer(index):
    pub, msg, sig = _vector(index)
    chunks = [msg[i:i + 7] for i in range(0, len(msg), 7)]
    assert ed25519.verify_stream(pub, sig, chunks)


@pytest.mark.parametrize("mutate", [
    lambda pub, msg, sig: (pub, msg + b"\0", sig),                              # message changed
    lambda pub, msg, sig: (pub, msg, sig[:10] + bytes([sig[10] ^ 1]) + sig[11:]),  # R changed
    lambda pub, msg, sig: (pub, msg, sig[:40] + bytes([sig[40] ^ 1]) + sig[41:]),  # S changed
    lambda pub, msg, sig: (bytes.fromhex(RFC8032[1][0]), msg, sig),             # another key
    lambda pub, msg, sig: (pub, msg, sig[:63]),                                 # short signature
    lambda pub, msg, sig: (pub[:31], msg, sig),                                 # short key
])
def test_tampering_is_refused(mutate):
    pub, msg, sig = _vector(2)
    assert not ed25519.verify(*mutate(pub, msg, sig))


def test_malleable_s_is_refused():
    # S + L is the same scalar mod L: accepted by lax verifiers, refused by RFC 8032 5.1.7
    pub, msg, sig = _vector(0)
    s = int.from_bytes(sig[32:], "little") + ed25519.L
    assert s < 2 ** 256
    assert not ed25519.verify(pub, sig[:32] + s.to_bytes(32, "little"), msg)


def test_small_order_public_key_is_refused():
    # the identity (y = 1) with R = identity and S = 0 verifies every message on a lax verifier
    identity = (1).to_bytes(32, "little")
    assert not ed25519.verify(identity, identity + bytes(32), b"anything")


def test_non_canonical_point_encodings_are_rejected():
    # y = p (>= p) and x = 0 with the sign bit set
    assert ed25519.decode_point(ed25519.P.to_bytes(32, "little")) is None
    assert ed25519.decode_point(((1 << 255) | 1).to_bytes(32, "little")) is None


@pytest.mark.parametrize("text", [
    PEM_TEST1,
    PEM_TEST1.encode(),
    bytes.fromhex(RFC8032[0][0]),
    RFC8032[0][0] + "\n",
    base64.b64encode(bytes.fromhex(RFC8032[0][0])).decode() + "\n",
    ed25519.SPKI_PREFIX + bytes.fromhex(RFC8032[0][0]),
])
def test_public_key_formats(text):
    assert ed25519.parse_public_key(text) == bytes.fromhex(RFC8032[0][0])


@pytest.mark.parametrize("text, message", [
    ("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n",
     "not an Ed25519 key"),
    ("hello", "expected PEM"),
    (b"\xff" * 40, "binary data"),
])
def test_bad_public_keys(text, message):
    with pytest.raises(ed25519.InvalidKey, match=message):
        ed25519.parse_public_key(text)


@pytest.mark.parametrize("form", [
    lambda sig: sig,
    lambda sig: sig.hex(),
    lambda sig: base64.b64encode(sig).decode() + "\n",
])
def test_signature_formats(form):
    sig = bytes.fromhex(RFC8032[0][2])
    assert ed25519.parse_signature(form(sig)) == sig


def test_bad_signature_text():
    with pytest.raises(ed25519.InvalidSignature):
        ed25519.parse_signature("c2hvcnQ=")


def test_verify_file(tmp_path):
    pub, msg, sig = _vector(3)
    path = tmp_path / "artifact"
    path.write_bytes(msg)
    assert ed25519.verify_file(pub, sig, str(path))
    path.write_bytes(msg + b"x")
    assert not ed25519.verify_file(pub, sig, str(path))
