# SPDX-License-Identifier: GPL-3.0-or-later
"""After quarantine (converge) and release (side_effect): what was reachable, and the ruleset.

The probe matrices were measured with real connections from the hosts themselves; rulesets
are compared here with a normalization written for this test (no collection code).
"""

import glob
import json
import os

import pytest
import testinfra

EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")
RECORDS = os.path.join(EPHEMERAL, "records")
EVIDENCE = os.path.join(EPHEMERAL, "evidence")
INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE")
QUARANTINE = "edgewarden_quarantine"


@pytest.fixture(scope="module")
def debian1():
    return testinfra.get_host("ansible://debian1", ansible_inventory=INVENTORY)


@pytest.fixture(scope="module")
def embedded1():
    return testinfra.get_host("ansible://embedded1", ansible_inventory=INVENTORY)


def load(name):
    with open(os.path.join(RECORDS, name)) as handle:
        return json.load(handle)


def strip(value):
    """No handles (renumbered on reload), no counter values (traffic, not policy)."""
    if isinstance(value, dict):
        return dict((k, {} if k == "counter" and isinstance(v, dict) else strip(v))
                    for k, v in value.items() if k != "handle")
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def objects(ruleset, keep_quarantine=False):
    """Every object but metainfo, without handles; the quarantine table's only when asked."""
    out = []
    for obj in ruleset["nftables"]:
        kind, body = next(iter(obj.items()))
        if kind == "metainfo":
            continue
        table = body.get("name") if kind == "table" else body.get("table")
        if table == QUARANTINE and not keep_quarantine:
            continue
        out.append(strip(obj))
    return out


def test_release_restored_who_reaches_what():
    before, quarantined, after = load("matrix-before.json"), load("matrix-quarantined.json"), load("matrix-after.json")
    assert after == before
    assert before["neighbour to the service debian1 offers the LAN"] == "open"
    assert before["neighbour to the service over IPv6"] == "open"
    assert before["debian1 to a neighbour service"] == "open"
    assert before["debian1 to the bastion ssh"] == "open"
    # the firewall role allowed SSH from the bastion only, before as after
    assert before["neighbour to debian1 ssh"] == "timeout"
    assert set(quarantined) == set(before)
    # an outgoing TCP SYN dropped by the local output chain is retried until the timeout
    assert set(quarantined.values()) <= {"timeout", "blocked here"}


def test_release_restored_the_ruleset_exactly(debian1):
    before, after = load("ruleset-before.json"), load("ruleset-after.json")
    assert objects(after) == objects(before)
    tables = [(o["table"]["family"], o["table"]["name"]) for o in objects(before) if "table" in o]
    assert ("inet", "vendor") in tables and ("inet", "edgewarden") in tables
    # the quarantine table itself is gone
    assert [o for o in objects(after, keep_quarantine=True) if o not in objects(after)] == []
    # and the device still has that ruleset now
    live = json.loads(debian1.check_output("nft -j list ruleset"))
    assert objects(live, keep_quarantine=True) == objects(after, keep_quarantine=True)


def test_quarantine_record_archived_at_release():
    host_dir = os.path.join(EVIDENCE, "debian1")
    assert not os.path.exists(os.path.join(host_dir, "quarantine.json"))
    [archived] = glob.glob(os.path.join(host_dir, "quarantine-released-*.json"))
    with open(archived) as handle:
        record = json.load(handle)
    assert record["table"] == QUARANTINE and record["model"]["bastion_addresses"] == ["192.168.77.1", "fd77::1"]
    assert record["ruleset_before"] == json.dumps(objects(load("ruleset-before.json")), sort_keys=True,
                                                  separators=(",", ":"), ensure_ascii=False)


def test_device_without_nft_refused_and_unchanged(embedded1):
    with open(os.path.join(RECORDS, "embedded1-quarantine.txt")) as handle:
        output = handle.read()
    assert "embedded1 is NOT quarantined: nft is not installed" in output
    assert not os.path.exists(os.path.join(EVIDENCE, "embedded1"))
    assert not embedded1.exists("nft")
    assert not embedded1.file("/run/edgewarden").exists
