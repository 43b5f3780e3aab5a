# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every role's variables: each default declared in meta/argument_specs.yml with the same
value, named after the role, and one of its choices. A spec's ``default`` is what
ansible-doc shows; nothing in ansible-core keeps it equal to defaults/main.yml."""

from __future__ import annotations

import os

import pytest
import yaml

ROLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles")
ALL_ROLES = sorted(name for name in os.listdir(ROLES) if os.path.isdir(os.path.join(ROLES, name)))


def _load(role, name):
    with open(os.path.join(ROLES, role, name)) as handle:
        return yaml.safe_load(handle)


def test_the_roles_are_found():
    assert {"baseline", "firewall", "kernel", "ssh", "surface"} <= set(ALL_ROLES)


@pytest.mark.parametrize("role", ALL_ROLES)
def test_argument_specs_match_defaults(role):
    defaults = _load(role, "defaults/main.yml")
    options = _load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(options) == sorted(defaults)
    for name, spec in options.items():
        assert name.startswith(role + "_"), name
        assert spec["default"] == defaults[name], name
        if spec.get("choices") and defaults[name] is not None:
            chosen = defaults[name] if isinstance(defaults[name], list) else [defaults[name]]
            assert set(chosen) <= set(spec["choices"]), name
