# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The bastion and ssh roles: every default declared in argument_specs, identically."""

from __future__ import annotations

import os

import pytest
import yaml

ROLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles")


def _load(role, name):
    with open(os.path.join(ROLES, role, name)) as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize("role", ["bastion", "ssh"])
def test_argument_specs_match_defaults(role):
    defaults = _load(role, "defaults/main.yml")
    options = _load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(options) == sorted(defaults)
    for name, spec in options.items():
        assert name.startswith(role + "_"), name
        assert spec["default"] == defaults[name], name
