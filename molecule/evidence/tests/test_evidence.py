# SPDX-License-Identifier: GPL-3.0-or-later
"""Stored evidence after converge, checked against the live devices.

Snapshots are read from the controller's evidence store as plain files (hashlib, json),
and what they claim is compared with the device read directly (/proc, sha256sum), never
through the collection's own module or filters.
"""

import hashlib
import json
import os

import pytest
import testinfra

EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")
EVIDENCE = os.path.join(EPHEMERAL, "evidence")
TREES = os.path.join(EPHEMERAL, "trees")
INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE")
HOSTS = ["debian1", "debian2", "embedded1"]


@pytest.fixture(scope="module")
def debian1():
    return testinfra.get_host("ansible://debian1", ansible_inventory=INVENTORY)


@pytest.fixture(scope="module")
def embedded1():
    return testinfra.get_host("ansible://embedded1", ansible_inventory=INVENTORY)


def stamps(name):
    return sorted(entry for entry in os.listdir(os.path.join(EVIDENCE, name)) if entry.endswith("Z"))


def raw(name, stamp):
    with open(os.path.join(EVIDENCE, name, stamp, "snapshot.json"), "rb") as handle:
        return handle.read()


def bundle(name, stamp):
    return json.loads(raw(name, stamp))


def recorded(name, stamp):
    with open(os.path.join(EVIDENCE, name, stamp, "snapshot.json.sha256")) as handle:
        return handle.read()


def latest(name):
    return bundle(name, stamps(name)[-1])["snapshot"]


def known_good(name):
    return bundle(name, stamps(name)[0])["snapshot"]


def by_marker(snapshot, marker):
    return [p for p in snapshot["processes"] if marker in " ".join(p["cmdline"])]


@pytest.mark.parametrize("name", HOSTS)
def test_two_sealed_snapshots_in_a_hash_chain(name):
    # check mode stored nothing: the known-good one and the one after the injection
    found = stamps(name)
    assert len(found) == 2
    digests = []
    for stamp in found:
        data = raw(name, stamp)
        digest = hashlib.sha256(data).hexdigest()
        assert recorded(name, stamp) == "%s  snapshot.json\n" % digest  # sha256sum -c format
        # canonical: the parsed bundle re-serialized the same way gives the same bytes
        parsed = json.loads(data)
        assert json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() == data
        assert (parsed["format"], parsed["host"], parsed["collected_at"]) == ("edgewarden.evidence/1", name, stamp)
        assert parsed["errors"] == {}
        assert os.stat(os.path.join(EVIDENCE, name, stamp, "snapshot.json")).st_mode & 0o777 == 0o400
        digests.append(digest)
    assert bundle(name, found[0])["previous_sha256"] is None
    assert bundle(name, found[1])["previous_sha256"] == digests[0]
    assert os.readlink(os.path.join(EVIDENCE, name, "known-good")) == found[0]


@pytest.mark.parametrize("name", HOSTS)
def test_collection_left_the_device_tree_unchanged(name):
    for prefix in ("check-", ""):
        with open(os.path.join(TREES, "%s-%sbefore.txt" % (name, prefix))) as handle:
            before = handle.read().splitlines()
        with open(os.path.join(TREES, "%s-%safter.txt" % (name, prefix))) as handle:
            after = handle.read().splitlines()
        assert before == after
        assert any(line.startswith("/etc/passwd\t") for line in before)
        assert not [line for line in before if line.startswith(("/proc/", "/tmp/", "/run/"))]


@pytest.mark.parametrize("name", HOSTS)
def test_compare_report_stored(name):
    found = stamps(name)
    path = os.path.join(EVIDENCE, name, "compare-%s--%s.json" % (found[0], found[1]))
    with open(path) as handle:
        report = json.load(handle)
    assert report["before_sha256"] == hashlib.sha256(raw(name, found[0])).hexdigest()
    assert report["after_sha256"] == hashlib.sha256(raw(name, found[1])).hexdigest()
    assert report["diff"]["changed"] is (name != "debian2")


