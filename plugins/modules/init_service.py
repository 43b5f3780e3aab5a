#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: init_service
short_description: Stop, start, enable, disable and mask many services on any device init system in one call
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Manages the running state, boot enablement and mask of a list of services on systemd, OpenRC, SysV-rc,
    BusyBox init and OpenWrt procd, in one round trip.
  - The init system is detected from PID 1 and the filesystem. When PID 1 manages no services (a container
    init such as tini, a shell), the boot configuration of the init system found on disk is managed
    (C(/sbin/init) and marker paths), so images and containers can be prepared for their next boot.
  - Boot configuration is changed through files, the way the init system reads it at boot, so no
    C(systemctl), C(update-rc.d) or C(rc-update) is needed.
  - B(systemd) - enabling creates the C(.wants/), C(.requires/) and alias links of the unit's C([Install]) section in
    C(/etc/systemd/system), disabling removes them, masking links C(/etc/systemd/system/UNIT) to C(/dev/null).
    A name without a suffix means C(NAME.service) and, when it exists, C(NAME.socket), so a socket-activated
    service cannot come back through its socket. A service that only has an C(/etc/init.d) script is enabled
    by its C(/etc/rcN.d) start links, which systemd-sysv-generator reads. With systemd as PID 1, C(systemctl)
    starts and stops units and a C(daemon-reload) follows file changes; without C(systemctl) the unit's
    cgroup tells whether a service runs.
  - B(SysV-rc) - disabling renames C(S) links in runlevels 2-5 and S to C(K) links (as C(update-rc.d disable));
    enabling renames them back or creates them from the script's LSB C(Default-Start) and C(Default-Stop).
  - B(OpenRC) - enabled means a link in any C(/etc/runlevels/LEVEL); enabling links it into C(default).
  - B(BusyBox init) - a service is an C(/etc/inittab) entry (C(respawn), C(once), C(askfirst)) whose command is
    named like the service, or an C(/etc/init.d) script started from C(/etc/rc.d/SnnNAME) (or C(/etc/rcN.d))
    links. Disabling comments the inittab line out with a C(#edgewarden-off#) marker and removes the links;
    enabling restores the line and creates C(S)/C(K) links from the script's C(START=)/C(STOP=). BusyBox init
    re-reads C(/etc/inittab) on SIGHUP, so a disabled respawn entry is then terminated and a restored one is
    started by init itself.
  - B(procd) (OpenWrt) - C(/etc/rc.d/SnnNAME) and C(KnnNAME) links as C(/etc/init.d/NAME enable|disable) make;
    C(/etc/init.d/NAME running) tells whether it runs.
  - B(Mask) on the script-based init systems removes the execute bits of C(/etc/init.d/NAME), which the boot
    scripts and a manual start both need; unmasking restores them. An inittab entry has no separate mask.
  - Script-managed services are started and stopped with C(/etc/init.d/NAME start|stop). Whether they run comes
    from the script's C(status) (LSB exit codes) when it has one, else a pidfile, else a process of that name.
  - A service that does not exist is reported with status C(absent), not as an error, unless O(required=true).
  - Every problem (conflicting options, a service that carries this connection, a respawn entry asked to stop
    while it stays enabled) fails the task before anything is changed.
options:
  services:
    description:
      - The services and what they should look like. Attributes left out are not managed.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The service name (C(avahi-daemon)), or on systemd a unit name (C(avahi-daemon.socket)).
          - On non-systemd init systems a C(.service) suffix is ignored.
        type: str
        required: true
      state:
        description:
          - V(started) or V(stopped) now.
        type: str
        choices: [started, stopped]
      enabled:
        description:
          - Whether the service starts at boot.
        type: bool
      masked:
        description:
          - Whether the service is masked, so that neither boot, dependencies, socket or D-Bus activation nor a manual
            start can run it. Cannot be combined with O(services[].enabled=true) or O(services[].state=started).
        type: bool
  required:
    description:
      - Fail when a listed service does not exist, instead of reporting it with status C(absent).
    type: bool
    default: false
  init_system:
    description:
      - The init system whose configuration is managed. V(auto) detects it from PID 1, and from the filesystem when
        PID 1 manages no services.
      - Forcing one that is not PID 1 manages its files only; running state is then changed through init scripts.
    type: str
    default: auto
    choices: [auto, systemd, openrc, sysv, busybox, procd]
  protect_connection:
    description:
      - Refuse to stop, disable or mask a service whose processes carry the connection this module runs over (the
        SSH server that started it), since that would lock the next run out.
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads the same state (including a service manager's or init script's status) and returns the
        records a real run would; only a command that fails during a real run can differ.
  diff_mode:
    support: full
    details:
      - Shows the links and modes that change, line by line, and the whole C(/etc/inittab) before and after.
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Running the module again without changes on the target returns the same result and reports no change.
    support: full
notes:
  - Needs root (C(become)).
  - Runs on the Python standard library only (no D-Bus bindings).
  - Template units (C(foo@.service)) are not enabled by file; use M(ansible.builtin.systemd_service) for them.
  - OpenWrt's procd reads C(/etc/inittab) only at boot, so an inittab change there takes effect at the next boot.
seealso:
  - module: ansible.builtin.service
  - module: edgewarden.hardening.listening_ports_info
"""

EXAMPLES = r"""
- name: Stop, disable and mask services an IoT device does not need
  edgewarden.hardening.init_service:
    services:
      - {name: avahi-daemon, state: stopped, enabled: false, masked: true}
      - {name: cups, state: stopped, enabled: false, masked: true}
      - {name: telnetd, state: stopped, enabled: false}
  become: true

- name: Make sure the time daemon runs and starts at boot, failing if it is not installed
  edgewarden.hardening.init_service:
    services:
      - name: chronyd
        state: started
        enabled: true
    required: true
  become: true

- name: Prepare a container image's boot configuration (PID 1 is a container init)
  edgewarden.hardening.init_service:
    services:
      - {name: rpcbind, enabled: false, masked: true}
    init_system: systemd

- name: Report the state of services without changing anything
  edgewarden.hardening.init_service:
    services:
      - name: dropbear
      - name: uhttpd
  register: service_state
"""

RETURN = r"""
records:
  description:
    - One record per unit and managed attribute. Ids are C(service.running/UNIT) (where C(live)),
      C(service.enabled/UNIT) and C(service.masked/UNIT) (where C(persisted)).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The control, e.g. C(service.enabled/avahi-daemon.socket).
      type: str
      sample: service.enabled/telnetd
    before:
      description: C(running)/C(stopped), C(enabled)/C(disabled)/C(static), C(masked)/C(unmasked); null when unknown or absent.
      type: str
      sample: enabled
    after:
      description: The value after the task, or that a real run would set in check mode.
      type: str
      sample: disabled
    where:
      description: C(live) for the running state, C(persisted) for boot configuration.
      type: str
      sample: persisted
    status:
      description: C(changed), C(unchanged), C(unsupported), C(absent) or C(error).
      type: str
      sample: changed
    detail:
      description: The links, lines, modes and commands that change, or why the status is what it is.
      type: str
      returned: when there is something to say
      sample: "rename /etc/rc2.d/S01telnetd to /etc/rc2.d/K01telnetd"
init:
  description: The init system whose configuration was managed.
  returned: always
  type: dict
  contains:
    name:
      description: V(systemd), V(openrc), V(sysv), V(busybox) or V(procd); null when none was found.
      type: str
      sample: busybox
    live:
      description: Whether that init system runs as PID 1 (else only its boot configuration is managed).
      type: bool
      sample: true
    reason:
      description: Why it was chosen.
      type: str
      sample: pid 1 is /bin/busybox (init applet) and /etc/inittab exists
    pid1:
      description: What PID 1 was classified as.
      type: str
      sample: busybox
services:
  description: Per unit, what it looked like before and after, for humans.
  returned: always
  type: list
  elements: dict
  sample:
    - name: avahi-daemon
      unit: avahi-daemon.socket
      exists: true
      backend: systemd
      before: {running: running, enabled: enabled, masked: unmasked}
      after: {running: stopped, enabled: disabled, masked: masked}
      source: "systemctl is-active avahi-daemon.socket: active"
ops:
  description: The operations applied (or that a real run would apply in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ["run /etc/init.d/telnetd stop", "rename /etc/rc2.d/S01telnetd to /etc/rc2.d/K01telnetd"]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import services
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import exit_with_records
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.initsys import classify_init, gather_init_evidence

ARGUMENT_SPEC = dict(
    services=dict(type="list", elements="dict", required=True, options=dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["started", "stopped"]),
        enabled=dict(type="bool"),
        masked=dict(type="bool"),
    )),
    required=dict(type="bool", default=False),
    init_system=dict(type="str", default="auto", choices=["auto"] + list(services.BACKENDS)),
    protect_connection=dict(type="bool", default=True),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    tools = {"systemctl": module.get_bin_path("systemctl")}

    def runner(argv):
        return module.run_command(argv, environ_update={"LC_ALL": "C", "LANG": "C", "SYSTEMD_PAGER": ""})

    result = services.run(
        p["services"], classify_init(gather_init_evidence("/")), requested_init=p["init_system"], runner=runner,
        tools=tools, check_mode=module.check_mode, protect_connection=p["protect_connection"],
        required=p["required"], self_pid=os.getpid(),
    )
    exit_with_records(module, result, "init_service", extra_diffs=result.pop("diffs", []))


if __name__ == "__main__":
    main()
