#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: app_confine
short_description: Run services with least privilege - own user, listed capabilities, systemd sandboxing - and prove it
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Confines a list of applications in one call. Each one says what it truly needs - its service, the paths it
    writes, the ports it binds, the capabilities it uses - and gets nothing else.
  - The init system is detected on the device in the same call (PID 1 and the filesystem).
  - B(systemd) - each unit gets one drop-in, C(/etc/systemd/system/UNIT.d/99-edgewarden-confine.conf), with a
    dedicated user (or C(DynamicUser=)), C(NoNewPrivileges=), C(ProtectSystem=strict) with only the listed paths
    writable (C(StateDirectory=), C(CacheDirectory=), C(LogsDirectory=) under C(/var/lib), C(/var/cache), C(/var/log),
    which systemd owns for the service and migrates when C(DynamicUser=) is switched; C(ReadWritePaths=) elsewhere),
    C(ProtectHome=), C(PrivateTmp=), C(PrivateDevices=) (unless O(apps[].devices) are listed), C(PrivateIPC=),
    the C(ProtectKernel*=), C(ProtectClock=), C(ProtectHostname=), C(ProtectProc=invisible), C(RestrictNamespaces=),
    C(RestrictRealtime=), C(RestrictSUIDSGID=), C(LockPersonality=), C(MemoryDenyWriteExecute=) (unless
    O(apps[].jit)), C(CapabilityBoundingSet=) and C(AmbientCapabilities=) limited to O(apps[].capabilities),
    C(RestrictAddressFamilies=), C(SystemCallFilter=@system-service) minus C(@privileged) and C(@resources) when
    the capabilities allow, C(SystemCallArchitectures=native) and C(UMask=0077). C(PrivateUsers=) is added for
    apps without capabilities. Directives this systemd is too old for are left out and listed.
  - List-type directives are written as an empty assignment followed by the values, so the drop-in replaces
    what the unit or earlier drop-ins set instead of adding to it.
  - Before anything is written, every candidate drop-in is checked with C(systemd-analyze verify) (an unknown
    key or a bad value fails the task) and its exposure is predicted with C(systemd-analyze security --offline),
    by putting the candidate first on C(SYSTEMD_UNIT_PATH). Check mode does the same.
  - A real run then writes the drop-in, reloads systemd and restarts the unit if it was running. The unit must
    then be healthy within O(health_timeout) - active, its main process running as the policy says (user and
    capability sets read from C(/proc/PID/status)) and unchanged for O(health_settle) seconds, every port in
    O(apps[].ports) listening, O(apps[].health_command) passing - or its previous drop-in is restored, it is
    restarted again and the task fails, naming the app and the unit's last journal lines.
  - The exposure from C(systemd-analyze security) is measured before and after (RV(apps[].exposure)).
    O(max_exposure) fails the task when a unit stays above it (check mode judges the prediction).
  - B(BusyBox init and SysV init) (no systemd) - the app's C(/etc/inittab) entry (C(respawn) or C(once)) is
    wrapped so it starts through C(confine-exec), a small Python launcher the module writes in O(helper_dir). As
    root, it switches to the app's user and group (which clears every capability) and execs a per-app copy of
    the device's C(setpriv) that carries the listed capabilities as file capabilities (readable and runnable only
    by root and the app's group); setpriv sets C(NoNewPrivileges) and raises them as ambient capabilities, so the
    program runs as its user with exactly them. No C(ctypes), util-linux or libcap is needed; BusyBox's C(setpriv)
    applet (with its capability options) is enough. Apps without capabilities need no copy.
  - Without systemd there are no mount namespaces and no seccomp, so C(ProtectSystem), C(PrivateTmp),
    C(SystemCallFilter) and the like cannot be had, and a BusyBox setpriv cannot shrink the bounding set;
    RV(apps[].unavailable) lists what each app goes without, and writable paths are enforced by file
    ownership only.
  - A running respawn entry is changed in two steps so the old and new processes never compete for a port
    (the line is parked and init re-reads C(/etc/inittab), the old process is terminated, the new line is
    written and init starts it); the same health check decides, and an unhealthy app gets its previous line back.
  - B(Accounts and paths) - a missing account is created (a C(sysusers.d) file and C(systemd-sysusers) on systemd,
    C(/etc/passwd) and C(/etc/group) lines elsewhere, where BusyBox has no C(useradd)) as a system account without
    login. Writable paths that do not exist are created as directories (0750); existing ones are handed to the
    app's user and group recursively, as systemd does for C(StateDirectory=). System directories such as C(/var/lib)
    are refused. Rollback restores the drop-in or inittab line, not accounts or ownership.
  - B(OpenRC) - the service's C(/etc/conf.d/SERVICE) gets one marked block, written atomically after the user's own
    lines (which stay) - C(command_user) (its own user and group), C(umask=0077), and, only where this OpenRC's
    starter accepts them (probed on the device, nothing is started), C(capabilities) (the listed ones inheritable
    and ambient, every other one dropped from the bounding set) and C(no_new_privs). A C(retry) schedule is added
    when the service has none, so a restart waits for the old process. The service, if started, is restarted with
    C(rc-service) and checked like on the other init systems (status C(started), its process's user and capability
    sets, ports, O(apps[].health_command)); an unhealthy one gets its previous conf.d file back and is restarted
    again. Only C(openrc-run) scripts with C(start-stop-daemon) or C(supervise-daemon) are handled.
  - Debian's openrc 0.45.2 takes C(command_user) only - built without libcap, its supervise-daemon refuses
    C(--capabilities), its start-stop-daemon is dpkg's, which knows neither C(--capabilities) nor
    C(--no-new-privs), and its supervise-daemon.sh passes C(--no_new_privs), which supervise-daemon rejects. There an
    app that lists capabilities is refused before anything changes, and RV(apps[].unavailable) names what each app
    goes without.
  - OpenRC is recognised from PID 1 (C(openrc-init), or an init with C(/run/openrc)), and also when PID 1 is a
    container-style init (tini) that started OpenRC itself (C(/run/openrc/softlevel) and C(rc-service) exist).
  - B(procd) (OpenWrt) and Debian's B(SysV-rc) scripts (C(/etc/init.d) run by C(start-stop-daemon) from a
    tini-style or sysvinit PID 1 without C(/etc/inittab) services) are not handled; the task fails naming the init
    system before anything changes.
