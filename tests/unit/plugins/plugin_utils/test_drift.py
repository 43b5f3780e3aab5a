# SPDX-License-Identifier: GPL-3.0-or-later
import json
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.edgewarden.hardening.plugins.plugin_utils import _drift

SYSCTL_RESULT = {
    "changed": True,
    "records": [
        {"id": "kernel.sysctl/kernel.kptr_restrict", "before": "0", "after": "2", "where": "live", "status": "changed"},
        {"id": "kernel.sysctl/kernel.kptr_restrict", "before": None, "after": "2", "where": "persisted", "status": "changed"},
        {"id": "kernel.sysctl/kernel.sysrq", "before": "0", "after": "0", "where": "live", "status": "unchanged"},
    ],
    "diff": {"before": "kernel.kptr_restrict [live] = 0\n", "after": "kernel.kptr_restrict [live] = 2\n",
             "before_header": "kernel_sysctl", "after_header": "kernel_sysctl"},
}


def events():
    return [
        _drift.task_event("cam1", "Harden", "kernel", "Kernel | Apply sysctl", "edgewarden.hardening.kernel_sysctl",
                          "changed", True, SYSCTL_RESULT),
        _drift.task_event("cam1", "Harden", "ssh", "SSH | Render sshd", "ansible.builtin.template", "changed", True,
                          {"changed": True, "diff": [{"before": "a\n", "after": "b\n"}]}),
        _drift.task_event("cam2", "Harden", "kernel", "Kernel | Apply sysctl", "edgewarden.hardening.kernel_sysctl",
                          "ok", True, {"changed": False, "records": []}),
        _drift.task_event("plc1", "Harden", None, "Gathering", "ping", "unreachable", True,
                          {"msg": "Failed to connect to the host via ssh"}),
    ]


def test_records_count_controls_and_plain_tasks_count_once():
    report = _drift.build_report(events(), ["cam1", "cam2", "plc1", "kiosk1"], "drift", "t0", "t1")
    assert report["hosts"]["cam1"]["controls_changed"] == 3
    assert report["hosts"]["cam1"]["roles"] == {"kernel": 2, "ssh": 1}
    assert report["hosts"]["cam2"]["controls_changed"] == 0


def test_every_targeted_host_is_listed_and_unreachable_is_named():
    report = _drift.build_report(events(), ["cam1", "cam2", "plc1", "kiosk1"], "drift", "t0", "t1")
    assert sorted(report["hosts"]) == ["cam1", "cam2", "kiosk1", "plc1"]
    assert report["summary"]["unreachable"] == ["plc1"]


@pytest.mark.parametrize("selected, mode, expected", [
    ([0], "drift", _drift.EXIT_DRIFT),
    ([0], "remediate", _drift.EXIT_CLEAN),
    ([2], "drift", _drift.EXIT_CLEAN),
    ([0, 3], "drift", _drift.EXIT_ERRORS),
])
def test_exit_code_separates_drift_from_errors(selected, mode, expected):
    chosen = [events()[i] for i in selected]
    report = _drift.build_report(chosen, [e["host"] for e in chosen], mode, "t0", "t1")
    assert report["summary"]["exit_code"] == expected


def test_json_round_trips():
    report = _drift.build_report(events(), [], "drift", "t0", "t1")
    assert json.loads(_drift.to_json(report)) == report


def test_junit_has_a_suite_per_host_and_a_failure_per_drifted_task():
    report = _drift.build_report(events(), ["kiosk1"], "drift", "t0", "t1")
    root = ET.fromstring(_drift.to_junit(report))
    suites = dict((s.get("name"), s) for s in root.findall("testsuite"))
    assert sorted(suites) == ["cam1", "cam2", "kiosk1", "plc1"]
    assert suites["cam1"].get("failures") == "2"
    assert suites["plc1"].get("errors") == "1"
    assert [c.get("name") for c in suites["kiosk1"].findall("testcase")] == ["no drift"]
    failure = suites["cam1"].find("testcase/failure")
    assert "kernel.kptr_restrict [live] = 2" in failure.text


def test_html_is_self_contained_and_escapes():
    evil = _drift.task_event("<b>x</b>", "p", "r", "t", "a", "changed", True, {"changed": True})
    page = _drift.to_html(_drift.build_report([evil], [], "drift", "t0", "t1"))
    assert "<svg" in page and "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page


def test_terminal_summary_fits_one_line_per_host():
    report = _drift.build_report(events(), [], "drift", "t0", "t1")
    lines = _drift.terminal_summary(report).splitlines()
    assert lines[0].startswith("edgewarden drift report: 3 host(s), 1 drifted, 1 failed or unreachable")
    assert "cam1" in lines[1] and "kernel: 2" in lines[1] and "ssh: 1" in lines[1]
    assert "UNREACHABLE" in lines[3]


def test_diff_text_caps_size():
    big = {"before": "", "after": "x\n" * 30000}
    assert len(_drift.diff_text(big)) < _drift.MAX_DIFF_CHARS + 100


def test_remote_tasks_count_module_executions_only():
    chosen = events()[:3] + [
        _drift.task_event("cam1", "Harden", "kernel", "Kernel | Report", "ansible.builtin.debug", "ok", True, {}),
        _drift.task_event("cam1", "Harden", "kernel", "Kernel | Fail", "ansible.builtin.assert", "skipped", True, {}),
    ]
    report = _drift.build_report(chosen, [], "drift", "t0", "t1")
    assert report["hosts"]["cam1"]["remote_tasks"] == 2
    assert report["hosts"]["cam2"]["remote_tasks"] == 1
