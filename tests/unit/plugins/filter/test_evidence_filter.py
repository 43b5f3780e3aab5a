# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import copy
import hashlib
import json

import pytest

from ansible_collections.edgewarden.hardening.plugins.filter.evidence import (
    BUNDLE_FORMAT,
    FilterModule,
    evidence_bundle,
    evidence_canonical,
    evidence_diff,
)


def proc(pid, exe, cmdline, user="root", sha="a" * 64, deleted=False, kernel_thread=False):
    return {"pid": pid, "user": user, "exe": exe, "cmdline": cmdline, "exe_sha256": sha, "exe_deleted": deleted,
            "kernel_thread": kernel_thread, "comm": (exe or "?").rsplit("/", 1)[-1], "started": None}


def sock(proto, local, port, remote="0.0.0.0", rport=0, pids=(), exe=None, user="root", state="LISTEN"):
    return {"proto": proto, "local_address": local, "local_port": port, "remote_address": remote, "remote_port": rport,
            "state": state, "user": user, "pids": list(pids),
            "processes": [{"pid": p, "exe": exe, "comm": None, "user": user} for p in pids]}


BASE = {
    "schema": 1,
    "sections": ["host", "processes", "sockets", "logins", "modules", "mounts", "firewall", "hashes", "kernel"],
    "host": {"boot_id": "b1", "clock_utc": "2025-01-01T00:00:00Z", "collector_pids": [70, 69]},
    "processes": [
        proc(1, "/sbin/init", ["init"]),
        proc(2, None, [], kernel_thread=True),
        proc(27, "/usr/sbin/dropbear", ["/usr/sbin/dropbear", "-F"]),
        proc(69, "/bin/busybox", ["/bin/sh", "-c", "python3"]),
        proc(70, "/usr/bin/python3", ["/usr/bin/python3"]),
    ],
    "sockets": {
        "listening": [sock("tcp", "0.0.0.0", 22, pids=[27], exe="/usr/sbin/dropbear")],
        "established": [sock("tcp", "10.0.0.5", 22, "10.0.0.1", 40000, pids=[69], exe="/bin/busybox", state="ESTABLISHED")],
        "connecting": [],
    },
    "logins": {"logged_in": [], "wtmp": {"records": [{"type": "BOOT_TIME", "pid": 0, "line": "~", "user": "reboot",
                                                      "host": "6.1", "epoch": 100, "time": "x"}]},
               "btmp": {"records": []}},
    "modules": {"available": True, "modules": [{"name": "nf_tables", "taint": ""}]},
    "mounts": [{"mountpoint": "/", "device": "/dev/root", "fstype": "squashfs", "options": ["ro"]}],
    "firewall": {"ruleset": [{"metainfo": {"version": "1.0.6"}},
                             {"table": {"family": "inet", "name": "filter", "handle": 1}}]},
    "hashes": [{"path": "/etc/passwd", "exists": True, "type": "file", "sha256": "p1", "size": 10, "mode": "0644",
                "uid": 0, "gid": 0},
               {"path": "/etc/ld.so.preload", "exists": False}],
    "kernel": {"tainted": 0, "modules_disabled": 0, "kexec_load_disabled": 0, "cmdline": "quiet",
               "lockdown": {"mode": "none"}},
}


def changed(**edits):
    """A copy of BASE with each edit applied: a function taking and changing the copy."""
    snap = copy.deepcopy(BASE)
    for edit in edits.values():
        edit(snap)
    return snap


def test_canonical_is_sorted_compact_utf8():
    text = evidence_canonical({"b": [1, 2.5, None], "a": {"é": "ü", "c": True}})
    assert text == '{"a":{"c":true,"é":"ü"},"b":[1,2.5,null]}'
    assert evidence_canonical(json.loads(text)) == text
    with pytest.raises(ValueError):
        evidence_canonical({"x": float("nan")})


def test_bundle_carries_custody_and_the_snapshot():
    result = {"changed": False, "snapshot": BASE, "errors": {}, "summary": {}}
    bundle = evidence_bundle(result, "cam1", "20250101T000001.000001Z", previous_sha256="f" * 64,
                             collected_by={"user": "ops"})
    assert bundle == {"format": BUNDLE_FORMAT, "host": "cam1", "collected_at": "20250101T000001.000001Z",
                      "device_clock": "2025-01-01T00:00:00Z", "collected_by": {"user": "ops"},
                      "module": "edgewarden.hardening.evidence_snapshot", "previous_sha256": "f" * 64,
                      "errors": {}, "snapshot": BASE}
    assert evidence_bundle(result, "cam1", "t")["previous_sha256"] is None
    with pytest.raises(ValueError):
        evidence_bundle({"changed": False}, "cam1", "t")