options:
  apps:
    description:
      - The applications to confine.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The systemd unit (C(ew-demo) or C(ew-demo.service)), the OpenRC service (C(/etc/init.d/NAME)), or the name of
            the program an C(/etc/inittab) entry runs (the command's first or second word, so
            C(python3 /usr/local/bin/ew-demo) is C(ew-demo)).
        type: str
        required: true
      binary:
        description:
          - Path of the program. Finds the inittab entry whose command (or script after an interpreter) it is,
            when O(apps[].name) does not. On OpenRC, finds the service's process (default the script's C(command=)),
            which an interpreted service needs. Not used on systemd.
        type: str
      state:
        description:
          - V(absent) removes the confinement (the drop-in, or the inittab wrapper and the capability copy) and
            restarts the service unconfined. Accounts and ownership stay.
        type: str
        choices: [present, absent]
        default: present
      user:
        description:
          - The account the app runs as; default is the service name.
          - V(dynamic) uses C(DynamicUser=) (systemd only); writable paths must then be under C(/var/lib),
            C(/var/cache), C(/var/log) or C(/run), and become C(StateDirectory=) and the like.
          - V(root) keeps root (the capability bounding set still applies on systemd).
        type: str
      group:
        description:
          - The app's group; default is a group named like the user.
        type: str
      create_user:
        description:
          - Create the account and group when they do not exist. When V(false), a missing account fails the task.
        type: bool
        default: true
      writable_paths:
        description:
          - Paths the app writes. On systemd they are the only writable places besides its private C(/tmp)
            (C(ProtectSystem=strict) with C(StateDirectory=) and the like, or C(ReadWritePaths=)).
        type: list
        elements: str
        default: []
      ports:
        description:
          - Ports the app binds, as C(80), C(tcp/80) or C(udp/5353). Each must be listening for the app to count as
            healthy after a restart.
        type: list
        elements: raw
        default: []
      capabilities:
        description:
          - The capabilities the app truly needs (C(CAP_NET_BIND_SERVICE) or C(net_bind_service)); it gets none other.
        type: list
        elements: str
        default: []
      devices:
        description:
          - Device nodes the app needs (C(/dev/ttyUSB0)). When given, C(PrivateDevices=) is off and only these are
            allowed (C(DevicePolicy=closed), C(DeviceAllow=)).
        type: list
        elements: str
        default: []
      jit:
        description:
          - The app generates code at run time (JavaScript, Java, LuaJIT, .NET), so it cannot have C(MemoryDenyWriteExecute=).
        type: bool
        default: false
      address_families:
        description:
          - Socket families allowed (C(RestrictAddressFamilies=)); V([]) allows none.
          - Default C([AF_UNIX, AF_INET, AF_INET6]).
        type: list
        elements: str
      systemd:
        description:
          - Directives that replace the defaults for this app, merged over O(systemd_overrides). A list value
            replaces the whole directive; V(null) removes a default (for example C(PrivateUsers) or C(ProtectProc)).
        type: dict
        default: {}
      health_command:
        description:
          - A command (argv) that must exit 0 for the app to count as healthy after a restart.
          - It must end on its own (give it a client timeout, such as C(curl --max-time 5)).
        type: list
        elements: str
      max_exposure:
        description:
          - Threshold for this app, instead of O(max_exposure).
        type: float
  init:
    description:
      - Which mechanism to use. V(auto) decides from PID 1 - systemd, BusyBox/SysV init for V(inittab), or OpenRC.
    type: str
    choices: [auto, systemd, inittab, openrc]
    default: auto
  systemd_overrides:
    description:
      - Directives that replace the defaults for every app (see O(apps[].systemd)).
    type: dict
    default: {}
  max_exposure:
    description:
      - Fail when a unit's C(systemd-analyze security) exposure (0-10) is above this after the run, or predicted
        above it in check mode. Needs O(measure=true).
    type: float
  measure:
    description:
      - Measure the exposure of each systemd unit before and after, and predict it for the candidate.
    type: bool
    default: true
  health_timeout:
    description:
      - Seconds a restarted service has to become healthy before it is rolled back. A service that keeps
        exiting is rolled back as soon as that is seen; one that never listens waits the whole time.
    type: int
    default: 60
  health_settle:
    description:
      - Seconds the main process must stay the same (not restarted) before it counts as healthy.
    type: float
    default: 2
  helper_dir:
    description:
      - Where the launcher and the per-app capability copies of C(setpriv) live on devices without systemd.
    type: path
    default: /usr/lib/edgewarden/confine
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode returns the records a real run would, verifies every candidate drop-in and predicts its exposure.
      - Whether the restarted service will be healthy is only known by restarting it; check mode cannot say.
  diff_mode:
    support: full
    details:
      - Shows each changed drop-in or inittab line, and the changed records.
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Running the module again without changes on the target returns the same result and reports no change.
    support: full
