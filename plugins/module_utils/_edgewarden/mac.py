# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Which mandatory access control a device runs, and what it has to manage it with.

Read once (securityfs' LSM list, AppArmor's and SELinux's own files, the tools on PATH),
decided by a pure function, so the mac role takes one path per host.
"""

from __future__ import annotations

import os

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import read_first_line, read_text
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.posture import (
    interpret_apparmor,
    interpret_lsm,
    interpret_selinux,
    APPARMOR_ENABLED_PATH,
    APPARMOR_PROFILES_PATH,
    LSM_PATH,
    SELINUX_ENFORCE_PATH,
)

SELINUX_CONFIG = "/etc/selinux/config"
TOOLS = ("apparmor_parser", "semodule", "setsebool", "semanage", "restorecon")
TOOL_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def _path(root, path):
    return os.path.join(root, path.lstrip("/"))


def find_tools(root="/", dirs=TOOL_DIRS):
    found = {}
    for tool in TOOLS:
        found[tool] = None
        for directory in dirs:
            candidate = _path(root, os.path.join(directory, tool))
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                found[tool] = os.path.join(directory, tool)
                break
    return found


def choose_path(lsm, apparmor_enabled, selinux_mode):
    """``apparmor``, ``selinux`` or ``none``. Only one major LSM can be active, but a
    kernel can list both as built in; what counts is which one is enforcing policy."""
    lsm = lsm or []
    if "apparmor" in lsm and apparmor_enabled:
        return "apparmor"
    if "selinux" in lsm or selinux_mode in ("enforcing", "permissive"):
        return "selinux"
    return "none"


def no_mac_message(lsm, required):
    """What to tell people when neither AppArmor nor SELinux is active (path ``none``)."""
    active = "active LSMs: %s" % (", ".join(lsm) if lsm else "none readable")
    if required:
        return ("MAC is required, but neither AppArmor nor SELinux is active (%s). Boot a kernel with apparmor or "
                "selinux in its LSM list (lsm=... or security=... on the command line)." % active)
    return "Neither AppArmor nor SELinux is active (%s): no profile or policy is applied." % active


def read_state(root="/"):
    lsm, source = interpret_lsm(read_text(_path(root, LSM_PATH)), read_first_line(_path(root, APPARMOR_ENABLED_PATH)),
                                os.path.exists(_path(root, SELINUX_ENFORCE_PATH)))
    apparmor = interpret_apparmor(read_first_line(_path(root, APPARMOR_ENABLED_PATH)),
                                  read_text(_path(root, APPARMOR_PROFILES_PATH)), lsm)
    enforce = _path(root, SELINUX_ENFORCE_PATH)
    selinux = interpret_selinux(read_first_line(enforce), os.path.exists(enforce))
    config = read_text(_path(root, SELINUX_CONFIG))
    selinux["config_present"] = config is not None
    selinux["config_mode"] = None
    for line in (config or "").splitlines():
        if line.strip().startswith("SELINUX="):
            selinux["config_mode"] = line.split("=", 1)[1].strip().strip('"')
    return {
        "lsm": lsm or [],
        "lsm_source": source,
        "apparmor": apparmor,
        "selinux": selinux,
        "tools": find_tools(root),
        "path": choose_path(lsm, apparmor["enabled"], selinux["mode"]),
    }
