# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The batch action's planner and result folding (pure), and its steps run for real
through the lean bootstrap on the device Pythons."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.edgewarden.hardening.plugins.plugin_utils import _batch, _lean
from ansible_collections.edgewarden.hardening.plugins.action.batch import plain_lean_module

from test_lean import ROOT, device_pythons  # same directory: pytest puts it on sys.path

STEPS = [
    {"name": "services", "module": "init_service", "tag": "surface_services", "enabled": True},
    {"name": "packages", "module": "package_removal", "tag": "surface_packages", "enabled": False},
    {"name": "kmod", "module": "kernel_module_blocklist", "tag": "surface_kmod", "enabled": True},
    {"name": "listeners", "module": "listening_ports_info", "tag": None, "enabled": True},
]


def reasons(run_tags, skip_tags):
    return [(step["name"], reason) for step, reason in _batch.select_steps(STEPS, run_tags, skip_tags)]


@pytest.mark.parametrize("run_tags, skip_tags, expected", [
    # no --tags, or --tags naming none of the steps (a role's or the baseline's tag): every enabled step
    (["all"], [], [None, _batch.SKIP_DISABLED, None, None]),
    (["baseline_surface"], [], [None, _batch.SKIP_DISABLED, None, None]),
    (None, None, [None, _batch.SKIP_DISABLED, None, None]),
    # --tags naming a step: that step, and the steps without a tag of their own (part of
    # the task whatever selected it)
    (["surface_kmod"], [], [_batch.SKIP_TAGS, _batch.SKIP_DISABLED, None, None]),
    # a disabled step stays disabled whatever --tags says
    (["surface_packages"], [], [_batch.SKIP_TAGS, _batch.SKIP_DISABLED, _batch.SKIP_TAGS, None]),
    # --skip-tags
    (["all"], ["surface_services"], [_batch.SKIP_TAGS, _batch.SKIP_DISABLED, None, None]),
])
def test_select_steps_follows_toggles_and_tags(run_tags, skip_tags, expected):
    assert reasons(run_tags, skip_tags) == list(zip([s["name"] for s in STEPS], expected))


def plan_of(*names):
    return [({"name": n, "module": "m_" + n}, None) for n in names]


def test_combine_merges_records_diffs_and_facts_in_step_order():
    plan = plan_of("a", "b") + [({"name": "c", "module": "m_c"}, _batch.SKIP_DISABLED)]
    results = [
        {"changed": False, "records": [{"id": "a/1", "status": "unchanged"}], "ansible_facts": {"x": 1}},
        {"changed": True, "records": [{"id": "b/1", "status": "changed"}], "diff": [{"before": "1", "after": "2"}]},
    ]
    combined = _batch.combine(plan, results)
    assert combined["changed"] is True and "failed" not in combined and "skipped" not in combined
    assert [r["id"] for r in combined["records"]] == ["a/1", "b/1"]
    assert combined["diff"] == [{"before": "1", "after": "2"}]
    assert combined["ansible_facts"] == {"x": 1}
    assert combined["steps"]["c"] == {"skipped": True, "skip_reason": _batch.SKIP_DISABLED}
    assert list(combined["steps"]) == ["a", "b", "c"]
    # each record and diff once: in the task's result, not again in the step's
    assert combined["steps"]["a"] == {"changed": False, "ansible_facts": {"x": 1}}
    assert combined["steps"]["b"] == {"changed": True}


def test_combine_fails_naming_the_step_and_marks_the_rest_not_run():
    combined = _batch.combine(plan_of("a", "b", "c"), [{"changed": True}, {"failed": True, "msg": "bad key x"}])
    assert combined["failed"] is True and combined["changed"] is True
    assert combined["msg"] == "step b (m_b): bad key x"
    assert combined["steps"]["c"]["skip_reason"] == "not run, step b failed"


def test_combine_fails_when_the_device_answered_for_fewer_steps():
    combined = _batch.combine(plan_of("a", "b"), [{"changed": False}])
    assert combined["failed"] is True and "step b (m_b)" in combined["msg"] and "no result" in combined["msg"]


def test_combine_with_nothing_to_run_is_skipped_and_says_why():
    combined = _batch.combine([({"name": "a", "module": "m"}, _batch.SKIP_DISABLED)], [])
    assert combined["skipped"] is True and combined["msg"] == "no step to run: a (disabled)"
    assert combined["changed"] is False and "failed" not in combined


def test_problems_message_and_duplicates():
    assert _batch.problems_message("surface", ["p1", "p2"]) == (
        "surface: 2 problem(s) in the input; nothing was changed on the device:\n- p1\n- p2")
    assert _batch.duplicate_names([{"name": "a"}, {"name": "b"}, {"name": "a"}, {"name": "a"}]) == ["a"]


def test_only_plain_lean_modules_can_be_steps():
    assert plain_lean_module("init_service") and plain_lean_module("mac_info")
    # own controller-side steps (commit-confirm, policy builds, artifact checks) or no such module
    for name in ("nft_apply", "sshd_config", "selinux_policy", "ota_artifact", "batch", "no_such_module"):
        assert not plain_lean_module(name), name


def run_steps(python, steps, check_mode=True):
    sources = {}
    for step in steps:
        with open(os.path.join(ROOT, "plugins", "modules", step["module"] + ".py")) as handle:
            sources[step["module"]] = handle.read()
    payload = _lean.build_payload(ROOT, sources, None, check_mode, True, steps=steps)
    proc = subprocess.run([python, "-c", _lean.BOOTSTRAP_COMMAND], input=payload, capture_output=True, check=False)
    return proc.returncode, _lean.parse_result(proc.stdout.decode()), proc.stderr.decode()


@pytest.mark.parametrize("python", device_pythons())
def test_steps_run_in_one_process_in_order(python):
    rc, result, err = run_steps(python, [
        {"name": "posture", "module": "device_facts", "params": {"gather": ["aslr"]}},
        {"name": "lsm", "module": "mac_info", "params": {"required": False}},
    ])
    assert rc == 0, err
    posture, lsm = result["steps"]
    assert posture["ansible_facts"]["edgewarden_device"]["aslr"]["value"] in (0, 1, 2)
    assert lsm["path"] in ("apparmor", "selinux", "none")


@pytest.mark.parametrize("python", device_pythons())
def test_a_failed_step_stops_the_batch(python):
    # check mode, and a key no kernel has: kernel_sysctl refuses it before writing anything
    rc, result, err = run_steps(python, [
        {"name": "sysctl", "module": "kernel_sysctl",
         "params": {"settings": {"net.ipv4.no_such_knob": 1}, "missing": "fail", "optional_keys": None,
                    "strict": False, "persist": False, "persist_path": "auto", "limits": None}},
        {"name": "lsm", "module": "mac_info", "params": {"required": False}},
    ])
    assert rc == 0, err
    assert len(result["steps"]) == 1
    assert result["steps"][0]["failed"] and "net.ipv4.no_such_knob" in result["steps"][0]["msg"]


@pytest.mark.parametrize("python", device_pythons()[:1])
def test_a_step_that_raises_comes_back_as_its_failure(python):
    # params the controller would have completed: the module meets a missing key
    rc, result, err = run_steps(python, [{"name": "lsm", "module": "mac_info", "params": {}},
                                         {"name": "again", "module": "mac_info", "params": {"required": False}}])
    assert rc == 0, err
    assert len(result["steps"]) == 1
    failed = result["steps"][0]
    assert failed["failed"] and failed["msg"].startswith("mac_info raised") and "KeyError" in failed["exception"]
