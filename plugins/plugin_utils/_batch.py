# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening: may change without notice.
"""The batch action's planning and reporting: pure functions, no Ansible imports.

A batch runs several edgewarden modules, one after the other, in one device process and one
task (plugins/action/batch.py). Each Ansible task costs the controller about 40-130 ms per
host whatever it does (docs/performance.md), so a role that needs four module calls is
cheaper as one batch. These functions decide which steps run and fold the steps' results
into the one task result Ansible, the drift report and ``--diff`` read.
"""

from __future__ import annotations

SKIP_DISABLED = "disabled"
SKIP_TAGS = "not selected by --tags/--skip-tags"


def select_steps(steps, run_tags, skip_tags):
    """``[(step, skip reason or None)]`` in order.

    A step with a ``tag`` follows ``--tags`` and ``--skip-tags`` like the task it would have
    been: skipped when its tag is skipped; and when ``--tags`` names one or more of the
    batch's step tags, only those steps (and the untagged ones) run. Otherwise (``--tags`` names none of them, as
    with ``--tags baseline_surface`` or no ``--tags``) every enabled step runs."""
    run_tags = set(run_tags or ["all"])
    skip_tags = set(skip_tags or [])
    picked = set(step.get("tag") for step in steps if step.get("tag")) & run_tags
    plan = []
    for step in steps:
        tag = step.get("tag")
        if not step.get("enabled", True):
            plan.append((step, SKIP_DISABLED))
        elif tag and (tag in skip_tags or (picked and tag not in picked)):
            plan.append((step, SKIP_TAGS))
        else:
            plan.append((step, None))
    return plan


def duplicate_names(steps):
    seen, twice = set(), []
    for step in steps:
        if step["name"] in seen and step["name"] not in twice:
            twice.append(step["name"])
        seen.add(step["name"])
    return twice


def problems_message(owner, problems):
    """The message of a batch refused for its role's own input checks."""
    return "\n".join(["%s: %d problem(s) in the input; nothing was changed on the device:" % (owner, len(problems))]
                     + ["- %s" % problem for problem in problems])


# what a step's result gives to the task's result instead of keeping it
SHARED_KEYS = ("records", "diff")


def combine(plan, results):
    """One task result from the steps' results.

    ``plan`` is :func:`select_steps`' list; ``results`` the results of the steps that ran, in
    order (shorter than the steps to run when one failed: the ones after it did not run).
    ``steps`` holds every step's result by name, less its ``records`` and ``diff``: those are
    the task's, all steps' in order (not twice: a registered result is copied and handed
    around for every host, and records are most of it); ``ansible_facts`` merged; a failed
    step fails the task, named."""
    combined = {"changed": False, "steps": {}, "records": []}
    diffs, facts = [], {}
    pending = list(results)
    failed = None
    for step, reason in plan:
        name = step["name"]
        if reason:
            combined["steps"][name] = {"skipped": True, "skip_reason": reason}
            continue
        if failed is not None:
            combined["steps"][name] = {"skipped": True, "skip_reason": "not run, step %s failed" % failed}
            continue
        result = pending.pop(0) if pending else {"failed": True, "msg": "the device sent no result for this step"}
        combined["steps"][name] = dict((key, value) for key, value in result.items() if key not in SHARED_KEYS)
        combined["changed"] = combined["changed"] or bool(result.get("changed"))
        if isinstance(result.get("records"), list):
            combined["records"].extend(result["records"])
        diff = result.get("diff")
        if diff:
            diffs.extend(diff if isinstance(diff, list) else [diff])
        facts.update(result.get("ansible_facts") or {})
        if result.get("failed"):
            failed = name
            combined["failed"] = True
            combined["msg"] = "step %s (%s): %s" % (name, step["module"], result.get("msg", "failed"))
    if diffs:
        combined["diff"] = diffs
    if facts:
        combined["ansible_facts"] = facts
    if all(reason for _step, reason in plan):
        combined["skipped"] = True
        combined["msg"] = "no step to run: %s" % ", ".join(
            "%s (%s)" % (step["name"], reason) for step, reason in plan) if plan else "no step to run"
    return combined
