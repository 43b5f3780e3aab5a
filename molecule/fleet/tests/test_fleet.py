# SPDX-License-Identifier: GPL-3.0-or-later
"""Drift on a converged fleet: inject known drift, the drift run reports exactly it in JSON,
JUnit and HTML, remediation fixes it, and the next drift run is clean."""

import json
import os
import subprocess
import xml.etree.ElementTree as ET

import pytest
import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
ROOT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
REPORTS = os.path.join(os.environ.get("EW_LAB_DIR", "/var/tmp/edgewarden-lab"), "reports", "fleet")

# (host, record id, where) of every control the injection below breaks
INJECTED = {
    ("debian1", "kernel.sysctl/net.ipv4.conf.all.accept_redirects", "live"),
    ("embedded1", "kernel.sysctl/net.ipv4.conf.all.accept_redirects", "live"),
    ("debian1", "service.enabled/telnetd.service", "persisted"),
    ("debian1", "firewall.table/inet/edgewarden", "live"),
}


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


@pytest.fixture(scope="module")
def runs():
    debian1, embedded1 = host("debian1"), host("embedded1")
    clean_result, clean = playbook("drift.yml", os.path.join(REPORTS, "0-clean"))
    for device in (debian1, embedded1):
        device.run("echo 1 > /proc/sys/net/ipv4/conf/all/accept_redirects")
    debian1.run("ln -sfn ../init.d/telnetd /etc/rc2.d/S01telnetd")
    # the table removed (a flush would keep the base chains' drop policy with no rule left:
    # that is a lockout, not drift)
    debian1.run("nft delete table inet edgewarden")
    drift_result, drift = playbook("drift.yml", os.path.join(REPORTS, "1-drift"))
    remediate_result, remediate = playbook("remediate.yml", os.path.join(REPORTS, "2-remediate"))
    after_result, after = playbook("drift.yml", os.path.join(REPORTS, "3-after"))
    return {"clean": (clean_result, clean), "drift": (drift_result, drift),
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


def test_junit_and_html_name_the_same_drift(runs):
    report_dir = os.path.join(REPORTS, "1-drift")
    suites = ET.parse(os.path.join(report_dir, "drift.xml")).getroot().findall("testsuite")
    failing = dict((s.get("name"), int(s.get("failures"))) for s in suites)
    tasks = dict((h, len(set((e["role"], e["task"]) for e in runs["drift"][1]["findings"] if e["host"] == h))) for h in failing)
    assert failing == tasks
    assert failing["debian1"] >= 3 and failing["embedded1"] >= 1
    with open(os.path.join(report_dir, "drift.html")) as handle:
        page = handle.read()
    for _host, control, _where in INJECTED:
        assert control.split("/", 1)[1].split("/")[0] in page


def test_remediation_fixes_it_and_the_next_drift_run_is_clean(runs):
    result, report = runs["remediate"]
    assert result.returncode == 0, result.stdout[-3000:]
    assert report["mode"] == "remediate"
    _after_result, after = runs["after"]
    assert after["summary"]["exit_code"] == 0
    assert drifted(after) == set()
    assert host("debian1").file("/proc/sys/net/ipv4/conf/all/accept_redirects").content_string.strip() == "0"