def test_same_snapshot_no_change_bare_or_bundled():
    assert evidence_diff(BASE, copy.deepcopy(BASE))["changed"] is False
    bundle = evidence_bundle({"snapshot": BASE}, "h", "t1")
    diff = evidence_diff(bundle, evidence_bundle({"snapshot": copy.deepcopy(BASE)}, "h", "t2"))
    assert diff["lines"] == [] and diff["before"]["collected_at"] == "t1" and diff["after"]["collected_at"] == "t2"


def _add_implant(snap):
    snap["processes"].append(proc(91, "/dev/shm/.x", ["/dev/shm/.x", "-c", "a\nb"], user="nobody", sha="b" * 64,
                                  deleted=True))
    snap["sockets"]["listening"].append(sock("tcp", "0.0.0.0", 4444, pids=[91], exe="/dev/shm/.x", user="nobody"))
    snap["sockets"]["established"].append(sock("tcp6", "::ffff:10.0.0.5", 5555, "::ffff:10.0.0.9", 4445, pids=[91],
                                               exe="/dev/shm/.x", user="nobody", state="ESTABLISHED"))


def _new_collector(snap):
    # another run: the collector has other pids and its own SSH connection; none of it counts
    snap["host"]["collector_pids"] = [80, 79]
    snap["processes"] = [p for p in snap["processes"] if p["pid"] not in (69, 70)]
    snap["processes"] += [proc(79, "/bin/busybox", ["/bin/sh", "-c", "python3"]), proc(80, "/usr/bin/python3", ["/usr/bin/python3"])]
    snap["processes"].append(proc(3, None, [], kernel_thread=True))
    snap["sockets"]["established"] = [s for s in snap["sockets"]["established"] if s["pids"] != [69]] + [
        sock("tcp", "10.0.0.5", 22, "10.0.0.1", 40001, pids=[79], exe="/bin/busybox", state="ESTABLISHED")]


@pytest.mark.parametrize("after, lines", [
    (changed(c=_new_collector), []),
    (changed(a=_add_implant, c=_new_collector), [
        "new process: pid 91 user nobody /dev/shm/.x (deleted) (/dev/shm/.x -c a b)",
        "new listener: tcp 0.0.0.0:4444 user nobody by /dev/shm/.x",
        "new peer: tcp 10.0.0.9:4445 (ESTABLISHED) by /dev/shm/.x",
    ]),
    (changed(a=lambda s: s["processes"].append(proc(28, "/usr/sbin/dropbear", ["/usr/sbin/dropbear", "-F"]))),
     ["new process: pid 28 user root /usr/sbin/dropbear (/usr/sbin/dropbear -F)"]),
    (changed(a=lambda s: s["processes"].pop(2), b=lambda s: s["sockets"].update(listening=[])),
     ["gone process: /usr/sbin/dropbear (/usr/sbin/dropbear -F)", "gone listener: tcp 0.0.0.0:22"]),
    (changed(a=lambda s: s["processes"][2].update(exe_sha256="c" * 64)),
     ["binary changed while running: /usr/sbin/dropbear %s -> %s" % (["a" * 64], ["c" * 64])]),
    (changed(a=lambda s: s["sockets"]["listening"][0]["processes"][0].update(exe="/tmp/sshd")),
     ["listener owner changed: tcp 0.0.0.0:22 ['/usr/sbin/dropbear'] -> ['/tmp/sshd']"]),
    (changed(a=lambda s: s["modules"]["modules"].append({"name": "diamorphine", "taint": "OE"}),
             b=lambda s: s["kernel"].update(tainted=12288)),
     ["new kernel module: diamorphine (OE)", "kernel tainted: 0 -> 12288"]),
    (changed(a=lambda s: s["hashes"][0].update(sha256="p2", size=42),
             b=lambda s: s["hashes"][1].update(exists=True, type="file", sha256="l1")),
     ["file changed: /etc/passwd (sha256, size)", "file appeared: /etc/ld.so.preload"]),
    (changed(a=lambda s: s["mounts"].append({"mountpoint": "/mnt", "device": "/dev/sda1", "fstype": "vfat", "options": ["rw"]})),
     ["new mount: /dev/sda1 on /mnt (vfat)"]),
    # handles renumber on every reload: only a different rule is a change
    (changed(a=lambda s: s["firewall"]["ruleset"][1]["table"].update(handle=7)), []),
    (changed(a=lambda s: s["firewall"]["ruleset"].append({"chain": {"name": "input", "policy": "accept"}})),
     ["firewall ruleset changed"]),
    (changed(a=lambda s: s["logins"]["wtmp"]["records"].append(
        {"type": "USER_PROCESS", "pid": 5, "line": "pts/0", "user": "root", "host": "10.0.0.1", "epoch": 200, "time": "t"}),
        b=lambda s: s["logins"]["btmp"]["records"].append(
        {"type": "LOGIN_PROCESS", "pid": 6, "line": "ssh:notty", "user": "admin", "host": "203.0.113.7", "epoch": 201, "time": "u"})),
     ["login record: USER_PROCESS root on pts/0 from 10.0.0.1 at t", "failed login: admin from 203.0.113.7 at u"]),
    (changed(a=lambda s: s["host"].update(boot_id="b2"), b=lambda s: s["kernel"].update(lockdown={"mode": "integrity"})),
     ["kernel lockdown: none -> integrity", "device rebooted between the snapshots (boot id changed)"]),
])
def test_diff_lines(after, lines):
    diff = evidence_diff(BASE, after)
    assert diff["lines"] == lines
    assert diff["changed"] is bool(lines)


