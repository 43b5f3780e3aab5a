# SPDX-License-Identifier: GPL-3.0-or-later
"""The firewall role, judged by real packets between lab hosts, not by rule text.

debian1 is the firewalled gateway (segments vlan10/vlan20 behind it, in nested network
namespaces); bastion1 is the only way in; debian2 is a neighbour on the LAN; debian3 the
telemetry collector. Every probe that should be blocked targets a port with a listener,
so "blocked" (a timeout: the packet was dropped) cannot be mistaken for "nobody there"
(connection refused fails the test).
"""

import json
import os
import re
import subprocess
import time

import pytest
import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADDRESSES = {
    "bastion1": ("192.168.77.1", "fd77::1"),
    "debian1": ("192.168.77.11", "fd77::11"),
    "debian2": ("192.168.77.12", "fd77::12"),
    "debian3": ("192.168.77.13", "fd77::13"),
    "vlan10": ("10.10.0.2", "fd10::2"),
    "vlan20": ("10.20.0.2", "fd20::2"),
}
PROBE = "python3 /usr/local/lib/ew_probe.py"
FAMILIES = pytest.mark.parametrize("fam", [0, 1], ids=["ipv4", "ipv6"])
_HOSTS = {}

# testinfra runs these on the device; the rest of the hosts are reached explicitly
testinfra_hosts = ["debian1"]


def lab(name):
    if name not in _HOSTS:
        _HOSTS[name] = testinfra.get_host("ansible://%s" % name, ansible_inventory=INVENTORY)
    return _HOSTS[name]


def can_connect(src, dst, port, fam, ns=None):
    """True when a TCP connection from ``src`` (or a segment behind debian1) gets through."""
    cmd = PROBE + " connect %s %s 3" % (ADDRESSES[dst][fam], port)
    if ns:
        cmd = "nsenter --net=/run/netns/%s %s" % (ns, cmd)
    rc = lab(src).run(cmd).rc
    assert rc in (0, 1), "%s -> %s:%s: connection refused, the test listener is missing" % (src, dst, port)
    return rc == 0


def live_table():
    return lab("debian1").check_output("nft -s list table inet edgewarden")


# ------------------------------------------------------------------ access: the bastion only


@FAMILIES
def test_bastion_reaches_ssh(fam):
    assert can_connect("bastion1", "debian1", 22, fam)


@FAMILIES
def test_bastion_reaches_nothing_else(fam):
    assert not can_connect("bastion1", "debian1", 8080, fam)


@FAMILIES
def test_lateral_movement_is_blocked(fam):
    assert not can_connect("debian2", "debian1", 22, fam)
    assert not can_connect("debian2", "debian1", 8080, fam)


# ------------------------------------------------------------------ one-way telemetry


@FAMILIES
def test_device_sends_telemetry_to_the_collector(fam):
    assert can_connect("debian1", "debian3", 6514, fam)


@FAMILIES
def test_device_reaches_no_other_port_or_host(fam):
    # output policy drop: only the named collector services leave the device
    assert not can_connect("debian1", "debian3", 8081, fam)
    assert not can_connect("debian1", "debian2", 6514, fam)


@FAMILIES
def test_collector_cannot_connect_to_the_device(fam):
    assert not can_connect("debian3", "debian1", 22, fam)
    assert not can_connect("debian3", "debian1", 8080, fam)


@FAMILIES
def test_udp_telemetry_is_one_way(fam):
    token = "edgewarden-%d-%d" % (fam, int(time.time() * 1000))
    lab("debian1").check_output(PROBE + " send-udp %s 514 %s-out" % (ADDRESSES["debian3"][fam], token))
    lab("debian3").check_output(PROBE + " send-udp %s 5140 %s-in" % (ADDRESSES["debian1"][fam], token))
    # control: the device's own listener works (loopback is always accepted)
    lab("debian1").check_output(PROBE + " send-udp %s 5140 %s-local" % ("::1" if fam else "127.0.0.1", token))
    time.sleep(1)
    assert token + "-out" in lab("debian3").file("/tmp/udp-514.log").content_string
    received = lab("debian1").file("/tmp/udp-5140.log").content_string
    assert token + "-local" in received
    assert token + "-in" not in received


# ------------------------------------------------------------------ forwarding between segments


@FAMILIES
def test_segment_policy_allows_the_named_service(fam):
    assert can_connect("debian1", "vlan20", 1883, fam, ns="vlan10")


@FAMILIES
def test_segment_policy_allows_nothing_else(fam):
    assert not can_connect("debian1", "vlan20", 8080, fam, ns="vlan10")


@FAMILIES
def test_segments_are_one_way(fam):
    assert not can_connect("debian1", "vlan10", 8080, fam, ns="vlan20")


@FAMILIES
def test_segment_reaches_its_service_on_the_device(fam):
    gateway = ("10.10.0.1", "fd10::1")[fam]
    rc = lab("debian1").run("nsenter --net=/run/netns/vlan10 %s connect %s 8080 3" % (PROBE, gateway)).rc
    assert rc == 0
    other = ("10.20.0.1", "fd20::1")[fam]
    assert lab("debian1").run("nsenter --net=/run/netns/vlan20 %s connect %s 8080 3" % (PROBE, other)).rc == 1


