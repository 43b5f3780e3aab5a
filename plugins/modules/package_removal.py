#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: package_removal
short_description: Remove insecure packages with apt or opkg, refusing to take other packages with them
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Removes the listed packages that are installed, in one package manager call, with C(apt-get) (installed
    packages read with C(dpkg-query)) or C(opkg).
  - With apt, the removal is simulated first (C(apt-get -s)), in check mode and in a real run alike. When it would
    also remove packages that are not listed (packages depending on a listed one), the task fails before anything
    is removed, unless O(allow_dependents=true).
  - Packages that are not installed are reported as C(unchanged). On a device without apt or opkg (BusyBox images
    without a package manager) one C(unsupported) record says so and the task does not fail.
options:
  packages:
    description:
      - Names of the packages to remove.
    type: list
    elements: str
    required: true
  manager:
    description:
      - The package manager. V(auto) uses apt when C(dpkg-query) and C(apt-get) exist, else opkg when C(opkg) exists.
    type: str
    default: auto
    choices: [auto, apt, opkg]
  purge:
    description:
      - Also remove configuration files (apt C(--purge); with apt, packages already removed but with their
        configuration left, status C(rc), are purged too). opkg removes configuration files with the package.
    type: bool
    default: false
  allow_dependents:
    description:
      - Remove packages that depend on a listed package along with it (apt), instead of failing.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - apt's own simulation says what a real run removes, dependents included; with opkg, a removal that opkg refuses
        (dependent packages) shows up in a real run only.
  diff_mode:
    support: full
    details:
      - Lists the packages and versions removed.
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Running the module again without changes on the target returns the same result and reports no change.
    support: full
notes:
  - Needs root (C(become)). No package lists are downloaded; removal works offline.
seealso:
  - module: ansible.builtin.apt
  - module: community.general.opkg
"""

EXAMPLES = r"""
- name: Remove cleartext remote shell servers
  edgewarden.hardening.package_removal:
    packages: [telnetd, inetutils-telnetd, rsh-server, rsh-redone-server]
  become: true

- name: Purge NIS with its configuration
  edgewarden.hardening.package_removal:
    packages: [nis]
    purge: true
  become: true
"""

RETURN = r"""
records:
  description:
    - One record per listed package (id C(package/NAME), where C(persisted)), before (installed version, null when
      not installed) and after (null); plus one per dependent package apt would remove with them.
  returned: always
  type: list
  elements: dict
  sample: [{id: package/telnetd, before: 0.17-44, after: null, where: persisted, status: changed}]
manager:
  description: The package manager used, null when none was found.
  returned: always
  type: str
  sample: apt
removed:
  description: Packages removed (in check mode, that a real run would remove), dependents included.
  returned: always
  type: list
  elements: str
  sample: [telnetd]
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import (
    ERROR,
    UNSUPPORTED,
    any_changed,
    record,
)

ARGUMENT_SPEC = dict(
    packages=dict(type="list", elements="str", required=True),
    manager=dict(type="str", default="auto", choices=["auto", "apt", "opkg"]),
    purge=dict(type="bool", default=False),
    allow_dependents=dict(type="bool", default=False),
)
DPKG_FORMAT = "${binary:Package}\\t${db:Status-Abbrev}\\t${Version}\\n"
_SIMULATED = re.compile(r"^(Remv|Purg) (\S+)(?: \[([^\]]*)\])?")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]*$")


def parse_dpkg_query(text):
    """``{name: {"status": "ii", "version": ...}}`` from dpkg-query output (arch qualifiers dropped)."""
    packages = {}
    for line in (text or "").splitlines():
        fields = line.split("\t")
        if len(fields) != 3:
            continue
        name = fields[0].split(":", 1)[0]
        packages[name] = {"status": fields[1].strip(), "version": fields[2].strip()}
    return packages


def parse_opkg_installed(text):
    """``{name: {"status": "ii", "version": ...}}`` from ``opkg list-installed`` (``name - version``)."""
    packages = {}
    for line in (text or "").splitlines():
        parts = line.split(" - ")
        if len(parts) >= 2 and parts[0].strip():
            packages[parts[0].strip()] = {"status": "ii", "version": parts[1].strip()}
    return packages


def parse_apt_simulation(text):
    """``{name: version}`` of the packages an ``apt-get -s remove`` would remove or purge."""
    removed = {}
    for line in (text or "").splitlines():
        match = _SIMULATED.match(line)
        if match:
            removed[match.group(2).split(":", 1)[0]] = (match.group(3) or "").split(" ", 1)[0] or None
    return removed


