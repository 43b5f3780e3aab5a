# SPDX-License-Identifier: GPL-3.0-or-later
"""After the cut connection and the re-runs: the devices answer through a new relay, no
commit-confirm rollback is left pending, and what the last run confirmed is in place."""

import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("devices")


def name(host):
    return host.backend.get_hostname()


def test_reachable_through_the_bastion(host):
    assert host.run("true").rc == 0


def test_no_rollback_left_armed(host):
    # a rollback timer still waiting would undo the confirmed state later
    procs = host.run("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done").stdout
    assert "rollback.sh" not in procs


def test_the_firewall_the_last_run_confirmed_is_loaded(host):
    if name(host) == "embedded1":
        assert not host.exists("nft")
        return
    ruleset = host.run("nft -s list table inet edgewarden")
    assert ruleset.rc == 0, ruleset.stderr
    assert "192.168.77.1" in ruleset.stdout


def test_ssh_server_config_is_the_hardened_one(host):
    if name(host) == "embedded1":
        assert host.file("/etc/init.d").exists
        return
    check = host.run("/usr/sbin/sshd -t")
    assert check.rc == 0, check.stderr
    assert "AllowUsers" in host.file("/etc/ssh/sshd_config").content_string
