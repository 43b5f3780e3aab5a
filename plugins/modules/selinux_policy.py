#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: selinux_policy
short_description: SELinux mode, booleans, file contexts and policy modules built on the controller, in one call
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Sets the SELinux mode (live through selinuxfs and persisted in C(/etc/selinux/config)), booleans
    (C(setsebool -P)), local file contexts (C(semanage fcontext), then C(restorecon)) and policy modules
    (C(semodule -i)), all in one call.
  - Policy modules are given as sources on the controller. The action plugin of the same name compiles C(.te)
    sources with C(checkmodule -M -m) and C(semodule_package) (with the optional C(.fc) file contexts), and runs
    C(secilc) on C(.cil) sources, before anything reaches the device; a compiler error fails the task with the
    compiler's message and changes nothing. The device then gets the built package and C(semodule -i) checks it
    against the device's policy and installs it in one transaction.
  - A C(.cil) module refers to types of the device's policy, which the controller does not have, so on the
    controller C(secilc) checks its syntax and what resolves without the base policy; names are resolved by
    C(semodule -i) on the device. C(.te) sources are compiled completely on the controller.
  - When SELinux is disabled in the running kernel, only the mode can be set; it is written to the config and
    RV(reboot_required) says a reboot (and, on Debian, C(selinux=1 security=selinux) on the kernel command line)
    is needed.
  - Only modules this collection installed (recorded in C(/var/lib/edgewarden/selinux.json)) are ever removed.
options:
  mode:
    description:
      - C(enforcing) or C(permissive), live and at boot. Omitted - the mode is left alone.
    type: str
    choices: [enforcing, permissive]
  booleans:
    description:
      - Booleans and their wanted value, set live and persistently.
    type: dict
    default: {}
  fcontexts:
    description:
      - Local file context rules.
    type: list
    elements: dict
    default: []
    suboptions:
      target:
        description: Path regular expression, as for C(semanage fcontext).
        type: str
        required: true
      setype:
        description: The SELinux type of matching files (required with O(fcontexts[].state=present)).
        type: str
      ftype:
        description: File type the rule applies to (C(a) all, C(f) regular files, C(d) directories, ...).
        type: str
        default: a
        choices: [a, f, d, c, b, s, l, p]
      state:
        description: V(absent) deletes the local rule.
        type: str
        default: present
        choices: [present, absent]
  modules:
    description:
      - Policy modules to install or remove.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Module name (the C(module) statement of a C(.te), the file name of a C(.cil)).
        type: str
        required: true
      src:
        description: Source on the controller, C(.te) or C(.cil); built by the action plugin.
        type: str
      fc:
        description: File contexts (C(.fc)) on the controller to package with a C(.te) source.
        type: str
      priority:
        description: C(semodule) priority.
        type: int
        default: 400
      state:
        description: V(absent) removes a module this collection installed.
        type: str
        default: present
        choices: [present, absent]
      package:
        description: Internal, set by the action plugin - the built package, base64.
        type: str
      package_format:
        description: Internal, set by the action plugin - C(pp) or C(cil).
        type: str
        choices: [pp, cil]
      validation:
        description: Internal, set by the action plugin - how far the controller could check the source.
        type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  action:
    description: Has an action plugin of the same name that runs on the controller first.
    support: full
    details: Policy modules are built on the controller before the device is touched.
  check_mode:
    support: full
    details:
      - Builds and checks the modules on the controller and returns the records a real run would. Whether
        C(semodule -i) accepts a module against the device's policy is only known in a real run.
  diff_mode:
    support: full
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Running the module again without changes on the target returns the same result and reports no change.
    support: full
notes:
  - Needs root and, for booleans, file contexts and modules, the SELinux userland (Debian - C(policycoreutils), and
    C(policycoreutils-python-utils) for C(semanage)).
  - The controller needs C(checkmodule) (Debian package C(checkpolicy)), C(semodule_package)
    (C(semodule-utils)) and C(secilc) (C(secilc)) when O(modules) are given.
  - Not exercised on a live SELinux kernel in this collection's lab; the build and the planning are tested.
seealso:
  - module: edgewarden.hardening.apparmor_profile
"""

EXAMPLES = r"""
- name: Enforce SELinux with a local module for the camera daemon
  edgewarden.hardening.selinux_policy:
    mode: enforcing
    booleans:
      httpd_can_network_connect: false
    fcontexts:
      - target: /srv/camd(/.*)?
        setype: camd_data_t
    modules:
      - name: camd
        src: policy/camd.te
        fc: policy/camd.fc
  become: true
  register: selinux

- name: Tell the operator a reboot is needed
  ansible.builtin.debug:
    msg: "{{ selinux.reboot_reason }}"
  when: selinux.reboot_required
"""

RETURN = r"""
records:
  description: One record per control - C(selinux.mode) (live and persisted), C(selinux.boolean/<name>) (live and
    persisted), C(selinux.fcontext/<target>), C(selinux.module/<name>) (digest of the installed package).
  returned: always
  type: list
  elements: dict
  sample: [{id: selinux.mode, before: disabled, after: enforcing, where: live, status: unsupported}]
operations:
  description: What the run did (in check mode, would do), in order.
  returned: success
  type: list
  elements: str
  sample: ["set SELINUX=enforcing in /etc/selinux/config", "semodule -X 400 -i camd.pp (sha256:0123456789abcdef)"]
reboot_required:
  description: Whether the wanted mode takes effect only after a reboot (SELinux disabled in the running kernel).
  returned: success
  type: bool
  sample: true
reboot_reason:
  description: Why a reboot is needed, and what else the boot needs.
  returned: success
  type: str
live_mode:
  description: C(enforcing), C(permissive), or V(null) when SELinux is disabled in the running kernel.
  returned: success
  type: str
  sample: enforcing
summary:
  description: Number of records per status.
  returned: success
  type: dict
  sample: {changed: 1, unchanged: 3, unsupported: 1, error: 0}
built:
  description: The modules built on the controller, with how far their source could be checked there.
  returned: when modules are given
  type: list
  elements: dict
  sample: [{name: camd, format: pp, validation: compiled}]
errors:
  description: Every reason the task refused to change anything.
  returned: failure
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import selinux
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import exit_with_records

ARGUMENT_SPEC = dict(
    mode=dict(type="str", choices=list(selinux.MODES)),
    booleans=dict(type="dict", default={}),
    fcontexts=dict(type="list", elements="dict", default=[], options=dict(
        target=dict(type="str", required=True),
        setype=dict(type="str"),
        ftype=dict(type="str", default="a", choices=sorted(selinux.FTYPES)),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )),
    modules=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        src=dict(type="str"),
        fc=dict(type="str"),
        priority=dict(type="int", default=selinux.DEFAULT_PRIORITY),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        package=dict(type="str", no_log=False),
        package_format=dict(type="str", choices=["pp", "cil"]),
        validation=dict(type="str"),
    )),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    tools = dict((name, module.get_bin_path(name, opt_dirs=["/sbin", "/usr/sbin"]))
                 for name in ("setsebool", "semanage", "restorecon", "semodule"))

    def runner(argv):
        return module.run_command(argv, environ_update={"LC_ALL": "C", "LANG": "C"})

    result = selinux.run(mode=p["mode"], booleans=p["booleans"], fcontexts=p["fcontexts"], modules=p["modules"],
                         runner=runner, tools=tools, check_mode=module.check_mode)
    exit_with_records(module, result, "selinux_policy")


if __name__ == "__main__":
    main()