def to_remove(wanted, installed, purge=False):
    """Listed packages a removal acts on: installed ones, and with purge those left as config (``rc``)."""
    names = []
    for name in wanted:
        info = installed.get(name)
        if not info:
            continue
        if info["status"].startswith("i") or (purge and info["status"].startswith("r")):
            names.append(name)
    return names


def plan(wanted, installed, simulated=None, allow_dependents=False):
    """Pure: records for the listed packages and for dependents apt would take with them."""
    records = []
    for name in wanted:
        info = installed.get(name)
        if simulated is not None and name in simulated:
            records.append(record("package/" + name, info["version"] if info else simulated[name], None, where="persisted"))
        elif info and info["status"].startswith("i") and simulated is None:
            records.append(record("package/" + name, info["version"], None, where="persisted"))
        elif info and info["status"].startswith("i"):
            records.append(record("package/" + name, info["version"], info["version"], where="persisted",
                                  status=UNSUPPORTED, detail="installed, but apt would not remove it"))
        elif info and info["status"].startswith("r"):
            records.append(record("package/" + name, None, None, where="persisted", detail="removed; configuration files left"))
        else:
            records.append(record("package/" + name, None, None, where="persisted", detail="not installed"))
    for name in sorted(set(simulated or {}) - set(wanted)):
        if allow_dependents:
            records.append(record("package/" + name, simulated[name], None, where="persisted",
                                  detail="depends on a listed package: removed with it"))
        else:
            records.append(record("package/" + name, simulated[name], None, where="persisted", status=ERROR,
                                  detail="depends on a listed package: removing the list would remove it too "
                                         "(allow_dependents=true allows it)"))
    return records


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    bad = [name for name in p["packages"] if not _NAME.match(name)]
    if bad:
        module.fail_json(msg="not package names: %s" % ", ".join(bad), records=[])
    env = {"LC_ALL": "C", "LANG": "C", "DEBIAN_FRONTEND": "noninteractive"}
    tools = dict((tool, module.get_bin_path(tool)) for tool in ("dpkg-query", "apt-get", "opkg"))
    manager = p["manager"]
    if manager == "auto":
        manager = "apt" if tools["dpkg-query"] and tools["apt-get"] else ("opkg" if tools["opkg"] else None)
    if manager is None or (manager == "apt" and not (tools["dpkg-query"] and tools["apt-get"])) or \
            (manager == "opkg" and not tools["opkg"]):
        module.exit_json(changed=False, manager=None, removed=[], records=[record(
            "package/*", None, None, where="persisted", status=UNSUPPORTED,
            detail="no package manager (apt, opkg) on the device: nothing to remove")])

    if manager == "apt":
        rc, out, err = module.run_command([tools["dpkg-query"], "-W", "-f", DPKG_FORMAT], environ_update=env)
        installed = parse_dpkg_query(out)
    else:
        rc, out, err = module.run_command([tools["opkg"], "list-installed"], environ_update=env)
        installed = parse_opkg_installed(out)
    if rc != 0:
        module.fail_json(msg="listing installed packages failed: %s" % (err or out).strip(), rc=rc, records=[])

    names = to_remove(p["packages"], installed, p["purge"])
    simulated = None
    command = None
    if manager == "apt" and names:
        command = [tools["apt-get"], "remove", "-y", "-q"] + (["--purge"] if p["purge"] else []) + names
        rc, out, err = module.run_command([command[0], "-s"] + command[1:], environ_update=env)
        if rc != 0:
            module.fail_json(msg="apt-get could not plan the removal: %s" % (err or out).strip(), rc=rc, records=[])
        simulated = parse_apt_simulation(out)
    elif manager == "opkg" and names:
        command = [tools["opkg"], "remove"] + names
    records = plan(p["packages"], installed, simulated, p["allow_dependents"])
    removed = sorted(simulated) if simulated is not None else names
    result = {"records": records, "manager": manager, "removed": removed, "changed": any_changed(records)}
    if module._diff:
        result["diff"] = {"before_header": "installed packages", "after_header": "installed packages",
                          "before": "".join("%s %s\n" % (r["id"][8:], r["before"]) for r in records if r["before"]),
                          "after": ""}
    errors = [r for r in records if r["status"] == ERROR]
    if errors:
        result["changed"] = False
        module.fail_json(msg="nothing was removed: " + "; ".join("%s: %s" % (r["id"], r["detail"]) for r in errors), **result)
    if command and result["changed"] and not module.check_mode:
        rc, out, err = module.run_command(command, environ_update=env)
        if rc != 0:
            module.fail_json(msg="%s failed: %s" % (" ".join(command[:2]), (err or out).strip()[-500:]), rc=rc, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
