# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening: may change without notice.
"""Argument validation on the controller with ansible-core's ArgumentSpecValidator, on
plain data.

Templated task arguments and role variables arrive as ansible-core's tagged types (every
string and container carries its origin). The validator deep-copies what it validates, and
copying tagged values costs about five times as much as copying plain ones: for a role's
profile tables it was most of the controller CPU of a task. Only the values matter to a
validation, so they are copied once, to plain types, first.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator


def plain_data(value):
    """``value`` as plain dict, list, str, int, float, bool and None, recursively; other
    types (a date, an object a filter returned) are kept as they are. Tuples and sets become
    lists, as they would in the JSON a module receives."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, Mapping):
        return dict((plain_data(key), plain_data(item)) for key, item in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain_data(item) for item in value]
    # bool before int: bool is an int subclass
    for kind in (bool, str, int, float):
        if isinstance(value, kind):
            return kind(value)
    return value


def validate(spec, parameters, constraints=None, **options):
    """ansible-core's validation result for ``parameters`` (plain copies) against ``spec``.
    ``constraints``: mutually_exclusive, required_if, ... as AnsibleModule takes them;
    ``options``: passed to ``validate`` (e.g. ``validate_role_argument_spec=True``)."""
    return ArgumentSpecValidator(spec, **(constraints or {})).validate(plain_data(parameters), **options)
