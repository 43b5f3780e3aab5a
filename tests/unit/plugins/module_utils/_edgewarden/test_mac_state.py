# SPDX-License-Identifier: GPL-3.0-or-later
"""Which MAC a device runs: read from a temporary root, decided by a pure function."""

from __future__ import annotations

import os

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import mac


@pytest.mark.parametrize("lsm, apparmor_enabled, selinux_mode, path", [
    (["lockdown", "capability", "landlock", "yama", "apparmor", "tomoyo", "bpf"], True, "disabled", "apparmor"),
    (["capability", "selinux"], False, "enforcing", "selinux"),
    (["capability", "yama"], False, "disabled", "none"),
    ([], False, "permissive", "selinux"),        # no securityfs, but selinuxfs is mounted
    (["apparmor"], False, "disabled", "none"),   # built in but switched off (apparmor=0)
    (None, False, "disabled", "none"),
])
def test_choose_path(lsm, apparmor_enabled, selinux_mode, path):
    assert mac.choose_path(lsm, apparmor_enabled, selinux_mode) == path


def write(root, path, text, mode=0o644):
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as handle:
        handle.write(text)
    os.chmod(full, mode)


def test_read_state_apparmor_device(tmp_path):
    write(tmp_path, "/sys/kernel/security/lsm", "lockdown,capability,landlock,yama,apparmor,tomoyo,bpf")
    write(tmp_path, "/sys/module/apparmor/parameters/enabled", "Y\n")
    write(tmp_path, "/sys/kernel/security/apparmor/profiles", "lsb_release (enforce)\nnvidia_modprobe (enforce)\n")
    write(tmp_path, "/usr/sbin/apparmor_parser", "#!/bin/sh\n", 0o755)
    state = mac.read_state(str(tmp_path))
    assert state["path"] == "apparmor" and state["lsm_source"] == "/sys/kernel/security/lsm"
    assert state["apparmor"] == {"enabled": True, "profiles_loaded": 2}
    assert state["selinux"] == {"mode": "disabled", "config_present": False, "config_mode": None}
    assert state["tools"]["apparmor_parser"] == "/usr/sbin/apparmor_parser" and state["tools"]["semodule"] is None


def test_read_state_selinux_installed_but_disabled(tmp_path):
    write(tmp_path, "/etc/selinux/config", "# comment\nSELINUX=disabled\nSELINUXTYPE=default\n")
    write(tmp_path, "/sbin/semodule", "", 0o755)
    state = mac.read_state(str(tmp_path))
    assert state["path"] == "none" and state["lsm"] == [] and state["lsm_source"] is None
    assert state["selinux"] == {"mode": "disabled", "config_present": True, "config_mode": "disabled"}
    assert state["tools"]["semodule"] == "/sbin/semodule"


def test_read_state_selinux_enforcing(tmp_path):
    write(tmp_path, "/sys/fs/selinux/enforce", "1")
    state = mac.read_state(str(tmp_path))
    assert state["path"] == "selinux" and state["selinux"]["mode"] == "enforcing" and state["lsm"] == ["selinux"]


def test_no_mac_message_names_the_active_lsms_and_the_way_out_when_required():
    told = mac.no_mac_message(["lockdown", "yama"], required=False)
    assert told == ("Neither AppArmor nor SELinux is active (active LSMs: lockdown, yama): "
                    "no profile or policy is applied.")
    failed = mac.no_mac_message([], required=True)
    assert "neither AppArmor nor SELinux is active (active LSMs: none readable)" in failed
    assert "lsm=... or security=..." in failed
