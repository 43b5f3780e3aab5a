# SPDX-License-Identifier: GPL-3.0-or-later
"""Power-cycle the hosts whose init system loads sysctls at boot, then read them again.

Runs after test_kernel.py (pytest takes files in name order). The namespaced Debian host
runs no init system that would load sysctl.d at boot, so it is not part of this test.
"""

import subprocess

from test_kernel import KERNEL_WIDE, LAB, PER_NAMESPACE, live, name

testinfra_hosts = ["ansible://embedded1", "ansible://kernel1"]


def test_settings_survive_a_restart(host):
    subprocess.run([LAB, "restart", name(host)], check=True)
    for key, value in PER_NAMESPACE.items():
        assert live(host, key) == value, key
    if name(host) == "kernel1":
        for key, value in KERNEL_WIDE.items():
            assert live(host, key) == value, key
