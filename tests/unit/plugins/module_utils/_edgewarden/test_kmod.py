# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import kmod

PROC_MODULES = """\
dccp_ipv4 36864 0 - Live 0x0000000000000000
dccp 98304 1 dccp_ipv4, Live 0x0000000000000000
sctp 430080 2 - Live 0x0000000000000000
usb_storage 81920 1 uas, Live 0x0000000000000000
uas 32768 0 - Live 0x0000000000000000
bluetooth 999424 5 btusb,btrtl, Live 0x0000000000000000
btusb 65536 0 - Live 0x0000000000000000
btrtl 28672 1 btusb, Live 0x0000000000000000
cramfs 32768 0 - Unloading 0x0000000000000000
tipc 200000 - - Live 0x0000000000000000
garbage line
"""

CAP_ALL = "Name:\tpython3\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n"
CAP_NO_MODULE = "Name:\tpython3\nCapEff:\t000001fffffeffff\n"


def test_parse_proc_modules():
    mods = kmod.parse_proc_modules(PROC_MODULES)
    assert mods["dccp"] == {"size": 98304, "refcount": 1, "holders": ["dccp_ipv4"], "state": "Live"}
    assert mods["bluetooth"]["holders"] == ["btusb", "btrtl"]
    assert mods["tipc"]["refcount"] is None
    assert "garbage" not in mods
    assert kmod.parse_proc_modules(None) == {}


def test_parse_builtin_and_conf():
    assert kmod.parse_builtin("kernel/fs/vfat/vfat.ko\nkernel/drivers/usb/storage/usb-storage.ko\n\n") == {"vfat", "usb_storage"}
    conf = kmod.parse_modprobe_conf("# c\ninstall usb-storage /bin/false\nblacklist usb-storage\nblacklist dccp\noptions x y=1\n")
    assert conf == {"install": {"usb_storage": "/bin/false"}, "blacklist": {"usb_storage", "dccp"}}


@pytest.mark.parametrize("status, expected", [(CAP_ALL, True), (CAP_NO_MODULE, False), ("", False), ("CapEff:\tzz\n", False)])
def test_has_capability(status, expected):
    assert kmod.has_capability(status, kmod.CAP_SYS_MODULE) is expected


def test_render_dedupes_dash_and_underscore_and_sorts():
    text = kmod.render(["usb-storage", "dccp", "usb_storage"])
    assert text == kmod.HEADER + (
        "install dccp /bin/false\nblacklist dccp\n"
        "install usb-storage /bin/false\nblacklist usb-storage\n")


@pytest.mark.parametrize("targets, order, in_use", [
    # a holder that leaves first frees its dependency
    ({"dccp", "dccp_ipv4"}, ["dccp_ipv4", "dccp"], {}),
    # the holder is not on the list: the dependency stays
    ({"dccp"}, [], {"dccp": "in use: used by dccp_ipv4"}),
    ({"sctp"}, [], {"sctp": "in use: 2 other references (open devices, mounts, sockets)"}),
    ({"usb_storage", "uas"}, ["uas", "usb_storage"], {}),
    ({"bluetooth", "btusb"}, ["btusb"], {"bluetooth": "in use: used by btusb, btrtl; 3 other references (open devices, mounts, sockets)"}),
    ({"tipc"}, [], {"tipc": "the kernel was built without module unloading"}),
    ({"cramfs"}, [], {"cramfs": "module is unloading"}),
])
def test_unload_order(targets, order, in_use):
    assert kmod.unload_order(targets, kmod.parse_proc_modules(PROC_MODULES)) == (order, in_use)


def statuses(records):
    return dict((rec["id"], (rec["status"], rec["before"], rec["after"])) for rec in records)


def test_plan_new_file():
    loaded = kmod.parse_proc_modules(PROC_MODULES)
    result = kmod.plan(["dccp", "dccp-ipv4", "sctp", "vfat", "hfsplus"], None, loaded, {"vfat"})
    got = statuses(result["records"])
    assert got["kernel.module_blocklist/hfsplus"] == ("changed", None, "blocked")
    assert got["kernel.module/dccp-ipv4"] == ("changed", "loaded", "not loaded")
    assert got["kernel.module/dccp"] == ("changed", "loaded", "not loaded")
    assert got["kernel.module/sctp"][0] == "unsupported"
    assert got["kernel.module/vfat"] == ("unsupported", "built-in", "built-in")
    assert result["unload"] == ["dccp-ipv4", "dccp"]
    assert [entry["name"] for entry in result["in_use"]] == ["sctp"]
    assert result["write"] and result["content"].startswith(kmod.HEADER)


def test_plan_is_idempotent_and_removes_dropped_names():
    content = kmod.render(["dccp", "sctp"])
    result = kmod.plan(["sctp", "dccp"], content, {}, set())
    assert not result["write"] and set(r["status"] for r in result["records"]) == {"unchanged"}
    result = kmod.plan(["sctp"], content, {}, set())
    assert statuses(result["records"])["kernel.module_blocklist/dccp"] == ("changed", "blocked", None)
    result = kmod.plan([], content, {}, set())
    assert result["content"] is None and result["write"]


