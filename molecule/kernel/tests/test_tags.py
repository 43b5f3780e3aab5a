# SPDX-License-Identifier: GPL-3.0-or-later
"""--tags and --skip-tags select the kernel role's features, which are steps of one batch
task: the task must run when one feature is selected, and run only the selected steps;
skipping one feature must skip its step, not the whole task."""

import os
import sys

import pytest

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(SCENARIO), "_shared"))
from tag_runs import run_selected  # noqa: E402  (molecule/_shared)


@pytest.mark.parametrize("selection, sysctl, kconfig", [
    (["--tags", "kernel_kconfig"], "skipped", "ran"),
    (["--tags", "kernel_sysctl"], "ran", "skipped"),
    (["--skip-tags", "kernel_sysctl"], "skipped", "ran"),
    (["--tags", "kernel_sysctl,kernel_kconfig"], "ran", "ran"),
])
def test_features_follow_tags(selection, sysctl, kconfig):
    run = run_selected(os.path.join(SCENARIO, "tags_check.yml"), selection,
                       {"expect_sysctl": sysctl, "expect_kconfig": kconfig})
    # tags_check.yml asserts on the task's result: it fails if the task was filtered out
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
