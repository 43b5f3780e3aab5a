# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Service backends on fake device trees under tmp_path.

No mocks: commands go to a small recording runner that answers from a table, and
signals to a recording ``kill``, so nothing here touches this machine's processes.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import services as sv


# ------------------------------------------------------------------ fake trees

def make_tree(root, spec):
    """spec: {device path: text | ("link", target) | ("dir",) | ("mode", text, mode)}."""
    for path, value in spec.items():
        host = os.path.join(str(root), path.lstrip("/"))
        if isinstance(value, tuple) and value[0] == "dir":
            os.makedirs(host, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(host), exist_ok=True)
        if isinstance(value, tuple) and value[0] == "link":
            os.symlink(value[1], host)
        elif isinstance(value, tuple) and value[0] == "mode":
            with open(host, "w") as handle:
                handle.write(value[1])
            os.chmod(host, value[2])
        else:
            with open(host, "w") as handle:
                handle.write(value)
            os.chmod(host, 0o755 if path.startswith("/etc/init.d/") else 0o644)
    return str(root)


def fake_proc(pid, comm, argv, ppid=1):
    """A /proc/<pid> entry: stat, comm and cmdline."""
    return {
        "/proc/%d/stat" % pid: "%d (%s) S %d 1 1 0 -1 4194560" % (pid, comm, ppid),
        "/proc/%d/comm" % pid: comm + "\n",
        "/proc/%d/cmdline" % pid: "\0".join(argv) + "\0",
    }


class Runner(object):
    """Answers commands from a table of ``tuple(argv) -> (rc, out, err)`` and records them."""

    def __init__(self, answers=None):
        self.answers = dict((tuple(k), v) for k, v in (answers or {}).items())
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        return self.answers.get(tuple(argv), (0, "", ""))


class Kill(object):
    def __init__(self):
        self.sent = []

    def __call__(self, pid, sig):
        self.sent.append((pid, int(sig)))


def lexists(root, path):
    return os.path.lexists(os.path.join(root, path.lstrip("/")))


def readlink(root, path):
    return os.readlink(os.path.join(root, path.lstrip("/")))


def by_id(records):
    return dict((rec["id"], rec) for rec in records)


AVAHI_UNIT = """\
[Unit]
Description=Avahi mDNS/DNS-SD Stack
Requires=avahi-daemon.socket

[Service]
ExecStart=/usr/sbin/avahi-daemon -s

[Install]
WantedBy=multi-user.target
Also=avahi-daemon.socket
Alias=dbus-org.freedesktop.Avahi.service
"""

AVAHI_SOCKET = """\
[Socket]
ListenStream=/run/avahi-daemon/socket

[Install]
WantedBy=sockets.target
"""

LSB_TELNETD = """\
#!/bin/sh
### BEGIN INIT INFO
# Provides:          telnetd
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
### END INIT INFO
case "$1" in
  start) ;;
  stop) ;;
  status) exit 3 ;;
esac
"""

RC_COMMON_UPNP = """\
#!/bin/sh /etc/rc.common
START=94
STOP=15
start() { :; }
stop() { :; }
"""

INITTAB = """\
::sysinit:/etc/init.d/rcS
::respawn:/usr/sbin/dropbear -F -E -p 22
::respawn:/usr/sbin/telnetd -F -p 23
tty1::askfirst:-/bin/sh
::shutdown:/bin/true
"""


# ------------------------------------------------------------------ pure parsers

@pytest.mark.parametrize("name, expected", [
    ("avahi-daemon", ("avahi-daemon", None)),
    ("avahi-daemon.service", ("avahi-daemon", ".service")),
    ("cups.socket", ("cups", ".socket")),
    ("nfs-server.v4", ("nfs-server.v4", None)),
    (".service", (".service", None)),
])
def test_split_unit(name, expected):
    assert sv.split_unit(name) == expected


@pytest.mark.parametrize("text, expected", [
    (AVAHI_UNIT, {"WantedBy": ["multi-user.target"], "RequiredBy": [], "Alias": ["dbus-org.freedesktop.Avahi.service"],
                  "Also": ["avahi-daemon.socket"]}),
    ("[Service]\nExecStart=/bin/true\n", None),
    ("[Install]\nWantedBy=a.target b.target\n; comment\nWantedBy=c.target\nRequiredBy=d.target\n",
     {"WantedBy": ["a.target", "b.target", "c.target"], "RequiredBy": ["d.target"], "Alias": [], "Also": []}),
    ("[Install]\nWantedBy=a.target\nWantedBy=\n", {"WantedBy": [], "RequiredBy": [], "Alias": [], "Also": []}),
    (None, None),
])
def test_parse_install_section(text, expected):
    assert sv.parse_install_section(text) == expected


