#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: validate_role_inputs
short_description: Check the variables of several roles and a role's own input problems in one task
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - On the controller, checks the variables of the roles in O(roles) against the C(main) entry point of
    their C(meta/argument_specs.yml), merged, as C(ansible.builtin.validate_argument_spec) would, and fails
    when they do not match or when O(input_problems) is not empty. One message lists every problem.
  - For a role that runs other roles (imported with C(rolespec_validate=false)), so that one task per host
    checks all of them before any of them reaches the device. The specs are read from the roles' files;
    only the role variables are templated, not the specs.
  - Never contacts the device. A failure has C(refused_on_controller=true).
options:
  roles:
    description:
      - The roles whose variables are checked, in order; a later role's option replaces an earlier one of the
        same name.
    type: list
    elements: str
    required: true
  roles_dir:
    description:
      - The directory holding the roles, for example C({{ role_path }}/..).
    type: path
    required: true
  exclude:
    description:
      - Options not checked, for example those the calling role sets itself from its own, already checked,
        variables.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - edgewarden.hardening.input_check
attributes:
  action:
    support: full
    details:
      - Runs on the controller only.
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    support: full
    platforms: all
  idempotent:
    description: Reads only.
    support: full
seealso:
  - module: ansible.builtin.validate_argument_spec
  - module: edgewarden.hardening.batch
"""

EXAMPLES = r"""
- name: Check the variables of the roles that run, and the inputs they share
  edgewarden.hardening.validate_role_inputs:
    roles: [kernel, ssh]
    roles_dir: "{{ role_path }}/.."
    input_owner: baseline
    input_problems: "{{ ['no bastion given'] if bastion | length == 0 else [] }}"
"""

RETURN = r"""
argument_errors:
  description: The argument spec errors alone, when the task failed.
  returned: failure
  type: list
  elements: str
refused_on_controller:
  description: V(true) when the task failed.
  returned: failure
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.input_check import INPUT_CHECK_SPEC

ARGUMENT_SPEC = dict(
    INPUT_CHECK_SPEC,  # read by the action plugin, never sent
    roles=dict(type="list", elements="str", required=True),
    roles_dir=dict(type="path", required=True),
    exclude=dict(type="list", elements="str", default=[]),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="edgewarden.hardening.validate_role_inputs runs through its action plugin: call it as a "
                         "task, not as a module on its own")


if __name__ == "__main__":
    main()
