# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's own promises, checked on the running lab (run by `tests/run-all lab`).

Run with the lab up: pytest tests/lab/test_lab.py
"""

import os
import subprocess
import time

import pytest
import testinfra

LAB_DIR = os.environ.get("EW_LAB_DIR", "/var/tmp/edgewarden-lab")
LAB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lab")
SSH_CONFIG = os.path.join(LAB_DIR, "ssh_config")
NAMESPACE_HOSTS = ("bastion1", "debian1", "embedded1")

# CapBnd bits the lab removes from namespace hosts (linux/capability.h)
CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_TIME, CAP_SYS_BOOT = 16, 17, 25, 22


def get(name):
    return testinfra.get_host("ansible://" + name, ansible_inventory=os.path.join(LAB_DIR, "inventory.yml"))


def lab(*args):
    return subprocess.run([LAB] + list(args), capture_output=True, text=True, check=False)


def test_second_up_is_a_no_op():
    start = time.monotonic()
    result = lab("up")
    assert result.returncode == 0, result.stderr
    assert "already up" in result.stderr
    assert time.monotonic() - start < 5


def test_host_key_checking_is_on():
    """A wrong pinned key must stop the connection, through the bastion too."""
    with open(os.path.join(LAB_DIR, "known_hosts")) as handle:
        pins = handle.read().splitlines()
    forged_path = os.path.join(LAB_DIR, "known_hosts.forged")
    forged_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    with open(forged_path, "w") as handle:
        for line in pins:
            host = line.split()[0]
            handle.write("%s %s\n" % (host, forged_key) if host == "192.168.77.11" else line + "\n")
    try:
        result = subprocess.run(
            ["ssh", "-F", SSH_CONFIG, "-o", "UserKnownHostsFile=" + forged_path, "-o", "ControlPath=none",
             "192.168.77.11", "true"], capture_output=True, text=True, check=False, timeout=60)
        assert result.returncode != 0
        assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr or "verification failed" in result.stderr
    finally:
        os.unlink(forged_path)


def test_controller_has_no_path_to_the_devices():
    """Devices are reached only through the bastion: this machine has no address on their LAN."""
    addresses = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert "192.168.77." not in addresses
    assert "fd77:" not in addresses


@pytest.mark.parametrize("name", NAMESPACE_HOSTS)
def test_namespace_hosts_cannot_change_the_machine_kernel(name):
    host = get(name)
    assert host.run("echo 0 > /proc/sys/kernel/kptr_restrict").rc != 0
    assert host.run("echo 1 > /proc/sys/vm/overcommit_memory").rc != 0
    bounding = int(host.check_output("grep CapBnd /proc/self/status").split()[1], 16)
    for bit in (CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_TIME, CAP_SYS_BOOT):
        assert not bounding & (1 << bit), "capability %d still in the bounding set" % bit


@pytest.mark.parametrize("name", NAMESPACE_HOSTS[1:])
def test_network_sysctls_are_per_host(name):
    host = get(name)
    path = "/proc/sys/net/ipv4/conf/all/log_martians"
    before = host.file(path).content_string.strip()
    flipped = "0" if before == "1" else "1"
    assert host.run("echo %s > %s" % (flipped, path)).rc == 0
    try:
        # the same key on the bastion, another namespace, did not move
        bastion = subprocess.run(["ssh", "-F", SSH_CONFIG, "ew-bastion", "cat", path],
                                 capture_output=True, text=True, check=True).stdout.strip()
        assert bastion == before
    finally:
        host.run("echo %s > %s" % (before, path))


def test_kernel_target_runs_a_real_kernel():
    host = get("kernel1")
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"
    assert "apparmor" in host.file("/sys/kernel/security/lsm").content_string
    assert host.run("echo 2 > /proc/sys/kernel/kptr_restrict").rc == 0


def test_embedded_target_is_bare():
    host = get("embedded1")
    assert host.file("/proc/1/comm").content_string.strip() == "init"
    for tool in ("/usr/bin/dpkg", "/usr/sbin/nft", "/usr/bin/ip", "/usr/bin/ss", "/usr/bin/systemctl", "/usr/bin/sudo"):
        assert not host.file(tool).exists, tool


def _openrc_hosts():
    with open(os.path.join(LAB_DIR, "inventory.yml")) as handle:
        text = handle.read()
    return ["openrc%d" % i for i in range(1, 10) if "openrc%d:" % i in text]


@pytest.mark.parametrize("name", _openrc_hosts() if os.path.exists(os.path.join(LAB_DIR, "inventory.yml")) else [])
def test_openrc_target_runs_its_services_with_openrc(name):
    """Only in a lab started with EW_LAB_OPENRC > 0: OpenRC reached its default runlevel."""
    host = get(name)
    assert host.file("/run/openrc/softlevel").content_string.strip() == "default"
    assert host.run("rc-service --exists sudo").rc == 0
    assert host.run("rc-status default").rc == 0
    assert not host.file("/run/systemd/system").exists
    bounding = int(host.check_output("grep CapBnd /proc/self/status").split()[1], 16)
    assert not bounding & (1 << CAP_SYS_MODULE)
