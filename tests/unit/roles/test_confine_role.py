# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The confine role: the per-app keys it accepts are the ones the modules accept (its
defaults against its argument spec: test_role_specs.py). Needs PyYAML (not in the 3.8 run)."""

from __future__ import annotations

import os

import yaml

from ansible_collections.edgewarden.hardening.plugins.modules import app_confine, container_policy_info

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "confine")


def _role(name):
    with open(os.path.join(ROLE, name)) as handle:
        return yaml.safe_load(handle)


def test_role_item_options_are_the_modules_options():
    options = _role("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(options["confine_apps"]["options"]) == sorted(app_confine.APP_SPEC)
    assert sorted(options["confine_containers"]["options"]) == \
        sorted(container_policy_info.ARGUMENT_SPEC["containers"]["options"])
    for name, spec in options["confine_apps"]["options"].items():
        assert spec["type"] == app_confine.APP_SPEC[name]["type"], name


def test_every_module_option_is_passed_by_the_role():
    tasks = _role("tasks/services.yml")
    passed = set(tasks[0]["edgewarden.hardening.app_confine"])
    assert passed == set(app_confine.ARGUMENT_SPEC)