def test_parse_lsb_and_openwrt_headers():
    assert sv.parse_lsb_levels(LSB_TELNETD) == {"Default-Start": ["2", "3", "4", "5"], "Default-Stop": ["0", "1", "6"]}
    assert sv.parse_lsb_levels("#!/bin/sh\n") == {"Default-Start": None, "Default-Stop": None}
    assert sv.parse_openwrt_priorities(RC_COMMON_UPNP) == (94, 15)
    assert sv.parse_openwrt_priorities("#!/bin/sh /etc/rc.common\nSTART=10\n") == (10, None)


def test_parse_inittab_round_trips_and_finds_programs():
    text = INITTAB + sv.INITTAB_OFF + "::respawn:/usr/sbin/ftpd -w /srv\n# a comment\n\n"
    entries = sv.parse_inittab(text)
    assert sv.render_inittab(entries) == text
    assert [(e["action"], e["program"], e["off"]) for e in entries] == [
        ("sysinit", "rcS", False), ("respawn", "dropbear", False), ("respawn", "telnetd", False),
        ("askfirst", "sh", False), ("shutdown", "true", False), ("respawn", "ftpd", True),
        (None, None, False), (None, None, False),
    ]


@pytest.mark.parametrize("mode, expected", [(0o644, 0o755), (0o640, 0o750), (0o600, 0o700), (0o755, 0o755)])
def test_executable_mode(mode, expected):
    assert sv.executable_mode(mode) == expected


def test_pids_named_matches_argv0_exe_and_cut_comm():
    procs = [
        {"pid": 10, "comm": "telnetd", "exe": None, "cmdline": ["/usr/sbin/telnetd", "-F"]},
        {"pid": 11, "comm": "python3", "exe": "/usr/bin/python3.11", "cmdline": ["python3", "-m", "x"]},
        {"pid": 12, "comm": "avahi-daemon: r", "exe": None, "cmdline": []},
        {"pid": 13, "comm": "ModemManager", "exe": "/usr/sbin/ModemManager", "cmdline": []},
    ]
    assert sv.pids_named(procs, "telnetd") == [10]
    assert sv.pids_named(procs, "ModemManager") == [13]
    assert sv.pids_named(procs, "avahi-daemon: running") == [12]
    assert sv.pids_named(procs, "rpcbind") == []


# ------------------------------------------------------------------ choosing a backend

@pytest.mark.parametrize("spec, expected", [
    ({"/sbin/init": ("link", "/lib/systemd/systemd"), "/lib/systemd/systemd": ""}, "systemd"),
    ({"/sbin/init": ("link", "../bin/busybox"), "/bin/busybox": ""}, "busybox"),
    ({"/sbin/procd": "", "/sbin/init": ""}, "procd"),
    ({"/sbin/openrc-run": "", "/sbin/init": ""}, "openrc"),
    ({"/etc/inittab": "id:2:initdefault:\n", "/sbin/init": ""}, "sysv"),
    ({"/etc/rc2.d/S01x": ""}, "sysv"),
    ({}, None),
])
def test_boot_init(tmp_path, spec, expected):
    root = make_tree(tmp_path, spec)
    assert sv.boot_init(root)[0] == expected


@pytest.mark.parametrize("pid1, spec, requested, expected", [
    ("systemd", {}, "auto", ("systemd", True)),
    ("busybox", {}, "auto", ("busybox", True)),
    ("procd", {}, "auto", ("procd", True)),
    # a container init: the boot configuration of the init system on disk
    ("tini", {"/sbin/init": ("link", "/lib/systemd/systemd"), "/lib/systemd/systemd": ""}, "auto", ("systemd", False)),
    ("other", {}, "auto", (None, False)),
    ("busybox", {}, "procd", ("procd", False)),
    ("systemd", {}, "systemd", ("systemd", True)),
])
def test_select_backend(tmp_path, pid1, spec, requested, expected):
    root = make_tree(tmp_path, spec)
    name, live, reason = sv.select_backend({"name": pid1, "reason": "pid 1 is " + pid1}, root, requested)
    assert (name, live) == expected
    assert reason