@pytest.mark.parametrize("current, before", [
    ("blacklist dccp\n", "partly blocked"),
    ("install dccp /bin/true\nblacklist dccp\n", "partly blocked"),
    ("install dccp /bin/false\nblacklist dccp\n", "blocked"),
])
def test_plan_partly_blocked(current, before):
    rec = statuses(kmod.plan(["dccp"], current, {}, set())["records"])["kernel.module_blocklist/dccp"]
    assert rec[1] == before


def test_plan_header_only_change_is_a_change():
    result = kmod.plan(["dccp"], "install dccp /bin/false\nblacklist dccp\n", {}, set())
    assert result["write"]
    assert statuses(result["records"])["kernel.module_blocklist/*"][0] == "changed"


def test_plan_blockers():
    loaded = kmod.parse_proc_modules(PROC_MODULES)
    result = kmod.plan(["uas"], None, loaded, set(), unload_blocker="no CAP_SYS_MODULE here")
    assert result["unload"] == []
    assert statuses(result["records"])["kernel.module/uas"][0] == "unsupported"
    result = kmod.plan(["uas"], None, loaded, set(), unload=False)
    assert statuses(result["records"])["kernel.module/uas"] == ("unchanged", "loaded", "loaded")
    result = kmod.plan(["uas"], None, loaded, set(), readonly=True)
    assert not result["write"]
    assert statuses(result["records"])["kernel.module_blocklist/uas"][0] == "unsupported"


def test_validate():
    assert kmod.validate(["dccp", "usb-storage"], "/bin/false") == []
    assert len(kmod.validate(["bad name", "x;y"], "false")) == 3


def fake_device(tmp_path, status=CAP_ALL):
    for path, text in {
        "proc/modules": PROC_MODULES,
        "proc/self/status": status,
        "lib/modules/6.1.0-test/modules.builtin": "kernel/fs/vfat/vfat.ko\n",
    }.items():
        host = tmp_path / path
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_text(text)
    return str(tmp_path)


class Runner(object):
    def __init__(self, fail=()):
        self.calls = []
        self.fail = fail

    def __call__(self, argv):
        self.calls.append(list(argv))
        if argv[-1] in self.fail:
            return 1, "", "rmmod: ERROR: Module %s is in use" % argv[-1]
        return 0, "", ""


def test_run_check_then_real(tmp_path):
    root = fake_device(tmp_path)
    runner = Runner()
    args = dict(root=root, tools={"rmmod": "/sbin/rmmod"}, runner=runner, release="6.1.0-test")
    check = kmod.run(["dccp", "dccp_ipv4", "uas", "vfat"], check_mode=True, **args)
    assert check["changed"] and runner.calls == []
    assert not os.path.exists(os.path.join(root, "etc/modprobe.d/edgewarden-blocklist.conf"))
    assert check["unloaded"] == ["dccp_ipv4", "uas", "dccp"]
    real = kmod.run(["dccp", "dccp_ipv4", "uas", "vfat"], check_mode=False, **args)
    assert real["records"] == check["records"]
    assert runner.calls == [["/sbin/rmmod", "dccp_ipv4"], ["/sbin/rmmod", "uas"], ["/sbin/rmmod", "dccp"]]
    with open(os.path.join(root, "etc/modprobe.d/edgewarden-blocklist.conf")) as handle:
        assert "install dccp_ipv4 /bin/false\n" in handle.read()
    assert real["diff"]["before"] == "" and real["diff"]["after"].startswith(kmod.HEADER)


def test_run_reports_failed_unload_and_missing_capability(tmp_path):
    root = fake_device(tmp_path)
    real = kmod.run(["uas"], root=root, tools={"rmmod": "/sbin/rmmod"}, runner=Runner(fail=("uas",)), release="6.1.0-test")
    assert statuses(real["records"])["kernel.module/uas"][0] == "unsupported"
    assert real["unloaded"] == [] and real["in_use"][0]["name"] == "uas" and real["warnings"]
    root2 = fake_device(tmp_path / "ns", status=CAP_NO_MODULE)
    runner = Runner()
    result = kmod.run(["uas"], root=root2, tools={"rmmod": "/sbin/rmmod"}, runner=runner, release="6.1.0-test")
    assert runner.calls == [] and "CAP_SYS_MODULE" in result["in_use"][0]["reason"]
    result = kmod.run(["uas"], root=root, tools={}, runner=runner, release="6.1.0-test", check_mode=True)
    assert "neither rmmod nor modprobe" in result["in_use"][0]["reason"]


@pytest.mark.parametrize("tools, expected", [
    ({"rmmod": "/sbin/rmmod", "modprobe": "/sbin/modprobe"}, ["/sbin/rmmod", "dccp"]),
    ({"modprobe": "/sbin/modprobe"}, ["/sbin/modprobe", "-r", "dccp"]),
    ({}, None),
])
def test_unload_command(tools, expected):
    assert kmod.unload_command(tools, "dccp") == expected


def test_in_use_summary_names_every_module_and_reason():
    in_use = [{"name": "bluetooth", "reason": "in use: used by btusb"}, {"name": "uas", "reason": "unload failed: busy"}]
    assert kmod.in_use_summary(in_use) == ("2 blocked module(s) stay loaded until the next boot: "
                                           "bluetooth (in use: used by btusb); uas (unload failed: busy)")
