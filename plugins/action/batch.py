# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs several edgewarden modules in one device process and one task (modules/batch.py).

Everything is checked on the controller first (the batch's own arguments, the role's input
problems, every step's arguments against its module's spec); then one bootstrap run on the
device executes the steps in order (lean_runtime.run_steps) and answers with all their
results. Which steps run and how their results combine: plugins/plugin_utils/_batch.py.
"""

from __future__ import annotations

import importlib

from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase
from ansible_collections.edgewarden.hardening.plugins.modules import batch as batch_module
from ansible_collections.edgewarden.hardening.plugins.plugin_utils import _argspec, _batch, _lean
from ansible_collections.edgewarden.hardening.plugins.plugin_utils._lean_action import (
    COLLECTION_ROOT, LeanModuleAction, no_result, validate_module_args)

FQCN_PREFIX = "edgewarden.hardening."
ACTIONS_PACKAGE = "ansible_collections.edgewarden.hardening.plugins.action."


def plain_lean_module(short):
    """True when ``short`` is an edgewarden module whose action plugin is the plain lean one
    (no controller-side steps of its own that a batch would skip)."""
    try:
        action = importlib.import_module(ACTIONS_PACKAGE + short).ActionModule
    except (ImportError, AttributeError):
        return False
    return issubclass(action, LeanModuleAction) and action.run is LeanModuleAction.run \
        and action._run_module is LeanModuleAction._run_module


class ActionModule(LeanModuleAction):
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = ActionBase.run(self, tmp, task_vars)
        result.update(self._run_batch(task_vars))
        return result

    def _run_batch(self, task_vars):
        own = _argspec.validate(batch_module.ARGUMENT_SPEC, self._task.args)
        if own.error_messages:
            return refused("Invalid arguments for edgewarden.hardening.batch: %s" % "; ".join(own.error_messages))
        params = own.validated_parameters
        if params["input_problems"]:
            return refused(_batch.problems_message(params["input_owner"] or "batch", params["input_problems"]))
        twice = _batch.duplicate_names(params["steps"])
        if twice:
            return refused("batch: step name(s) used twice: %s" % ", ".join(twice))

        plan = _batch.select_steps(params["steps"], task_vars.get("ansible_run_tags"), task_vars.get("ansible_skip_tags"))
        to_run = []  # (step, short module name, its Python module, validation result)
        for step, reason in plan:
            short = step["module"][len(FQCN_PREFIX):] if step["module"].startswith(FQCN_PREFIX) else step["module"]
            if reason:
                continue
            if "." in short or not plain_lean_module(short):
                return refused("batch step %s: %s is not an edgewarden module that can run in a batch"
                               % (step["name"], step["module"]))
            module_path, validated = validate_module_args(short, step["args"], self._lean_cache_dir())
            if validated.error_messages:
                return refused("Invalid arguments for batch step %s (%s): %s"
                               % (step["name"], short, "; ".join(validated.error_messages)))
            to_run.append((step, short, module_path, validated))
        if not to_run:
            return _batch.combine(plan, [])

        interpreter = self._interpreter(task_vars)
        if not self._lean_applies(task_vars, interpreter):
            # ansible-core shows these steps' warnings itself
            return _batch.combine(plan, self._run_one_by_one(task_vars, to_run))
        results = self._run_lean(task_vars, interpreter, to_run)
        if isinstance(results, dict):
            return results  # no result from the device at all
        results = [remove_values(step_result, validated._no_log_values)
                   for (_step, _short, _path, validated), step_result in zip(to_run, results)]
        for (step, _short, _path, _validated), step_result in zip(to_run, results):
            self._show_warnings(task_vars, step_result, step["name"])
        return _batch.combine(plan, results)

    def _run_lean(self, task_vars, interpreter, to_run):
        archive = _lean.cached_code_archive(COLLECTION_ROOT, dict((short, path) for _s, short, path, _v in to_run),
                                            self._lean_cache_dir())
        steps = [{"name": step["name"], "module": short, "params": validated.validated_parameters}
                 for step, short, _path, validated in to_run]
        res = self._execute_lean(task_vars, interpreter, COLLECTION_ROOT, archive, None, steps=steps)
        data = _lean.parse_result(res.get("stdout", ""))
        if data is None or not isinstance(data.get("steps"), list):
            return no_result(res)
        return data["steps"]

    def _run_one_by_one(self, task_vars, to_run):
        """Without the lean transport: one ordinary module call per step, still stopping at
        the first failure."""
        results = []
        for step, short, _path, _validated in to_run:
            results.append(self._execute_module(module_name=FQCN_PREFIX + short, module_args=step["args"],
                                                task_vars=task_vars))
            if results[-1].get("failed"):
                break
        return results

    def _show_warnings(self, task_vars, data, step_name=None):
        if step_name is None:
            return super()._show_warnings(task_vars, data)
        for warning in data.pop("warnings", []):
            self._display.warning("%s: %s: %s" % (task_vars.get("inventory_hostname", "?"), step_name, warning))


def refused(msg):
    return {"failed": True, "refused_on_controller": True, "msg": msg}
