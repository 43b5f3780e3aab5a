# SPDX-License-Identifier: GPL-3.0-or-later
"""--tags and --skip-tags select the MAC role's paths: skipping one path must still run the
detection (the other path needs it), skipping MAC or both paths skips the detection too."""

import os
import sys

import pytest

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(SCENARIO), "_shared"))
from tag_runs import run_selected  # noqa: E402  (molecule/_shared)


@pytest.mark.parametrize("selection, detect, apparmor", [
    (["--skip-tags", "mac_apparmor"], "ran", "skipped"),
    (["--skip-tags", "mac_selinux"], "ran", "ran"),
    (["--skip-tags", "mac_apparmor,mac_selinux"], "skipped", "skipped"),
])
def test_paths_follow_tags(selection, detect, apparmor):
    run = run_selected(os.path.join(SCENARIO, "tags_check.yml"), selection,
                       {"expect_detect": detect, "expect_apparmor": apparmor})
    # tags_check.yml asserts on the registered results: it fails if the wrong parts ran
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
