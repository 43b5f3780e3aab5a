# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Device side of ota_artifact on real files under tmp_path. The signed artifact is the
message of the RFC 8032 SHA(abc) vector, so no signing code is needed in the tests."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import delta, ota

# RFC 8032 7.1 SHA(abc) vector: a 64-byte message, its key and signature
KEY = bytes.fromhex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
MESSAGE = bytes.fromhex("ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
SIGNATURE = bytes.fromhex("dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
                          "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704")
BS = delta.MIN_BLOCK_SIZE


@pytest.fixture
def device(tmp_path):
    key = tmp_path / "signing.pub"
    key.write_text(KEY.hex() + "\n")
    data = tmp_path / "data"
    data.mkdir()
    return {"key": str(key), "dest": str(data / "fw.img"), "dir": data}


def request(device, blob, signature=SIGNATURE, **extra):
    params = {
        "dest": device["dest"], "basis": None, "public_key": device["key"], "mode": None,
        "block_size": BS, "sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob),
        "signature_data": base64.b64encode(signature).decode(), "first_block": 0,
        "runs": [[0, 1, delta.LITERAL]] if blob else [], "data": base64.b64encode(blob).decode(), "commit": True,
    }
    params.update(extra)
    return params


def test_inspect_reports_key_dest_and_directory(device):
    found = ota.inspect(device["dest"], None, device["key"], BS)
    assert found["public_key"]["valid"] and base64.b64decode(found["public_key"]["key"]) == KEY
    assert found["dest"] == {"path": device["dest"], "exists": False}
    assert found["directory"]["exists"] and not found["directory"]["readonly"]
    assert not found["up_to_date"]


def test_valid_artifact_installs_atomically(device):
    result = ota.write(request(device, MESSAGE))
    assert result["changed"] and result["records"][0]["after"] == hashlib.sha256(MESSAGE).hexdigest()
    with open(device["dest"], "rb") as handle:
        assert handle.read() == MESSAGE
    assert os.listdir(str(device["dir"])) == ["fw.img"]
    assert oct(os.stat(device["dest"]).st_mode & 0o777) == "0o644"
    found = ota.inspect(device["dest"], None, device["key"], BS, hashlib.sha256(MESSAGE).hexdigest(),
                        base64.b64encode(SIGNATURE).decode())
    assert found["up_to_date"] and found["signature_valid"] is True
    assert "blocks" not in found["basis"]


def test_tampered_artifact_is_refused_and_nothing_changes(device):
    with open(device["dest"], "wb") as handle:
        handle.write(b"old version")
    tampered = MESSAGE[:-1] + bytes([MESSAGE[-1] ^ 1])
    with pytest.raises(ota.OtaError, match="signature does not verify against the pinned public key"):
        ota.write(request(device, tampered))
    with open(device["dest"], "rb") as handle:
        assert handle.read() == b"old version"
    assert sorted(os.listdir(str(device["dir"]))) == ["fw.img"]


def test_checksum_mismatch_is_refused(device):
    params = request(device, MESSAGE, sha256="0" * 64)
    with pytest.raises(ota.OtaError, match="checksum mismatch after transfer"):
        ota.write(params)
    assert os.listdir(str(device["dir"])) == []


def test_missing_pinned_key_refuses_before_writing(device):
    os.unlink(device["key"])
    with pytest.raises(ota.OtaError, match="no usable pinned public key"):
        ota.write(request(device, MESSAGE))
    assert os.listdir(str(device["dir"])) == []


@pytest.mark.parametrize("change, message", [
    ({"sha256": "xyz"}, "sha256 must be 64 lowercase hex digits"),
    ({"size": -1}, "size must be a non-negative integer"),
    ({"block_size": 100}, "block_size must be between"),
    ({"mode": "rw-r--r--"}, "mode must be octal digits"),
    ({"dest": "relative/fw.img"}, "dest must be an absolute path"),
])
def test_invalid_requests_fail_before_writing(device, change, message):
    with pytest.raises(ota.OtaError, match=message):
        ota.write(request(device, MESSAGE, **change))


def test_up_to_date_file_still_needs_a_valid_signature(device):
    other = b"same bytes on both sides, but not what the signature covers"
    with open(device["dest"], "wb") as handle:
        handle.write(other)
    found = ota.inspect(device["dest"], None, device["key"], BS, hashlib.sha256(other).hexdigest(),
                        base64.b64encode(SIGNATURE).decode())
    assert found["up_to_date"] and found["signature_valid"] is False


def test_batches_append_and_refuse_an_out_of_sync_partial(device):
    blob = b"a" * BS + MESSAGE
    sha = hashlib.sha256(blob).hexdigest()
    # an empty first batch, then a batch that claims block 0 was already sent
    ota.write(request(device, blob, runs=[], data="", commit=False, sha256=sha))
    assert os.path.getsize(delta.partial_path(device["dest"])) == 0
    second = request(device, blob, first_block=1, runs=[[1, 1, delta.LITERAL]],
                     data=base64.b64encode(MESSAGE).decode(), sha256=sha)
    with pytest.raises(ota.OtaError, match="has 0 bytes, expected 4096: restart the delivery"):
        ota.write(second)
    assert not os.path.exists(delta.partial_path(device["dest"]))
    assert not os.path.exists(device["dest"])
