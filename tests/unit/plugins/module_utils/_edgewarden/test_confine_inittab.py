# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Confinement through /etc/inittab: the pure pieces, then whole runs on a fake device.

No mocks: the device is a tree under tmp_path, and "init" is a small simulator called
where the module sends signals. On SIGHUP it does what BusyBox init does with a re-read
inittab (start a process for each respawn line that has none), on SIGTERM the process
goes away, and a "broken" policy makes the process die and be respawned on every tick.
"""

from __future__ import annotations

import os
import py_compile
import signal
import subprocess
import sys

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine_inittab as it

LAUNCHER = "/usr/lib/edgewarden/confine/confine-exec"
DEMO = "/usr/bin/python3 -IS /usr/local/bin/ew-demo 80"
INITTAB = """\
::sysinit:/etc/init.d/rcS
::respawn:/usr/sbin/dropbear -F -E -p 22
::respawn:%s
::shutdown:/bin/true
""" % DEMO
FULL_CAPS = "000001fffffffffff"
TCP_LISTEN_80 = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
                 "   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4711 1\n")


def apps_of(*raws):
    apps, errors, dummy = confine.validate_apps(list(raws), systemd=False)
    assert errors == []
    return apps


# ------------------------------------------------------------------ pure pieces

def test_parse_and_unwrap_lines():
    entries = it.parse_inittab_lines(INITTAB + "#edgewarden-confine-parked# ::respawn:/usr/bin/other\n# comment\n")
    assert [e["action"] for e in entries] == ["sysinit", "respawn", "respawn", "shutdown", "respawn", None]
    assert entries[4]["parked"] and entries[4]["process"] == "/usr/bin/other"
    wrapped = it.wrap(DEMO, LAUNCHER, ["--user", "ew-demo"])
    assert wrapped == LAUNCHER + " --user ew-demo -- " + DEMO
    assert it.unwrap(wrapped, LAUNCHER) == (DEMO, ["--user", "ew-demo"])
    assert it.unwrap(DEMO, LAUNCHER) == (DEMO, None)


@pytest.mark.parametrize("raw, found", [
    ({"name": "ew-demo"}, 2),  # the script after the interpreter and its options
    ({"name": "x", "binary": "/usr/local/bin/ew-demo"}, 2),
    ({"name": "dropbear"}, 1),
    ({"name": "x", "binary": "/usr/bin/python3"}, 2),
])
def test_find_entry(raw, found):
    index, error = it.find_entry(apps_of(raw)[0], it.parse_inittab_lines(INITTAB), LAUNCHER)
    assert (index, error) == (found, None)


def test_find_entry_errors():
    entries = it.parse_inittab_lines(INITTAB + "::respawn:/usr/bin/python3 /usr/local/bin/ew-demo 81\n")
    assert "2 /etc/inittab entries" in it.find_entry(apps_of({"name": "ew-demo"})[0], entries, LAUNCHER)[1]
    assert "no /etc/inittab entry" in it.find_entry(apps_of({"name": "ghost"})[0], entries, LAUNCHER)[1]
    # sysinit lines are boot plumbing, never a service
    assert it.find_entry(apps_of({"name": "rcs", "binary": "/etc/init.d/rcS"})[0], entries, LAUNCHER)[0] is None


@pytest.mark.parametrize("caps, tools, expected", [
    ([], {"setpriv": None, "setpriv_bounding": False}, ["--user", "ew-demo", "--group", "ew-demo"]),
    ([], {"setpriv": "/usr/bin/setpriv", "setpriv_bounding": False},
     ["--user", "ew-demo", "--group", "ew-demo", "--setpriv", "/usr/bin/setpriv", "--nnp"]),
    (["CAP_NET_BIND_SERVICE"], {"setpriv": "/usr/bin/setpriv", "setpriv_bounding": False},
     ["--user", "ew-demo", "--group", "ew-demo", "--setpriv", "/h/setpriv-1", "--caps", "net_bind_service", "--nnp"]),
    (["CAP_NET_BIND_SERVICE", "CAP_KILL"], {"setpriv": "/usr/bin/setpriv", "setpriv_bounding": True},
     ["--user", "ew-demo", "--group", "ew-demo", "--setpriv", "/h/setpriv-1", "--caps", "kill,net_bind_service", "--nnp",
      "--bounding"]),
])
def test_launcher_args(caps, tools, expected):
    app = apps_of({"name": "ew-demo", "capabilities": caps})[0]
    assert it.launcher_args(app, tools, "/h/setpriv-1" if caps else None) == expected


def test_file_caps_round_trip():
    data = it.file_caps_xattr(["net_bind_service", "checkpoint_restore"])
    assert len(data) == 20 and data[:4] == b"\x00\x00\x00\x02"
    assert it.parse_file_caps(data) == (["net_bind_service", "checkpoint_restore"], False)
    assert it.parse_file_caps(it.file_caps_xattr(["setpcap"], effective=True)) == (["setpcap"], True)
    assert it.parse_file_caps(b"") is None


def test_helper_path_depends_on_the_capability_set():
    app = apps_of({"name": "ew-demo"})[0]
    one = it.helper_path("/h", app, ["net_bind_service"], False)
    assert one.startswith("/h/ew-demo/setpriv-") and one == it.helper_path("/h", app, ["net_bind_service"], False)
    assert one != it.helper_path("/h", app, ["net_bind_service", "kill"], False)


def test_launcher_compiles_and_refuses_bad_usage(tmp_path):
    path = tmp_path / "confine-exec"
    path.write_text(it.render_launcher(sys.executable))
    py_compile.compile(str(path), doraise=True)
    assert path.read_text().startswith("#!%s -IS\n" % sys.executable)
    for argv in ([], ["--user"], ["--bogus", "x", "--", "/bin/true"], ["--user", "no-such-user-here", "--", "/bin/true"]):
        proc = subprocess.run([sys.executable, str(path)] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        assert proc.returncode == 126 and proc.stderr.startswith(b"confine-exec: "), argv


# ------------------------------------------------------------------ a fake device

class Clock(object):
    def __init__(self, tick=None):
        self.t = 0.0
        self.tick = tick

    def now(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds
        if self.tick:
            self.tick()


class FakeInit(object):
    """BusyBox init on a tree: processes are /proc/<pid> directories."""

    def __init__(self, root, broken_user=None):
        self.root = root
        self.next_pid = 200
        self.signals = []
        # lines running as this user die at once (a policy that breaks the service)
        self.broken_user = broken_user

    def proc(self, *parts):
        return os.path.join(self.root, "proc", *parts)

    def spawn(self, argv, uid, cap_eff):
        pid = self.next_pid
        self.next_pid += 1
        os.makedirs(self.proc(str(pid)))
        files = {
            "stat": "%d (%s) S 1 1 1 0 -1" % (pid, os.path.basename(argv[0])),
            "cmdline": "\0".join(argv) + "\0",
            "comm": os.path.basename(argv[0]) + "\n",
            "status": "Name:\tx\nUid:\t%d\t%d\t%d\t%d\nGid:\t%d\t%d\t%d\t%d\nCapEff:\t%016x\nCapBnd:\t%s\nCapAmb:\t%016x\nNoNewPrivs:\t%d\n"
                      % (uid, uid, uid, uid, uid, uid, uid, uid, cap_eff, FULL_CAPS, cap_eff, 1 if uid else 0),
        }
        for name, text in files.items():
            with open(self.proc(str(pid), name), "w") as handle:
                handle.write(text)
        return pid

    def processes(self):
        found = {}
        for name in os.listdir(self.proc()):
            if name.isdigit():
                with open(self.proc(name, "cmdline")) as handle:
                    found[int(name)] = handle.read().rstrip("\0").split("\0")
        return found

    def uid_of(self, user):
        with open(os.path.join(self.root, "etc/passwd")) as handle:
            for line in handle:
                fields = line.split(":")
                if fields[0] == user:
                    return int(fields[2])
        raise KeyError(user)

    def wanted(self):
        """(argv, uid, user) of each respawn line, as the launcher would end up running it."""
        with open(os.path.join(self.root, "etc/inittab")) as handle:
            entries = it.parse_inittab_lines(handle.read())
        out = []
        for entry in entries:
            if entry["action"] != "respawn" or entry["parked"]:
                continue
            original, args = it.unwrap(entry["process"], LAUNCHER)
            user = args[args.index("--user") + 1] if args else None
            out.append((original.split(), self.uid_of(user) if user else 0, user))
        return out

    def __call__(self, pid, sig):
        self.signals.append((pid, int(sig)))
        if pid == 1 and sig == signal.SIGHUP:
            self.respawn()
        elif pid != 1 and sig in (signal.SIGTERM, signal.SIGKILL):
            for name in os.listdir(self.proc(str(pid))):
                os.unlink(self.proc(str(pid), name))
            os.rmdir(self.proc(str(pid)))

    def respawn(self):
        running = self.processes()
        for argv, uid, user in self.wanted():
            if argv not in running.values():
                self.spawn(argv, uid, 0 if uid else int(FULL_CAPS, 16))

    def tick(self):
        """Each tick, processes of a broken policy die and init starts them again."""
        if not self.broken_user:
            return
        for pid, argv in self.processes().items():
            with open(self.proc(str(pid), "status")) as handle:
                uid_line = [line for line in handle if line.startswith("Uid:")][0]
            if int(uid_line.split()[1]) == self.uid_of(self.broken_user):
                self(pid, signal.SIGKILL)
        self.respawn()


def device(tmp_path, broken_user=None):
    root = str(tmp_path)
    files = {
        "etc/inittab": INITTAB,
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n",
        "etc/group": "root:x:0:\nnogroup:x:65534:\n",
        "proc/sys/kernel/cap_last_cap": "40\n",
        "proc/net/tcp": TCP_LISTEN_80,
    }
    for path, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
        with open(os.path.join(root, path), "w") as handle:
            handle.write(text)
    os.makedirs(os.path.join(root, "var/lib/ew-demo"))
    init = FakeInit(root, broken_user)
    init.spawn(DEMO.split(), 0, int(FULL_CAPS, 16))
    clock = Clock(init.tick)
    ctx = {"run": lambda argv, env=None: (127, "", "not found"), "root": root, "measure": False, "timeout": 10,
           "settle": 1.0, "max_exposure": None, "overrides": {}, "clock": clock, "kill": init,
           "helper_dir": "/usr/lib/edgewarden/confine", "python": "/usr/bin/python3", "init": "busybox"}
    return root, init, ctx


def changed_ids(result):
    return sorted("%s@%s" % (r["id"], r["where"]) for r in result["records"] if r["status"] == "changed")


def read(root, path):
    with open(os.path.join(root, path.lstrip("/"))) as handle:
        return handle.read()


def test_confine_an_inittab_service_check_mode_is_exact_then_idempotent(tmp_path):
    root, init, ctx = device(tmp_path)
    apps = apps_of({"name": "ew-demo", "writable_paths": ["/var/lib/ew-demo"], "ports": [80]})
    predicted = it.run(apps, ctx, check_mode=True)
    assert predicted["errors"] == []
    assert read(root, "/etc/inittab") == INITTAB and init.signals == []
    applied = it.run(apps, ctx, check_mode=False)
    assert applied["errors"] == []
    assert changed_ids(predicted) == changed_ids(applied) == [
        "confine.account/ew-demo@persisted", "confine.inittab/ew-demo@persisted", "confine.launcher@persisted",
        "confine.live/ew-demo@live", "confine.path/ew-demo:/var/lib/ew-demo@persisted"]
    line = read(root, "/etc/inittab").splitlines()[2]
    # no setpriv on this device: the launcher alone, and NoNewPrivileges is reported missing
    assert line == "::respawn:%s --user ew-demo --group ew-demo -- %s" % (LAUNCHER, DEMO)
    report = applied["apps"][0]
    assert report["healthy"] is True and report["process"]["user"] == "ew-demo"
    assert "NoNewPrivileges" in [u["protection"] for u in report["unavailable"]]
    live = [r for r in applied["records"] if r["id"] == "confine.live/ew-demo"][0]
    assert live["after"] == "user=ew-demo cap_eff=none"
    # the old process was terminated, the new one started by init after the second SIGHUP
    assert init.signals == [(1, signal.SIGHUP), (200, signal.SIGTERM), (1, signal.SIGHUP)]
    assert os.access(os.path.join(root, LAUNCHER.lstrip("/")), os.X_OK)
    again = it.run(apps, ctx, check_mode=False)
    assert changed_ids(again) == [] and again["errors"] == []


def test_a_policy_that_breaks_the_service_is_rolled_back(tmp_path):
    root, init, ctx = device(tmp_path, broken_user="ew-demo")
    apps = apps_of({"name": "ew-demo", "ports": [80]})
    result = it.run(apps, ctx, check_mode=False)
    assert len(result["errors"]) == 1 and "keeps exiting" in result["errors"][0]
    assert "after the rollback: running as pid" in result["errors"][0]
    assert result["apps"][0]["rolled_back"] is True
    assert read(root, "/etc/inittab") == INITTAB
    statuses = dict((r["id"], r["status"]) for r in result["records"])
    assert statuses["confine.inittab/ew-demo"] == "error" and statuses["confine.live/ew-demo"] == "error"
    # the account stays (rollback restores the line, not accounts)
    assert "ew-demo:x:" in read(root, "/etc/passwd")


def test_absent_restores_the_original_line(tmp_path):
    root, init, ctx = device(tmp_path)
    it.run(apps_of({"name": "ew-demo", "ports": [80]}), ctx, check_mode=False)
    result = it.run(apps_of({"name": "ew-demo", "ports": [80], "state": "absent"}), ctx, check_mode=False)
    assert result["errors"] == []
    assert read(root, "/etc/inittab") == INITTAB
    assert "confine.inittab/ew-demo@persisted" in changed_ids(result)


def test_invalid_input_changes_nothing(tmp_path):
    root, init, ctx = device(tmp_path)
    result = it.run(apps_of({"name": "ghost"}, {"name": "ew-demo", "capabilities": ["CAP_NET_BIND_SERVICE"]},
                            {"name": "x", "binary": "/usr/sbin/dropbear", "writable_paths": ["/etc"]}), ctx, check_mode=False)
    assert any("ghost: no /etc/inittab entry" in e for e in result["errors"])
    assert any("ew-demo: capabilities net_bind_service need a setpriv" in e for e in result["errors"])
    assert any("/etc is a system directory" in e for e in result["errors"])
    assert read(root, "/etc/inittab") == INITTAB and init.signals == []
    assert "ghost" not in read(root, "/etc/passwd")


def test_only_inittab_inits(tmp_path):
    root, init, ctx = device(tmp_path)
    ctx["init"] = "tini"
    result = it.run(apps_of({"name": "ew-demo"}), ctx, check_mode=True)
    assert any("PID 1 is tini" in e for e in result["errors"])
