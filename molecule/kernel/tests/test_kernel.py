# SPDX-License-Identifier: GPL-3.0-or-later
"""The kernel role's effect, read on each host independently of the module."""

import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")

LAB = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "tests", "lab", "lab")
SYSCTL_D = "/etc/sysctl.d/99-zz-edgewarden.conf"
# values the camera profile sets that differ from a stock Debian kernel's boot values
KERNEL_WIDE = {"kernel/kptr_restrict": "2", "kernel/sysrq": "0", "fs/protected_fifos": "2", "fs/suid_dumpable": "0"}
PER_NAMESPACE = {"net/ipv4/conf/all/accept_redirects": "0", "net/ipv4/conf/all/send_redirects": "0",
                 "net/ipv4/conf/all/rp_filter": "1"}


def name(host):
    return host.backend.get_hostname()


def live(host, key):
    return host.file("/proc/sys/" + key).content_string.strip()


def test_network_keys_applied_live(host):
    for key, value in PER_NAMESPACE.items():
        assert live(host, key) == value, key


def test_kernel_wide_keys_only_on_a_real_kernel(host):
    if name(host) == "kernel1":
        for key, value in KERNEL_WIDE.items():
            assert live(host, key) == value, key
    else:
        # namespace hosts share the CI machine's kernel: the lab keeps it read-only and
        # the module must have left it alone
        assert host.run("echo 1 > /proc/sys/kernel/sysrq").rc != 0


def test_persisted_where_the_init_system_reads_it(host):
    if name(host) == "embedded1":
        conf = host.file("/etc/sysctl.conf").content_string
        assert "# BEGIN edgewarden" in conf and "# END edgewarden" in conf
        assert "net.ipv4.conf.all.accept_redirects = 0" in conf
        assert not host.file(SYSCTL_D).exists
    else:
        text = host.file(SYSCTL_D).content_string
        assert "kernel.kptr_restrict = 2" in text
        assert "net.ipv4.conf.all.accept_redirects = 0" in text


def test_no_procps_needed_on_the_embedded_device(host):
    # the module wrote /proc/sys itself: the device has no sysctl program to do it
    if name(host) == "embedded1":
        for path in ("/usr/bin/sysctl", "/usr/sbin/sysctl", "/sbin/sysctl", "/bin/sysctl"):
            assert not host.file(path).exists, path