def live_uid(host, pid):
    for line in host.file("/proc/%d/status" % pid).content_string.splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def test_debian_implant_reported_with_owner_and_hash(debian1):
    snapshot = latest("debian1")
    [implant] = by_marker(snapshot, "ew-implant")
    pid = implant["pid"]
    # the process the snapshot names is the one running on the device now
    assert live_uid(debian1, pid) == 65534
    assert debian1.check_output("readlink /proc/%d/exe" % pid) == "/dev/shm/.kworker (deleted)"
    assert (implant["user"], implant["exe"], implant["exe_deleted"]) == ("nobody", "/dev/shm/.kworker", True)
    # its binary was a copy of python3: the hash of the deleted file is python3's
    python_sha = debian1.check_output("sha256sum \"$(readlink -f /usr/bin/python3)\"").split()[0]
    assert implant["exe_sha256"] == python_sha
    [listener] = [s for s in snapshot["sockets"]["listening"] if s["local_port"] == 4444]
    assert (listener["proto"], listener["user"], listener["pids"]) == ("tcp", "nobody", [pid])
    assert listener["processes"] == [{"pid": pid, "comm": implant["comm"], "exe": "/dev/shm/.kworker", "user": "nobody"}]
    [peer] = [s for s in snapshot["sockets"]["established"] if s["remote_port"] == 4445]
    assert (peer["remote_address"], peer["pids"]) == ("192.168.77.101", [pid])
    assert not by_marker(known_good("debian1"), "ew-implant")


def test_debian_listener_owner_matches_proc_net(debian1):
    """The listener's uid as the kernel prints it in /proc/net/tcp, read independently."""
    rows = [line.split() for line in debian1.file("/proc/net/tcp").content_string.splitlines()[1:]]
    [row] = [r for r in rows if r[1].endswith(":115C") and r[3] == "0A"]
    assert int(row[7]) == 65534


def test_embedded_listener_reported_with_busybox_hash(embedded1):
    snapshot = latest("embedded1")
    [nc] = [p for p in snapshot["processes"] if p["cmdline"][:2] == ["busybox", "nc"]]
    busybox_sha = embedded1.check_output("busybox sha256sum %s" % nc["exe"]).split()[0]
    assert nc["exe_sha256"] == busybox_sha and nc["user"] == "root"
    assert embedded1.file("/proc/%d/cmdline" % nc["pid"]).content_string.startswith("busybox\0nc\0")
    [listener] = [s for s in snapshot["sockets"]["listening"] if s["local_port"] == 4445]
    assert (listener["proto"], listener["local_address"]) == ("tcp6", "::")
    assert nc["pid"] in listener["pids"]
    [peer] = [s for s in snapshot["sockets"]["established"] if s["local_port"] == 4445]
    assert peer["remote_address"] == "::ffff:192.168.77.11"


def test_embedded_sections_say_what_they_cannot_read():
    snapshot = latest("embedded1")
    assert snapshot["firewall"]["available"] is False and "nft is not installed" in snapshot["firewall"]["reason"]
    assert snapshot["logs"]["logread"]["available"] is True
    assert any("ew-evidence: marker line for the evidence scenario" in line for line in snapshot["logs"]["logread"]["lines"])
    assert snapshot["logs"]["journal"] == {"available": False, "reason": "no journalctl"}
    assert snapshot["logins"]["utmp"]["path"] == "/var/run/utmp"
    assert snapshot["modules"]["available"] or "no /proc/modules" in snapshot["modules"]["reason"]


def test_debian_ruleset_listed_and_login_parsed(debian1):
    snapshot = latest("debian1")
    firewall = snapshot["firewall"]
    assert (firewall["available"], firewall["rc"], firewall["path"]) == (True, 0, "/usr/sbin/nft")
    assert "metainfo" in firewall["ruleset"][0]
    wtmp = snapshot["logins"]["wtmp"]
    assert wtmp["size"] == debian1.file("/var/log/wtmp").size and wtmp["size"] % 384 == 0
    logins = [r for r in wtmp["records"] if r["type"] == "USER_PROCESS"]
    assert logins and logins[-1]["user"] == "root" and logins[-1]["line"].startswith("pts/")
    assert logins[-1]["address"] == logins[-1]["host"] == "192.168.77.1"
