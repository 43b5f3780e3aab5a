# SPDX-License-Identifier: GPL-3.0-or-later
"""Where no MAC LSM is active (a namespace host on a kernel without AppArmor or SELinux),
the role reported it and wrote nothing, although apparmor_parser is installed there."""

from test_mac import MODES

testinfra_hosts = ["ansible://debian1"]


def test_no_lsm_is_active_here(host):
    assert not host.file("/sys/kernel/security/apparmor").exists
    assert not host.file("/sys/fs/selinux/enforce").exists
    assert host.exists("apparmor_parser")


def test_nothing_deployed(host):
    for profile in MODES:
        assert not host.file("/etc/apparmor.d/" + profile).exists
    assert not host.file("/var/lib/edgewarden/apparmor.json").exists
