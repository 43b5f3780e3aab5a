# SPDX-License-Identifier: GPL-3.0-or-later
"""Test artifacts for the ota_artifact part of the integrity scenario, signed on the controller.

Deterministic (fixed seeds), so running prepare again rewrites the same bytes:
- ota-signing.pub: the release key's public half, pinned on the devices by prepare;
- firmware-1.img (4 MiB) and firmware-2.img (three 16-byte changes), each with its .sig;
- tampered.img: firmware-2 with one flipped bit, shipped with firmware-2's signature;
- unsigned.img: no signature file; wrongkey.img: signed by a key the devices do not pin;
- manifest.json: the SHA-256 of each image, for verify.
usage: make_artifacts.py DIR
"""

import hashlib
import json
import os
import random
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SIZE = 4 * 1024 * 1024
CHANGES = (100000, 1500000, 3900000)


def key(label):
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def write(directory, name, data, signer=None):
    with open(os.path.join(directory, name), "wb") as handle:
        handle.write(data)
    if signer is not None:
        with open(os.path.join(directory, name + ".sig"), "wb") as handle:
            handle.write(signer.sign(data))


def main(directory):
    os.makedirs(directory, exist_ok=True)
    release = key("edgewarden integrity scenario release key")
    other = key("edgewarden integrity scenario other key")
    with open(os.path.join(directory, "ota-signing.pub"), "wb") as handle:
        handle.write(release.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    v1 = random.Random(1).randbytes(SIZE)
    v2 = bytearray(v1)
    for offset in CHANGES:
        v2[offset:offset + 16] = b"edgewarden v2..."
    v2 = bytes(v2)
    tampered = bytearray(v2)
    tampered[SIZE // 2] ^= 1
    write(directory, "firmware-1.img", v1, release)
    write(directory, "firmware-2.img", v2, release)
    write(directory, "tampered.img", bytes(tampered))
    with open(os.path.join(directory, "tampered.img.sig"), "wb") as handle:
        handle.write(release.sign(v2))
    write(directory, "unsigned.img", v2)
    write(directory, "wrongkey.img", v2, other)
    manifest = {name: hashlib.sha256(data).hexdigest()
                for name, data in (("firmware-1.img", v1), ("firmware-2.img", v2), ("tampered.img", bytes(tampered)))}
    with open(os.path.join(directory, "manifest.json"), "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
