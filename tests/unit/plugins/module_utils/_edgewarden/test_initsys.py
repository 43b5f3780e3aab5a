# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.initsys import (
    INIT_NAMES,
    MARKER_PATHS,
    classify_init,
    gather_init_evidence,
)


def evidence(comm=None, exe=None, cmdline=(), sbin_init=None, markers=(), start_links=0, runlevels=()):
    """Evidence as gather_init_evidence returns it, naming only what is present."""
    return {
        "pid1_comm": comm,
        "pid1_exe": exe,
        "pid1_exe_error": None if exe else "Permission denied",
        "pid1_cmdline": list(cmdline),
        "sbin_init": sbin_init,
        "markers": {path: path in markers for path in MARKER_PATHS},
        "rc_d_start_links": start_links,
        "runlevel_dirs": list(runlevels),
    }


@pytest.mark.parametrize("case, ev, name, pid1", [
    ("debian systemd", evidence("systemd", "/usr/lib/systemd/systemd", ["/sbin/init", "splash"], "/usr/lib/systemd/systemd",
                                ["/run/systemd/system", "/etc/init.d"]), "systemd", "systemd"),
    ("systemd, exe unreadable", evidence("systemd", None, ["/sbin/init"]), "systemd", "systemd"),
    ("systemd over a stale inittab", evidence("systemd", "/lib/systemd/systemd", ["/sbin/init"], markers=["/etc/inittab"]), "systemd", "systemd"),
    ("openwrt procd", evidence("procd", "/sbin/procd", ["/sbin/procd"], "/sbin/init", ["/sbin/procd", "/etc/rc.d", "/etc/init.d"], 23), "procd", "procd"),
    ("openrc-init", evidence("openrc-init", "/sbin/openrc-init", ["/sbin/openrc-init"], markers=["/run/openrc", "/sbin/openrc"]), "openrc", "openrc-init"),
    ("alpine: busybox init + openrc", evidence("init", "/bin/busybox", ["/sbin/init"], "/bin/busybox",
                                               ["/etc/inittab", "/sbin/openrc", "/run/openrc", "/etc/init.d"]), "openrc", "busybox"),
    ("yocto busybox init", evidence("init", "/bin/busybox", ["/sbin/init"], "/bin/busybox", ["/etc/inittab", "/etc/init.d"]), "busybox", "busybox"),
    ("busybox init, no inittab", evidence("init", "/bin/busybox", ["init"], "/bin/busybox"), "busybox", "busybox"),
    ("busybox init, exe unreadable", evidence("init", None, ["/sbin/init"], "/bin/busybox", ["/etc/inittab"]), "busybox", "busybox"),
    ("busybox linuxrc", evidence("linuxrc", "/bin/busybox", ["/linuxrc"]), "busybox", "busybox"),
    ("alpine container, sh is pid 1", evidence("sh", "/bin/busybox", ["/bin/sh"], None, ["/etc/inittab"]), "other", "busybox"),
    ("debian sysvinit", evidence("init", "/sbin/init", ["init [2]"], "/sbin/init", ["/etc/inittab", "/etc/init.d"], runlevels=["/etc/rc2.d"]), "sysv", "init"),
    ("sysvinit, exe unreadable", evidence("init", None, ["init [2]"], "/sbin/init", ["/etc/inittab"]), "sysv", "init"),
    ("gentoo sysvinit + openrc", evidence("init", "/sbin/init", ["init [3]"], "/sbin/init", ["/etc/inittab", "/run/openrc", "/sbin/openrc"]), "openrc", "init"),
    ("init without inittab, systemd running", evidence("init", None, ["/sbin/init"], "/sbin/init", ["/run/systemd/system"]), "systemd", "init"),
    ("init without inittab or markers", evidence("init", "/sbin/init", ["/sbin/init"], "/sbin/init"), "unknown", "init"),
    ("docker --init", evidence("docker-init", "/sbin/docker-init", ["/sbin/docker-init", "--", "nginx"]), "tini", "docker-init"),
    ("tini", evidence("tini", "/usr/bin/tini", ["/usr/bin/tini", "--", "app"], markers=["/etc/init.d"]), "tini", "tini"),
    ("firecracker guest agent", evidence("process_api", None, ["/process_api", "--firecracker-init"], "/lib/systemd/systemd",
                                         ["/etc/init.d"], runlevels=["/etc/rc2.d"]), "other", "process_api"),
    ("bash as pid 1", evidence("bash", "/usr/bin/bash", ["bash"]), "other", "bash"),
    ("runit", evidence("runit", "/sbin/runit", ["runit"]), "other", "runit"),
    ("nothing readable", evidence(), "unknown", None),
    ("empty dict", {}, "unknown", None),
    ("None", None, "unknown", None),
])
def test_classify_init(case, ev, name, pid1):
    result = classify_init(ev)
    assert (result["name"], result["pid1"]) == (name, pid1), case
    assert result["name"] in INIT_NAMES
    assert result["reason"]


