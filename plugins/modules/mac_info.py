#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mac_info
short_description: Which mandatory access control a device runs, and the tools to manage it
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Reads the active Linux security modules (C(/sys/kernel/security/lsm), or AppArmor's and SELinux's own files
    where securityfs is not mounted), AppArmor's and SELinux's state, C(/etc/selinux/config), and which
    management tools are installed, and says which path to take, C(apparmor), C(selinux) or C(none).
  - On path C(none) it says so in a warning, or fails with O(required=true).
  - Never writes anything. Uses only the Python standard library on the target.
options:
  required:
    description:
      - Fail when neither AppArmor nor SELinux is active, saying how to get one.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Running the module again without changes on the target returns the same result and reports no change.
    support: full
notes:
  - The loaded profile count needs root; it is V(null) without.
seealso:
  - module: edgewarden.hardening.apparmor_profile
  - module: edgewarden.hardening.selinux_policy
"""

EXAMPLES = r"""
- name: Find the active MAC
  edgewarden.hardening.mac_info:
  register: mac

- name: Say which
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} runs {{ mac.path }} (LSMs {{ mac.lsm | join(',') }})"
"""

RETURN = r"""
path:
  description: C(apparmor), C(selinux) or C(none).
  returned: always
  type: str
  sample: apparmor
lsm:
  description: Active Linux security modules, empty when none could be read.
  returned: always
  type: list
  elements: str
  sample: [lockdown, capability, landlock, yama, apparmor, tomoyo, bpf]
lsm_source:
  description: Where RV(lsm) came from, V(null) when nothing was readable.
  returned: always
  type: str
  sample: /sys/kernel/security/lsm
apparmor:
  description: AppArmor state - C(enabled), C(profiles_loaded) (V(null) without root).
  returned: always
  type: dict
  sample: {enabled: true, profiles_loaded: 3}
selinux:
  description: SELinux state - C(mode) (C(enforcing), C(permissive), C(disabled)), C(config_present), C(config_mode).
  returned: always
  type: dict
  sample: {mode: disabled, config_present: false, config_mode: null}
tools:
  description: Path of each management tool found, or V(null).
  returned: always
  type: dict
  sample: {apparmor_parser: /usr/sbin/apparmor_parser, semodule: null, setsebool: null, semanage: null, restorecon: null}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import mac


ARGUMENT_SPEC = dict(
    required=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    state = mac.read_state("/")
    if state["path"] == "none":
        message = mac.no_mac_message(state["lsm"], module.params["required"])
        if module.params["required"]:
            module.fail_json(msg=message, **state)
        module.warn(message)
    module.exit_json(changed=False, **state)


if __name__ == "__main__":
    main()
