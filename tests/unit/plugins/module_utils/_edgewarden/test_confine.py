# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The confine policy: validation, systemd directives, process descriptions. Pure, no mocks."""

from __future__ import annotations

import os

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine


def app(**kwargs):
    raw = {"name": "ew-demo", "writable_paths": ["/var/lib/ew-demo"], "ports": [80], "capabilities": ["CAP_NET_BIND_SERVICE"]}
    raw.update(kwargs)
    apps, errors, warnings = confine.validate_apps([raw], systemd=True)
    assert errors == [], errors
    return apps[0]


def directives_dict(directives):
    return dict(directives)


# ------------------------------------------------------------------ capabilities

@pytest.mark.parametrize("name, expected", [
    ("CAP_NET_BIND_SERVICE", "net_bind_service"),
    ("cap_net_raw", "net_raw"),
    ("sys_time", "sys_time"),
    (" NET_ADMIN ", "net_admin"),
    ("CAP_CHECKPOINT_RESTORE", "checkpoint_restore"),
    ("CAP_FLY", None),
    ("", None),
])
def test_normalize_capability(name, expected):
    assert confine.normalize_capability(name) == expected


@pytest.mark.parametrize("mask, last_cap, expected", [
    (0, 40, "none"),
    (0x400, 40, "net_bind_service"),
    (0x420, 40, "kill,net_bind_service"),
    ((1 << 41) - 1, 40, "all"),
    # the lab's namespace hosts: root without sys_module, sys_rawio, ... in the bounding set
    (0x000001E0FCBCFFFF, 40, "all except sys_module,sys_rawio,sys_boot,sys_resource,sys_time,mac_override,"
                             "mac_admin,syslog,wake_alarm,block_suspend"),
    ((1 << 41) - 1, None, ",".join(confine.CAPABILITIES)),
    (1 << 45, 40, "cap_45"),
])
def test_describe_caps(mask, last_cap, expected):
    assert confine.describe_caps(mask, last_cap) == expected


def test_cap_mask_round_trip():
    names = ["chown", "net_bind_service", "bpf"]
    assert confine.cap_names(confine.cap_mask(names)) == names


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize("raw, systemd, error", [
    ({"name": ""}, True, "name is required"),
    ({"name": "a b"}, True, "cannot contain whitespace"),
    ({"name": "x", "user": "dynamic"}, False, "needs systemd"),
    ({"name": "x", "user": "Bad User"}, True, "not a valid user name"),
    ({"name": "x", "capabilities": ["CAP_FLY"]}, True, "unknown capability 'CAP_FLY'"),
    ({"name": "x", "ports": [0]}, True, "port 0"),
    ({"name": "x", "ports": ["sctp/9"]}, True, "port 'sctp/9'"),
    ({"name": "x", "writable_paths": ["var/lib/x"]}, True, "not an absolute path"),
    ({"name": "x", "writable_paths": ["/"]}, True, "/ cannot be a writable path"),
    ({"name": "x", "writable_paths": ["/srv/my data"]}, True, "contains whitespace"),
    ({"name": "x", "user": "dynamic", "writable_paths": ["/srv/x"]}, True, "with user: dynamic"),
    ({"name": "x", "address_families": ["INET"]}, True, "not an address family"),
    ({"name": "x", "systemd": {"bad key": "1"}}, True, "not a systemd directive name"),
    ({"name": "x", "systemd": {"User": "a\nb"}}, True, "cannot span lines"),
    ({"name": "x", "health_command": "curl localhost"}, True, "health_command must be a list"),
    ({"name": "x", "max_exposure": "high"}, True, "max_exposure 'high'"),
])
def test_validate_apps_errors(raw, systemd, error):
    dummy, errors, dummy2 = confine.validate_apps([raw], systemd)
    assert any(error in e for e in errors), errors


def test_validate_apps_reports_every_problem_at_once():
    dummy, errors, dummy2 = confine.validate_apps([
        {"name": "a", "capabilities": ["fly"]},
        {"name": "b", "ports": [70000]},
        {"name": "a"},
    ], systemd=True)
    assert len(errors) == 3
    assert "a: listed twice" in errors


