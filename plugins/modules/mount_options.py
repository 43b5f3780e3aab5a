#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mount_options
short_description: Apply nodev, nosuid and noexec to mount points live and persist them in fstab
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Sets the per-mount flags C(nodev)/C(dev), C(nosuid)/C(suid) and C(noexec)/C(exec) of several mount points in one
    call (typically C(/tmp), C(/dev/shm), C(/var/tmp)), live and in C(/etc/fstab).
  - Live, each mount point is remounted with C(mount -o remount,bind,...) and every per-mount flag it already has
    (C(ro)/C(rw), atime flags), which changes only that mount point and works with util-linux and BusyBox C(mount).
    The result is read back from C(/proc/self/mountinfo).
  - A directory that is not a mount point is reported C(unsupported), or, with C(if_not_mounted=bind), bind-mounted
    onto itself first so it can carry its own flags (the usual way to harden C(/var/tmp) on the root filesystem).
    A directory that does not exist is reported C(absent) and never created.
  - Persisted, existing fstab lines for the mount point get their options changed in place; mount points without a
    line get one (tmpfs with its size and mode, or a self-bind) in a block between C(# BEGIN edgewarden mount_options)
    and C(# END edgewarden mount_options). The file is written atomically.
  - Nothing is written where it would not be used or could not last, each reported as C(unsupported) with the reason
    and a warning, without failing unless O(strict=true) - C(/etc/fstab) on a read-only filesystem; a root overlay whose upper
    layer is tmpfs; with O(persist=auto), an init that reads no fstab at boot (only systemd, OpenRC, SysV init, and
    BusyBox init whose startup scripts run C(mount -a) do); a bind line for BusyBox C(mount), which ignores options on
    bind mounts.
options:
  mounts:
    description: Mount points and the flags they must have.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: The directory (symlinks are resolved; two paths resolving to one directory must ask the same).
        type: path
        required: true
      options:
        description: Flags to set, from C(nodev), C(dev), C(nosuid), C(suid), C(noexec), C(exec). Flags not listed are left alone.
        type: list
        elements: str
        required: true
      if_not_mounted:
        description: What to do when O(mounts[].path) is not a mount point - V(skip) reports it, V(bind) bind-mounts it onto itself.
        type: str
        choices: [skip, bind]
        default: skip
  persist:
    description:
      - V(auto) persists in O(fstab_path) when the init system reads it at boot (decided on the device, in the same call).
      - V(fstab) always persists there (the image mounts from fstab some other way).
      - V(none) applies the flags live only.
    type: str
    choices: [auto, fstab, none]
    default: auto
  fstab_path:
    description: The fstab file (a symlink is followed and the file it points to is replaced).
    type: path
    default: /etc/fstab
  strict:
    description: Fail when any record is C(unsupported) (not a mount point, or not persisted).
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode returns the records a real run would. Only a remount the kernel refuses shows up in the real run alone
        (as C(error)).
  diff_mode:
    support: full
    details:
      - Shows each changed mount point's flags, live and persisted, before and after.
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Running the module again without changes on the target reports no change.
    support: full
notes:
  - Needs root (C(become)). Remounting needs C(CAP_SYS_ADMIN) in the mount namespace.
  - fstab options apply when fstab mounts the filesystem. A filesystem mounted before that (by an initramfs or by
    the init system itself) keeps its options at boot unless the init system remounts it.
seealso:
  - name: mount(8)
    description: Per-mount flags and bind remounts.
    link: https://man7.org/linux/man-pages/man8/mount.8.html
"""

EXAMPLES = r"""
- name: Harden the shared temporary directories
  edgewarden.hardening.mount_options:
    mounts:
      - path: /tmp
        options: [nodev, nosuid, noexec]
      - path: /dev/shm
        options: [nodev, nosuid, noexec]
      - path: /var/tmp
        options: [nodev, nosuid, noexec]
        if_not_mounted: bind
  become: true

- name: A kiosk whose browser needs exec on /dev/shm, live only
  edgewarden.hardening.mount_options:
    mounts:
      - path: /dev/shm
        options: [nodev, nosuid, exec]
    persist: none
  become: true
"""

RETURN = r"""
records:
  description: One C(live) and, when persisting, one C(persisted) record per mount point; before and after list the flags asked for.
  returned: success
  type: list
  elements: dict
  sample:
    - {id: integrity.mount//tmp, before: "dev,suid,exec", after: "nodev,nosuid,noexec", where: live, status: changed}
    - {id: integrity.mount//tmp, before: null, after: "nodev,nosuid,noexec", where: persisted, status: unsupported,
       detail: "not persisted: /etc/fstab is on a read-only filesystem"}
summary:
  description: Number of records per status.
  returned: success
  type: dict
  sample: {changed: 3, unchanged: 0, unsupported: 3, absent: 0, error: 0}
persisted_to:
  description: The fstab file holding the flags, or null when nothing is persisted.
  returned: success
  type: str
  sample: /etc/fstab
fstab_reader:
  description: Whether something applies fstab at boot on this device (C(reads_fstab)) and why (C(reason)).
  returned: success
  type: dict
  sample: {reads_fstab: true, reason: "BusyBox init runs mount -a in /etc/init.d/rcS"}
root_readonly:
  description: Whether the root filesystem is read-only.
  returned: success
  type: bool
overlay_volatile:
  description: True when the root is an overlay whose upper layer is tmpfs (changes lost at reboot), null when unknown.
  returned: success
  type: bool
errors:
  description: Every validation error, when the task failed before changing anything.
  returned: failure
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import mounts
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import exit_with_records
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.initsys import classify_init, gather_init_evidence

ARGUMENT_SPEC = dict(
    mounts=dict(type="list", elements="dict", required=True, options=dict(
        path=dict(type="path", required=True),
        options=dict(type="list", elements="str", required=True),
        if_not_mounted=dict(type="str", default="skip", choices=list(mounts.IF_NOT_MOUNTED)),
    )),
    persist=dict(type="str", default="auto", choices=list(mounts.PERSIST_CHOICES)),
    fstab_path=dict(type="path", default=mounts.FSTAB),
    strict=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params

    def runner(argv):
        # looked up only when something is remounted; sbin may be missing from a non-login PATH
        binary = module.get_bin_path(argv[0], opt_dirs=["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        if binary is None:
            return 127, "", "%s not found on the device" % argv[0]
        return module.run_command([binary] + argv[1:])

    init_name = classify_init(gather_init_evidence())["name"]
    result = mounts.run(p["mounts"], persist=p["persist"], strict=p["strict"], fstab_path=p["fstab_path"],
                        init_name=init_name, check_mode=module.check_mode, runner=runner)
    exit_with_records(module, result, "mount_options")


if __name__ == "__main__":
    main()