@pytest.mark.parametrize("markers, sbin_init, start_links, runlevels, name, reason_part", [
    (["/run/systemd/system", "/etc/inittab"], "/lib/systemd/systemd", 0, [], "systemd", "/run/systemd/system exists"),
    (["/run/openrc", "/etc/inittab"], "/bin/busybox", 0, [], "openrc", "/run/openrc exists"),
    (["/sbin/procd", "/etc/rc.d"], "/sbin/init", 12, [], "procd", "12 /etc/rc.d start links"),
    (["/sbin/openrc-run", "/etc/init.d"], "/sbin/init", 0, [], "openrc", "OpenRC is installed"),
    (["/etc/inittab"], "/bin/busybox", 0, [], "busybox", "/sbin/init is a link to busybox and /etc/inittab exists"),
    ([], "/bin/busybox", 0, [], "busybox", "/sbin/init is a link to busybox"),
    (["/etc/inittab"], "/sbin/init", 0, [], "sysv", "/etc/inittab exists"),
    (["/etc/init.d"], None, 0, ["/etc/rc2.d", "/etc/rcS.d"], "sysv", "runlevel directories exist"),
    (["/etc/init.d"], None, 0, [], "unknown", "no init system markers"),
])
def test_classify_init_from_markers_when_pid1_unreadable(markers, sbin_init, start_links, runlevels, name, reason_part):
    result = classify_init(evidence(sbin_init=sbin_init, markers=markers, start_links=start_links, runlevels=runlevels))
    assert result["name"] == name
    assert result["reason"].startswith("pid 1 unreadable; ")
    assert reason_part in result["reason"]


@pytest.mark.parametrize("ev, reason", [
    (evidence("init", "/bin/busybox", ["/sbin/init"], "/bin/busybox", ["/etc/inittab"]),
     "pid 1 is /bin/busybox (init applet) and /etc/inittab exists"),
    (evidence("init", None, ["/sbin/init"], "/bin/busybox", ["/etc/inittab"]),
     "pid 1 is /sbin/init -> /bin/busybox (init applet) and /etc/inittab exists"),
    (evidence("systemd", "/usr/lib/systemd/systemd"), "pid 1 is /usr/lib/systemd/systemd"),
    (evidence("init", "/sbin/init", ["init [2]"], "/sbin/init", ["/etc/inittab"]),
     "pid 1 is /sbin/init, /etc/inittab exists and init is not busybox"),
])
def test_classify_init_reason_text(ev, reason):
    assert classify_init(ev)["reason"] == reason


def test_classify_init_keeps_evidence():
    ev = evidence("procd", "/sbin/procd")
    assert classify_init(ev)["evidence"] is ev


def build_tree(root, files=None, links=None, dirs=()):
    """A tiny device root under tmp_path: real files, real (possibly dangling) symlinks."""
    for path in dirs:
        os.makedirs(os.path.join(str(root), path.lstrip("/")), exist_ok=True)
    for path, content in (files or {}).items():
        host = os.path.join(str(root), path.lstrip("/"))
        os.makedirs(os.path.dirname(host), exist_ok=True)
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(host, mode) as handle:
            handle.write(content)
    for path, target in (links or {}).items():
        host = os.path.join(str(root), path.lstrip("/"))
        os.makedirs(os.path.dirname(host), exist_ok=True)
        os.symlink(target, host)
    return str(root)


TREES = {
    "openwrt": dict(
        files={"/proc/1/comm": "procd\n", "/proc/1/cmdline": b"/sbin/procd\0", "/sbin/procd": "", "/sbin/init": "",
               "/etc/init.d/boot": "", "/etc/init.d/dropbear": "", "/etc/inittab": "::sysinit:/etc/init.d/rcS S boot\n"},
        links={"/proc/1/exe": "/sbin/procd", "/etc/rc.d/S10boot": "../init.d/boot", "/etc/rc.d/S19dropbear": "../init.d/dropbear",
               "/etc/rc.d/K50dropbear": "../init.d/dropbear"},
    ),
    "yocto-busybox": dict(
        files={"/proc/1/comm": "init\n", "/proc/1/cmdline": b"/sbin/init\0", "/bin/busybox": "", "/etc/inittab": "::sysinit:/etc/init.d/rcS\n",
               "/etc/init.d/rcS": ""},
        links={"/proc/1/exe": "/bin/busybox", "/sbin/init": "../bin/busybox"},
    ),
    "busybox-no-exe": dict(
        files={"/proc/1/comm": "init\n", "/proc/1/cmdline": b"/sbin/init\0", "/bin/busybox": "", "/etc/inittab": ""},
        links={"/sbin/init": "/bin/busybox"},
    ),
    "alpine-openrc": dict(
        files={"/proc/1/comm": "init\n", "/proc/1/cmdline": b"/sbin/init\0", "/bin/busybox": "", "/etc/inittab": "",
               "/sbin/openrc": "", "/sbin/openrc-run": ""},
        links={"/proc/1/exe": "/bin/busybox", "/sbin/init": "/bin/busybox"},
        dirs=["/run/openrc", "/etc/init.d"],
    ),
    "debian-systemd-usrmerge": dict(
        files={"/proc/1/comm": "systemd\n", "/proc/1/cmdline": b"/sbin/init\0splash\0", "/usr/lib/systemd/systemd": ""},
        links={"/proc/1/exe": "/usr/lib/systemd/systemd (deleted)", "/sbin": "usr/sbin", "/lib": "usr/lib",
               "/usr/sbin/init": "../lib/systemd/systemd"},
        dirs=["/run/systemd/system", "/usr/sbin", "/etc/init.d", "/etc/rc2.d"],
    ),
    "debian-sysvinit": dict(
        files={"/proc/1/comm": "init\n", "/proc/1/cmdline": b"init [2]  \0", "/sbin/init": "", "/etc/inittab": "id:2:initdefault:\n"},
        links={"/proc/1/exe": "/sbin/init"},
        dirs=["/etc/init.d", "/etc/rc2.d", "/etc/rcS.d"],
    ),
    "container-tini": dict(
        files={"/proc/1/comm": "tini\n", "/proc/1/cmdline": b"/usr/bin/tini\0--\0app\0", "/usr/bin/tini": ""},
        links={"/proc/1/exe": "/usr/bin/tini"},
    ),
    "empty": dict(),
}


