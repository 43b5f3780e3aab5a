# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Device side of signed artifact delivery (the ota_artifact module).

Two steps, each one module call, driven by the ota_artifact action plugin:

- ``inspect`` (read-only): the pinned public key, the state of ``dest`` and of the
  basis (its per-block hashes when it differs from the new artifact), free space and
  whether the directory is writable. When ``dest`` already holds the artifact, the
  signature is checked against it here and nothing else happens.
- ``write``: append a batch of blocks (copied from the basis or sent literally) to a
  partial file beside ``dest``; the last batch (``commit``) re-reads the partial file,
  checks its size, SHA-256 and Ed25519 signature against the pinned key, and only then
  renames it over ``dest``. Any failure removes the partial file: ``dest`` is never
  touched by a refused artifact.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import delta, ed25519
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import CHANGED, UNCHANGED, record
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import fsync_directory, is_readonly_fs

DEFAULT_PUBLIC_KEY = "/etc/edgewarden/ota-signing.pub"
ID_PREFIX = "integrity.ota/"
MAX_KEY_FILE = 16384
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class OtaError(Exception):
    """A refusal or failure with a message for the user; nothing was installed."""


def read_public_key(path):
    """``{path, present, valid, key (base64 of the 32 raw bytes), error}``; never raises."""
    info = {"path": path, "present": False, "valid": False, "key": None, "error": None}
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEY_FILE)
    except (IOError, OSError) as exc:
        info["error"] = "cannot read %s: %s" % (path, exc.strerror or exc)
        return info
    info["present"] = True
    try:
        key = ed25519.parse_public_key(data)
    except ed25519.InvalidKey as exc:
        info["error"] = "%s: %s" % (path, exc)
        return info
    info["valid"] = True
    info["key"] = base64.b64encode(key).decode("ascii")
    return info


def _free_bytes(directory):
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def file_state(path):
    try:
        st = os.stat(path)
    except OSError:
        return {"path": path, "exists": False}
    if not stat.S_ISREG(st.st_mode):
        return {"path": path, "exists": True, "regular": False, "mode": "%04o" % stat.S_IMODE(st.st_mode)}
    return {"path": path, "exists": True, "regular": True, "size": st.st_size, "mode": "%04o" % stat.S_IMODE(st.st_mode),
            "uid": st.st_uid, "gid": st.st_gid}


def inspect(dest, basis, public_key_path, block_size, sha256=None, signature=None):
    """Everything the controller needs to plan a delivery, read in one call. Reads only."""
    basis = basis or dest
    directory = os.path.dirname(dest) or "."
    result = {
        "public_key": read_public_key(public_key_path),
        "dest": file_state(dest),
        "directory": {"path": directory, "exists": os.path.isdir(directory),
                      "readonly": is_readonly_fs(directory), "free_bytes": _free_bytes(directory)},
        "basis": file_state(basis),
        "block_size": block_size,
        "up_to_date": False,
        "signature_valid": None,
    }
    dest_state = result["dest"]
    if dest_state.get("regular"):
        scan = delta.scan_file(dest, block_size, want_blocks=(basis == dest))
        dest_state["sha256"] = scan["sha256"]
        if basis == dest:
            result["basis"] = dict(dest_state, blocks=scan["blocks"])
        result["up_to_date"] = bool(sha256) and scan["sha256"] == sha256
    basis_state = result["basis"]
    if basis != dest and basis_state.get("regular"):
        scan = delta.scan_file(basis, block_size)
        basis_state.update(sha256=scan["sha256"], blocks=scan["blocks"])
    if result["up_to_date"]:
        # the copy in place is the artifact: nothing travels, but the signature must still hold
        result["basis"].pop("blocks", None)
        if signature and result["public_key"]["valid"]:
            key = base64.b64decode(result["public_key"]["key"])
            result["signature_valid"] = ed25519.verify_file(key, decode_signature(signature), dest)
    return result


def decode_signature(text):
    try:
        return ed25519.parse_signature(text)
    except ed25519.InvalidSignature as exc:
        raise OtaError(str(exc))