# ------------------------------------------------------------------ systemd

def systemd_tree(tmp_path, extra=None):
    spec = {
        "/lib/systemd/system/avahi-daemon.service": AVAHI_UNIT,
        "/lib/systemd/system/avahi-daemon.socket": AVAHI_SOCKET,
        "/etc/systemd/system/multi-user.target.wants/avahi-daemon.service": ("link", "/lib/systemd/system/avahi-daemon.service"),
        "/etc/systemd/system/sockets.target.wants/avahi-daemon.socket": ("link", "/lib/systemd/system/avahi-daemon.socket"),
        "/etc/systemd/system/dbus-org.freedesktop.Avahi.service": ("link", "/lib/systemd/system/avahi-daemon.service"),
        "/lib/systemd/system/static.service": "[Service]\nExecStart=/bin/true\n",
        "/etc/systemd/system/local.service": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
    }
    spec.update(extra or {})
    return make_tree(tmp_path, spec)


def test_systemd_offline_reads_service_and_socket(tmp_path):
    root = systemd_tree(tmp_path)
    backend = sv.SystemdBackend(root=root, live=False)
    assert backend.units("avahi-daemon") == ["avahi-daemon.service", "avahi-daemon.socket"]
    service, socket = backend.read_all("avahi-daemon")
    assert service["exists"] and service["enabled"] and not service["masked"]
    assert [link["path"] for link in service["enable_links"]] == [
        "/etc/systemd/system/multi-user.target.wants/avahi-daemon.service",
        "/etc/systemd/system/dbus-org.freedesktop.Avahi.service",
    ]
    assert service["running"] is None  # no systemd running and no init script
    assert socket["enabled"] and socket["fragment"] == "/lib/systemd/system/avahi-daemon.socket"


def test_systemd_offline_disable_and_mask_then_idempotent(tmp_path):
    root = systemd_tree(tmp_path)
    backend = sv.SystemdBackend(root=root, live=False)
    desired = {"name": "avahi-daemon", "state": "stopped", "enabled": False, "masked": True}
    plan = sv.plan_all(backend, sv.read_states(backend, [desired]))
    records = by_id(plan["records"])
    assert records["service.masked/avahi-daemon.service"]["status"] == "changed"
    assert records["service.enabled/avahi-daemon.service"]["before"] == "enabled"
    assert records["service.enabled/avahi-daemon.socket"]["after"] == "disabled"
    # nothing runs it and there is no init script: the running state is not managed here
    assert records["service.running/avahi-daemon.service"]["status"] == "unsupported"
    assert [op["op"] for op in plan["ops"]] == ["link", "unlink", "unlink", "link", "unlink"]
    assert not [op for op in plan["ops"] if op["op"] == "run"]  # no systemctl offline
    assert sv.apply_ops(plan["ops"], root=root) == []
    assert readlink(root, "/etc/systemd/system/avahi-daemon.service") == "/dev/null"
    assert readlink(root, "/etc/systemd/system/avahi-daemon.socket") == "/dev/null"
    assert not lexists(root, "/etc/systemd/system/multi-user.target.wants/avahi-daemon.service")
    assert not lexists(root, "/etc/systemd/system/dbus-org.freedesktop.Avahi.service")
    again = sv.plan_all(backend, sv.read_states(sv.SystemdBackend(root=root, live=False), [desired]))
    assert [rec["status"] for rec in again["records"] if rec["status"] == "changed"] == []
    assert again["ops"] == []


def test_systemd_enable_recreates_install_links(tmp_path):
    root = systemd_tree(tmp_path)
    backend = sv.SystemdBackend(root=root, live=False)
    off = {"name": "avahi-daemon.service", "enabled": False}
    sv.apply_ops(sv.plan_all(backend, sv.read_states(backend, [off]))["ops"], root=root)
    on = {"name": "avahi-daemon.service", "enabled": True}
    plan = sv.plan_all(backend, sv.read_states(backend, [on]))
    assert [(op["op"], op["path"], op["target"]) for op in plan["ops"]] == [
        ("link", "/etc/systemd/system/multi-user.target.wants/avahi-daemon.service", "/lib/systemd/system/avahi-daemon.service"),
        ("link", "/etc/systemd/system/dbus-org.freedesktop.Avahi.service", "/lib/systemd/system/avahi-daemon.service"),
    ]
    sv.apply_ops(plan["ops"], root=root)
    assert sv.SystemdBackend(root=root, live=False).read("avahi-daemon.service", "x")["enabled"] is True