notes:
  - Needs root (C(become)).
  - On systemd, a unit that is not running is confined for its next start and not health-checked.
  - File capabilities need a filesystem with extended attributes and no C(nosuid) mount where O(helper_dir) is.
seealso:
  - module: edgewarden.hardening.container_policy_info
  - name: systemd.exec(5)
    description: The sandboxing directives.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html
  - name: capabilities(7)
    description: Ambient capabilities and file capabilities.
    link: https://man7.org/linux/man-pages/man7/capabilities.7.html
"""

EXAMPLES = r"""
- name: Confine a web UI that binds port 80 and writes its state directory
  edgewarden.hardening.app_confine:
    apps:
      - name: webui
        writable_paths: [/var/lib/webui]
        ports: [80]
        capabilities: [CAP_NET_BIND_SERVICE]
    max_exposure: 3.5
  become: true

- name: A Node.js gateway (JIT) talking to a serial modem, running under DynamicUser
  edgewarden.hardening.app_confine:
    apps:
      - name: modem-gateway
        user: dynamic
        writable_paths: [/var/lib/modem-gateway]
        devices: [/dev/ttyUSB0]
        jit: true
        address_families: [AF_UNIX, AF_INET, AF_INET6, AF_NETLINK]
        health_command: [/usr/bin/modem-gateway, --ping]
  become: true

- name: On a BusyBox device, run the respawned collector as its own user
  edgewarden.hardening.app_confine:
    apps:
      - name: collector
        binary: /usr/bin/collector
        writable_paths: [/data/collector]
        ports: [udp/5683]
  become: true

- name: Relax one default for every app
  edgewarden.hardening.app_confine:
    apps:
      - name: webui
        writable_paths: [/var/lib/webui]
    systemd_overrides:
      ProtectProc: null
  become: true
"""

RETURN = r"""
records:
  description:
    - One record per account, writable path, drop-in, inittab line or conf.d block, launcher or capability copy, and running
      process (C(live)) of each app.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: C(confine.<what>/<app>), for example C(confine.dropin/ew-demo.service), C(confine.confd/ew-demo)
        or C(confine.live/ew-demo).
      type: str
    before:
      description: State before the task; for C(live), the process's user and capability sets.
      type: str
    after:
      description: State after the task (or what a real run would make it in check mode).
      type: str
    where:
      description: C(persisted) for files and accounts, C(live) for the running process.
      type: str
    status:
      description: C(changed), C(unchanged) or C(error) (the app was rolled back or not applied).
      type: str
    detail:
      description: Path of the file, or why the status is what it is.
      type: str
      returned: when there is something to say
  sample:
    - {id: confine.live/ew-demo.service, before: "user=root cap_eff=all cap_bnd=all",
       after: "user=ew-demo cap_eff=net_bind_service cap_bnd=net_bind_service", where: live, status: changed}