def test_diff_details_of_a_deleted_binary():
    diff = evidence_diff(BASE, changed(a=_add_implant))
    assert diff["executables"]["deleted_running"] == [{
        "pid": 91, "user": "nobody", "exe": "/dev/shm/.x", "exe_deleted": True, "exe_sha256": "b" * 64,
        "cmdline": ["/dev/shm/.x", "-c", "a\nb"], "started": None}]
    assert diff["listeners"]["new"] == [{"proto": "tcp", "address": "0.0.0.0", "port": 4444, "user": "nobody",
                                        "pids": [91], "owners": ["/dev/shm/.x"]}]


def test_diff_tolerates_missing_sections():
    partial = {"schema": 1, "sections": ["kernel"], "kernel": {"tainted": 1}}
    diff = evidence_diff(partial, dict(partial, kernel={"tainted": 1}))
    assert diff["changed"] is False and diff["firewall"]["compared"] is False


def test_filters_registered_and_hash_matches_sha256sum():
    filters = FilterModule().filters()
    assert set(filters) == {"evidence_canonical", "evidence_bundle", "evidence_diff", "quarantine_problems",
                            "quarantine_ruleset", "nft_ruleset_normalize"}
    text = filters["evidence_canonical"](BASE)
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == hashlib.sha256(
        json.dumps(BASE, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


# --- quarantine ------------------------------------------------------------------------------

from ansible_collections.edgewarden.hardening.plugins.filter.evidence import (  # noqa: E402
    nft_ruleset_normalize,
    quarantine_problems,
    quarantine_ruleset,
)


@pytest.mark.parametrize("model, problems", [
    ({"bastion_addresses": ["192.168.77.1", "fd77::1"]}, []),
    ({"bastion_addresses": "10.0.0.0/24", "evidence_collector": "10.1.0.9", "ssh_ports": [22, 2222], "allow_dhcp": True}, []),
    ({}, ["q_bastion_addresses: at least one address is needed, or the quarantine would cut everyone off"]),
    ({"bastion_addresses": ["10.0.0.1/24", "nope"], "evidence_collector": "10.0.0.0/30", "ssh_ports": [0, "22", True],
      "allow_dhcp": "yes", "log": 1, "log_rate": "fast", "log_prefix": "bad\"quote", "table": "Bad-Name", "zones": {}},
     ["q_zones: unknown setting",
      "q_bastion_addresses[0]: 10.0.0.1/24 has host bits set",
      "q_bastion_addresses[1]: 'nope' does not appear to be an IPv4 or IPv6 network",
      "q_evidence_collector: '10.0.0.0/30' does not appear to be an IPv4 or IPv6 address (one host address)",
      "q_ssh_ports[0]: 0 is not a port number", "q_ssh_ports[1]: '22' is not a port number",
      "q_ssh_ports[2]: True is not a port number",
      "q_allow_dhcp: must be true or false, got 'yes'", "q_log: must be true or false, got 1",
      "q_log_rate: 'fast' is not a rate such as 5/minute",
      "q_log_prefix: 'bad\"quote' must be 1-60 letters, digits, spaces or _.,:;/=+()@-",
      "q_table: 'Bad-Name' is not a valid table name"]),
    ({"bastion_addresses": ["10.0.0.0/24"], "evidence_collector": "10.0.0.7"},
     ["q_evidence_collector: 10.0.0.7 is already a bastion address"]),
    ("not a mapping", ["q_the quarantine model must be a mapping, got str"]),
])
def test_quarantine_problems(model, problems):
    assert quarantine_problems(model, prefix="q_") == problems


def test_quarantine_ruleset_lets_only_ssh_from_the_bastion_through():
    text = quarantine_ruleset({"bastion_addresses": ["192.168.77.1", "192.168.77.0/25", "fd77::1"],
                               "evidence_collector": "192.168.77.200", "ssh_ports": [2222, 22]})
    lines = [line.strip() for line in text.splitlines()]
    assert lines[2] == "table inet edgewarden_quarantine {"
    # overlapping bastion entries merged: nft refuses overlapping intervals
    assert "elements = { 192.168.77.0/25 }" in lines
    assert 'ip saddr @bastion_4 tcp dport { 22, 2222 } accept comment "ssh from the bastion"' in lines
    assert 'ip6 daddr @bastion_6 tcp sport { 22, 2222 } accept comment "ssh replies to the bastion"' in lines
    assert 'ip saddr @collector_4 tcp dport { 22, 2222 } accept comment "ssh from the evidence collector"' in lines
    assert lines.count("type filter hook input priority -10; policy drop;") == 1
    assert lines.count("type filter hook forward priority -10; policy drop;") == 1
    assert lines.count("type filter hook output priority -10; policy drop;") == 1
    # connections already open are cut: nothing accepts by conntrack state, and no DHCP unless asked
    assert not [line for line in lines if "ct state" in line or "udp" in line]
    dhcp = quarantine_ruleset({"bastion_addresses": ["10.0.0.1"], "allow_dhcp": True, "log": False})
    assert 'udp sport 68 udp dport 67 accept comment "dhcp client: keep the address"' in dhcp
    assert "log prefix" not in dhcp and "collector" not in dhcp and "ip6 saddr @bastion" not in dhcp


def test_quarantine_ruleset_refuses_an_invalid_model():
    with pytest.raises(ValueError, match="bastion_addresses: at least one address"):
        quarantine_ruleset({"bastion_addresses": []})


RULESET = [
    {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
    {"table": {"family": "inet", "name": "edgewarden", "handle": 5}},
    {"chain": {"family": "inet", "table": "edgewarden", "name": "input", "handle": 1, "type": "filter",
               "hook": "input", "prio": 0, "policy": "drop"}},
    {"rule": {"family": "inet", "table": "edgewarden", "chain": "drop_log", "handle": 9,
              "expr": [{"counter": {"packets": 12, "bytes": 900}}, {"drop": None}]}},
    {"table": {"family": "inet", "name": "edgewarden_quarantine", "handle": 6}},
    {"chain": {"family": "inet", "table": "edgewarden_quarantine", "name": "input", "handle": 1}},
]


def test_normalize_ignores_handles_counters_and_excluded_tables():
    other = copy.deepcopy(RULESET)
    other[1]["table"]["handle"] = 77
    other[3]["rule"]["expr"][0]["counter"] = {"packets": 99999, "bytes": 1}
    assert nft_ruleset_normalize(RULESET) == nft_ruleset_normalize(other)
    kept = json.loads(nft_ruleset_normalize(RULESET, [["inet", "edgewarden_quarantine"]]))
    assert [next(iter(obj)) for obj in kept] == ["table", "chain", "rule"]
    assert kept[2]["rule"]["expr"][0] == {"counter": {}}
    assert nft_ruleset_normalize(RULESET, ["edgewarden_quarantine"]) == nft_ruleset_normalize(RULESET[:4])
    changed_rule = copy.deepcopy(RULESET)
    changed_rule[3]["rule"]["expr"][1] = {"accept": None}
    assert nft_ruleset_normalize(changed_rule) != nft_ruleset_normalize(RULESET)