@pytest.mark.parametrize("name, desired, status, before, after", [
    # a unit without [Install] is static: nothing to disable, cannot be enabled
    ("static.service", {"enabled": False}, "unchanged", "static", "static"),
    ("static.service", {"enabled": True}, "unsupported", "static", "enabled"),
    # a unit file of its own in /etc cannot be masked without deleting it
    ("local.service", {"masked": True}, "unsupported", "unmasked", "masked"),
])
def test_systemd_limits(tmp_path, name, desired, status, before, after):
    root = systemd_tree(tmp_path)
    backend = sv.SystemdBackend(root=root, live=False)
    spec = dict(desired, name=name)
    (rec,) = sv.plan_all(backend, sv.read_states(backend, [spec]))["records"]
    assert (rec["status"], rec["before"], rec["after"]) == (status, before, after)


def test_systemd_live_uses_systemctl_and_reloads(tmp_path):
    root = systemd_tree(tmp_path)
    runner = Runner({
        ("/bin/systemctl", "is-active", "avahi-daemon.service"): (0, "active\n", ""),
        ("/bin/systemctl", "is-active", "avahi-daemon.socket"): (3, "inactive\n", ""),
    })
    backend = sv.SystemdBackend(root=root, live=True, run=runner, tools={"systemctl": "/bin/systemctl"})
    spec = {"name": "avahi-daemon", "state": "stopped", "enabled": False, "masked": True}
    plan = sv.plan_all(backend, sv.read_states(backend, [spec]))
    records = by_id(plan["records"])
    assert records["service.running/avahi-daemon.service"]["before"] == "running"
    assert records["service.running/avahi-daemon.socket"]["status"] == "unchanged"
    runs = [op["argv"] for op in plan["ops"] if op["op"] == "run"]
    # file changes first, one daemon-reload, then the stop
    assert runs == [["/bin/systemctl", "daemon-reload"], ["/bin/systemctl", "stop", "avahi-daemon.service"]]
    assert plan["ops"][-1]["argv"][1] == "stop"


def test_systemd_live_without_systemctl_reads_the_cgroup(tmp_path):
    root = systemd_tree(tmp_path, {"/sys/fs/cgroup/system.slice/avahi-daemon.service/cgroup.procs": "311\n312\n"})
    backend = sv.SystemdBackend(root=root, live=True)
    state = backend.read("avahi-daemon.service", "avahi-daemon")
    assert state["running"] is True and state["pids"] == [311, 312]
    rec, ops = backend.plan_running(state, "stopped", {})
    assert rec["status"] == "unsupported" and ops == []


def test_systemd_script_only_service_uses_rc_links(tmp_path):
    root = make_tree(tmp_path, {
        "/etc/init.d/telnetd": LSB_TELNETD,
        "/etc/rc2.d/S01telnetd": ("link", "../init.d/telnetd"),
        "/etc/rc3.d/S01telnetd": ("link", "../init.d/telnetd"),
        "/etc/rc0.d/K01telnetd": ("link", "../init.d/telnetd"),
        "/lib/systemd/system/": ("dir",),
    })
    runner = Runner({("/etc/init.d/telnetd", "status"): (0, "running", "")})
    backend = sv.SystemdBackend(root=root, live=False, run=runner)
    spec = {"name": "telnetd", "state": "stopped", "enabled": False, "masked": True}
    plan = sv.plan_all(backend, sv.read_states(backend, [spec]))
    records = by_id(plan["records"])
    assert set(records) == {"service.running/telnetd.service", "service.enabled/telnetd.service",
                            "service.masked/telnetd.service"}
    assert records["service.running/telnetd.service"]["before"] == "running"
    assert [(op["op"], op.get("to") or op.get("argv") or op.get("target")) for op in plan["ops"]] == [
        ("link", "/dev/null"),
        ("rename", "/etc/rc2.d/K01telnetd"),
        ("rename", "/etc/rc3.d/K01telnetd"),
        ("run", ["/etc/init.d/telnetd", "stop"]),
    ]


# ------------------------------------------------------------------ SysV

