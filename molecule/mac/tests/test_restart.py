# SPDX-License-Identifier: GPL-3.0-or-later
"""Reboot kernel1, then check that the boot loader (apparmor.service, which runs
apparmor_parser over /etc/apparmor.d) restored every profile in its mode.

Runs after test_mac.py (pytest takes files in name order)."""

import subprocess

from test_mac import LAB, MODES, loaded_modes, name

testinfra_hosts = ["ansible://kernel1"]


def test_modes_survive_a_reboot(host):
    subprocess.run([LAB, "restart", name(host)], check=True)
    modes = loaded_modes(host)
    for profile, mode in MODES.items():
        assert modes.get(profile) == mode, profile
    denied = host.run("/usr/local/bin/ew-demo /srv/ew-secret")
    assert denied.rc != 0 and "Permission denied" in denied.stderr
