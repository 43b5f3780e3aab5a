# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The change-record shape, and how a module ends with it: run through the lean runtime's
AnsibleModule, the object modules get on the device."""

from __future__ import annotations

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import lean_runtime
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import (
    diff_from_records, exit_with_records, record)


def end(result, diff, extra_diffs=None):
    """(exit code, result as the module wrote it) of exit_with_records on a fresh module."""
    lean_runtime.PAYLOAD_ARGS = {"params": {}, "check_mode": False, "diff": diff}
    lean_runtime._step_results = []
    try:
        module = lean_runtime.AnsibleModule(argument_spec={}, supports_check_mode=True)
        with pytest.raises(SystemExit) as ended:
            exit_with_records(module, result, "demo", extra_diffs=extra_diffs)
        return ended.value.code, lean_runtime._step_results[0]
    finally:
        lean_runtime._step_results = None
        lean_runtime.PAYLOAD_ARGS = {}


def sample():
    return [record("sysctl/kernel.sysrq", "1", "0"), record("sysctl/fs.suid_dumpable", "0", "0"),
            record("sysctl/kernel.yama.ptrace_scope", None, None, status="unsupported", detail="no Yama")]


def test_record_status_follows_before_and_after():
    assert [r["status"] for r in sample()] == ["changed", "unchanged", "unsupported"]
    assert "detail" not in sample()[0] and sample()[2]["detail"] == "no Yama"
    with pytest.raises(ValueError, match="sysctl/x"):
        record("sysctl/x", 1, 2, status="drifted")


def test_diff_lists_changed_records_only():
    diff = diff_from_records(sample(), header="kernel_sysctl")
    assert diff == {"before_header": "kernel_sysctl", "after_header": "kernel_sysctl",
                    "before": "sysctl/kernel.sysrq [live] = 1\n", "after": "sysctl/kernel.sysrq [live] = 0\n"}
    assert diff_from_records([record("x", None, "1")])["before"] == "x [live] = <absent>\n"


def test_exit_reports_warnings_and_diff_only_under_diff():
    rc, out = end({"changed": True, "records": sample(), "warnings": ["kernel.yama absent"]}, diff=False)
    assert rc == 0 and out["warnings"] == ["kernel.yama absent"] and "diff" not in out
    rc, out = end({"changed": True, "records": sample()}, diff=True)
    assert out["diff"]["after"] == "sysctl/kernel.sysrq [live] = 0\n" and "warnings" not in out


def test_exit_appends_extra_diffs_after_the_records():
    whole_file = {"before_header": "/etc/inittab", "after_header": "/etc/inittab", "before": "a\n", "after": ""}
    rc, out = end({"changed": True, "records": sample()}, diff=True, extra_diffs=[whole_file])
    assert [d["before_header"] for d in out["diff"]] == ["demo", "/etc/inittab"]
    # no records, no diff: an empty change is not shown under --diff
    rc, out = end({"changed": False, "records": []}, diff=True, extra_diffs=[])
    assert "diff" not in out


def test_failed_result_fails_the_module_with_its_message_and_records():
    rc, out = end({"failed": True, "msg": "kernel.sysrq: not a number", "records": [], "changed": False}, diff=True)
    assert rc == 1 and out["failed"] is True and out["msg"] == "kernel.sysrq: not a number"
    assert out["records"] == []
