# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The integrity role's defaults are valid module input (against its argument spec:
test_role_specs.py).
Here rather than under module_utils because it needs PyYAML, which the Python 3.8 run
of the device-side tests does not have."""

from __future__ import annotations

import os

import yaml

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import integrity, mounts

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "integrity")


def _role(name):
    with open(os.path.join(ROLE, name)) as handle:
        return yaml.safe_load(handle)


def test_role_defaults_are_valid_module_input():
    defaults = _role("defaults/main.yml")
    entries = [dict(spec, path=path) for path, spec in defaults["integrity_mounts_defaults"].items()]
    assert mounts.validate(entries, defaults["integrity_mounts_persist"]) == []
    assert integrity.validate_require(defaults["integrity_boot_require"]) == []
    assert defaults["integrity_boot_lockdown"] in integrity.LOCKDOWN_LEVELS
