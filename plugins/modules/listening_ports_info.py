#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: listening_ports_info
short_description: List listening TCP and UDP sockets with their processes, and those outside an allowlist
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Reads every listening TCP socket and every bound, unconnected UDP socket, IPv4 and IPv6, from
    C(/proc/net/tcp), C(tcp6), C(udp) and C(udp6), and maps each one to the processes holding it through the
    C(socket:[INODE]) links in C(/proc/PID/fd). No C(ss), C(netstat) or C(lsof) is needed.
  - Each process comes with its pid, parent pid, name, executable, command line and, when it runs under
    systemd, its unit (from C(/proc/PID/cgroup)).
  - With O(allowed), every listener is checked against the allowlist and those outside it are returned in
    RV(unexpected), each with a one-line description naming its processes, and named in one warning; with
    O(fail_on_unexpected=true) they fail the task instead.
  - Never changes anything.
options:
  allowed:
    description:
      - Listeners that are expected. A listener is allowed when one entry matches all of its given fields.
    type: list
    elements: dict
    default: []
    suboptions:
      proto:
        description:
          - V(tcp) or V(udp) match both IPv4 and IPv6; V(tcp4), V(udp4), V(tcp6), V(udp6) match one family.
        type: str
        required: true
        choices: [tcp, udp, tcp4, udp4, tcp6, udp6]
      port:
        description: The local port.
        type: int
        required: true
      address:
        description:
          - The bind address. Omitted or V(any) matches any bind; V(loopback) matches 127.0.0.0/8 and ::1; otherwise
            one address (an IPv4-mapped IPv6 bind equals its IPv4 address). V(0.0.0.0) and V(::) match only wildcard
            binds of that family.
        type: str
      process:
        description:
          - Only when one of the socket's processes has this name (C(comm), executable or C(argv[0]) basename).
        type: str
      why:
        description: Free text, why this listener is expected (kept for reports, not matched).
        type: str
  ignore_loopback:
    description:
      - Treat listeners bound to loopback addresses as allowed (they cannot be reached from the network).
    type: bool
    default: false
  fail_on_unexpected:
    description:
      - Fail when any listener is outside O(allowed), naming them all (the listeners are still returned).
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
  - Needs root (C(become)) to see the processes of other users; without it their sockets have no processes.
  - Lists the sockets of the network namespace the module runs in, and the processes of its PID namespace.
  - Sockets the kernel holds itself (NFS, in-kernel servers) have no process.
seealso:
  - module: edgewarden.hardening.device_facts
  - module: edgewarden.hardening.init_service
"""

EXAMPLES = r"""
- name: List every listener with its process
  edgewarden.hardening.listening_ports_info:
  become: true
  register: ports

- name: Find listeners outside the allowlist
  edgewarden.hardening.listening_ports_info:
    allowed:
      - {proto: tcp, port: 22, process: dropbear, why: remote administration}
      - {proto: udp, port: 68, why: DHCP client}
      - {proto: tcp, port: 1883, address: loopback, why: local MQTT broker}
    ignore_loopback: false
  become: true
  register: ports

- name: Fail when something else listens
  ansible.builtin.assert:
    that: ports.unexpected | length == 0
    fail_msg: "Unexpected listeners: {{ ports.unexpected | map(attribute='description') | join('; ') }}"
"""

RETURN = r"""
listeners:
  description: Every listening socket, sorted by protocol, port and address.
  returned: always
  type: list
  elements: dict
  contains:
    proto:
      description: C(tcp), C(tcp6), C(udp) or C(udp6).
      type: str
      sample: tcp
    family:
      description: 4 or 6.
      type: int
      sample: 4
    address:
      description: The bind address (C(0.0.0.0) and C(::) are every address).
      type: str
      sample: 0.0.0.0
    port:
      description: The local port.
      type: int
      sample: 22
    inode:
      description: The socket inode.
      type: int
      sample: 16213
    uid:
      description: The socket's owner uid.
      type: int
      sample: 0
    processes:
      description: The processes holding the socket (empty when none is visible).
      type: list
      elements: dict
      sample: [{pid: 412, ppid: 1, comm: sshd, exe: /usr/sbin/sshd, cmdline: [/usr/sbin/sshd, -D], unit: ssh.service}]
    allowed:
      description: Why the listener is allowed (allowlist entry or loopback), null when it is not.
      type: str
      sample: allowlist entry 0 (tcp/22)
    description:
      description: One line for reports.
      type: str
      sample: tcp 0.0.0.0:22 pid 412 sshd [ssh.service] (/usr/sbin/sshd -D)
unexpected:
  description: The listeners no allowlist entry matches (all of them when O(allowed) is empty).
  returned: always
  type: list
  elements: dict
summary:
  description: Counts.
  returned: always
  type: dict
  sample: {total: 5, unexpected: 1, without_process: 0}
records:
  description:
    - One record per listener, id C(surface.listener/PROTO/ADDRESS:PORT), status C(unchanged) (this module never
      changes anything); C(detail) says whether it is allowed.
  returned: always
  type: list
  elements: dict
  sample: [{id: surface.listener/tcp/0.0.0.0:8081, before: listening, after: listening, where: live, status: unchanged,
            detail: "unexpected: tcp 0.0.0.0:8081 pid 412 python3 (python3 -m http.server 8081)"}]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import procfs
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import record

ARGUMENT_SPEC = dict(
    allowed=dict(type="list", elements="dict", default=[], options=dict(
        proto=dict(type="str", required=True, choices=list(procfs.LISTENER_PROTOS)),
        port=dict(type="int", required=True),
        address=dict(type="str"),
        process=dict(type="str"),
        why=dict(type="str"),
    )),
    ignore_loopback=dict(type="bool", default=False),
    fail_on_unexpected=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    listeners = procfs.listening_sockets_with_owners("/proc")
    records = []
    for sock in listeners:
        sock["allowed"] = procfs.listener_allowed(sock, module.params["allowed"], module.params["ignore_loopback"])
        sock["description"] = procfs.describe_listener(sock)
        shown = "[%s]" % sock["address"] if ":" in sock["address"] else sock["address"]
        records.append(record("surface.listener/%s/%s:%d" % (sock["proto"], shown, sock["port"]), "listening",
                              "listening", detail=("allowed: %s" % sock["allowed"]) if sock["allowed"]
                              else "unexpected: %s" % sock["description"]))
    unexpected = [sock for sock in listeners if not sock["allowed"]]
    result = dict(changed=False, listeners=listeners, unexpected=unexpected, records=records,
                  summary={"total": len(listeners), "unexpected": len(unexpected),
                           "without_process": len([s for s in listeners if not s["processes"]])})
    if unexpected:
        summary = procfs.unexpected_listeners_summary(unexpected)
        if module.params["fail_on_unexpected"]:
            module.fail_json(msg=summary, **result)
        module.warn(summary)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
