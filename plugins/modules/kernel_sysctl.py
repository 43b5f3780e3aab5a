#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kernel_sysctl
short_description: Apply and persist many sysctl settings in one call
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Validates a dict of sysctl keys and values against the running kernel, writes the ones that differ to
    C(/proc/sys), reads them back, and persists all of them in one file.
  - Uses only the Python standard library on the target; no C(sysctl) binary is needed (BusyBox, OpenWrt, Yocto).
  - Before anything is written, every key must exist under C(/proc/sys) and every value must parse;
    otherwise the task fails with one message naming every bad key and value.
  - Keys may use dots or slashes as sysctl(8) allows. A dot inside an interface name may be written as C(/)
    (C(net.ipv4.conf.eth0/1.rp_filter)) or left as a dot, in which case the module finds the interface on the
    filesystem.
  - Values are compared with whitespace normalised and integers as integers (C(0x10) equals C(16)). When the
    kernel shows integers for a key, the new value must be the same number of integers.
  - Keys the kernel refuses, or that are not writable here (containers, network namespaces, one-way switches
    already locked), are reported with status C(unsupported) and do not fail the task unless O(strict=true).
  - C(vm.mmap_rnd_bits) and C(vm.mmap_rnd_compat_bits) have an architecture- and build-dependent maximum the kernel
    does not expose. The module reads C(CONFIG_ARCH_MMAP_RND_*BITS_MIN/MAX) from the kernel config
    (C(/proc/config.gz) or C(/boot/config-<release>)) and clamps to them. Without a readable config, a value the
    kernel refuses with EINVAL is probed downwards to the highest accepted value (refused writes change nothing),
    and the record says it was clamped or rejected.
  - On 32-bit ARM, C(vm.mmap_min_addr) is clamped to 32768 as KSPP and the kernel's Kconfig help require.
  - The persisted file is owned by the module (header, sorted C(key = value) lines), written atomically. When
    O(persist_path) is a C(sysctl.conf), or an existing file the module did not write, only a block between
    C(# BEGIN edgewarden) and C(# END edgewarden) is managed and other lines are kept.
  - On a read-only root filesystem nothing is written; the persisted records say C(read-only filesystem) and
    RV(persisted_to) is null.
options:
  settings:
    description:
      - Sysctl keys and their values. Values may be integers, strings, booleans (C(1)/C(0)) or lists
        (multi-value keys such as C(net.ipv4.tcp_rmem)).
      - A value of V(null) stops managing the key. Its live value is left alone and it is removed from the
        persisted file. Use it to drop a default in a role.
    type: dict
    required: true
  missing:
    description:
      - What to do with keys that do not exist on this kernel.
      - V(fail) fails before anything is written. V(warn) and V(skip) report them with status C(absent) (and
        V(warn) adds a warning); absent keys are never persisted.
      - Applies to every key when O(optional_keys) is not given, else only to the keys listed there.
    type: str
    choices: [fail, warn, skip]
    default: fail
  optional_keys:
    description:
      - Keys that may be missing on some kernels (for example C(kernel.io_uring_disabled) before 6.6).
      - When given, O(missing) applies only to these keys; any other missing key fails the task.
    type: list
    elements: str
  strict:
    description:
      - Fail when any key is C(unsupported) (refused by the kernel, not writable here, or not persisted because
        the filesystem is read-only). The task still applies everything it can first.
    type: bool
    default: false
  persist:
    description:
      - Write the settings to O(persist_path) so they survive a reboot.
      - When V(false) no persisted records are returned and the file is left alone.
    type: bool
    default: true
  persist_path:
    description:
      - File to persist the settings in. Its parent directory is created when missing.
      - V(auto) picks by the init system the module detects on the device (PID 1 and the filesystem), in the
        same call; C(/etc/sysctl.conf) (a managed block) under BusyBox init, whose rcS runs C(sysctl -p),
        else C(/etc/sysctl.d/99-zz-edgewarden.conf), which sorts after distribution files such as
        C(99-sysctl.conf) and systemd's C(99-protect-links.conf) so the hardened value is the one set at boot.
      - The module warns when a file read later at boot sets a managed key to another value.
    type: str
    default: auto
  limits:
    description:
      - Per-key bounds for values with a kernel-dependent range, merged over the built-in ones (from the kernel
        config and the architecture).
      - Each value is an integer (the maximum) or a dict with optional C(min), C(max) and C(action)
        (C(clamp), the default, or C(reject), which fails the task before anything is written).
    type: dict
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode returns the records a real run would, from the same code path minus the writes.
      - Only a real write can reveal a value the kernel refuses (EINVAL) or the maximum found by probing
        C(vm.mmap_rnd_bits) when the kernel config is not readable; check mode reports those keys as C(changed).
  diff_mode:
    support: full
    details:
      - Shows the live and persisted value of each changed key, before and after.
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Running the module again without changes on the target returns the same result and reports no change.
    support: full
notes:
  - Needs root (C(become)) to write C(/proc/sys) and the persisted file.
  - Checks only files read after O(persist_path) at boot for conflicting values; it does not load kernel
    modules, so keys of unloaded modules (for example C(net.bridge.*)) are missing.
seealso:
  - module: edgewarden.hardening.kernel_config_info
  - name: sysctl.d(5)
    description: How systemd-sysctl and procps order and parse sysctl files.
    link: https://www.freedesktop.org/software/systemd/man/latest/sysctl.d.html
"""

EXAMPLES = r"""
- name: Harden ASLR and kernel pointer exposure
  edgewarden.hardening.kernel_sysctl:
    settings:
      kernel.randomize_va_space: 2
      kernel.kptr_restrict: 2
      vm.mmap_rnd_bits: 32
  become: true

- name: Apply settings some kernels lack, skipping those keys where absent
  edgewarden.hardening.kernel_sysctl:
    settings:
      kernel.io_uring_disabled: 2
      dev.tty.legacy_tiocsti: 0
      net.ipv4.conf.eth0/1.rp_filter: 2
    optional_keys:
      - kernel.io_uring_disabled
      - dev.tty.legacy_tiocsti
    missing: skip
  become: true

- name: Manage a block in /etc/sysctl.conf on a BusyBox device
  edgewarden.hardening.kernel_sysctl:
    settings:
      net.ipv4.tcp_syncookies: 1
    persist_path: /etc/sysctl.conf
  become: true

- name: Reject instead of clamping a value above a known maximum
  edgewarden.hardening.kernel_sysctl:
    settings:
      vm.mmap_rnd_bits: 32
    limits:
      vm.mmap_rnd_bits:
        max: 24
        action: reject
  become: true
"""

RETURN = r"""
records:
  description:
    - One record per key and place. Every managed key has a C(live) record and, when O(persist=true), a
      C(persisted) record; keys removed from the persisted file have only a C(persisted) record.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: C(kernel.sysctl/<key>), the key in its canonical sysctl.d spelling.
      type: str
      sample: kernel.sysctl/kernel.kptr_restrict
    before:
      description: Value before the task (null when absent).
      type: str
      sample: "1"
    after:
      description: Value after the task, or that a real run would set in check mode (null when removed).
      type: str
      sample: "2"
    where:
      description: C(live) for /proc/sys, C(persisted) for the file.
      type: str
      sample: live
    status:
      description: C(changed), C(unchanged), C(unsupported), C(absent) or C(error).
      type: str
      sample: changed
    detail:
      description: Why the status is what it is (clamped, refused, read-only filesystem, ...); only when useful.
      type: str
      returned: when there is something to say
      sample: clamped 32 to 24 (max 24, from CONFIG_ARCH_MMAP_RND_BITS_MAX in /proc/config.gz)
summary:
  description: Number of records per status.
  returned: success
  type: dict
  contains:
    changed:
      description: Records that changed (or would, in check mode).
      type: int
    unchanged:
      description: Records already as wanted.
      type: int
    unsupported:
      description: Records the kernel or the filesystem did not allow.
      type: int
    absent:
      description: Records of optional keys this kernel does not have.
      type: int
    error:
      description: Records that failed and fail the task.
      type: int
  sample: {changed: 3, unchanged: 40, unsupported: 1, absent: 2, error: 0}
persisted_to:
  description: The file holding the settings, or null when they could not be persisted or O(persist=false).
  returned: success
  type: str
  sample: /etc/sysctl.d/99-zz-edgewarden.conf
limits:
  description: Bounds in effect per key, with where each came from.
  returned: success
  type: dict
  sample: {vm.mmap_rnd_bits: {min: 28, max: 32, action: clamp, source: CONFIG_ARCH_MMAP_RND_BITS_MIN and CONFIG_ARCH_MMAP_RND_BITS_MAX in /proc/config.gz}}
errors:
  description: Every validation error, when the task failed before changing anything.
  returned: failure
  type: list
  elements: str
  sample: ["kernel.kptr_restrikt: no such key on this kernel (/proc/sys/kernel/kptr_restrikt)"]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import kconfig, sysctl
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import exit_with_records
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.initsys import classify_init, gather_init_evidence

ARGUMENT_SPEC = dict(
    settings=dict(type="dict", required=True),
    missing=dict(type="str", default="fail", choices=["fail", "warn", "skip"]),
    optional_keys=dict(type="list", elements="str", no_log=False),
    strict=dict(type="bool", default=False),
    persist=dict(type="bool", default=True),
    persist_path=dict(type="str", default=sysctl.AUTO),
    limits=dict(type="dict"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    builtin = sysctl.arch_limits(os.uname()[4])
    if sysctl.wants_kconfig_limits(p["settings"], p["limits"]):
        source, text = kconfig.read_config()
        if text is not None:
            builtin.update(sysctl.kconfig_limits(kconfig.parse_kconfig(text), source))
    persist_path = p["persist_path"]
    if persist_path == sysctl.AUTO:
        persist_path = sysctl.choose_persist_path(persist_path, classify_init(gather_init_evidence())["name"])
    result = sysctl.run(
        p["settings"], missing=p["missing"], optional_keys=p["optional_keys"], strict=p["strict"],
        persist=p["persist"], persist_path=persist_path, limits=p["limits"], builtin_limits=builtin,
        check_mode=module.check_mode,
    )
    exit_with_records(module, result, "kernel_sysctl")


if __name__ == "__main__":
    main()
