# SPDX-License-Identifier: GPL-3.0-or-later
"""Drift on a converged fleet: inject known drift, the drift run reports exactly it in JSON,
JUnit and HTML, remediation fixes it, and the next drift run is clean."""

import html
import json
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest
import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
ROOT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
LAB_DIR = os.environ.get("EW_LAB_DIR", "/var/tmp/edgewarden-lab")
REPORTS = os.path.join(LAB_DIR, "reports", "fleet")

# (host, record id, where) of every control the injection below breaks
INJECTED = {
    ("debian1", "kernel.sysctl/net.ipv4.conf.all.accept_redirects", "live"),
    ("embedded1", "kernel.sysctl/net.ipv4.conf.all.accept_redirects", "live"),
    ("debian1", "service.enabled/telnetd.service", "persisted"),
    ("debian1", "firewall.table/inet/edgewarden", "live"),
    # an sshd option changed: the file drifts, and remediation must reload the running server
    ("debian1", "ssh.sshd_config/etc/ssh/sshd_config", "persisted"),
    ("debian1", "ssh.server/openssh", "live"),
    ("embedded1", "ssh.dropbear/etc/inittab", "persisted"),
    ("embedded1", "ssh.server/dropbear", "live"),
    # a port opened in our table (the table itself still there, unlike debian1's)
    ("debian2", "firewall.table/inet/edgewarden", "live"),
}
# text each injected drift puts in the diff the reports show
MARKERS = ("accept_redirects", "telnetd", "table inet edgewarden", "PasswordAuthentication yes",
           "dropbear -F -E -j -k", "dport 8081 accept")


