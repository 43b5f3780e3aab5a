# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller-side argument validation: plain copies of templated values, and the module
interfaces (ARGUMENT_SPEC and constraints) read from their JSON copies."""

from __future__ import annotations

import datetime
import importlib
import os

import pytest
from ansible.module_utils._internal._datatag import AnsibleTagHelper
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible._internal._datatag._tags import Origin

from ansible_collections.edgewarden.hardening.plugins.plugin_utils import _argspec, _lean_action

from test_lean import ROOT  # same directory: pytest puts it on sys.path

ORIGIN = Origin(path="/inventory/group_vars/all.yml", line_num=3)


def tagged(value):
    return AnsibleTagHelper.tag(value, [ORIGIN])


def test_plain_data_drops_tags_and_keeps_values():
    value = tagged({tagged("ports"): tagged([tagged(22), tagged("2222")]), tagged("on"): tagged(True),
                    "rate": tagged(1.5), 7: None, "when": datetime.date(2026, 11, 27)})
    plain = _argspec.plain_data(value)
    assert plain == {"ports": [22, "2222"], "on": True, "rate": 1.5, 7: None, "when": datetime.date(2026, 11, 27)}
    # exact types, not the tagged subclasses
    assert plain.__class__ is dict and plain["ports"].__class__ is list
    assert [x.__class__ for x in plain["ports"]] == [int, str] and plain["on"].__class__ is bool
    assert all(key.__class__ in (str, int) for key in plain)


def test_plain_data_turns_tuples_and_sets_into_lists():
    assert _argspec.plain_data({"a": (1, 2), "b": {3}, "c": frozenset()}) == {"a": [1, 2], "b": [3], "c": []}


def test_validation_of_tagged_and_plain_values_agrees():
    spec = {"ports": {"type": "list", "elements": "int"}, "name": {"type": "str", "required": True},
            "mode": {"type": "str", "choices": ["a", "b"], "default": "a"}}
    for params in ({"ports": ["22", 23], "name": "x"}, {"ports": ["x"]}, {"name": "n", "mode": "c"}):
        ours = _argspec.validate(spec, tagged(dict((tagged(k), tagged(v)) for k, v in params.items())))
        core = ArgumentSpecValidator(spec).validate(params)
        assert ours.error_messages == core.error_messages
        assert ours.validated_parameters == core.validated_parameters


def lean_modules():
    """Every module whose action plugin is the lean one (it validates through module_interface)."""
    names = []
    for name in sorted(os.listdir(os.path.join(ROOT, "plugins", "action"))):
        short = name[:-3]
        if not name.endswith(".py") or not os.path.exists(os.path.join(ROOT, "plugins", "modules", name)):
            continue
        action = importlib.import_module("ansible_collections.edgewarden.hardening.plugins.action." + short)
        if issubclass(getattr(action, "ActionModule", object), _lean_action.LeanModuleAction):
            names.append(short)
    return names


@pytest.mark.parametrize("short", lean_modules())
def test_module_interface_from_its_json_copy_validates_as_the_module(short, tmp_path):
    code = importlib.import_module(_lean_action.MODULES_PACKAGE + short)
    constraints = dict((k, getattr(code, k.upper())) for k in _lean_action.CONSTRAINTS if hasattr(code, k.upper()))
    first = _lean_action.module_interface(short, str(tmp_path))
    copies = [n for n in os.listdir(str(tmp_path)) if n.startswith(short + ".") and n.endswith(".spec.json")]
    assert first[0] == code.__file__ and len(copies) == 1
    path, spec, cached_constraints = _lean_action.module_interface(short, str(tmp_path))
    assert path == code.__file__
    # the copy (tuples became lists) must accept and refuse exactly what the module's own spec does
    for params in ({}, {"no_such_option": 1}, dict((k, None) for k in code.ARGUMENT_SPEC)):
        ours = ArgumentSpecValidator(spec, **cached_constraints).validate(params)
        core = ArgumentSpecValidator(code.ARGUMENT_SPEC, **constraints).validate(params)
        assert ours.error_messages == core.error_messages, params
        assert ours.validated_parameters == core.validated_parameters, params


def test_module_interface_copy_follows_the_sources(tmp_path):
    _lean_action.module_interface("device_facts", str(tmp_path))
    module = os.path.join(ROOT, "plugins", "modules", "device_facts.py")
    stat = os.stat(module)
    try:
        os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1000))
        _lean_action.module_interface("device_facts", str(tmp_path))
    finally:
        os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert len([n for n in os.listdir(str(tmp_path)) if n.startswith("device_facts.")]) == 2