def test_validate_apps_normalizes():
    apps, errors, warnings = confine.validate_apps([{
        "name": "ew-demo.service", "capabilities": ["net_bind_service", "CAP_KILL", "cap_kill"],
        "ports": [80, "udp/5353", "80"], "writable_paths": ["/var/lib/ew-demo/", "/var/lib/ew-demo"],
    }], systemd=True)
    assert errors == []
    one = apps[0]
    assert (one["name"], one["unit"], one["user"], one["group"]) == ("ew-demo", "ew-demo.service", "ew-demo", "ew-demo")
    assert one["capabilities"] == ["kill", "net_bind_service"]  # bit order
    assert one["ports"] == [("tcp", 80), ("udp", 5353)]
    assert one["writable_paths"] == ["/var/lib/ew-demo"]
    assert one["address_families"] == ["AF_UNIX", "AF_INET", "AF_INET6"]


def test_validate_apps_warns_about_privileged_ports_without_the_capability():
    dummy, errors, warnings = confine.validate_apps([{"name": "web", "ports": [80]}], systemd=True)
    assert errors == []
    assert "without CAP_NET_BIND_SERVICE" in warnings[0]
    dummy, errors, warnings = confine.validate_apps([{"name": "web", "ports": [80], "user": "root"}], systemd=True)
    assert warnings == []


# ------------------------------------------------------------------ systemd directives

