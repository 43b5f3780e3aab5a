# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Signed, delta-only artifact delivery for ota_artifact (controller side).

1. Hash the artifact per block and read its detached signature (controller).
2. ``inspect`` (one module call, also in check mode): the device returns its pinned
   public key, the state of dest and the per-block hashes of the basis. When dest already
   holds the artifact, the device has checked the signature on it: done, nothing sent.
3. Check the signature here with the device's pinned key (``precheck``), so a bad
   artifact is refused before a byte of it travels, and check mode predicts the refusal.
4. Plan which blocks the basis already has; send the others in ``write`` calls of at most
   ``chunk_size`` literal bytes each; the last call (``commit``) makes the device verify
   size, SHA-256 and signature and rename the new file into place.

Everything travels as module arguments over the task's own connection, so it takes the
same ProxyJump path as every other task and needs no SFTP/SCP on the device (dropbear).
"""

from __future__ import annotations

import base64
import json
import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import delta, ed25519
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import (
    CHANGED,
    UNCHANGED,
    diff_from_records,
    record,
)

MODULE = "edgewarden.hardening.ota_artifact"
INTERNAL_ARGS = ("phase", "sha256", "size", "signature_data", "first_block", "runs", "data", "commit")
DEVICE_ARGS = ("dest", "basis", "public_key", "mode", "block_size", "src")
ID_PREFIX = "integrity.ota/"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        try:
            return self._run(result, task_vars)
        except _Refused as exc:
            result.update(failed=True, msg=str(exc))
            result.update(exc.extra)
            return result

    # ------------------------------------------------------------------ steps

    def _run(self, result, task_vars):
        args = dict(self._task.args)
        problems = self._validate(args)
        if problems:
            raise _Refused("invalid arguments, nothing was sent: " + "; ".join(problems))
        if isinstance(args.get("mode"), int):
            # YAML 0644 arrives as the integer 420: keep the octal meaning
            args["mode"] = "%04o" % args["mode"]
        block_size = int(args.get("block_size") or delta.DEFAULT_BLOCK_SIZE)
        chunk_size = int(args.get("chunk_size") or 1048576)
        src = self._find(args["src"], "src")
        try:
            sig_path = self._find(args.get("signature") or args["src"] + ".sig", "signature")
        except _Refused as exc:
            raise _Refused("no signature for %s (%s): unsigned artifacts are refused" % (args["src"], exc))
        with open(sig_path, "rb") as handle:
            raw_signature = handle.read(4096)
        try:
            signature = ed25519.parse_signature(raw_signature)
        except ed25519.InvalidSignature as exc:
            raise _Refused("%s: %s; unsigned artifacts are refused, nothing was sent" % (sig_path, exc))
        scan = delta.scan_file(src, block_size)
        sig_b64 = base64.b64encode(signature).decode("ascii")
        device_args = dict((k, args[k]) for k in DEVICE_ARGS if args.get(k) is not None)
        device_args["block_size"] = block_size
        transfer = {"size": scan["size"], "block_size": block_size, "blocks": len(scan["blocks"]),
                    "blocks_copied": 0, "blocks_sent": 0, "literal_bytes": 0,
                    "sent_bytes": 0, "received_bytes": 0, "calls": 0}

        inspect_args = dict(device_args, phase="inspect", sha256=scan["sha256"], signature_data=sig_b64)
        found = self._call(inspect_args, task_vars, transfer)["device"]
        result["device"] = found
        dest = args["dest"]
        before_sha = found["dest"].get("sha256")
        key_info = found["public_key"]
        if not key_info.get("valid"):
            raise _Refused("no usable pinned public key on the device (%s): refusing to install anything, nothing was sent"
                           % key_info.get("error"), device=found)
        if found["up_to_date"]:
            if not found.get("signature_valid"):
                raise _Refused("signature %s does not verify against the pinned public key %s (the artifact is already "
                               "at %s, but its signature must hold too)" % (sig_path, key_info["path"], dest), device=found)
            rec = record(ID_PREFIX + dest, before_sha, scan["sha256"], "persisted", UNCHANGED, "already installed (signature verified)")
            return self._finish(result, [rec], scan, transfer)
        if found["dest"].get("exists") and not found["dest"].get("regular"):
            raise _Refused("%s exists and is not a regular file: nothing was sent" % dest, device=found)
        if boolean(args.get("precheck", True), strict=False) and not ed25519.verify_file(base64.b64decode(key_info["key"]), signature, src):
            raise _Refused("signature %s does not verify against the device's pinned public key %s: artifact refused, "
                           "nothing was sent and %s is unchanged" % (sig_path, key_info["path"], dest), device=found)
        directory = found["directory"]
        if not directory["exists"]:
            raise _Refused("directory %s does not exist on the device: nothing was sent" % directory["path"], device=found)
        if directory["readonly"]:
            raise _Refused("%s is on a read-only filesystem: nothing was sent" % directory["path"], device=found)
        free = directory.get("free_bytes")
        if free is not None and free < scan["size"]:
            raise _Refused("%s has %d bytes free, the artifact needs %d: nothing was sent"
                           % (directory["path"], free, scan["size"]), device=found)

        basis = found["basis"]
        runs = delta.plan_runs(scan["blocks"], basis.get("blocks") if basis.get("regular") else None)
        literal_blocks = delta.literal_blocks(runs)
        transfer.update(blocks_sent=literal_blocks, blocks_copied=len(scan["blocks"]) - literal_blocks,
                        literal_bytes=delta.literal_size(runs, scan["size"], block_size))
        batches = delta.split_runs(runs, scan["size"], block_size, max(chunk_size, block_size))
        if self._task.check_mode:
            # what would travel: the literal bytes as base64 plus the runs (estimate; no call is made)
            transfer["sent_bytes"] += 4 * ((transfer["literal_bytes"] + 2) // 3) + len(json.dumps(runs))
            rec = record(ID_PREFIX + dest, before_sha, scan["sha256"], "persisted", CHANGED,
                         "would send %d of %d bytes" % (transfer["literal_bytes"], scan["size"]))
            return self._finish(result, [rec], scan, transfer)

        with open(src, "rb") as handle:
            def read_block(index):
                handle.seek(index * block_size)
                return handle.read(block_size)

            answer = None
            for number, batch in enumerate(batches):
                write_args = dict(device_args, phase="write", sha256=scan["sha256"], size=scan["size"],
                                  signature_data=sig_b64, first_block=batch[0][0] if batch else 0, runs=batch,
                                  data=base64.b64encode(delta.literal_bytes_for(batch, read_block)).decode("ascii"),
                                  commit=number == len(batches) - 1)
                answer = self._call(write_args, task_vars, transfer)
        return self._finish(result, answer.get("records") or [], scan, transfer)

    # ------------------------------------------------------------------ helpers

    def _validate(self, args):
        problems = []
        for key in INTERNAL_ARGS:
            if key in args:
                problems.append("%s is set by the ota_artifact action plugin, not in the task" % key)
        for key in ("src", "dest"):
            if not args.get(key):
                problems.append("%s is required" % key)
        if args.get("dest") and not os.path.isabs(str(args["dest"])):
            problems.append("dest must be an absolute path on the device")
        for key, low, high in (("block_size", delta.MIN_BLOCK_SIZE, delta.MAX_BLOCK_SIZE), ("chunk_size", 4096, 64 * 1024 * 1024)):
            if args.get(key) is None:
                continue
            try:
                value = int(args[key])
            except (TypeError, ValueError):
                problems.append("%s must be an integer" % key)
                continue
            if not low <= value <= high:
                problems.append("%s must be between %d and %d" % (key, low, high))
        return problems

    def _find(self, path, what):
        try:
            return self._find_needle("files", path)
        except AnsibleError as exc:
            raise _Refused("%s %s not found on the controller (%s): nothing was sent" % (what, path, to_text(exc)))

    def _call(self, module_args, task_vars, transfer):
        transfer["sent_bytes"] += len(json.dumps(module_args))
        transfer["calls"] += 1
        res = self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)
        transfer["received_bytes"] += len(json.dumps(res, default=str))
        if res.get("unreachable") or res.get("failed"):
            raise _Refused(res.get("msg") or "ota_artifact failed on the device", **dict(
                (k, v) for k, v in res.items() if k not in ("msg", "failed", "invocation")))
        return res

    def _finish(self, result, records, scan, transfer):
        result.update(changed=any(r["status"] == CHANGED for r in records), records=records,
                      sha256=scan["sha256"], size=scan["size"], transfer=transfer)
        if self._task.diff and records:
            result["diff"] = diff_from_records(records, header="ota_artifact")
        return result


class _Refused(Exception):
    def __init__(self, message, **extra):
        super(_Refused, self).__init__(message)
        self.extra = extra