def test_sysv_disable_enable_and_mask(tmp_path):
    root = make_tree(tmp_path, {
        "/etc/init.d/telnetd": LSB_TELNETD,
        "/etc/rc2.d/": ("dir",), "/etc/rc3.d/": ("dir",), "/etc/rc4.d/": ("dir",), "/etc/rc5.d/": ("dir",),
        "/etc/rc0.d/": ("dir",), "/etc/rc1.d/": ("dir",), "/etc/rc6.d/": ("dir",),
    })
    runner = Runner({("/etc/init.d/telnetd", "status"): (3, "", "")})
    backend = sv.SysvBackend(root=root, run=runner)
    # no links at all: enabling creates them from the LSB header
    plan = sv.plan_all(backend, sv.read_states(backend, [{"name": "telnetd", "enabled": True}]))
    assert sorted(op["path"] for op in plan["ops"]) == [
        "/etc/rc0.d/K01telnetd", "/etc/rc1.d/K01telnetd", "/etc/rc2.d/S01telnetd", "/etc/rc3.d/S01telnetd",
        "/etc/rc4.d/S01telnetd", "/etc/rc5.d/S01telnetd", "/etc/rc6.d/K01telnetd"]
    sv.apply_ops(plan["ops"], root=root)
    spec = {"name": "telnetd", "state": "stopped", "enabled": False, "masked": True}
    plan = sv.plan_all(backend, sv.read_states(backend, [spec]))
    records = by_id(plan["records"])
    assert records["service.running/telnetd"]["status"] == "unchanged"  # status said 3: not running
    assert records["service.masked/telnetd"]["detail"] == "chmod 0644 /etc/init.d/telnetd"
    sv.apply_ops(plan["ops"], root=root)
    assert os.stat(os.path.join(root, "etc/init.d/telnetd")).st_mode & 0o777 == 0o644
    assert readlink(root, "/etc/rc2.d/K01telnetd") == "../init.d/telnetd"
    assert not lexists(root, "/etc/rc2.d/S01telnetd")
    state = backend.read("telnetd", "telnetd")
    assert (state["enabled"], state["masked"]) == (False, True)
    # a masked script is not run for its status: the pidfile and /proc tell
    assert state["running"] is False and "processes named" in state["running_source"]


@pytest.mark.parametrize("rc, running", [(0, True), (3, False), (1, False), (4, False)])
def test_sysv_status_exit_codes(tmp_path, rc, running):
    root = make_tree(tmp_path, {"/etc/init.d/telnetd": LSB_TELNETD})
    backend = sv.SysvBackend(root=root, run=Runner({("/etc/init.d/telnetd", "status"): (rc, "", "")}))
    # 4 is "unknown": falls back to pidfile and process names (none here)
    assert backend.read("telnetd", "telnetd")["running"] is running


def test_sysv_pidfile_and_start_detaches(tmp_path):
    spec = {"/etc/init.d/ftpd": "#!/bin/sh\ncase $1 in start) ;; esac\n", "/run/ftpd.pid": "77\n"}
    spec.update(fake_proc(77, "ftpd", ["/usr/sbin/ftpd"]))
    root = make_tree(tmp_path, spec)
    backend = sv.SysvBackend(root=root, run=Runner())
    state = backend.read("ftpd", "ftpd")
    assert state["running"] is True and state["pids"] == [77]
    rec, ops = backend.plan_running(dict(state, running=False), "started", {})
    assert ops[0]["detach"] is True
    runner = Runner()
    assert sv.apply_ops(ops, root=root, run=runner) == []
    assert runner.calls == [["/bin/sh", "-c", 'exec "$0" "$@" </dev/null >/dev/null 2>&1', "/etc/init.d/ftpd", "start"]]


# ------------------------------------------------------------------ OpenRC