def test_directives_for_a_static_user_with_one_capability():
    directives, skipped = confine.systemd_directives(app(), version=252)
    d = directives_dict(directives)
    assert skipped == []
    assert d["User"] == "ew-demo" and d["Group"] == "ew-demo"
    assert d["NoNewPrivileges"] == "yes" and d["ProtectSystem"] == "strict" and d["PrivateDevices"] == "yes"
    # /var/lib/ew-demo is systemd's to own for the service (and to migrate for DynamicUser=)
    assert d["StateDirectory"] == ["ew-demo"] and d["StateDirectoryMode"] == "0750"
    assert d["ReadWritePaths"] == []
    assert d["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert d["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert d["SystemCallFilter"] == ["@system-service", "~@privileged", "~@resources"]
    assert d["RestrictAddressFamilies"] == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert d["MemoryDenyWriteExecute"] == "yes"
    # a user namespace would make the capability useless on the host's port
    assert "PrivateUsers" not in d


@pytest.mark.parametrize("kwargs, present, absent", [
    ({"capabilities": []}, {"PrivateUsers": "yes", "CapabilityBoundingSet": [], "AmbientCapabilities": []}, []),
    ({"jit": True}, {}, ["MemoryDenyWriteExecute"]),
    ({"devices": ["/dev/ttyUSB0"]}, {"PrivateDevices": "no", "DevicePolicy": "closed", "DeviceAllow": ["/dev/ttyUSB0 rw"]}, []),
    ({"user": "root"}, {"User": "root", "CapabilityBoundingSet": ["CAP_NET_BIND_SERVICE"]},
     ["AmbientCapabilities", "RemoveIPC", "Group"]),
    ({"user": "dynamic", "writable_paths": ["/var/lib/ew-demo", "/run/ew-demo"]},
     {"DynamicUser": "yes", "StateDirectory": ["ew-demo"], "RuntimeDirectory": ["ew-demo"]}, ["User", "ReadWritePaths"]),
    ({"writable_paths": ["/var/lib/ew-demo/db", "/var/log/ew-demo", "/run/ew-demo", "/srv/ew-demo"]},
     {"StateDirectory": ["ew-demo/db"], "LogsDirectory": ["ew-demo"], "ReadWritePaths": ["/run/ew-demo", "/srv/ew-demo"]},
     ["RuntimeDirectory", "CacheDirectory"]),
    ({"address_families": []}, {"RestrictAddressFamilies": ["none"]}, []),
    ({"capabilities": ["CAP_SYS_TIME"]}, {"SystemCallFilter": ["@system-service", "~@resources"]}, []),
    ({"capabilities": ["CAP_SYS_NICE"]}, {"SystemCallFilter": ["@system-service", "~@privileged"]}, []),
    ({"systemd": {"ProtectProc": None, "UMask": "0027", "SystemCallFilter": ["@system-service", "@chown"],
                  "ProtectHome": False}},
     {"UMask": "0027", "SystemCallFilter": ["@system-service", "@chown"], "ProtectHome": "no"}, ["ProtectProc"]),
])
def test_directives_follow_the_policy(kwargs, present, absent):
    directives, dummy = confine.systemd_directives(app(**kwargs), version=252)
    d = directives_dict(directives)
    for key, value in present.items():
        assert d[key] == value, key
    for key in absent:
        assert key not in d, key


def test_common_overrides_apply_before_the_apps_own():
    directives, dummy = confine.systemd_directives(app(systemd={"UMask": "0007"}), 252, {"UMask": "0027", "ProtectClock": None})
    d = directives_dict(directives)
    assert d["UMask"] == "0007" and "ProtectClock" not in d


def test_old_systemd_gets_what_it_knows_and_the_rest_is_listed():
    directives, skipped = confine.systemd_directives(app(), version=241)
    d = directives_dict(directives)
    assert "ProtectClock" not in d and "PrivateIPC" not in d and "ProtectKernelLogs" not in d
    assert "ProtectClock (systemd 245+)" in skipped
    assert d["ProtectSystem"] == "strict"


def test_render_dropin_resets_list_directives():
    text = confine.render_dropin("ew-demo.service", [("User", "ew-demo"), ("CapabilityBoundingSet", ["CAP_NET_BIND_SERVICE"]),
                                                     ("AmbientCapabilities", [])])
    assert text.startswith("# Managed by edgewarden.hardening")
    body = text.split("[Service]\n", 1)[1]
    assert body == "User=ew-demo\nCapabilityBoundingSet=\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=\n"


@pytest.mark.parametrize("kwargs, unit_user, expected", [
    ({}, None, {"user": "ew-demo", "cap_bnd": 0x400, "cap_eff": 0x400}),
    ({"capabilities": []}, None, {"user": "ew-demo", "cap_bnd": 0, "cap_eff": 0}),
    ({"user": "root"}, None, {"user": "root", "cap_bnd": 0x400, "cap_eff": 0x400}),
    ({"user": "dynamic"}, None, {"user": "dynamic", "dynamic_name": "ew-demo", "cap_bnd": 0x400, "cap_eff": 0x400}),
    ({"systemd": {"User": None, "Group": None}}, "www-data", {"user": "www-data", "cap_bnd": 0x400, "cap_eff": 0x400}),
    ({"systemd": {"CapabilityBoundingSet": None}}, None, {"user": "ew-demo", "cap_eff": 0x400}),
])
def test_expected_process(kwargs, unit_user, expected):
    directives, dummy = confine.systemd_directives(app(**kwargs), version=252)
    assert confine.expected_process(directives, unit_user, "ew-demo") == expected


@pytest.mark.parametrize("user, ok", [("dynamic", True), ("ew-demo", True), ("root", False)])
def test_a_dynamic_user_may_be_a_reused_static_account(user, ok):
    # systemd runs DynamicUser= services as an existing account of the same name
    expected = {"user": "dynamic", "dynamic_name": "ew-demo", "cap_eff": 0}
    assert (confine.matches_expected({"user": user, "cap_eff": 0}, expected) == []) is ok


# ------------------------------------------------------------------ processes

STATUS = """\
Name:\tpython3
Umask:\t0077
State:\tS (sleeping)
Uid:\t998\t998\t998\t998
Gid:\t997\t997\t997\t997
CapInh:\t0000000000000000
CapPrm:\t0000000000000400
CapEff:\t0000000000000400
CapBnd:\t0000000000000400
CapAmb:\t0000000000000400
NoNewPrivs:\t1
Seccomp:\t2
Seccomp_filters:\t1
"""


def test_parse_proc_status():
    status = confine.parse_proc_status(STATUS)
    assert status == {"name": "python3", "uid": 998, "gid": 997, "cap_inh": 0, "cap_prm": 0x400, "cap_eff": 0x400,
                      "cap_bnd": 0x400, "cap_amb": 0x400, "nnp": 1, "seccomp": 2}


@pytest.mark.parametrize("uid, user", [(998, "ew-demo"), (0, "root"), (61200, "dynamic"), (4242, "uid 4242")])
def test_describe_process_names_the_user(uid, user):
    passwd = confine.parse_passwd("root:x:0:0:root:/root:/bin/sh\new-demo:x:998:997::/nonexistent:/bin/false\n")
    view = confine.describe_process({"uid": uid, "cap_eff": 0x400, "cap_bnd": 0x400}, passwd, 40)
    assert view["user"] == user


def test_read_process_view_and_descriptor(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "proc/4242"))
    os.makedirs(os.path.join(root, "proc/sys/kernel"))
    os.makedirs(os.path.join(root, "etc"))
    with open(os.path.join(root, "proc/4242/status"), "w") as handle:
        handle.write(STATUS)
    with open(os.path.join(root, "proc/sys/kernel/cap_last_cap"), "w") as handle:
        handle.write("40\n")
    with open(os.path.join(root, "etc/passwd"), "w") as handle:
        handle.write("ew-demo:x:998:997::/nonexistent:/bin/false\n")
    view = confine.read_process_view(4242, root)
    assert view["pid"] == 4242 and view["user"] == "ew-demo"
    assert confine.descriptor(view, confine.KEYS_ORDER, 40) == "user=ew-demo cap_eff=net_bind_service cap_bnd=net_bind_service"
    assert confine.process_report(view, 40)["no_new_privs"] is True
    assert confine.process_report(view, 40)["seccomp"] == "filter"
    assert confine.matches_expected(view, {"user": "ew-demo", "cap_eff": 0x400}) == []
    assert confine.matches_expected(view, {"user": "ew-demo", "cap_eff": 0}) == ["cap_eff"]
    assert confine.read_process_view(1, root) is None
    assert confine.matches_expected(None, {"user": "x"}) == ["not running"]


