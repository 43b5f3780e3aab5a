#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_policy_info
short_description: Check containers' security settings against a least-privilege policy (report only)
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - For applications shipped as containers (podman, Docker, balenaEngine), reads C(ENGINE inspect) of the listed
    containers in one command and compares the settings that matter with the same per-app policy as
    M(edgewarden.hardening.app_confine) - privileged mode, host network, PID and IPC namespaces, added and
    effective capabilities, read-only root filesystem, user, no-new-privileges, unconfined seccomp or AppArmor,
    devices, sensitive and writable bind mounts, published ports.
  - Changes nothing. Without a container engine on the device it says so (RV(engine) is null) and succeeds.
  - Docker reports what was asked (C(CapAdd), C(CapDrop)) on top of its default set, from which the effective set is
    computed; podman reports the effective set, which is used as is.
options:
  containers:
    description:
      - One policy per container.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Container name.
        type: str
        required: true
      capabilities:
        description: The capabilities the application truly needs; any other effective one is a finding.
        type: list
        elements: str
        default: []
      writable_paths:
        description: Host paths it may bind-mount writable.
        type: list
        elements: str
        default: []
      devices:
        description: Host devices it may have.
        type: list
        elements: str
        default: []
      ports:
        description: Ports it may publish (C(80), C(udp/5353)); not checked when omitted.
        type: list
        elements: raw
      user:
        description: The user it must run as; by default any user but root.
        type: str
      read_only_rootfs:
        description: Require a read-only root filesystem.
        type: bool
        default: true
      host_network:
        description: Allow the host's network namespace.
        type: bool
        default: false
  engine:
    description:
      - The engine to ask. V(auto) takes the first of podman, docker and balena-engine found on the device.
    type: str
    choices: [auto, podman, docker, balena-engine]
    default: auto
  engine_options:
    description:
      - Global options put between the engine and C(inspect), for an engine whose storage is not in its default
        place (C([--root, /data/containers/storage, --runroot, /run/containers/storage]) for podman, C([--host,
        unix:///var/run/balena-engine.sock]) for balenaEngine).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads only; runs the same in check mode.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Running the module again without changes on the target returns the same result and reports no change.
    support: full
notes:
  - Needs the rights to talk to the engine (root, or a rootless engine's user).
seealso:
  - module: edgewarden.hardening.app_confine
"""

EXAMPLES = r"""
- name: Check the containers against their policies
  edgewarden.hardening.container_policy_info:
    containers:
      - name: mqtt-broker
        capabilities: [NET_BIND_SERVICE]
        writable_paths: [/var/lib/mosquitto]
        ports: [1883, 8883]
  register: container_policy
  become: true

- name: Fail when a container breaks its policy
  ansible.builtin.assert:
    that: container_policy.containers | rejectattr('compliant', 'equalto', true) | list | length == 0
"""

RETURN = r"""
engine:
  description: The engine asked, or null when the device has none.
  returned: always
  type: str
  sample: podman
msg:
  description: What was done (for example C(no container engine)).
  returned: always
  type: str
containers:
  description: One entry per policy.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
    found:
      description: The engine knows the container.
      type: bool
    compliant:
      description: Every check passed (null when not found).
      type: bool
    failed:
      description: Names of the checks that failed.
      type: list
      elements: str
    findings:
      description: Each check with C(check), C(ok), C(expected), C(actual) and an optional C(detail); failed first.
      type: list
      elements: dict
    image:
      description: The container's image.
      type: str
    effective_capabilities:
      description: Capabilities its processes get.
      type: list
      elements: str
summary:
  description: Number of compliant, non-compliant and missing containers.
  returned: always
  type: dict
  sample: {compliant: 1, noncompliant: 1, missing: 0}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import container_policy

ARGUMENT_SPEC = dict(
    containers=dict(type="list", elements="dict", required=True, options=dict(
        name=dict(type="str", required=True),
        capabilities=dict(type="list", elements="str", default=[]),
        writable_paths=dict(type="list", elements="str", default=[]),
        devices=dict(type="list", elements="str", default=[]),
        ports=dict(type="list", elements="raw"),
        user=dict(type="str"),
        read_only_rootfs=dict(type="bool", default=True),
        host_network=dict(type="bool", default=False),
    )),
    engine=dict(type="str", default="auto", choices=["auto"] + list(container_policy.ENGINES)),
    engine_options=dict(type="list", elements="str", default=[]),
)


def find_engine(module, requested):
    names = container_policy.ENGINES if requested == "auto" else (requested,)
    for name in names:
        path = module.get_bin_path(name)
        if path:
            return name, path
    return None, None


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    policies = module.params["containers"]
    engine, path = find_engine(module, module.params["engine"])
    if engine is None:
        module.exit_json(changed=False, engine=None, msg="no container engine", containers=[],
                         summary={"compliant": 0, "noncompliant": 0, "missing": 0})
    names = [policy["name"] for policy in policies]
    rc, out, err = module.run_command([path] + module.params["engine_options"] + ["inspect", "--type", "container"] + names,
                                      environ_update={"LC_ALL": "C"})
    inspected = container_policy.parse_inspect(out)
    if rc != 0 and not inspected and names and "no such" not in (err or "").lower():
        module.fail_json(msg="%s inspect failed: %s" % (engine, (err or out).strip()), rc=rc)
    report = container_policy.report(inspected, policies, engine)
    summary = {
        "compliant": len([c for c in report if c["compliant"] is True]),
        "noncompliant": len([c for c in report if c["compliant"] is False]),
        "missing": len([c for c in report if not c["found"]]),
    }
    module.exit_json(changed=False, engine=engine, msg="%d container(s) checked with %s" % (len(report), engine),
                     containers=report, summary=summary)


if __name__ == "__main__":
    main()