def test_openrc_runlevels_and_started_dir(tmp_path):
    root = make_tree(tmp_path, {
        "/etc/init.d/avahi-daemon": "#!/sbin/openrc-run\n",
        "/etc/runlevels/default/avahi-daemon": ("link", "/etc/init.d/avahi-daemon"),
        "/run/openrc/started/avahi-daemon": ("link", "/etc/init.d/avahi-daemon"),
    })
    backend = sv.OpenrcBackend(root=root, run=Runner())
    spec = {"name": "avahi-daemon", "state": "stopped", "enabled": False}
    plan = sv.plan_all(backend, sv.read_states(backend, [spec]))
    assert [sv.describe_op(op) for op in plan["ops"]] == [
        "run /etc/init.d/avahi-daemon stop",
        "remove /etc/runlevels/default/avahi-daemon -> /etc/init.d/avahi-daemon",
    ]
    sv.apply_ops(plan["ops"][1:], root=root)
    plan = sv.plan_all(backend, sv.read_states(backend, [{"name": "avahi-daemon", "enabled": True}]))
    assert [sv.describe_op(op) for op in plan["ops"]] == [
        "link /etc/runlevels/default/avahi-daemon -> /etc/init.d/avahi-daemon"]


# ------------------------------------------------------------------ BusyBox init

def busybox_tree(tmp_path):
    spec = {
        "/etc/inittab": INITTAB,
        "/etc/init.d/rcS": "#!/bin/sh\n",
        "/etc/init.d/miniupnpd": RC_COMMON_UPNP,
        "/etc/rc.d/S94miniupnpd": ("link", "../init.d/miniupnpd"),
        "/etc/rc.d/K15miniupnpd": ("link", "../init.d/miniupnpd"),
        "/var/run/miniupnpd.pid": "51\n",
    }
    spec.update(fake_proc(1, "init", ["init"], ppid=0))
    spec.update(fake_proc(40, "dropbear", ["/usr/sbin/dropbear", "-F", "-E", "-p", "22"]))
    spec.update(fake_proc(41, "telnetd", ["/usr/sbin/telnetd", "-F", "-p", "23"]))
    spec.update(fake_proc(51, "python3", ["python3", "-c", "upnp"]))
    spec.update(fake_proc(90, "dropbear", ["/usr/sbin/dropbear", "-F", "-E", "-p", "22"], ppid=40))
    spec.update(fake_proc(91, "python3", ["python3", "module"], ppid=90))
    return make_tree(tmp_path, spec)


def test_busybox_inittab_service_stop_disable(tmp_path):
    root = busybox_tree(tmp_path)
    backend = sv.BusyboxBackend(root=root, live=True, run=Runner())
    state = backend.read("telnetd", "telnetd")
    assert (state["enabled"], state["running"], state["pids"], state["masked"]) == (True, True, [41], False)
    spec = {"name": "telnetd", "state": "stopped", "enabled": False, "masked": True}
    plan = sv.plan_all(backend, [(spec, [state])])
    ops = sv.merge_writes(plan["ops"])
    assert [op["op"] for op in ops] == ["write", "signal", "terminate"]
    assert ops[0]["content"] == INITTAB.replace("::respawn:/usr/sbin/telnetd", sv.INITTAB_OFF + "::respawn:/usr/sbin/telnetd")
    assert ops[2]["pids"] == [41] and ops[2]["argvs"] == [["/usr/sbin/telnetd", "-F", "-p", "23"]]
    kill, slept = Kill(), []
    # pid 41 stays in the fake /proc, so termination escalates to SIGKILL after the wait
    assert sv.apply_ops(ops, root=root, kill=kill, sleep=slept.append) == []
    assert kill.sent[:2] == [(1, 1), (41, 15)] and (41, 9) in kill.sent
    after = sv.BusyboxBackend(root=root, live=True).read("telnetd", "telnetd")
    assert (after["enabled"], after["masked"]) == (False, True)
    assert "/usr/sbin/dropbear" in open(os.path.join(root, "etc/inittab")).read().split(sv.INITTAB_OFF)[0]


def test_busybox_respawn_cannot_be_stopped_while_enabled(tmp_path):
    root = busybox_tree(tmp_path)
    backend = sv.BusyboxBackend(root=root, live=True, run=Runner())
    plan = sv.plan_all(backend, sv.read_states(backend, [{"name": "telnetd", "state": "stopped"}]))
    (rec,) = plan["records"]
    assert rec["status"] == "error" and "enabled: false" in rec["detail"]


