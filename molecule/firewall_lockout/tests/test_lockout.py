# SPDX-License-Identifier: GPL-3.0-or-later
"""After two lockouts the device runs its baseline again, reached by NEW connections."""

import json
import os
import time

import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
testinfra_hosts = ["debian1"]


def lab(name):
    return testinfra.get_host("ansible://%s" % name, ansible_inventory=INVENTORY)


def test_bastion_still_gets_in_over_new_connections():
    bastion = lab("bastion1")
    for address in ("192.168.77.11", "fd77::11"):
        probe = "import socket; socket.create_connection(('%s', 22), timeout=3).close()" % address
        # The second lockout table also dropped IPv6 neighbour discovery for 20 s, so the
        # bastion's neighbour entry for the device may still be FAILED: allow a few
        # seconds for a new resolution (IPv4 ARP is not filtered by inet tables).
        results = []
        for _attempt in range(4):
            results.append(bastion.run('python3 -c "%s"' % probe).rc)
            if results[-1] == 0:
                break
            time.sleep(1)
        assert results[-1] == 0, (address, results)


def test_live_table_is_the_baseline(host):
    doc = json.loads(host.check_output("nft -j list set inet edgewarden bastion_4"))
    elements = next(item["set"] for item in doc["nftables"] if "set" in item)["elem"]
    assert elements == ["192.168.77.1"]


def test_persisted_table_is_the_baseline(host):
    booted = host.check_output("unshare -n sh -c 'nft -f /etc/nftables.conf && nft -s list table inet edgewarden'")
    assert booted == host.check_output("nft -s list table inet edgewarden")
    assert "192.168.77.250" not in host.file("/etc/nftables.d/edgewarden.nft").content_string


def test_each_lockout_was_restored_by_the_device_within_the_timeout(host):
    states = {}
    for token in host.check_output("ls /run/edgewarden/firewall").split():
        d = "/run/edgewarden/firewall/" + token
        if not host.file(d).is_directory:
            continue
        names = host.check_output("ls %s" % d).split()
        armed = json.loads(host.file(d + "/armed.json").content_string)
        state = "rolled-back" if "rolled-back" in names else "confirmed" if "confirmed" in names else "other"
        states[token] = state
        if state == "rolled-back":
            restored = int(host.file(d + "/rolled-back").content_string)
            assert armed["timeout"] <= restored - armed["armed_at"] <= armed["timeout"] + 2
    assert sorted(states.values()) == ["confirmed", "rolled-back", "rolled-back"], states


def test_no_rollback_left_running(host):
    assert "rollback.sh" not in host.check_output("ps -eo args")
