#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kernel_module_blocklist
short_description: Block kernel modules in one owned modprobe.d file and unload them when loaded and unused
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Writes O(path), a file owned entirely by this module, atomically, with two lines per module -
    C(install NAME /bin/false), so C(modprobe) refuses to load it, also when another module depends on it, and
    C(blacklist NAME), so it is not autoloaded through its aliases. kmod's and BusyBox's C(modprobe) both read
    C(/etc/modprobe.d/*.conf).
  - With O(unload=true), listed modules that are loaded and unused (reference count 0, or held only by other
    listed modules, which are unloaded first) are unloaded with C(rmmod), or C(modprobe -r) when C(rmmod) is
    missing. Modules in use stay loaded and are reported in RV(in_use) with what holds them, and in one warning;
    they are blocked from the next boot on.
  - Unloading is skipped, and reported, when neither tool exists or the process lacks C(CAP_SYS_MODULE)
    (containers, namespaced hosts sharing a kernel).
  - Modules built into the kernel (listed in C(/lib/modules/RELEASE/modules.builtin)) cannot be blocked this way;
    they are reported with status C(unsupported).
  - Module names are compared with C(-) and C(_) as equal, as C(modprobe) does.
  - An empty O(modules) list removes the file.
options:
  modules:
    description:
      - Names of the modules to block.
    type: list
    elements: str
    required: true
  path:
    description:
      - The file this module owns. Its parent directory is created when missing.
    type: path
    default: /etc/modprobe.d/edgewarden-blocklist.conf
  install_command:
    description:
      - The command C(modprobe) runs instead of loading a blocked module. It must fail, so that modules depending on
        a blocked one fail to load too.
    type: str
    default: /bin/false
  unload:
    description:
      - Unload listed modules that are loaded and unused.
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode returns the records a real run would. Only a real unload can reveal a module that became busy
        meanwhile; it is then reported as C(unsupported) with the tool's error.
  diff_mode:
    support: full
    details:
      - Shows the owned file before and after.
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Running the module again without changes on the target returns the same result and reports no change.
    support: full
notes:
  - Needs root (C(become)).
  - On a read-only root filesystem nothing is written and the persisted records say C(read-only filesystem).
  - Initramfs images copy C(/etc/modprobe.d) when they are built; rebuild the initramfs for a module that loads
    from it.
seealso:
  - name: modprobe.d(5)
    description: The install and blacklist commands.
    link: https://man7.org/linux/man-pages/man5/modprobe.d.5.html
"""

EXAMPLES = r"""
- name: Block uncommon network protocols and filesystems, unloading them when unused
  edgewarden.hardening.kernel_module_blocklist:
    modules:
      - dccp
      - sctp
      - rds
      - tipc
      - hfsplus
      - udf
  become: true

- name: Block USB storage without unloading it now (a stick is mounted)
  edgewarden.hardening.kernel_module_blocklist:
    modules: [usb_storage, uas]
    unload: false
  become: true

- name: Remove the blocklist
  edgewarden.hardening.kernel_module_blocklist:
    modules: []
  become: true
"""

RETURN = r"""
records:
  description:
    - C(kernel.module_blocklist/NAME) (where C(persisted)) per module in the file, before and after (C(blocked),
      C(partly blocked) or null); C(kernel.module/NAME) (where C(live)) per listed module that is loaded or
      built in (C(loaded), C(not loaded), C(built-in)).
  returned: always
  type: list
  elements: dict
  sample:
    - {id: kernel.module_blocklist/dccp, before: null, after: blocked, where: persisted, status: changed}
    - {id: kernel.module/dccp, before: loaded, after: loaded, where: live, status: unsupported,
       detail: "in use: used by dccp_ipv4; blocked from the next boot on"}
path:
  description: The owned file, null when it was removed (or would be).
  returned: always
  type: str
  sample: /etc/modprobe.d/edgewarden-blocklist.conf
unloaded:
  description: Modules unloaded (in check mode, that a real run would unload), in order.
  returned: always
  type: list
  elements: str
  sample: [dccp_ipv4, dccp]
in_use:
  description: Listed modules that stay loaded, and why.
  returned: always
  type: list
  elements: dict
  sample: [{name: bluetooth, reason: "in use: used by btusb", refcount: 1, holders: [btusb]}]
builtin:
  description: Listed modules that are built into the kernel.
  returned: always
  type: list
  elements: str
  sample: [vfat]
builtin_source:
  description:
    - The C(modules.builtin) file read, or null when the running kernel has none (no C(/lib/modules/RELEASE), as
      in a container sharing its host's kernel); built-in modules are then not reported.
  returned: always
  type: str
  sample: /lib/modules/6.1.0-28-amd64/modules.builtin
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import kmod

ARGUMENT_SPEC = dict(
    modules=dict(type="list", elements="str", required=True),
    path=dict(type="path", default=kmod.DEFAULT_PATH),
    install_command=dict(type="str", default=kmod.DEFAULT_INSTALL_COMMAND),
    unload=dict(type="bool", default=True),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    tools = {"rmmod": module.get_bin_path("rmmod"), "modprobe": module.get_bin_path("modprobe")}

    def runner(argv):
        return module.run_command(argv, environ_update={"LC_ALL": "C", "LANG": "C"})

    result = kmod.run(p["modules"], path=p["path"], install_command=p["install_command"], unload=p["unload"],
                      tools=tools, runner=runner, check_mode=module.check_mode)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if result.get("in_use"):  # absent when the input was refused
        module.warn(kmod.in_use_summary(result["in_use"]))
    diff = result.pop("diff", None)
    if module._diff and diff and diff["before"] != diff["after"]:
        result["diff"] = diff
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
