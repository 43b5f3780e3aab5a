#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ota_artifact
short_description: Deliver a signed update artifact to a device, sending only the changed blocks
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Delivers the file O(src) from the controller to O(dest) on the device and installs it only when its detached
    Ed25519 signature O(signature) verifies against a public key pinned on the device (O(public_key)).
    Unsigned, wrongly signed or tampered artifacts are refused with a clear error and nothing on the device changes.
  - When an older version is present (O(basis), by default O(dest) itself), the device hashes it per block
    (O(block_size)) and only the blocks that differ travel, as module arguments over the same SSH connection
    (through the bastion when there is one). No rsync, openssl or scp is needed on the device.
  - The new file is rebuilt beside O(dest), then its size, SHA-256 and signature are checked on the device, then it is
    renamed over O(dest) (atomic on the same filesystem). A failure at any step removes the partial file.
  - Signature checking runs on the device in pure Python (RFC 8032 Ed25519, verification only). By default the
    action plugin also checks the signature on the controller against the key it read from the device, so a bad
    artifact is refused before anything is sent, and check mode predicts the refusal.
  - The result says how many bytes were sent (RV(transfer)).
  - The module is driven by its action plugin in two or more calls; O(phase) and the other internal options are
    set by the action plugin.
options:
  src:
    description:
      - The artifact on the controller (searched like the C(copy) module's O(src), in the role's C(files/) first).
    type: path
    required: true
  signature:
    description:
      - Detached Ed25519 signature of O(src) on the controller (64 bytes raw, base64 or hex). Defaults to O(src)
        with C(.sig) appended.
    type: path
  dest:
    description:
      - Where the artifact is installed on the device. Its directory must exist and be writable; it must not be on
        a read-only filesystem.
    type: path
    required: true
  basis:
    description:
      - File on the device whose blocks can be reused, such as the other slot of an A/B pair. Defaults to O(dest).
    type: path
  public_key:
    description:
      - Path on the device of the pinned Ed25519 public key (PEM C(PUBLIC KEY), or 32 bytes raw, base64 or hex).
      - The key is installed with the device image or a separate, trusted step; this module never installs it.
    type: path
    default: /etc/edgewarden/ota-signing.pub
  mode:
    description:
      - Permissions of the installed file, as an octal string. By default those of the file it replaces, or C(0644).
    type: str
  block_size:
    description:
      - Block size of the delta in bytes (4096 to 16777216). Smaller blocks send less for scattered changes but
        return a longer block list from the device (16 bytes of hash per block).
    type: int
    default: 65536
  chunk_size:
    description:
      - Most literal bytes sent in one module call. Larger transfers take several calls; each call holds its data
        in the device's memory (about twice the chunk, base64 and raw).
    type: int
    default: 1048576
  precheck:
    description:
      - Verify the signature on the controller with the key read from the device before sending anything. The
        device always verifies again before installing; this only saves the transfer of a bad artifact.
    type: bool
    default: true
  phase:
    description:
      - Internal, set by the action plugin. V(inspect) reads the device state; V(write) appends one batch of blocks
        and, with O(commit), verifies and installs.
    type: str
    choices: [inspect, write]
    default: inspect
  sha256:
    description: Internal, set by the action plugin. SHA-256 of the artifact.
    type: str
  size:
    description: Internal, set by the action plugin. Size of the artifact in bytes.
    type: int
  signature_data:
    description: Internal, set by the action plugin. The signature, base64.
    type: str
  first_block:
    description: Internal, set by the action plugin. Index of the first block of this batch.
    type: int
    default: 0
  runs:
    description:
      - Internal, set by the action plugin. The batch as C([new_start, count, basis_start]) runs; a basis_start of
        C(-1) means the blocks are in O(data).
    type: list
    elements: raw
  data:
    description: Internal, set by the action plugin. Literal bytes of this batch, base64.
    type: str
  commit:
    description: Internal, set by the action plugin. This batch is the last; verify and install.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details:
      - Check mode reads the device (one call), plans the transfer and reports the bytes it would send. With
        O(precheck=true) it also predicts a refused signature; with O(precheck=false) a bad signature shows only in a
        real run.
  diff_mode:
    support: partial
    details:
      - Shows the SHA-256 of O(dest) before and after; artifacts are binary.
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Running the module again with the same artifact sends nothing and reports no change.
    support: full
