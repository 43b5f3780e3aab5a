# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.edgewarden.hardening.plugins.filter.roles import role_argument_options

ROLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles")


def write_spec(tmp_path, role, text):
    meta = tmp_path / role / "meta"
    meta.mkdir(parents=True)
    (meta / "argument_specs.yml").write_text(text)


def test_merges_the_options_of_each_role_in_order(tmp_path):
    write_spec(tmp_path, "a", "argument_specs:\n  main:\n    options:\n      a_x: {type: int}\n      shared: {type: str}\n")
    write_spec(tmp_path, "b", "argument_specs:\n  main:\n    options:\n      shared: {type: bool}\n  other:\n"
                              "    options:\n      b_y: {type: str}\n")
    assert role_argument_options(["a", "b"], str(tmp_path)) == {"a_x": {"type": "int"}, "shared": {"type": "bool"}}
    assert role_argument_options(["b"], str(tmp_path), "other") == {"b_y": {"type": "str"}}


def test_only_what_validation_reads_is_kept(tmp_path):
    write_spec(tmp_path, "a", "argument_specs:\n  main:\n    options:\n"
                              "      a_x:\n        type: list\n        elements: dict\n        default: [{k: 1}]\n"
                              "        description: [Long text.]\n        version_added: 0.1.0\n"
                              "        options:\n          k: {type: int, required: true, description: Key., default: 2}\n"
                              "      a_y: {type: str, choices: [x, y], no_log: true, description: Y.}\n")
    assert role_argument_options(["a"], str(tmp_path)) == {
        "a_x": {"type": "list", "elements": "dict", "options": {"k": {"type": "int", "required": True}}},
        "a_y": {"type": "str", "choices": ["x", "y"], "no_log": True}}


def test_the_baseline_roles_specs_merge_without_clashes():
    names = ["kernel", "surface", "mac", "firewall", "ssh"]
    merged = role_argument_options(names, ROLES)
    per_role = [role_argument_options([name], ROLES) for name in names]
    assert len(merged) == sum(len(options) for options in per_role)  # no role shadows another's option
    assert all(key.startswith(name + "_") for name, options in zip(names, per_role) for key in options)


@pytest.mark.parametrize("layout, expected", [
    (None, "cannot read the argument spec of role gone"),
    ("argument_specs:\n  other: {}\n", "has no entry point 'main'"),
    ("argument_specs: [\n", "cannot read the argument spec of role gone"),
])
def test_a_missing_or_broken_spec_fails_naming_the_role(tmp_path, layout, expected):
    if layout is not None:
        write_spec(tmp_path, "gone", layout)
    with pytest.raises(AnsibleFilterError, match=expected):
        role_argument_options(["gone"], str(tmp_path))
