# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Which init system runs the device: systemd, OpenRC, SysV, BusyBox, procd, or other.

``gather_init_evidence`` only reads (PID 1's identity, a few marker paths) and returns
plain data; ``classify_init`` is pure, so every decision can be tested from a dict.
PID 1 is trusted first because marker files outlive the init system that made them
(an image switched from SysV to systemd keeps /etc/inittab).
"""

from __future__ import annotations

import os
import re

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import read_first_line
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.procfs import read_bytes

INIT_NAMES = ("systemd", "openrc", "sysv", "busybox", "procd", "tini", "other", "unknown")

# Paths whose existence is evidence. /run entries exist only while that init runs.
MARKER_PATHS = (
    "/run/systemd/system",
    "/run/openrc",
    "/run/openrc/softlevel",
    "/sbin/openrc",
    "/sbin/openrc-run",
    "/sbin/openrc-init",
    "/sbin/rc-service",
    "/usr/sbin/rc-service",
    "/sbin/procd",
    "/etc/inittab",
    "/etc/init.d",
    "/etc/rc.d",
)
RUNLEVEL_DIRS = tuple("/etc/rc%s.d" % level for level in "0123456S") + ("/etc/rc.d/rc3.d",)

# Container/minimal inits that reap zombies but manage no services.
TINI_NAMES = ("tini", "tini-static", "docker-init")
BUSYBOX_INIT_APPLETS = ("init", "linuxrc")
_START_LINK = re.compile(r"^S\d\d")
_DELETED = " (deleted)"


def _under(root, path):
    return os.path.join(root, path.lstrip("/"))


def _resolve_link(root, path, max_hops=8):
    """The device path a symlink chain inside ``root`` ends at, or None when it is absent.

    Followed by hand so a test tree under tmp_path resolves like the device would.
    """
    current = path
    for _dummy in range(max_hops):
        host = _under(root, current)
        if not os.path.islink(host):
            return current if os.path.exists(host) else None
        try:
            target = os.readlink(host)
        except OSError:
            return None
        if not os.path.isabs(target):
            target = os.path.join(os.path.dirname(current), target)
        current = os.path.normpath(target)
    return current


def _pid1_exe(root):
    """PID 1's resolved executable; reading it needs ptrace rights that are often refused."""
    try:
        exe = os.readlink(_under(root, "/proc/1/exe"))
    except OSError as exc:
        return None, exc.strerror or str(exc)
    if exe.endswith(_DELETED):
        # The binary was replaced by an upgrade since boot; the name is what matters.
        exe = exe[:-len(_DELETED)]
    return exe, None


def gather_init_evidence(root="/"):
    """Plain data about PID 1 and init marker paths under ``root``; reads only."""
    exe, exe_error = _pid1_exe(root)
    raw_cmdline = read_bytes(_under(root, "/proc/1/cmdline"), b"")
    cmdline = [arg.decode("utf-8", "replace") for arg in raw_cmdline.split(b"\0") if arg]
    try:
        start_links = len([name for name in os.listdir(_under(root, "/etc/rc.d")) if _START_LINK.match(name)])
    except OSError:
        start_links = 0
    return {
        "pid1_comm": read_first_line(_under(root, "/proc/1/comm")) or None,
        "pid1_exe": exe,
        "pid1_exe_error": exe_error,
        "pid1_cmdline": cmdline,
        "sbin_init": _resolve_link(root, "/sbin/init"),
        "markers": {path: os.path.exists(_under(root, path)) for path in MARKER_PATHS},
        "rc_d_start_links": start_links,
        "runlevel_dirs": [path for path in RUNLEVEL_DIRS if os.path.isdir(_under(root, path))],
    }


def _basename(path):
    return os.path.basename(path.rstrip("/")) if path else None


def _result(name, reason, pid1, evidence):
    return {"name": name, "reason": reason, "pid1": pid1, "evidence": evidence}


def _openrc_running(markers):
    return bool(markers.get("/run/openrc"))


def _from_markers(evidence, prefix):
    """Decide from marker paths alone, for when PID 1 could not be identified."""
    markers = evidence.get("markers") or {}
    sbin_init_busybox = _basename(evidence.get("sbin_init")) == "busybox"
    if markers.get("/run/systemd/system"):
        return _result("systemd", prefix + "/run/systemd/system exists (systemd is running)", None, evidence)
    if _openrc_running(markers):
        return _result("openrc", prefix + "/run/openrc exists (OpenRC has started services)", None, evidence)
    if markers.get("/sbin/procd"):
        return _result("procd", prefix + "/sbin/procd exists (%d /etc/rc.d start links)" % evidence.get("rc_d_start_links", 0), None, evidence)
    if markers.get("/sbin/openrc") or markers.get("/sbin/openrc-run"):
        return _result("openrc", prefix + "OpenRC is installed (/sbin/openrc or /sbin/openrc-run)", None, evidence)
    if sbin_init_busybox:
        tail = " and /etc/inittab exists" if markers.get("/etc/inittab") else ""
        return _result("busybox", prefix + "/sbin/init is a link to busybox" + tail, None, evidence)
    if markers.get("/etc/inittab"):
        return _result("sysv", prefix + "/etc/inittab exists and /sbin/init is not busybox", None, evidence)
    if markers.get("/etc/init.d") and evidence.get("runlevel_dirs"):
        return _result("sysv", prefix + "/etc/init.d and runlevel directories exist", None, evidence)
    return _result("unknown", prefix + "no init system markers found", None, evidence)


def classify_init(evidence):
    """Name the init system from ``gather_init_evidence`` output. Pure.

    Returns ``{name, reason, pid1, evidence}``: ``name`` is one of INIT_NAMES,
    ``pid1`` the program name PID 1 was identified as (None when unreadable).
    """
    evidence = evidence or {}
    markers = evidence.get("markers") or {}
    exe = evidence.get("pid1_exe")
    comm = evidence.get("pid1_comm")
    cmdline = evidence.get("pid1_cmdline") or []
    argv0 = cmdline[0] if cmdline else None
    sbin_init = evidence.get("sbin_init")

    # exe is the resolved binary; comm and argv[0] may be a link name such as "init".
    described = exe or argv0 or comm
    if not described:
        return _from_markers(evidence, "pid 1 unreadable; ")
    names = {_basename(value) for value in (exe, comm, argv0) if value}
    program = _basename(exe) if exe else (_basename(comm) or _basename(argv0))

    if "systemd" in names:
        return _result("systemd", "pid 1 is %s" % described, "systemd", evidence)
    if "procd" in names:
        return _result("procd", "pid 1 is %s" % described, "procd", evidence)
    if "openrc-init" in names:
        return _result("openrc", "pid 1 is %s" % described, "openrc-init", evidence)

    # BusyBox is one binary: its init applet is PID 1 only when invoked as init
    # (an Alpine container runs /bin/sh -> busybox as PID 1). Without exe, an "init"
    # PID 1 is BusyBox when /sbin/init links to busybox.
    applet = _basename(argv0) or _basename(comm)
    if program == "busybox" and not (applet in BUSYBOX_INIT_APPLETS or (applet == "busybox" and cmdline[1:2] == ["init"])):
        return _result("other", "pid 1 is %s running the %s applet, not init" % (exe, applet), "busybox", evidence)
    link_name = not exe and bool(names.intersection(BUSYBOX_INIT_APPLETS))
    if program == "busybox" or (link_name and _basename(sbin_init) == "busybox"):
        shown = exe or "%s -> %s" % (argv0 or "/sbin/init", sbin_init)
        if _openrc_running(markers):
            return _result("openrc", "pid 1 is %s (busybox init) and /run/openrc shows OpenRC manages services" % shown, "busybox", evidence)
        if markers.get("/etc/inittab"):
            return _result("busybox", "pid 1 is %s (init applet) and /etc/inittab exists" % shown, "busybox", evidence)
        return _result("busybox", "pid 1 is %s (init applet, built-in default inittab)" % shown, "busybox", evidence)

    if program == "init":
        if _openrc_running(markers):
            return _result("openrc", "pid 1 is %s (sysvinit) and /run/openrc shows OpenRC manages services" % described, "init", evidence)
        if markers.get("/etc/inittab"):
            return _result("sysv", "pid 1 is %s, /etc/inittab exists and init is not busybox" % described, "init", evidence)
        # An "init" without inittab is not SysV; let the markers speak.
        decided = _from_markers(evidence, "pid 1 is %s without /etc/inittab; " % described)
        decided["pid1"] = "init"
        return decided

    if program in TINI_NAMES:
        return _result("tini", "pid 1 is %s, a container init that manages no services" % described, program, evidence)
    return _result("other", "pid 1 is %s, not systemd, OpenRC, SysV, BusyBox or procd init (container or custom init)" % described, program, evidence)


# A container-style PID 1 that starts OpenRC itself (an init script or entrypoint running
# `openrc default`, as in Alpine/Debian containers and the lab's openrc hosts) leaves
# services to OpenRC: softlevel is written once OpenRC has reached a runlevel.
SERVICE_MANAGER_PID1 = ("tini", "other")


def classify_service_manager(evidence):
    """Which init system manages the services, from ``gather_init_evidence`` output. Pure.

    Like ``classify_init``, except that a PID 1 which manages no services itself (tini, a
    custom entrypoint) is not the answer when OpenRC has reached a runlevel
    (/run/openrc/softlevel) and rc-service is installed: OpenRC manages the services then.
    """
    decided = classify_init(evidence)
    markers = (evidence or {}).get("markers") or {}
    rc_service = markers.get("/sbin/rc-service") or markers.get("/usr/sbin/rc-service")
    if decided["name"] in SERVICE_MANAGER_PID1 and markers.get("/run/openrc/softlevel") and rc_service:
        return _result("openrc", decided["reason"] + "; OpenRC manages the services (/run/openrc/softlevel and "
                       "rc-service exist)", decided["pid1"], decided["evidence"])
    return decided