# ------------------------------------------------------------------ systemd output and health

ANALYZE = """\
  NAME                  DESCRIPTION                                            EXPOSURE
✗ PrivateNetwork=       Service has access to the host's network                    0.5
→ Overall exposure level for ew-demo.service: 1.4 OK :-)
"""


@pytest.mark.parametrize("text, expected", [
    (ANALYZE, (1.4, "OK")),
    ("→ Overall exposure level for ssh.service: 9.6 UNSAFE :-{", (9.6, "UNSAFE")),
    ("Unit foo.service not found.", (None, None)),
    ("", (None, None)),
])
def test_parse_exposure(text, expected):
    assert confine.parse_exposure(text) == expected


def test_parse_systemd_version_and_show():
    assert confine.parse_systemd_version("systemd 252 (252.39-1~deb12u2)\n+PAM +AUDIT") == 252
    assert confine.parse_systemd_version("") is None
    assert confine.parse_show("ActiveState=active\nMainPID=415\nDropInPaths=\n") == {
        "ActiveState": "active", "MainPID": "415", "DropInPaths": ""}


def test_ports_listening():
    sockets = [{"proto": "tcp6", "port": 80}, {"proto": "udp", "port": 5353}]
    assert confine.ports_listening([("tcp", 80), ("udp", 5353)], sockets) == []
    assert confine.ports_listening([("udp", 80), ("tcp", 443)], sockets) == ["udp/80", "tcp/443"]


def test_unavailable_protections_say_why():
    names = [item["protection"] for item in confine.unavailable_protections(True, False)]
    assert "SystemCallFilter" in names and "CapabilityBoundingSet" in names and "NoNewPrivileges" not in names
    names = [item["protection"] for item in confine.unavailable_protections(False, True)]
    assert "NoNewPrivileges" in names and "CapabilityBoundingSet" not in names