def test_busybox_restores_inittab_line_and_lets_init_start_it(tmp_path):
    root = busybox_tree(tmp_path)
    backend = sv.BusyboxBackend(root=root, live=True, run=Runner())
    off = {"name": "telnetd", "state": "stopped", "enabled": False}
    sv.apply_ops(sv.merge_writes(sv.plan_all(backend, sv.read_states(backend, [off]))["ops"]),
                 root=root, kill=Kill(), sleep=lambda s: None)
    os.unlink(os.path.join(root, "proc/41/stat"))  # the process is gone
    backend = sv.BusyboxBackend(root=root, live=True, run=Runner())
    on = {"name": "telnetd", "state": "started", "enabled": True}
    plan = sv.plan_all(backend, sv.read_states(backend, [on]))
    assert [rec["status"] for rec in plan["records"]] == ["changed", "changed"]
    assert [op["op"] for op in plan["ops"]] == ["write", "signal", "expect_start"]
    assert plan["ops"][0]["content"] == INITTAB


def test_busybox_rc_d_script_service(tmp_path):
    root = busybox_tree(tmp_path)
    backend = sv.BusyboxBackend(root=root, live=True, run=Runner())
    state = backend.read("miniupnpd", "miniupnpd")
    assert (state["enabled"], state["running"], state["pids"]) == (True, True, [51])
    spec = {"name": "miniupnpd", "state": "stopped", "enabled": False, "masked": True}
    plan = sv.plan_all(backend, [(spec, [state])])
    # the stop runs first: once masked, the script can no longer be executed
    assert [sv.describe_op(op) for op in plan["ops"]] == [
        "run /etc/init.d/miniupnpd stop",
        "chmod 0644 /etc/init.d/miniupnpd",
        "remove /etc/rc.d/K15miniupnpd -> ../init.d/miniupnpd",
        "remove /etc/rc.d/S94miniupnpd -> ../init.d/miniupnpd",
    ]
    # enabling again takes START/STOP from the script, as rc.common's enable does
    sv.apply_ops(plan["ops"][1:], root=root)
    plan = sv.plan_all(backend, sv.read_states(backend, [{"name": "miniupnpd", "enabled": True, "masked": False}]))
    assert [sv.describe_op(op) for op in plan["ops"]] == [
        "chmod 0755 /etc/init.d/miniupnpd",
        "link /etc/rc.d/S94miniupnpd -> ../init.d/miniupnpd",
        "link /etc/rc.d/K15miniupnpd -> ../init.d/miniupnpd",
    ]


def test_merge_writes_keeps_every_commented_line(tmp_path):
    text = INITTAB + "::respawn:/usr/sbin/ftpd -w\n"
    root = make_tree(tmp_path, {"/etc/inittab": text})
    backend = sv.BusyboxBackend(root=root, live=False, run=Runner())
    specs = [{"name": "telnetd", "enabled": False}, {"name": "ftpd", "enabled": False}]
    ops = sv.merge_writes(sv.plan_all(backend, sv.read_states(backend, specs))["ops"])
    assert len(ops) == 1 and ops[0]["op"] == "write"  # not live: no SIGHUP
    assert ops[0]["content"].count(sv.INITTAB_OFF) == 2
    diffs = sv.diff_from_ops(ops)
    assert diffs == [{"before_header": "/etc/inittab", "after_header": "/etc/inittab", "before": text,
                      "after": ops[0]["content"]}]


def test_procd_asks_the_script_whether_it_runs(tmp_path):
    root = busybox_tree(tmp_path)
    runner = Runner({("/etc/init.d/miniupnpd", "running"): (0, "", "")})
    backend = sv.ProcdBackend(root=root, live=True, run=runner)
    state = backend.read("miniupnpd", "miniupnpd")
    assert state["running"] is True and "running: exit 0" in state["running_source"]
    assert ["/etc/init.d/miniupnpd", "running"] in runner.calls
    # procd does not re-read inittab: a disabled inittab entry waits for the next boot
    telnetd = backend.read("telnetd", "telnetd")
    plan = sv.plan_all(backend, [({"name": "telnetd", "enabled": False}, [telnetd])])
    assert [op["op"] for op in plan["ops"]] == ["write"]


# ------------------------------------------------------------------ the whole run

def test_absent_and_required(tmp_path):
    root = make_tree(tmp_path, {"/etc/init.d/": ("dir",)})
    backend = sv.SysvBackend(root=root, run=Runner())
    spec = {"name": "cups", "state": "stopped", "enabled": False}
    plan = sv.plan_all(backend, sv.read_states(backend, [spec]))
    assert [(rec["id"], rec["status"]) for rec in plan["records"]] == [
        ("service.running/cups", "absent"), ("service.enabled/cups", "absent")]
    plan = sv.plan_all(backend, sv.read_states(backend, [spec]), required=True)
    assert set(rec["status"] for rec in plan["records"]) == {"error"}


