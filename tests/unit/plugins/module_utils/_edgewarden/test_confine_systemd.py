# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Confinement on systemd, on a fake device: a tree under tmp_path and a small systemd
simulator answering the commands the module runs (no mocks of the module's code).

The simulator starts the unit's main process from what the drop-in on disk says (User=,
AmbientCapabilities=), reports exposure from how many directives it has, and can be told
that a unit dies under its drop-in (a policy that breaks the service).
"""

from __future__ import annotations

import os

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine_systemd as cs

UNIT = "ew-demo.service"
DROPIN = "etc/systemd/system/ew-demo.service.d/99-edgewarden-confine.conf"
TCP_LISTEN_80 = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
                 "   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4711 1\n")


class Clock(object):
    def __init__(self):
        self.t = 0.0

    def now(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


class FakeSystemd(object):
    def __init__(self, root, breaks=False, verify_output=""):
        self.root = root
        self.breaks = breaks
        self.verify_output = verify_output
        self.pid = 300
        self.restarts = 0
        self.state = ("active", "running")
        self.calls = []
        self.spawn()

    def dropin(self):
        path = os.path.join(self.root, DROPIN)
        return open(path).read() if os.path.exists(path) else ""

    def spawn(self):
        self.pid += 1
        directives = {}
        for line in self.dropin().splitlines():
            key, sep, value = line.partition("=")
            if sep and value:
                directives.setdefault(key, []).append(value)
        user = directives.get("User", ["root"])[0]
        uid = 0
        for line in open(os.path.join(self.root, "etc/passwd")):
            fields = line.split(":")
            if fields[0] == user:
                uid = int(fields[2])
        caps = [confine.normalize_capability(c) for c in directives.get("AmbientCapabilities", [])]
        bounding = [confine.normalize_capability(c) for c in directives.get("CapabilityBoundingSet", [])]
        full = (1 << 41) - 1
        eff = confine.cap_mask(caps) if uid else (confine.cap_mask(bounding) if bounding else full)
        bnd = confine.cap_mask(bounding) if "CapabilityBoundingSet" in directives else full
        proc = os.path.join(self.root, "proc", str(self.pid))
        os.makedirs(proc)
        with open(os.path.join(proc, "status"), "w") as handle:
            handle.write("Uid:\t%d\t%d\t%d\t%d\nCapEff:\t%016x\nCapBnd:\t%016x\nCapAmb:\t%016x\nNoNewPrivs:\t%d\nSeccomp:\t%d\n"
                         % (uid, uid, uid, uid, eff, bnd, eff if uid else 0, 1 if directives else 0, 2 if directives else 0))
        self.state = ("activating", "auto-restart") if (self.breaks and directives) else ("active", "running")

    def __call__(self, argv, env=None):
        self.calls.append((list(argv), env))
        tool, args = os.path.basename(argv[0]), argv[1:]
        if args == ["--version"]:
            return 0, "systemd 252 (252.39-1~deb12u2)\n", ""
        if tool == "systemctl" and args[0] == "show":
            props = {"LoadState": "loaded", "ActiveState": self.state[0], "SubState": self.state[1],
                     "MainPID": str(self.pid), "NRestarts": str(self.restarts), "Result": "success", "User": ""}
            return 0, "".join("%s=%s\n" % item for item in props.items()), ""
        if tool == "systemctl" and args[0] in ("daemon-reload", "restart"):
            if args[0] == "restart":
                self.spawn()
            return 0, "", ""
        if tool == "systemd-analyze" and args[0] == "verify":
            return 0, "", self.verify_output.replace("CANDIDATE", env["SYSTEMD_UNIT_PATH"].rstrip(":")) if env else ""
        if tool == "systemd-analyze" and args[0] == "security":
            text = open(os.path.join(env["SYSTEMD_UNIT_PATH"].rstrip(":"), UNIT + ".d", confine.DROPIN_NAME)).read() \
                if env else self.dropin()
            score = 9.6 if not text else 1.4
            return 0, "→ Overall exposure level for %s: %.1f %s :-)\n" % (UNIT, score, "OK" if text else "UNSAFE"), ""
        if tool == "systemd-sysusers":
            conf = open(args[0]).read()
            for line in conf.splitlines():
                if line.startswith("u "):
                    words = line.split()
                    uid, gid = words[2].split(":")
                    with open(os.path.join(self.root, "etc/passwd"), "a") as handle:
                        handle.write("%s:x:%s:%s::/nonexistent:/usr/sbin/nologin\n" % (words[1], uid, gid))
                    with open(os.path.join(self.root, "etc/group"), "a") as handle:
                        handle.write("%s:x:%s:\n" % (words[1], gid))
            return 0, "", ""
        if tool == "journalctl":
            return 0, "OSError: [Errno 30] Read-only file system: '/var/lib/ew-demo/started'\n", ""
        return 127, "", "unexpected %r" % argv


def device(tmp_path, **kwargs):
    root = str(tmp_path)
    files = {"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n",
             "proc/sys/kernel/cap_last_cap": "40\n", "proc/net/tcp": TCP_LISTEN_80}
    for path, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
        with open(os.path.join(root, path), "w") as handle:
            handle.write(text)
    os.makedirs(os.path.join(root, "var/lib/ew-demo"))
    systemd = FakeSystemd(root, **kwargs)
    tools = dict((name, "/usr/bin/" + name) for name in ("systemctl", "systemd-analyze", "systemd-sysusers", "journalctl"))
    ctx = {"run": systemd, "root": root, "measure": True, "timeout": 20, "settle": 1.0, "max_exposure": 3.0,
           "overrides": {}, "clock": Clock(), "tools": tools}
    return root, systemd, ctx


def apps_of(**kwargs):
    raw = {"name": "ew-demo", "writable_paths": ["/var/lib/ew-demo"], "ports": [80], "capabilities": ["CAP_NET_BIND_SERVICE"]}
    raw.update(kwargs)
    apps, errors, dummy = confine.validate_apps([raw], systemd=True)
    assert errors == []
    return apps


def changed_ids(result):
    return sorted("%s@%s" % (r["id"], r["where"]) for r in result["records"] if r["status"] == "changed")


def test_summarize():
    assert cs.summarize(None) == "absent"
    assert cs.summarize("# c\n[Service]\nUser=x\nUMask=0077\n").startswith("2 lines, sha256:")


def test_check_mode_is_exact_then_the_run_is_idempotent(tmp_path):
    root, systemd, ctx = device(tmp_path)
    predicted = cs.run(apps_of(), ctx, check_mode=True)
    assert predicted["errors"] == []
    assert not os.path.exists(os.path.join(root, DROPIN))
    exposure = predicted["apps"][0]["exposure"]
    assert (exposure["before"], exposure["predicted"], exposure["after"]) == (9.6, 1.4, None)
    applied = cs.run(apps_of(), ctx, check_mode=False)
    assert applied["errors"] == []
    assert changed_ids(predicted) == changed_ids(applied) == [
        "confine.account/ew-demo@persisted", "confine.dropin/ew-demo.service@persisted",
        "confine.live/ew-demo.service@live", "confine.path/ew-demo:/var/lib/ew-demo@persisted"]
    report = applied["apps"][0]
    assert report["healthy"] is True and report["exposure"]["after"] == 1.4 and not report["exposure"]["above_threshold"]
    assert report["process"]["user"] == "ew-demo" and report["process"]["cap_eff"] == "net_bind_service"
    live = [r for r in applied["records"] if r["id"] == "confine.live/ew-demo.service"][0]
    assert live["before"] == "user=root cap_eff=all cap_bnd=all"
    assert live["after"] == "user=ew-demo cap_eff=net_bind_service cap_bnd=net_bind_service"
    assert "User=ew-demo" in open(os.path.join(root, DROPIN)).read()
    assert applied["file_diffs"][0]["path"] == "/" + DROPIN
    # the candidate was verified before it was written
    verify = [env for argv, env in systemd.calls if argv[1:2] == ["verify"]]
    assert verify and verify[0]["SYSTEMD_UNIT_PATH"].endswith(":")
    before = len(systemd.calls)
    again = cs.run(apps_of(), ctx, check_mode=False)
    assert changed_ids(again) == [] and again["errors"] == []
    assert not [argv for argv, env in systemd.calls[before:] if argv[1:2] in (["restart"], ["daemon-reload"])]


def test_a_policy_that_breaks_the_unit_is_rolled_back(tmp_path):
    root, systemd, ctx = device(tmp_path, breaks=True)
    result = cs.run(apps_of(writable_paths=[]), ctx, check_mode=False)
    assert len(result["errors"]) == 1
    assert "rolled back to the previous drop-in: ew-demo.service is activating/auto-restart" in result["errors"][0]
    assert "Read-only file system" in result["errors"][0]
    assert "after the rollback: active, main pid" in result["errors"][0]
    assert not os.path.exists(os.path.join(root, DROPIN))
    assert result["apps"][0]["rolled_back"] is True
    statuses = dict((r["id"], r["status"]) for r in result["records"])
    assert statuses["confine.dropin/ew-demo.service"] == "error" and statuses["confine.live/ew-demo.service"] == "error"


def test_a_bad_candidate_fails_before_anything_is_written(tmp_path):
    root, systemd, ctx = device(tmp_path, verify_output="CANDIDATE/ew-demo.service.d/99-edgewarden-confine.conf:40: "
                                                        "Unknown key 'ProtectEverything' in section [Service], ignoring.\n")
    result = cs.run(apps_of(systemd={"ProtectEverything": True}), ctx, check_mode=False)
    assert result["errors"] == ["ew-demo.service: /etc/systemd/system/ew-demo.service.d/99-edgewarden-confine.conf:40: "
                                "Unknown key 'ProtectEverything' in section [Service], ignoring."]
    assert not os.path.exists(os.path.join(root, DROPIN))
    assert "ew-demo" not in open(os.path.join(root, "etc/passwd")).read()


def test_threshold_is_judged_on_the_prediction_in_check_mode(tmp_path):
    root, systemd, ctx = device(tmp_path)
    ctx["max_exposure"] = 1.0
    result = cs.run(apps_of(), ctx, check_mode=True)
    assert result["apps"][0]["exposure"]["above_threshold"] is True
    result = cs.run(apps_of(max_exposure=2.0), ctx, check_mode=True)
    assert result["apps"][0]["exposure"]["above_threshold"] is False
    # once installed, an unchanged drop-in is neither re-verified nor predicted: its live score is judged
    ctx["max_exposure"] = 3.0
    cs.run(apps_of(), ctx, check_mode=False)
    ctx["max_exposure"] = 1.0
    calls = len(systemd.calls)
    result = cs.run(apps_of(), ctx, check_mode=True)
    exposure = result["apps"][0]["exposure"]
    assert (exposure["before"], exposure["predicted"], exposure["above_threshold"]) == (1.4, None, True)
    assert not [argv for argv, env in systemd.calls[calls:] if argv[1:2] == ["verify"]]


def test_absent_removes_the_dropin_and_restarts_unconfined(tmp_path):
    root, systemd, ctx = device(tmp_path)
    cs.run(apps_of(), ctx, check_mode=False)
    result = cs.run(apps_of(state="absent"), ctx, check_mode=False)
    assert result["errors"] == []
    assert not os.path.exists(os.path.join(root, DROPIN))
    live = [r for r in result["records"] if r["id"] == "confine.live/ew-demo.service"][0]
    assert live["after"] == "unconfined" and live["status"] == "changed"