def offered_methods(address):
    """The login methods the running SSH server offers, from a new connection through the
    bastion that refuses to use a key: "publickey" alone once password logins are off."""
    res = subprocess.run(["ssh", "-F", os.path.join(LAB_DIR, "ssh_config"), "-o", "ControlMaster=no", "-o", "ControlPath=none",
                          "-o", "PubkeyAuthentication=no", "-o", "BatchMode=yes", "root@" + address, "true"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r"Permission denied \(([^)]*)\)", res.stderr)
    assert found, res.stderr
    return found.group(1)


def host(name):
    return testinfra.get_host("ansible://" + name, ansible_inventory=INVENTORY)


def playbook(name, report_dir):
    env = dict(os.environ, ANSIBLE_CALLBACKS_ENABLED="edgewarden.hardening.drift_report", EDGEWARDEN_REPORT_DIR=report_dir)
    result = subprocess.run(["ansible-playbook", "-i", INVENTORY, os.path.join(ROOT, "playbooks", name), "-e", "drift_hosts=devices",
                             "-e", "remediate_hosts=devices"], env=env, capture_output=True, text=True, check=False)
    with open(os.path.join(report_dir, "drift.json")) as handle:
        return result, json.load(handle)


def drifted(report):
    found = set()
    for event in report["findings"]:
        if event["status"] != "changed":
            continue
        for rec in event["records"]:
            found.add((event["host"], rec["id"], rec["where"]))
        if not event["records"]:
            found.add((event["host"], event["task"], "task"))
    return found


def per_host(pairs):
    counts = {}
    for name in pairs:
        counts[name] = counts.get(name, 0) + 1
    return counts


@pytest.fixture(scope="module")
def runs():
    debian1, debian2, embedded1 = host("debian1"), host("debian2"), host("embedded1")
    clean_result, clean = playbook("drift.yml", os.path.join(REPORTS, "0-clean"))
    for device in (debian1, embedded1):
        device.run_expect([0], "echo 1 > /proc/sys/net/ipv4/conf/all/accept_redirects")
    debian1.run_expect([0], "ln -sfn ../init.d/telnetd /etc/rc2.d/S01telnetd")
    # the table removed (a flush would keep the base chains' drop policy with no rule left:
    # that is a lockout, not drift)
    debian1.run_expect([0], "nft delete table inet edgewarden")
    # an sshd option changed by hand and reloaded: password logins back on, live
    debian1.run_expect([0], "sed -i 's/^PasswordAuthentication no$/PasswordAuthentication yes/' /etc/ssh/sshd_config"
                            " && grep -qx 'PasswordAuthentication yes' /etc/ssh/sshd_config && sshd -t"
                            " && kill -HUP $(cat /run/sshd.pid)")
    time.sleep(1)  # sshd re-executes itself on SIGHUP
    injected_methods = offered_methods("192.168.77.11")
    # the same on dropbear: -s (no password logins) dropped from its inittab line
    embedded1.run_expect([0], "sed -i 's|dropbear -F -E -s |dropbear -F -E |' /etc/inittab"
                              " && grep -q 'dropbear -F -E -j -k ' /etc/inittab")
    # a port opened: an accept rule inserted at the top of our input chain
    debian2.run_expect([0], "nft insert rule inet edgewarden input tcp dport 8081 accept")
    drift_result, drift = playbook("drift.yml", os.path.join(REPORTS, "1-drift"))
    remediate_result, remediate = playbook("remediate.yml", os.path.join(REPORTS, "2-remediate"))
    after_result, after = playbook("drift.yml", os.path.join(REPORTS, "3-after"))
    return {"clean": (clean_result, clean), "drift": (drift_result, drift), "injected_methods": injected_methods,
            "remediate": (remediate_result, remediate), "after": (after_result, after)}


def test_converged_fleet_shows_no_drift(runs):
    result, report = runs["clean"]
    assert report["mode"] == "drift"
    assert report["summary"]["exit_code"] == 0, result.stdout[-3000:]
    assert drifted(report) == set()


def test_drift_run_reports_exactly_the_injected_drift(runs):
    _result, report = runs["drift"]
    assert report["summary"]["exit_code"] == 3
    assert drifted(report) == INJECTED


def test_json_counts_exactly_the_injected_controls_per_host(runs):
    _result, report = runs["drift"]
    counts = dict((name, summary["controls_changed"]) for name, summary in report["hosts"].items())
    assert counts == per_host(h for h, _c, _w in INJECTED)


def test_junit_and_html_name_the_same_drift(runs):
    report = runs["drift"][1]
    report_dir = os.path.join(REPORTS, "1-drift")
    suites = ET.parse(os.path.join(report_dir, "drift.xml")).getroot().findall("testsuite")
    # the failing cases are exactly the drifted tasks of the JSON report, host by host
    failing = set()
    for suite in suites:
        for case in suite.findall("testcase"):
            if case.find("failure") is not None:
                failing.add((suite.get("name"), case.get("classname"), case.get("name")))
        assert suite.find("testcase/error") is None, suite.get("name")
    tasks = set((e["host"], "%s.%s" % (e["host"], e["role"]), e["task"]) for e in report["findings"] if e["status"] == "changed")
    assert failing == tasks
    assert dict((s.get("name"), int(s.get("failures"))) for s in suites) == per_host(h for h, _r, _t in tasks)
    assert set(h for h, _r, _t in tasks) == set(h for h, _c, _w in INJECTED)
    failure_text = "".join(node.text or "" for node in ET.parse(os.path.join(report_dir, "drift.xml")).iter("failure"))
    with open(os.path.join(report_dir, "drift.html")) as handle:
        page = html.unescape(handle.read())
    for marker in MARKERS:
        assert marker in failure_text, marker
        assert marker in page, marker
    # the HTML host table counts exactly the injected controls per host
    rows = re.findall(r"<tr class='(\w+)'><td>([^<]+)</td><td>\w+</td><td>(\d+)</td>", page)
    assert dict((name, int(n)) for _state, name, n in rows) == per_host(h for h, _c, _w in INJECTED)


def test_remediation_fixes_it_and_the_next_drift_run_is_clean(runs):
    result, report = runs["remediate"]
    assert result.returncode == 0, result.stdout[-3000:]
    assert report["mode"] == "remediate"
    _after_result, after = runs["after"]
    assert after["summary"]["exit_code"] == 0
    assert drifted(after) == set()
    assert host("debian1").file("/proc/sys/net/ipv4/conf/all/accept_redirects").content_string.strip() == "0"
    # the running servers were reloaded with the remediated config, not just the files
    assert runs["injected_methods"] == "publickey,password"
    assert offered_methods("192.168.77.11") == "publickey"
    assert offered_methods("192.168.77.101") == "publickey"
    assert "8081" not in host("debian2").check_output("nft list table inet edgewarden")


@pytest.mark.parametrize("addresses, message", [
    ([], "baseline_bastion_addresses is empty while the firewall and ssh role(s) run"),
    (["192.168.77.0/24", "192.168.77.1"], "must be addresses, not networks, while the ssh role runs"),
])
def test_bad_bastion_addresses_fail_before_anything_changes(runs, addresses, message):
    report_dir = os.path.join(REPORTS, "9-bad-input")
    env = dict(os.environ, ANSIBLE_CALLBACKS_ENABLED="edgewarden.hardening.drift_report", EDGEWARDEN_REPORT_DIR=report_dir)
    result = subprocess.run(["ansible-playbook", "-i", INVENTORY, os.path.join(ROOT, "playbooks", "remediate.yml"),
                             "-e", json.dumps({"remediate_hosts": "devices", "baseline_bastion_addresses": addresses})],
                            env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stdout[-3000:]
    assert message in " ".join((result.stdout + result.stderr).split())  # the error is wrapped on stderr
    with open(os.path.join(report_dir, "drift.json")) as handle:
        report = json.load(handle)
    # every device failed on the input check, the first task, and nothing changed
    assert report["summary"]["controls_changed"] == 0
    assert set(e["host"] for e in report["findings"] if e["status"] == "failed") == set(report["hosts"])
    check_task = "Baseline | Check the inputs shared by the roles and the variables of the roles that run"
    assert set(e["task"].split(" : ")[-1] for e in report["findings"]) == {check_task}
