#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: batch
short_description: Run several edgewarden modules in one device process and one task
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Runs a list of edgewarden modules (steps) one after the other, on the device, in one Python
    process started by one SSH command, and reports them as one task. On a slow link and in a
    large fleet every task costs a round trip and controller time per host, so a role whose
    features need several modules runs them as one batch.
  - Before the device is contacted, every step's arguments are checked against that module's own
    argument spec, and O(input_problems) (problems the calling role found in its input) must be
    empty. Either failure names the step or the input, and nothing reaches the device.
  - On the device the steps run in order and the batch stops at the first step that fails, because a
    step may rely on the ones before it (listening sockets are read after services are stopped).
  - Each step behaves as its module does alone, check mode and diff included. Its result is under
    RV(steps) by name; change records and diffs of all steps are returned together, so the drift
    report and C(--diff) show every step's changes.
  - This module runs through its action plugin. The steps use the lean transport
    (the host's C(ansible_python_interpreter) set); with C(edgewarden_transport=ansiballz) or an
    interpreter left to discovery they run as one ordinary module call each, still in one task.
options:
  steps:
    description:
      - The modules to run, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The step's name, unique in the batch; its result is RV(steps[name]).
        type: str
        required: true
      module:
        description:
          - An edgewarden module that runs with the plain lean transport, by short name or
            FQCN, for example V(init_service). Modules with an action plugin of their own
            (the commit-confirm ones, V(nft_apply) and V(sshd_config); V(selinux_policy);
            V(ota_artifact)) are refused.
        type: str
        required: true
      args:
        description:
          - The module's arguments.
        type: dict
        default: {}
      enabled:
        description:
          - V(false) skips the step (reported as skipped, reason C(disabled)).
        type: bool
        default: true
      tag:
        description:
          - The step's feature tag. The step is skipped when C(--skip-tags) names it; when C(--tags)
            names the tag of one or more steps of this batch, only those steps (and the steps without
            a tag) run. When C(--tags) names none of them (for example a role's or the baseline's tag),
            every enabled step runs.
          - The task must carry every step's tag, so that C(--tags) with one of them selects it, less those
            C(--skip-tags) names (C(ansible_skip_tags)), or skipping one step's tag would skip the whole task.
            The kernel and surface roles template their batch task's tags that way. A comma-separated
            string is split by Ansible before templating, so the list comes from a variable.
        type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - edgewarden.hardening.input_check
attributes:
  action:
    support: full
    details:
      - The action plugin checks every step on the controller, then runs all steps in one device process.
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Each step runs in check mode as its module does alone.
  diff_mode:
    support: full
    details: Each step's diff, in step order.
  platform:
    support: full
    platforms: linux
  idempotent:
    description: As idempotent as the modules it runs.
    support: full
seealso:
  - module: edgewarden.hardening.init_service
  - module: edgewarden.hardening.package_removal
  - module: edgewarden.hardening.kernel_module_blocklist
  - module: edgewarden.hardening.listening_ports_info
"""

EXAMPLES = r"""
- name: Stop services, then list what still listens (one device call)
  edgewarden.hardening.batch:
    steps:
      - name: services
        module: init_service
        tag: services
        args:
          services:
            - {name: telnet, state: stopped, enabled: false}
      - name: listeners
        module: listening_ports_info
        tag: listeners
        args:
          allowed:
            - {proto: tcp, port: 22, why: ssh}
  tags: [services, listeners]
  register: surface

- name: Show what still listens
  ansible.builtin.debug:
    var: surface.steps.listeners.unexpected
"""

RETURN = r"""
steps:
  description:
    - Every step's result by name, as its module returns it alone, less its change records and
      diff (in RV(records) and the task's diff, once). A step that did not run has
      C(skipped=true) and C(skip_reason), one of C(disabled), C(not selected by --tags/--skip-tags)
      or C(not run, step NAME failed).
  returned: always
  type: dict
  sample: {services: {changed: false, init: systemd}, listeners: {skipped: true, skip_reason: disabled}}
records:
  description: The change records of all steps that ran, in step order (each record's C(id) names its kind).
  returned: always
  type: list
  elements: dict
refused_on_controller:
  description: V(true) when the batch failed on the controller (bad step arguments or O(input_problems)).
  returned: when refused before the device was contacted
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.input_check import INPUT_CHECK_SPEC

STEP_OPTIONS = dict(
    name=dict(type="str", required=True),
    module=dict(type="str", required=True),
    args=dict(type="dict", default={}),
    enabled=dict(type="bool", default=True),
    tag=dict(type="str"),
)

ARGUMENT_SPEC = dict(
    INPUT_CHECK_SPEC,  # read by the action plugin, never sent
    steps=dict(type="list", elements="dict", required=True, options=STEP_OPTIONS),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="edgewarden.hardening.batch runs through its action plugin: call it as a task, "
                         "not as a module on its own")


if __name__ == "__main__":
    main()