notes:
  - Needs write access to the directory of O(dest), and free space there for one more copy of the artifact.
  - Ed25519 was chosen over RSA because device Python has neither, openssl is often absent, and Ed25519 verification
    has no padding to parse (hand-written RSA PKCS#1 v1.5 checks are a classic source of forgeries); keys are 32 bytes
    and signatures 64. See C(docs/integrity.md) in the collection.
  - Blocks are matched at multiples of O(block_size); data shifted by an insertion is sent again after that point.
seealso:
  - name: RFC 8032, Edwards-Curve Digital Signature Algorithm (EdDSA)
    description: The signature scheme verified on the device.
    link: https://www.rfc-editor.org/rfc/rfc8032
"""

EXAMPLES = r"""
- name: Deliver firmware 2.4.1, signed by the release key pinned in the device image
  edgewarden.hardening.ota_artifact:
    src: build/firmware-2.4.1.img
    signature: build/firmware-2.4.1.img.sig
    dest: /data/firmware.img
  register: delivery
  become: true

- name: Print what travelled
  ansible.builtin.debug:
    msg: "sent {{ delivery.transfer.sent_bytes }} of {{ delivery.transfer.size }} bytes"

- name: Fill the inactive slot of an A/B pair, reusing the blocks of the active one
  edgewarden.hardening.ota_artifact:
    src: build/rootfs-2.4.1.squashfs
    dest: /data/slot-b.squashfs
    basis: /data/slot-a.squashfs
    public_key: /etc/keys/release.pub
    block_size: 16384
  become: true
"""

RETURN = r"""
records:
  description: One change record for O(dest); before and after are SHA-256 digests.
  returned: success
  type: list
  elements: dict
  sample:
    - id: integrity.ota//data/firmware.img
      before: 9f2c...e1
      after: 51b0...7a
      where: persisted
      status: changed
      detail: installed (signature and sha256 verified)
sha256:
  description: SHA-256 of the installed artifact.
  returned: success
  type: str
  sample: 51b0c0de1e0b3f2a8f5c8e63d1f6e6d8bc6e1f5b3c3d9c5c0b6f2a8e1c0d7a
size:
  description: Size of the artifact in bytes.
  returned: success
  type: int
  sample: 4194304
transfer:
  description: What the delivery sent or, in check mode, would send.
  returned: success
  type: dict
  contains:
    size:
      description: Size of the artifact.
      type: int
    block_size:
      description: Block size used.
      type: int
    blocks:
      description: Blocks of the artifact.
      type: int
    blocks_copied:
      description: Blocks reused from the basis on the device.
      type: int
    blocks_sent:
      description: Blocks sent from the controller.
      type: int
    literal_bytes:
      description: Bytes of artifact data sent.
      type: int
    sent_bytes:
      description:
        - Bytes of module arguments the action plugin shipped to the device for this delivery, measured as their JSON
          size (base64 data, block runs, signature). The module code that ansible-core sends with every call is not
          counted.
      type: int
    received_bytes:
      description: Bytes of the device's answers (mostly the block hashes), measured as their JSON size.
      type: int
    calls:
      description: Module calls made (one inspect, then write batches).
      type: int
  sample: {size: 4194304, block_size: 65536, blocks: 64, blocks_copied: 62, blocks_sent: 2, literal_bytes: 131072,
           sent_bytes: 175220, received_bytes: 2702, calls: 2}
device:
  description: What the inspect call found on the device (pinned key, O(dest), O(basis), directory).
  returned: always
  type: dict
  sample: {public_key: {path: /etc/edgewarden/ota-signing.pub, valid: true}, up_to_date: false}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import ota
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import diff_from_records

ARGUMENT_SPEC = dict(
    src=dict(type="path", required=True),
    signature=dict(type="path"),
    dest=dict(type="path", required=True),
    basis=dict(type="path"),
    public_key=dict(type="path", default=ota.DEFAULT_PUBLIC_KEY, no_log=False),
    mode=dict(type="str"),
    block_size=dict(type="int", default=65536),
    chunk_size=dict(type="int", default=1048576),
    precheck=dict(type="bool", default=True),
    phase=dict(type="str", default="inspect", choices=["inspect", "write"]),
    sha256=dict(type="str"),
    size=dict(type="int"),
    signature_data=dict(type="str"),
    first_block=dict(type="int", default=0),
    runs=dict(type="list", elements="raw"),
    # no_log: keeps the base64 blocks out of syslog and out of the echoed invocation (2.19/2.20)
    data=dict(type="str", no_log=True),
    commit=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    if p["phase"] == "inspect":
        try:
            found = ota.inspect(p["dest"], p["basis"], p["public_key"], p["block_size"], p["sha256"], p["signature_data"])
        except ota.OtaError as exc:
            module.fail_json(msg=str(exc))
        module.exit_json(changed=False, device=found)
    if module.check_mode:
        # the action plugin never writes in check mode; a direct call must not either
        module.exit_json(changed=True, msg="check mode: nothing written")
    try:
        result = ota.write(dict(p))
    except ota.OtaError as exc:
        module.fail_json(msg=str(exc))
    # ansible-core before 2.21 echoes every argument back in ``invocation``: not the batch again
    module.params["runs"] = None
    if module._diff and result.get("records"):
        result["diff"] = diff_from_records(result["records"], header="ota_artifact")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