# ------------------------------------------------------------------ rate limits


@FAMILIES
def test_ping_is_answered_but_rate_limited(fam):
    time.sleep(3)  # let the bucket (2/second, burst 5) fill up again
    answered = int(lab("bastion1").check_output(PROBE + " ping %s 40" % ADDRESSES["debian1"][fam]))
    assert 1 <= answered <= 8, answered


def log_counter():
    doc = json.loads(lab("debian1").check_output("nft -j list chain inet edgewarden drop_log"))
    rule = next(item["rule"] for item in doc["nftables"] if "rule" in item)
    return next(expr["counter"]["packets"] for expr in rule["expr"] if "counter" in expr)


def test_drops_are_logged_with_a_rate_limit():
    before = log_counter()
    got_through = lab("debian2").check_output(PROBE + " connect-many %s 8080 30" % ADDRESSES["debian1"][0])
    assert got_through == "0"
    logged = log_counter() - before
    # 30 dropped SYNs (plus retransmissions); at most the burst of 5 (and a token) logged
    assert 0 <= logged <= 6, logged
    assert log_counter() >= 1


# ------------------------------------------------------------------ ownership and persistence


def test_other_tables_are_left_alone():
    dev = lab("debian1")
    assert dev.check_output("nft list table ip engine") == dev.file("/root/engine.before").content_string.strip()
    tables = dev.check_output("nft list tables").splitlines()
    assert sorted(tables) == ["table inet edgewarden", "table ip engine"]


def test_persisted_table_loads_at_boot_exactly_as_live():
    dev = lab("debian1")
    # "boot" in a throwaway network namespace: Debian's nftables.conf flushes the ruleset first
    booted = dev.check_output("unshare -n sh -c 'nft -f /etc/nftables.conf && nft -s list table inet edgewarden'")
    assert booted == live_table()
    link = "/etc/systemd/system/sysinit.target.wants/nftables.service"
    assert dev.check_output("readlink %s" % link) == "/lib/systemd/system/nftables.service"
    assert 'include "/etc/nftables.d/edgewarden.nft"' in dev.file("/etc/nftables.conf").content_string


def test_nothing_left_armed():
    states = lab("debian1").check_output("ls /run/edgewarden/firewall/*/")
    assert "armed\n" not in states + "\n" and "rolled-back" not in states


def test_embedded_device_without_nft_was_not_touched():
    emb = lab("embedded1")
    assert not emb.file("/run/edgewarden").exists
    assert not emb.file("/etc/nftables.d").exists


# ------------------------------------------------------------------ check mode and bad input


def playbook(*args):
    cmd = ["ansible-playbook", "-i", INVENTORY] + list(args)
    return subprocess.run(cmd, cwd=SCENARIO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=600, check=False)


def recap(output, host):
    match = re.search(r"^%s\s+:\s+(.*)$" % host, output, re.M)
    assert match, output[-2000:]
    return dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1)))


def test_check_mode_is_exact():
    before = live_table()
    same = playbook("converge.yml", "--check", "--limit", "debian1")
    assert same.returncode == 0, same.stdout[-3000:]
    assert recap(same.stdout, "debian1")["changed"] == 0
    other = playbook("converge.yml", "--check", "--diff", "--limit", "debian1", "-e", '{"firewall_icmp_burst": 7}')
    assert other.returncode == 0, other.stdout[-3000:]
    assert recap(other.stdout, "debian1")["changed"] == 1
    # nft does not print its default burst of 5
    assert '-\t\ticmp type echo-request limit rate over 2/second drop comment "ping rate limit"' in other.stdout
    assert '+\t\ticmp type echo-request limit rate over 2/second burst 7 packets drop comment "ping rate limit"' in other.stdout
    assert live_table() == before


def test_bad_input_fails_with_one_message_and_changes_nothing():
    before = live_table()
    run = playbook("bad_input.yml", "--limit", "debian1")
    assert run.returncode == 0, run.stdout[-4000:]
    counts = recap(run.stdout, "debian1")
    assert counts["rescued"] == 6 and counts["changed"] == 0 and counts["failed"] == 0
    assert live_table() == before


def test_a_second_table_is_applied_and_deleted_without_touching_ours():
    dev = lab("debian1")
    before = live_table()
    run = playbook("extra_table.yml", "--limit", "debian1")
    assert run.returncode == 0, run.stdout[-4000:]
    assert live_table() == before
    assert sorted(dev.check_output("nft list tables").splitlines()) == ["table inet edgewarden", "table ip engine"]
    assert not dev.file("/etc/nftables.d/edgewarden_extra.nft").exists
    conf = dev.file("/etc/nftables.conf").content_string
    assert "edgewarden_extra" not in conf and 'include "/etc/nftables.d/edgewarden.nft"' in conf
