# SPDX-License-Identifier: GPL-3.0-or-later
"""For a scenario's tests: run one of its playbooks in check mode with a --tags/--skip-tags
selection and the expectations it asserts on (as extra vars)."""

import json
import os
import subprocess


def run_selected(playbook, selection, expect):
    """The finished ansible-playbook run of ``playbook`` against molecule's inventory."""
    return subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--check"] + selection
                          + ["-e", json.dumps(expect), playbook],
                          capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
