# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Role plumbing on the controller: the argument specs of several roles, merged, so a role
that runs others (baseline) checks all their variables in one task."""

from __future__ import annotations

import os

import yaml
from ansible.errors import AnsibleFilterError

# libyaml when present: this runs once per host and task, on the controller's busy CPU
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# what validation never reads: the task templates the whole spec for every host, and the
# defaults (sysctl tables, KSPP recommendations) and descriptions are most of its size
NOT_FOR_VALIDATION = ("description", "version_added", "default")


def for_validation(options):
    """Option specs without NOT_FOR_VALIDATION, suboptions included."""
    slim = {}
    for name, spec in options.items():
        spec = dict((k, v) for k, v in (spec or {}).items() if k not in NOT_FOR_VALIDATION)
        if isinstance(spec.get("options"), dict):
            spec["options"] = for_validation(spec["options"])
        slim[name] = spec
    return slim


def role_argument_options(roles, roles_dir, entry_point="main"):
    """The ``options`` of ``entry_point`` of each role under ``roles_dir``, merged in order,
    without what validation does not read (descriptions, defaults)."""
    merged = {}
    for name in roles:
        path = os.path.join(roles_dir, name, "meta", "argument_specs.yml")
        try:
            with open(path) as handle:
                spec = yaml.load(handle, Loader=_LOADER) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise AnsibleFilterError("role_argument_options: cannot read the argument spec of role %s (%s): %s"
                                     % (name, path, exc))
        entry = (spec.get("argument_specs") or {}).get(entry_point)
        if entry is None:
            raise AnsibleFilterError("role_argument_options: role %s has no entry point %r in %s" % (name, entry_point, path))
        merged.update(for_validation(entry.get("options") or {}))
    return merged


class FilterModule:
    def filters(self):
        return {"role_argument_options": role_argument_options}