apps:
  description: What each app looks like after the task.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The app.
      type: str
    unit:
      description: The systemd unit, or null on other init systems.
      type: str
    state:
      description: C(present) or C(absent).
      type: str
    backend:
      description: C(systemd), C(busybox), C(sysv) or C(openrc).
      type: str
    user:
      description: The account the app runs as (C(dynamic) for C(DynamicUser=)).
      type: str
    capabilities:
      description: The capabilities it keeps.
      type: list
      elements: str
    dropin:
      description: Path of the drop-in (systemd).
      type: str
      returned: on systemd
    inittab_line:
      description: The app's inittab line after the task (BusyBox and SysV init).
      type: str
      returned: on BusyBox and SysV init
    confd:
      description: Path of the service's conf.d file (OpenRC).
      type: str
      returned: on OpenRC
    supervisor:
      description: The program that starts the service, C(start-stop-daemon) or C(supervise-daemon) (OpenRC).
      type: str
      returned: on OpenRC
    exposure:
      description:
        - C(systemd-analyze security) overall exposure (0 safe - 10 unsafe) C(before) and C(after) the task, the
          C(predicted) exposure of the candidate, the C(threshold) and whether the unit is C(above_threshold).
          Null where not measured (check mode has no C(after); init systems other than systemd have none).
      type: dict
      sample: {before: 9.6, after: 2.1, predicted: 2.1, threshold: 3.5, above_threshold: false}
    process:
      description: The running process as read from C(/proc/PID/status) after the task (null when not running).
      type: dict
      sample: {uid: 998, user: ew-demo, cap_eff: net_bind_service, cap_bnd: net_bind_service,
               cap_amb: net_bind_service, no_new_privs: true, seccomp: filter}
    healthy:
      description: Whether the restarted app passed the health check; null when it was not restarted.
      type: bool
    health:
      description: What the health check saw.
      type: str
    rolled_back:
      description: The app was unhealthy and got its previous drop-in or inittab line back.
      type: bool
    skipped_directives:
      description: Default directives this systemd is too old for.
      type: list
      elements: str
    unavailable:
      description: Protections this init system cannot give the app, each with C(protection) and C(why).
      type: list
      elements: dict
backend:
  description: The mechanism used - C(systemd), C(busybox), C(sysv) or C(openrc); null when the init system is not handled.
  returned: always
  type: str
summary:
  description: Number of records per status.
  returned: always
  type: dict
  sample: {changed: 4, unchanged: 2, unsupported: 0, absent: 0, error: 0}
errors:
  description: Every problem, when the task failed.
  returned: failure
  type: list
  elements: str