def decode_data(text):
    try:
        return base64.b64decode(text or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OtaError("data is not base64: %s" % exc)


def validate_write(params):
    """Every problem with a write request, as one list, before anything is written. Pure."""
    errors = []
    if not os.path.isabs(params.get("dest") or ""):
        errors.append("dest must be an absolute path")
    if not _SHA256.match(params.get("sha256") or ""):
        errors.append("sha256 must be 64 lowercase hex digits")
    size = params.get("size")
    if not isinstance(size, int) or size < 0:
        errors.append("size must be a non-negative integer")
    block_size = params.get("block_size")
    if not isinstance(block_size, int) or not delta.MIN_BLOCK_SIZE <= block_size <= delta.MAX_BLOCK_SIZE:
        errors.append("block_size must be between %d and %d" % (delta.MIN_BLOCK_SIZE, delta.MAX_BLOCK_SIZE))
    first = params.get("first_block")
    if not isinstance(first, int) or first < 0:
        errors.append("first_block must be a non-negative integer")
    mode = params.get("mode")
    if mode is not None and not re.match(r"^0?[0-7]{3,4}$", str(mode)):
        errors.append("mode must be octal digits such as 0644 (got %r)" % (mode,))
    return errors


def _open_partial(partial, first_block, block_size):
    if first_block == 0:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        return os.fdopen(fd, "wb")
    try:
        have = os.path.getsize(partial)
    except OSError:
        raise OtaError("partial file %s is missing: restart the delivery" % partial)
    if have != first_block * block_size:
        raise OtaError("partial file %s has %d bytes, expected %d: restart the delivery"
                       % (partial, have, first_block * block_size))
    handle = open(partial, "r+b")
    handle.seek(0, os.SEEK_END)
    return handle


def _verified_digest(path, key, signature):
    """(sha256 hex, signature ok) from one read of the file."""
    sha = hashlib.sha256()

    def chunks():
        for chunk in ed25519.file_chunks(path):
            sha.update(chunk)
            yield chunk

    ok = ed25519.verify_stream(key, signature, chunks())
    return sha.hexdigest(), ok


def commit(dest, partial, key_info, signature, sha256, size, mode):
    """Check the rebuilt file and rename it over ``dest``; returns the change record."""
    have = os.path.getsize(partial)
    if have != size:
        raise OtaError("rebuilt artifact has %d bytes, expected %d: nothing installed" % (have, size))
    got, ok = _verified_digest(partial, base64.b64decode(key_info["key"]), signature)
    if got != sha256:
        raise OtaError("checksum mismatch after transfer (expected sha256 %s, got %s): nothing installed" % (sha256, got))
    if not ok:
        raise OtaError("signature does not verify against the pinned public key %s: artifact refused, %s unchanged"
                       % (key_info["path"], dest))
    before = file_state(dest)
    before_sha = None
    if before.get("regular"):
        before_sha = delta.sha256_file(dest)
    if mode is not None:
        new_mode = int(str(mode), 8)
    elif before.get("exists"):
        new_mode = int(before["mode"], 8)
    else:
        new_mode = 0o644
    os.chmod(partial, new_mode)
    if before.get("regular") and os.geteuid() == 0:
        os.chown(partial, before["uid"], before["gid"])
    os.rename(partial, dest)
    fsync_directory(os.path.dirname(dest) or ".")
    return record(ID_PREFIX + dest, before_sha, sha256, "persisted",
                  UNCHANGED if before_sha == sha256 else CHANGED, "installed (signature and sha256 verified)")


def write(params):
    """One batch of blocks; with ``commit``, verify and install. Returns the result dict.

    Raises OtaError with a user message; the partial file is removed on any failure.
    """
    errors = validate_write(params)
    if errors:
        raise OtaError("invalid request, nothing was written: " + "; ".join(errors))
    dest = params["dest"]
    basis = params.get("basis") or dest
    size = params["size"]
    block_size = params["block_size"]
    key_info = read_public_key(params.get("public_key") or DEFAULT_PUBLIC_KEY)
    if not key_info["valid"]:
        raise OtaError("no usable pinned public key (%s): refusing to install anything" % key_info["error"])
    signature = decode_signature(params.get("signature_data"))
    directory = os.path.dirname(dest) or "."
    if not os.path.isdir(directory):
        raise OtaError("directory %s does not exist" % directory)
    if is_readonly_fs(directory):
        raise OtaError("%s is on a read-only filesystem: nothing written" % directory)
    literal = decode_data(params.get("data"))
    runs = params.get("runs") or []
    basis_state = file_state(basis)
    run_errors = delta.validate_runs(runs, params["first_block"], size, block_size,
                                     basis_state.get("size", 0) if basis_state.get("regular") else 0, len(literal))
    if run_errors:
        raise OtaError("inconsistent transfer batch, nothing installed: " + "; ".join(run_errors))
    partial = delta.partial_path(dest)
    try:
        with _open_partial(partial, params["first_block"], block_size) as out:
            delta.rebuild(out, runs, size, block_size, basis, literal)
            out.flush()
            os.fsync(out.fileno())
        if not params.get("commit"):
            return {"changed": True, "partial": partial, "partial_size": os.path.getsize(partial)}
        rec = commit(dest, partial, key_info, signature, params["sha256"], size, params.get("mode"))
    except (OtaError, ValueError, IOError, OSError) as exc:
        if os.path.exists(partial):
            os.unlink(partial)
        if isinstance(exc, OtaError):
            raise
        raise OtaError("writing %s failed, nothing installed: %s" % (partial, exc))
    return {"changed": rec["status"] == CHANGED, "records": [rec], "sha256": params["sha256"], "size": size, "dest": dest}
