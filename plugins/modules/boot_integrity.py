#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: boot_integrity
short_description: Report boot integrity posture, check it against a policy, raise lockdown and module signing
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Reads, in one call, Secure Boot state (EFI variable), kernel lockdown mode (C(/sys/kernel/security/lockdown)),
    module signature enforcement (C(/sys/module/module/parameters/sig_enforce), C(kernel.modules_disabled),
    C(module.sig_enforce) on the command line), dm-verity (device-mapper devices in C(/sys/block/dm-*), C(roothash=),
    C(dm-mod.create=)), the bootloader (EFI C(LoaderInfo), U-Boot's device-tree property, loader files) and the root
    filesystem (read-only, overlay).
  - Checks the posture against O(require) and fails the task, naming every violation, when the device does not
    meet it (for example a device class that requires Secure Boot). A state that cannot be read counts as a violation.
  - Can raise kernel lockdown (O(lockdown)) and turn on module signature enforcement (O(module_sig_enforce)) in the
    running kernel. Both are one-way until reboot. Neither is persisted, because the module does not edit bootloader
    configuration; the C(persisted) records say which kernel command-line parameter to add and where for the
    bootloader found, and are C(unchanged) once the command line has it.
  - Writes are never tried on a read-only filesystem (a namespaced or container target's C(/sys)); those controls are
    reported as C(unsupported).
  - Secure Boot and the root filesystem are read by the same code as M(edgewarden.hardening.device_facts).
options:
  require:
    description:
      - Policy the device must meet. Keys, all optional, V(false) or absent meaning no requirement.
      - C(secure_boot) (bool), C(lockdown) (V(none), V(integrity) or V(confidentiality), the minimum),
        C(module_sig_enforce) (bool), C(verity_root) (bool), C(readonly_root) (bool), C(bootloader) (list of allowed
        types, see RV(bootloader.type)).
      - Checked after O(lockdown) and O(module_sig_enforce) are applied (or would be, in check mode).
    type: dict
    default: {}
  lockdown:
    description:
      - Raise kernel lockdown to at least this mode in the running kernel. V(none) leaves it alone.
      - V(integrity) blocks unsigned modules, C(/dev/mem), kexec of unsigned kernels and hibernation until reboot;
        V(confidentiality) also blocks reading kernel memory (for example some tracing and C(/proc/kcore)).
    type: str
    choices: [none, integrity, confidentiality]
    default: none
  module_sig_enforce:
    description:
      - Make the running kernel refuse unsigned modules (C(sig_enforce) is enable-only). V(false) leaves it alone.
    type: bool
    default: false
  strict:
    description:
      - Fail when a requested control is C(unsupported), live or persisted (for example lockdown asked for but not on
        the kernel command line).
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode returns the records and policy result a real run would, minus a write the kernel refuses at run
        time (then the real run reports C(unsupported)).
  diff_mode:
    support: full
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Running the module again reports no change once the controls are raised.
    support: full
notes:
  - Needs root to write C(/sys/kernel/security/lockdown) and C(sig_enforce).
  - dm-verity targets are recognised by their C(CRYPT-VERITY-) UUID (cryptsetup, systemd-veritysetup) or by a
    C(dm-mod.create=) table; sysfs does not show a device-mapper target's type.
seealso:
  - module: edgewarden.hardening.device_facts
  - name: kernel_lockdown(7)
    description: What each lockdown mode restricts.
    link: https://man7.org/linux/man-pages/man7/kernel_lockdown.7.html
"""

EXAMPLES = r"""
- name: Report the boot integrity posture
  edgewarden.hardening.boot_integrity:
  register: boot

- name: Medical devices must boot with Secure Boot, a verified root and signed modules only
  edgewarden.hardening.boot_integrity:
    require:
      secure_boot: true
      verity_root: true
      module_sig_enforce: true
      bootloader: [systemd-boot, grub]
  become: true

- name: Raise lockdown and module signing now, until the image carries them on its command line
  edgewarden.hardening.boot_integrity:
    lockdown: integrity
    module_sig_enforce: true
  become: true
"""

RETURN = r"""
secure_boot:
  description: Secure Boot state from the EFI variable.
  returned: success
  type: dict
  sample: {state: disabled, reason: SecureBoot EFI variable is 0}
lockdown:
  description: Kernel lockdown mode (V(none), V(integrity), V(confidentiality) or V(unknown)) and the modes offered.
  returned: success
  type: dict
  sample: {mode: none, available: [none, integrity, confidentiality], source: /sys/kernel/security/lockdown, reason: null}
module_signatures:
  description: Whether unsigned modules are refused now (C(enforced)), and the inputs to that answer.
  returned: success
  type: dict
  sample: {sig_enforce: false, modules_disabled: false, cmdline: null, enforced: false,
           reason: "/sys/module/module/parameters/sig_enforce is N: unsigned modules load (tainting the kernel)"}
verity:
  description: Device-mapper devices (with C(verity) per device), the one behind the root filesystem, and related
    command-line parameters.
  returned: success
  type: dict
  sample: {devices: [], root_device: null, root_on_verity: false, hints: {root: /dev/vda}, reason: "root is on /dev/vda, not a device-mapper device"}
bootloader:
  description: The bootloader, why it was recognised, and where kernel parameters persist for it.
  returned: success
  type: dict
  contains:
    type:
      description:
        - V(grub), V(systemd-boot), V(extlinux), V(u-boot), V(rpi-firmware), another name from EFI C(LoaderInfo),
          V(efi-unknown) or V(unknown).
      type: str
    reason:
      description: The evidence that decided it.
      type: str
    cmdline_hint:
      description: Where a kernel command-line parameter persists for this bootloader (null when unknown).
      type: str
    evidence:
      description: What was read (EFI, C(LoaderInfo), U-Boot device-tree property, loader files found).
      type: dict
  sample: {type: grub, reason: /boot/grub/grub.cfg exists, cmdline_hint: "GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub (or the image's grub.cfg)"}
root_fs:
  description: The root filesystem, as in M(edgewarden.hardening.device_facts) (C(readonly), C(fstype), C(overlay), C(device)).
  returned: success
  type: dict
  sample: {readonly: false, fstype: ext4, overlay: false, device: /dev/vda}
cmdline:
  description: The kernel command line as a dict (bare flags are V(true)).
  returned: success
  type: dict
violations:
  description: One sentence per unmet requirement of O(require) (the task fails when there are any).
  returned: always
  type: list
  elements: str
  sample: ["Secure Boot is required but is disabled (SecureBoot EFI variable is 0)"]
requirements:
  description: The policy that was checked (O(require)).
  returned: success
  type: dict
records:
  description: Change records of O(lockdown) and O(module_sig_enforce), C(live) and C(persisted) (the command line).
  returned: success
  type: list
  elements: dict
  sample:
    - {id: integrity.boot/lockdown, before: none, after: integrity, where: live, status: changed, detail: "one-way: stays until reboot"}
summary:
  description: Number of records per status.
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import integrity
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import exit_with_records

ARGUMENT_SPEC = dict(
    require=dict(type="dict", default={}),
    lockdown=dict(type="str", default="none", choices=list(integrity.LOCKDOWN_LEVELS)),
    module_sig_enforce=dict(type="bool", default=False),
    strict=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    result = integrity.run(require=p["require"], lockdown=p["lockdown"], module_sig_enforce=p["module_sig_enforce"],
                           strict=p["strict"], check_mode=module.check_mode)
    exit_with_records(module, result, "boot_integrity")


if __name__ == "__main__":
    main()
