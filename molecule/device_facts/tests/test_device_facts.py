# SPDX-License-Identifier: GPL-3.0-or-later
"""device_facts against what each lab host really is, read independently of the module."""

import os

import pytest
import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")

EXPECTED_INIT = {"kernel1": "systemd", "embedded1": "busybox", "debian1": "tini", "bastion1": "tini"}


def fresh_facts(host):
    result = host.ansible("edgewarden.hardening.device_facts", check=False)
    return result["ansible_facts"]["edgewarden_device"]


_CACHE = {}


def facts(host):
    """Static posture is read once per host: the kernel target runs modules slowly."""
    name = host.backend.get_hostname()
    if name not in _CACHE:
        _CACHE[name] = fresh_facts(host)
    return _CACHE[name]


def test_init_system(host):
    assert facts(host)["init"]["name"] == EXPECTED_INIT[host.backend.get_hostname()]


def test_aslr_matches_proc(host):
    live = int(host.file("/proc/sys/kernel/randomize_va_space").content_string.strip())
    assert facts(host)["aslr"]["value"] == live


def test_kernel_release_matches_uname(host):
    assert facts(host)["kernel"]["release"] == host.check_output("uname -r")


def test_apparmor_seen_only_on_the_kernel_target(host):
    posture = facts(host)
    if host.backend.get_hostname() == "kernel1":
        assert "apparmor" in posture["lsm"]
        assert posture["apparmor"]["profiles_loaded"] >= 1
        assert posture["kernel"]["config_source"] == "/boot/config-" + host.check_output("uname -r")
    else:
        # namespace hosts share this machine's kernel, which has no AppArmor
        assert posture["apparmor"]["enabled"] is False


def test_package_manager(host):
    expected = "apt" if host.backend.get_hostname() != "embedded1" else None
    assert facts(host)["package_manager"] == expected


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_new_listener_is_counted(host, proto):
    """Start a throwaway listener: the module must see exactly one more socket on its port."""
    port = 18081 if proto == "tcp" else 18082
    before = [s for s in fresh_facts(host)["listening"]["sockets"] if s["port"] == port]
    assert before == []
    sock = "SOCK_STREAM" if proto == "tcp" else "SOCK_DGRAM"
    listen = "s.listen(1); " if proto == "tcp" else ""
    script = ("import socket,time; s=socket.socket(socket.AF_INET, socket.%s); "
              "s.bind(('0.0.0.0', %d)); %stime.sleep(30)" % (sock, port, listen))
    pidfile = "/tmp/edgewarden-listener-%d.pid" % port
    host.run("setsid python3 -c \"%s\" >/dev/null 2>&1 < /dev/null & echo $! > %s" % (script, pidfile))
    try:
        seen = []
        for _attempt in range(20):
            seen = [s for s in fresh_facts(host)["listening"]["sockets"] if s["port"] == port]
            if seen:
                break
        assert len(seen) == 1
        assert seen[0]["proto"] == proto and seen[0]["address"] == "0.0.0.0"
    finally:
        host.run("kill $(cat %s); rm -f %s" % (pidfile, pidfile))
