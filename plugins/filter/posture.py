# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet posture report: rows and a fixed-width table from device_facts results."""

from __future__ import annotations

COLUMNS = (
    ("host", "HOST"),
    ("status", "STATUS"),
    ("os", "OS"),
    ("init", "INIT"),
    ("kernel", "KERNEL"),
    ("lsm", "MAC/LSM"),
    ("aslr", "ASLR"),
    ("root_fs", "ROOT FS"),
    ("secure_boot", "SECURE BOOT"),
    ("listening", "LISTENING"),
    ("python", "PYTHON"),
    ("package_manager", "PKG"),
)

MAC_LSMS = ("apparmor", "selinux", "smack", "tomoyo")


def _get(facts, *path):
    value = facts
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _mac_summary(facts):
    lsms = _get(facts, "lsm") or []
    active = [name for name in lsms if name in MAC_LSMS]
    if "apparmor" in active:
        loaded = _get(facts, "apparmor", "profiles_loaded")
        if loaded is not None:
            active[active.index("apparmor")] = "apparmor(%d)" % loaded
    if "selinux" in active:
        active[active.index("selinux")] = "selinux(%s)" % (_get(facts, "selinux", "mode") or "?")
    if active:
        return ",".join(active)
    return "none" if lsms or _get(facts, "lsm_source") else "?"


def _kernel_summary(facts):
    release = _get(facts, "kernel", "release") or "?"
    source = _get(facts, "kernel", "config_source")
    return "%s%s" % (release, "" if source else " (no config)")


def _root_summary(facts):
    readonly = _get(facts, "root_fs", "readonly")
    fstype = _get(facts, "root_fs", "fstype") or "?"
    if readonly is None:
        return fstype
    return "%s %s" % (fstype, "ro" if readonly else "rw")


def _aslr_summary(facts):
    value = _get(facts, "aslr", "value")
    if value is None:
        return "?"
    return "%s (%s)" % (value, _get(facts, "aslr", "meaning") or "?")


def _listening_summary(facts):
    total = _get(facts, "listening", "total")
    if total is None:
        return "?"
    return "%s (tcp %s, udp %s)" % (total, _get(facts, "listening", "tcp"), _get(facts, "listening", "udp"))


def posture_row(host, facts):
    """One report row; a host without facts is unreachable (or its audit failed)."""
    if not facts:
        row = dict((key, "-") for key, _title in COLUMNS)
        row.update(host=host, status="unreachable")
        return row
    return {
        "host": host,
        "status": "ok",
        "os": _get(facts, "os", "pretty_name") or _get(facts, "os", "id") or "?",
        "init": _get(facts, "init", "name") or "?",
        "kernel": _kernel_summary(facts),
        "lsm": _mac_summary(facts),
        "aslr": _aslr_summary(facts),
        "root_fs": _root_summary(facts),
        "secure_boot": _get(facts, "secure_boot", "state") or "?",
        "listening": _listening_summary(facts),
        "python": _get(facts, "python", "version") or "?",
        "package_manager": _get(facts, "package_manager") or "none",
    }


def posture_rows(facts_by_host):
    return [posture_row(host, facts_by_host[host]) for host in sorted(facts_by_host)]


def posture_table(rows, max_width=32):
    """Rows as a fixed-width text table; long cells are cut to ``max_width``."""
    def cell(value):
        text = str(value)
        return text if len(text) <= max_width else text[:max_width - 1] + "~"

    cells = [[cell(row.get(key, "")) for key, _title in COLUMNS] for row in rows]
    titles = [title for _key, title in COLUMNS]
    widths = [max([len(titles[i])] + [len(line[i]) for line in cells]) for i in range(len(COLUMNS))]
    lines = ["  ".join(titles[i].ljust(widths[i]) for i in range(len(COLUMNS))).rstrip()]
    lines.append("  ".join("-" * widths[i] for i in range(len(COLUMNS))))
    for line in cells:
        lines.append("  ".join(line[i].ljust(widths[i]) for i in range(len(COLUMNS))).rstrip())
    unreachable = sum(1 for row in rows if row.get("status") != "ok")
    lines.append("%d hosts, %d reached, %d unreachable" % (len(rows), len(rows) - unreachable, unreachable))
    return "\n".join(lines) + "\n"


class FilterModule:
    def filters(self):
        return {"posture_rows": posture_rows, "posture_table": posture_table}