@pytest.mark.parametrize("tree, name, checks", [
    ("openwrt", "procd", {"pid1_exe": "/sbin/procd", "rc_d_start_links": 2, "sbin_init": "/sbin/init"}),
    ("yocto-busybox", "busybox", {"pid1_exe": "/bin/busybox", "sbin_init": "/bin/busybox", "pid1_cmdline": ["/sbin/init"]}),
    ("busybox-no-exe", "busybox", {"pid1_exe": None, "sbin_init": "/bin/busybox"}),
    ("alpine-openrc", "openrc", {"pid1_comm": "init", "sbin_init": "/bin/busybox"}),
    ("debian-systemd-usrmerge", "systemd", {"pid1_exe": "/usr/lib/systemd/systemd", "sbin_init": "/lib/systemd/systemd",
                                            "pid1_cmdline": ["/sbin/init", "splash"]}),
    ("debian-sysvinit", "sysv", {"pid1_exe": "/sbin/init", "runlevel_dirs": ["/etc/rc2.d", "/etc/rcS.d"], "pid1_cmdline": ["init [2]  "]}),
    ("container-tini", "tini", {"pid1_exe": "/usr/bin/tini", "sbin_init": None}),
    ("empty", "unknown", {"pid1_comm": None, "pid1_exe": None, "pid1_cmdline": [], "sbin_init": None, "rc_d_start_links": 0}),
])
def test_gather_and_classify_fake_roots(tmp_path, tree, name, checks):
    root = build_tree(tmp_path, **TREES[tree])
    ev = gather_init_evidence(root)
    for key, value in checks.items():
        assert ev[key] == value, key
    assert classify_init(ev)["name"] == name


def test_gather_records_why_exe_is_missing(tmp_path):
    ev = gather_init_evidence(build_tree(tmp_path, **TREES["busybox-no-exe"]))
    assert ev["pid1_exe"] is None
    assert ev["pid1_exe_error"]


def test_gather_markers_are_plain_booleans(tmp_path):
    ev = gather_init_evidence(build_tree(tmp_path, **TREES["alpine-openrc"]))
    assert set(ev["markers"]) == set(MARKER_PATHS)
    assert [path for path, present in sorted(ev["markers"].items()) if present] == [
        "/etc/init.d", "/etc/inittab", "/run/openrc", "/sbin/openrc", "/sbin/openrc-run"]


def test_gather_on_this_machine_does_not_fail():
    result = classify_init(gather_init_evidence())
    assert result["name"] in INIT_NAMES


TINI = ("tini", "/usr/bin/tini", ["tini", "--", "/boot.sh"])
SYSTEMD = ("systemd", "/lib/systemd/systemd", ["/sbin/init"])


@pytest.mark.parametrize("case, ev, name", [
    ("tini that started OpenRC", evidence(*TINI, markers=["/run/openrc", "/run/openrc/softlevel", "/sbin/rc-service"]),
     "openrc"),
    ("a custom entrypoint that started OpenRC",
     evidence("entry", "/usr/local/bin/entry", ["/usr/local/bin/entry"], markers=["/run/openrc/softlevel", "/usr/sbin/rc-service"]),
     "openrc"),
    ("tini, OpenRC installed but never run", evidence(*TINI, markers=["/sbin/rc-service"]), "tini"),
    ("tini, a stale softlevel without rc-service", evidence(*TINI, markers=["/run/openrc/softlevel"]), "tini"),
    ("systemd stays systemd", evidence(*SYSTEMD, markers=["/run/systemd/system", "/run/openrc/softlevel", "/sbin/rc-service"]),
     "systemd"),
    ("openrc-init", evidence("openrc-init", "/sbin/openrc-init", ["/sbin/openrc-init"], markers=["/run/openrc"]), "openrc"),
])
def test_classify_service_manager(case, ev, name):
    from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.initsys import classify_service_manager
    decided = classify_service_manager(ev)
    assert decided["name"] == name, (case, decided["reason"])
    assert decided["name"] == classify_init(ev)["name"] or "OpenRC manages the services" in decided["reason"]