def test_connection_guard_refuses_to_stop_our_own_sshd(tmp_path):
    root = busybox_tree(tmp_path)
    backend = sv.BusyboxBackend(root=root, live=True, run=Runner())
    spec = {"name": "dropbear", "state": "stopped", "enabled": False}
    plan = sv.plan_all(backend, sv.read_states(backend, [spec]), protected_pids=[91, 90, 40, 1])
    assert plan["ops"] == []
    assert set(rec["status"] for rec in plan["records"]) == {"error"}
    assert "carries this connection" in plan["records"][0]["detail"]


@pytest.mark.parametrize("services, message", [
    ([{"name": "a", "enabled": True, "masked": True}], "both masked and enabled"),
    ([{"name": "a", "state": "started", "masked": True}], "both masked and started"),
    ([{"name": "a"}, {"name": "a"}], "listed twice"),
    ([{"name": "../x"}], "not a service name"),
])
def test_validate(services, message):
    assert message in " ".join(sv.validate(services))


def test_run_check_mode_changes_nothing_and_real_run_converges(tmp_path):
    root = busybox_tree(tmp_path)
    services = [
        {"name": "telnetd", "state": "stopped", "enabled": False, "masked": True},
        {"name": "miniupnpd", "state": "stopped", "enabled": False, "masked": True},
        {"name": "cups", "state": "stopped", "enabled": False, "masked": True},
    ]
    classified = {"name": "busybox", "reason": "pid 1 is busybox"}
    runner = Runner()
    before = open(os.path.join(root, "etc/inittab")).read()
    kwargs = dict(root=root, runner=runner, kill=Kill(), sleep=lambda s: None, self_pid=91)
    check = sv.run(services, classified, check_mode=True, **kwargs)
    assert check["changed"] and not check.get("failed")
    assert open(os.path.join(root, "etc/inittab")).read() == before
    assert runner.calls == []  # no status action in these scripts; nothing was run
    real = sv.run(services, classified, check_mode=False, **kwargs)
    assert real["records"] == check["records"]
    assert runner.calls == [["/etc/init.d/miniupnpd", "stop"]]
    statuses = dict((rec["id"], rec["status"]) for rec in real["records"])
    assert statuses["service.running/cups"] == "absent"
    # the processes are gone now: remove them from the fake /proc and run again
    for pid in (41, 51):
        os.unlink(os.path.join(root, "proc/%d/stat" % pid))
    os.unlink(os.path.join(root, "var/run/miniupnpd.pid"))
    for pid in (41, 51):
        for name in ("comm", "cmdline"):
            os.unlink(os.path.join(root, "proc/%d/%s" % (pid, name)))
    again = sv.run(services, classified, check_mode=False, **kwargs)
    assert not again["changed"], [r for r in again["records"] if r["status"] == "changed"]
    assert again["ops"] == []


def test_run_without_any_init_system(tmp_path):
    root = make_tree(tmp_path, {"/etc/": ("dir",)})
    result = sv.run([{"name": "telnetd", "enabled": False}], {"name": "other"}, root=root, runner=Runner(),
                    kill=Kill(), sleep=lambda s: None, self_pid=1)
    assert result["init"]["name"] is None
    assert [rec["status"] for rec in result["records"]] == ["unsupported"]


def test_diff_lists_links_and_modes():
    ops = [sv.op_rename("/etc/rc2.d/S01telnetd", "/etc/rc2.d/K01telnetd", "../init.d/telnetd"),
           sv.op_link("/etc/systemd/system/x.service", "/dev/null"),
           sv.op_chmod("/etc/init.d/x", 0o644, 0o755)]
    (diff,) = sv.diff_from_ops(ops)
    assert diff["before"] == ("/etc/rc2.d/S01telnetd: -> ../init.d/telnetd\n/etc/rc2.d/K01telnetd: absent\n"
                              "/etc/systemd/system/x.service: absent\n/etc/init.d/x: mode 0755\n")
    assert diff["after"] == ("/etc/rc2.d/S01telnetd: absent\n/etc/rc2.d/K01telnetd: -> ../init.d/telnetd\n"
                             "/etc/systemd/system/x.service: -> /dev/null\n/etc/init.d/x: mode 0644\n")
