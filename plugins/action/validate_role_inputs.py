# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check, on the controller, the variables of several roles against their argument specs and
the calling role's own input problems, in one task (modules/validate_role_inputs.py).

A role that runs others (baseline) would otherwise need a validate_argument_spec task with
the merged specs as a templated argument, plus an assert task for its own checks: two
tasks per host, and the whole merged spec templated for every host. Here the specs are read
from the roles' files in Python; only the role variables themselves are templated.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible_collections.edgewarden.hardening.plugins.filter.roles import role_argument_options
from ansible_collections.edgewarden.hardening.plugins.modules import validate_role_inputs as own_module
from ansible_collections.edgewarden.hardening.plugins.plugin_utils import _argspec
from ansible_collections.edgewarden.hardening.plugins.plugin_utils._batch import problems_message


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        own = _argspec.validate(own_module.ARGUMENT_SPEC, self._task.args)
        if own.error_messages:
            result.update(failed=True, msg="Invalid arguments for edgewarden.hardening.validate_role_inputs: %s"
                          % "; ".join(own.error_messages))
            return result
        params = own.validated_parameters
        owner = params["input_owner"] or "validate_role_inputs"
        problems = list(params["input_problems"])
        spec = dict((name, option) for name, option in role_argument_options(params["roles"], params["roles_dir"]).items()
                    if name not in params["exclude"])
        values = self._templar.template(dict((name, task_vars[name]) for name in spec if name in task_vars))
        validated = _argspec.validate(spec, values, validate_role_argument_spec=True)
        problems.extend(validated.error_messages)
        if problems:
            result.update(failed=True, refused_on_controller=True, msg=problems_message(owner, problems),
                          argument_errors=validated.error_messages)
            return result
        result.update(changed=False, msg="%d variable(s) of role(s) %s match their argument specs"
                      % (len(values), ", ".join(params["roles"])))
        return result
