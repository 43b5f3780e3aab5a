#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: suid_inventory
short_description: Inventory SUID/SGID and world-writable files under given paths, optionally strip unlisted SUID bits
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Walks only the directories it is given (never the whole filesystem unless told to) and lists regular files with the
    SUID or SGID bit (under O(suid_paths)) and world-writable regular files and world-writable directories without the
    sticky bit (under O(world_writable_paths)).
  - One walk serves both lists. Roots inside other roots and symlinked roots (C(/bin) on merged-C(/usr) systems) are
    walked once. The walk stays on each root's filesystem (O(xdev)), never follows symlinks, skips O(exclude), and
    stops after O(max_entries) entries with a warning, so a slow device or flash storage is not scanned without bound.
  - Each finding says whether its path is on the allowlist (O(suid_allowlist), O(world_writable_allowlist)).
  - With O(remove_unlisted=true), the SUID and SGID bits of files not on O(suid_allowlist) are removed (C(chmod u-s,g-s)).
    A file on a read-only filesystem is reported C(unsupported) and left alone; a file that changed since the scan is
    left alone and reported as an C(error).
  - World-writable findings are reported only; nothing changes them.
options:
  suid_paths:
    description: Directories to inventory for SUID/SGID files.
    type: list
    elements: path
    default: [/bin, /sbin, /usr/bin, /usr/sbin, /usr/lib, /usr/libexec, /usr/local]
  world_writable_paths:
    description: Directories to inventory for world-writable files and non-sticky world-writable directories.
    type: list
    elements: path
    default: [/etc, /usr, /opt]
  suid_allowlist:
    description: Paths (or shell-style globs, where C(*) also matches C(/)) of SUID/SGID files that may keep their bits.
    type: list
    elements: str
    default: []
  world_writable_allowlist:
    description: Paths or globs of world-writable files and directories that are expected.
    type: list
    elements: str
    default: []
  remove_unlisted:
    description: Remove the SUID and SGID bits of every file found that is not on O(suid_allowlist).
    type: bool
    default: false
  exclude:
    description: Paths or globs not to report or descend into.
    type: list
    elements: str
    default: []
  xdev:
    description: Stay on the filesystem of each root (a root listed explicitly is always walked).
    type: bool
    default: true
  max_entries:
    description: Stop after this many directory entries; the result then says C(truncated).
    type: int
    default: 200000
  strict:
    description: Fail when a removal is C(unsupported) (read-only filesystem).
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode scans and returns the removals a real run would make.
  diff_mode:
    support: full
    details:
      - Shows the mode of each file whose bits are removed, before and after.
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Running the module again reports no change once the bits are removed.
    support: full
notes:
  - Needs root to see every directory and to change modes.
  - Files are found with C(os.scandir) and C(lstat); no C(find) binary is needed (BusyBox C(find) lacks several options).
"""

EXAMPLES = r"""
- name: Inventory SUID binaries and world-writable files in the usual places
  edgewarden.hardening.suid_inventory:
  register: perms

- name: Keep only the SUID binaries the device needs
  edgewarden.hardening.suid_inventory:
    suid_allowlist:
      - /usr/bin/su
      - /usr/bin/passwd
      - /usr/lib/dbus-1.0/dbus-daemon-launch-helper
    remove_unlisted: true
  become: true
"""

RETURN = r"""
suid:
  description: SUID/SGID regular files found, with C(mode), C(uid), C(gid), C(kinds) (C(suid), C(sgid)) and C(allowed).
  returned: success
  type: list
  elements: dict
  sample: [{path: /usr/bin/passwd, mode: "4755", uid: 0, gid: 0, type: file, kinds: [suid], allowed: true}]
world_writable:
  description: World-writable files and non-sticky world-writable directories found, with C(allowed).
  returned: success
  type: list
  elements: dict
  sample: [{path: /etc/app.conf, mode: "0666", uid: 0, gid: 0, type: file, kinds: [world_writable], allowed: false}]
unlisted_suid:
  description: Paths of SUID/SGID files not on the allowlist (their bits are removed with O(remove_unlisted=true)).
  returned: success
  type: list
  elements: str
unlisted_world_writable:
  description: Paths of world-writable findings not on the allowlist.
  returned: success
  type: list
  elements: str
records:
  description: One record per removal (before and after are octal modes); empty without O(remove_unlisted).
  returned: success
  type: list
  elements: dict
  sample: [{id: integrity.suid//usr/bin/chfn, before: "4755", after: "0755", where: persisted, status: changed,
            detail: "suid bit removed: not in the allowlist"}]
summary:
  description: Number of records per status.
  returned: success
  type: dict
scan:
  description: The walk - C(roots) walked, C(missing_roots), C(entries) seen, C(truncated), C(seconds).
  returned: success
  type: dict
  sample: {roots: [/usr, /etc], missing_roots: [/opt], entries: 10422, truncated: false, seconds: 0.41}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import permscan
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import exit_with_records

ARGUMENT_SPEC = dict(
    suid_paths=dict(type="list", elements="path", default=["/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/libexec", "/usr/local"]),
    world_writable_paths=dict(type="list", elements="path", default=["/etc", "/usr", "/opt"]),
    suid_allowlist=dict(type="list", elements="str", default=[]),
    world_writable_allowlist=dict(type="list", elements="str", default=[]),
    remove_unlisted=dict(type="bool", default=False),
    exclude=dict(type="list", elements="str", default=[]),
    xdev=dict(type="bool", default=True),
    max_entries=dict(type="int", default=permscan.DEFAULT_MAX_ENTRIES),
    strict=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    result = permscan.run(p["suid_paths"], p["world_writable_paths"], p["suid_allowlist"], p["world_writable_allowlist"],
                          p["remove_unlisted"], p["exclude"], p["xdev"], p["max_entries"], p["strict"], module.check_mode)
    exit_with_records(module, result, "suid_inventory")


if __name__ == "__main__":
    main()