"""

import os
import sys

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine_inittab, confine_openrc, confine_systemd
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import STATUSES, any_changed, diff_from_records
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.confine_host import Clock
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.initsys import classify_service_manager, gather_init_evidence

APP_SPEC = dict(
    name=dict(type="str", required=True),
    binary=dict(type="str"),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    user=dict(type="str"),
    group=dict(type="str"),
    create_user=dict(type="bool", default=True),
    writable_paths=dict(type="list", elements="str", default=[]),
    ports=dict(type="list", elements="raw", default=[]),
    capabilities=dict(type="list", elements="str", default=[]),
    devices=dict(type="list", elements="str", default=[]),
    jit=dict(type="bool", default=False),
    address_families=dict(type="list", elements="str"),
    systemd=dict(type="dict", default={}),
    health_command=dict(type="list", elements="str"),
    max_exposure=dict(type="float"),
)
ARGUMENT_SPEC = dict(
    apps=dict(type="list", elements="dict", required=True, options=APP_SPEC),
    init=dict(type="str", default="auto", choices=["auto", "systemd", "inittab", "openrc"]),
    systemd_overrides=dict(type="dict", default={}),
    max_exposure=dict(type="float"),
    measure=dict(type="bool", default=True),
    health_timeout=dict(type="int", default=60),
    health_settle=dict(type="float", default=2),
    helper_dir=dict(type="path", default="/usr/lib/edgewarden/confine"),
)
SYSTEMD_TOOLS = ("systemctl", "systemd-analyze", "systemd-sysusers", "journalctl")


def make_runner(module):
    def run(argv, env=None):
        environ = {"LC_ALL": "C", "LANG": "C", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
        environ.update(env or {})
        return module.run_command(argv, environ_update=environ)
    return run


def choose_backend(requested, init_name):
    if requested == "systemd" or (requested == "auto" and init_name == "systemd"):
        return "systemd"
    if requested == "inittab" or (requested == "auto" and init_name in ("busybox", "sysv")):
        return "inittab"
    if requested == "openrc" or (requested == "auto" and init_name == "openrc"):
        return "openrc"
    return None


# Why an init system is not handled, for the failure message
UNSUPPORTED_WHY = {
    "procd": "OpenWrt's procd starts services from /etc/init.d scripts through ubus (procd_set_param); "
             "confining them is not implemented, as no OpenWrt device is available to test it",
    "tini": "a container init that manages no services (SysV-rc /etc/init.d scripts run by start-stop-daemon are "
            "not handled: their options are each script's own)",
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    # The app list first, before the device is looked at: a bad entry is named whatever the
    # init system (the systemd-only checks run again below, once the backend is known).
    dummy, errors, dummy = confine.validate_apps(p["apps"], True)
    errors.extend(confine.check_overrides(p["systemd_overrides"], "systemd_overrides"))
    if errors:
        module.fail_json(msg="app_confine: invalid input, nothing changed: " + "; ".join(errors), errors=errors,
                         records=[], apps=[], backend=None)
    init_name = classify_service_manager(gather_init_evidence())["name"]
    backend = choose_backend(p["init"], init_name)
    if backend is None:
        why = UNSUPPORTED_WHY.get(init_name)
        names = ", ".join(str(app.get("name")) for app in p["apps"])
        module.fail_json(msg="app_confine: cannot confine %s: the init system is %s%s; only systemd, BusyBox init, "
                             "SysV init (inittab) and OpenRC are handled, nothing changed"
                             % (names, init_name, " (%s)" % why if why else ""),
                         errors=["unsupported init system %s" % init_name], records=[], apps=[], backend=init_name)
    apps, errors, warnings = confine.validate_apps(p["apps"], backend == "systemd")
    errors.extend(confine.check_overrides(p["systemd_overrides"], "systemd_overrides"))
    ctx = {"run": make_runner(module), "root": "/", "measure": p["measure"], "timeout": p["health_timeout"],
           "settle": p["health_settle"], "max_exposure": p["max_exposure"], "overrides": p["systemd_overrides"],
           "clock": Clock(), "kill": os.kill, "helper_dir": p["helper_dir"].rstrip("/"), "python": sys.executable,
           "init": init_name}
    if backend == "systemd":
        ctx["tools"] = dict((name, module.get_bin_path(name)) for name in SYSTEMD_TOOLS)
        errors.extend("%s not found" % name for name in SYSTEMD_TOOLS[:3] if not ctx["tools"][name])
    if errors:
        module.fail_json(msg="app_confine: invalid input, nothing changed: " + "; ".join(errors), errors=errors,
                         records=[], apps=[], backend=backend)
    for warning in warnings:
        module.warn(warning)
    engine = {"systemd": confine_systemd, "inittab": confine_inittab, "openrc": confine_openrc}[backend]
    result = engine.run(apps, ctx, module.check_mode)
    module.exit_json(**finish(result, module))


def finish(result, module):
    records = result["records"]
    out = {
        "changed": any_changed(records),
        "records": records,
        "apps": result["apps"],
        "backend": result["backend"],
        "summary": dict((status, len([r for r in records if r["status"] == status])) for status in STATUSES),
    }
    if module._diff:
        diffs = [dict(before_header=d["path"], after_header=d["path"], before=d["before"], after=d["after"])
                 for d in result["file_diffs"]]
        out["diff"] = diffs + [diff_from_records(records, header="app_confine")]
    errors = list(result["errors"])
    above = []
    for app in result["apps"]:
        exposure = app["exposure"]
        if exposure["above_threshold"]:
            judged = exposure["after"] if exposure["after"] is not None else exposure["predicted"]
            above.append("%s %.1f > %.1f" % (app["unit"], judged, exposure["threshold"]))
    if above:
        errors.append("exposure above the threshold: " + ", ".join(above))
    if errors:
        module.fail_json(msg="app_confine: " + "; ".join(errors), errors=errors, **out)
    return out


if __name__ == "__main__":
    main()
