# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening: may change without notice.
"""Action for edgewarden modules: the lean transport (plugins/plugin_utils/_lean.py).

Each module that supports it has a two-line action plugin of the same name in
plugins/action/ that subclasses LeanModuleAction. Falls back to
ansible-core's normal module execution (AnsiballZ) when the lean path does not apply: the
host sets ``edgewarden_transport: ansiballz``, the interpreter is left to discovery, the
connection is local, or the task is async.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shlex
import tempfile

from ansible import constants as C

from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase
from ansible_collections.edgewarden.hardening.plugins.plugin_utils import _argspec, _lean

MODULES_PACKAGE = "ansible_collections.edgewarden.hardening.plugins.modules."
COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# AnsibleModule keyword arguments that are constraints the validator understands
CONSTRAINTS = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")
# where a device keeps the code archives it was sent (tmpfs only: the bootstrap checks)
DEVICE_CACHE_DIR = "/run/edgewarden-lean"


class LeanModuleAction(ActionBase):
    _supports_check_mode = True
    _supports_async = True

    def _interpreter(self, task_vars):
        value = task_vars.get("ansible_python_interpreter")
        if not value:
            return None
        value = self._templar.template(value)
        return None if str(value).startswith("auto") else str(value)

    @staticmethod
    def _lean_cache_dir():
        try:
            home = C.config.get_config_value("ANSIBLE_HOME")
        except Exception:  # an ansible-core without the setting
            home = None
        return os.path.join(os.path.expanduser(home) if home else tempfile.gettempdir(), "tmp", "edgewarden-lean")

    def _lean_applies(self, task_vars, interpreter):
        return (interpreter and not self._task.async_val
                and self._connection.transport != "local"
                and self._templar.template(task_vars.get("edgewarden_transport", "lean")) == "lean")

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        result.update(self._run_module(task_vars))
        return result

    def _run_module(self, task_vars, module_args=None, module=None):
        """One run of ``module`` (default: this task's) with ``module_args`` (default: the
        task's), lean where it applies; returns the module's result."""
        module = module or self._task.action
        module_args = self._task.args if module_args is None else module_args
        short = module.rsplit(".", 1)[-1]
        interpreter = self._interpreter(task_vars)
        if not self._lean_applies(task_vars, interpreter):
            return self._execute_module(module_name="edgewarden.hardening." + short, module_args=module_args,
                                        task_vars=task_vars)

        module_path, validated = validate_module_args(short, module_args, self._lean_cache_dir())
        if validated.error_messages:
            # bad input never reaches the device
            return dict(failed=True, refused_on_controller=True,
                        msg="Invalid arguments for %s: %s" % (module, "; ".join(validated.error_messages)))

        archive = _lean.cached_code_archive(COLLECTION_ROOT, module_path, self._lean_cache_dir())
        res = self._execute_lean(task_vars, interpreter, COLLECTION_ROOT, archive, validated.validated_parameters)
        data = _lean.parse_result(res.get("stdout", ""))
        if data is None:
            return no_result(res)
        data = remove_values(data, validated._no_log_values)
        self._show_warnings(task_vars, data)
        return data

    def _show_warnings(self, task_vars, data):
        # one line per host and warning: in a fleet run the host is what says where to look
        for warning in data.pop("warnings", []):
            self._display.warning("%s: %s" % (task_vars.get("inventory_hostname", "?"), warning))

    def _execute_lean(self, task_vars, interpreter, root, archive, params, steps=None):
        """One run of the bootstrap. The code travels once per device and boot: after the
        device said it kept a copy (in tmpfs, ``edgewarden_lean_device_cache``), later calls
        send only its digest; a device that lost or altered its copy says so, and the call
        is made again with the code (one more round trip, then cached again)."""
        device_dir = self._templar.template(task_vars.get("edgewarden_lean_device_cache", DEVICE_CACHE_DIR)) or ""
        cache = {"dir": device_dir, "sha256": _lean.archive_digest(archive)} if device_dir else None
        marker = self._code_sent_marker(task_vars, cache["sha256"]) if cache else None
        cmd = "%s -c %s" % (shlex.quote(interpreter), shlex.quote(_lean.BOOTSTRAP_COMMAND))
        send_code = marker is None or not os.path.exists(marker)
        while True:
            payload = _lean.build_payload(root, None, params, self._play_context.check_mode, self._play_context.diff,
                                          code=archive if send_code else b"", code_cache=cache, steps=steps)
            res = self._low_level_execute_command(cmd, sudoable=True, in_data=payload)
            answer = _lean.code_cache_answer(res.get("stdout", ""))
            if answer == _lean.CODE_MISS and not send_code:
                _forget(marker)
                send_code = True
                continue
            if answer == _lean.CODE_CACHED and marker:
                _remember(marker)
            return res

    def _code_sent_marker(self, task_vars, digest):
        """A file on the controller per device and archive: present once the device kept it."""
        host = "%s\0%s\0%s" % (task_vars.get("inventory_hostname"), self._play_context.remote_addr,
                               self._play_context.port)
        return os.path.join(self._lean_cache_dir(), "sent", hashlib.sha256(host.encode("utf-8")).hexdigest()[:32],
                            digest)


def validate_module_args(short, module_args, cache_dir):
    """(the module's file, ansible-core's validation result) for ``module_args``: checked and
    completed with defaults against the module's own ARGUMENT_SPEC."""
    module_path, spec, constraints = module_interface(short, cache_dir)
    return module_path, _argspec.validate(spec, module_args, constraints)


def module_interface(short, cache_dir):
    """(file, ARGUMENT_SPEC, validator constraints) of module ``short``, read from a JSON copy
    in ``cache_dir`` kept per change of the sources (as the code archives): importing the
    module on the controller compiles it and every helper it imports again in every worker
    (ansible-core's collection loader keeps no bytecode), 13-37 ms of CPU per host and task."""
    module_path = os.path.join(COLLECTION_ROOT, "plugins", "modules", short + ".py")
    cached = os.path.join(cache_dir, "%s.%s.spec.json" % (short, _lean.sources_key(COLLECTION_ROOT, module_path)))
    try:
        with open(cached) as handle:
            data = json.load(handle)
        return module_path, data["spec"], data["constraints"]
    except (OSError, ValueError, KeyError):
        pass
    code = importlib.import_module(MODULES_PACKAGE + short)
    spec = getattr(code, "ARGUMENT_SPEC")
    constraints = dict((k, getattr(code, k.upper())) for k in CONSTRAINTS if hasattr(code, k.upper()))
    try:
        text = json.dumps({"spec": spec, "constraints": constraints})
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.rename(tmp, cached)  # concurrent workers: each rename is whole
    except (TypeError, ValueError, OSError):
        pass  # a spec JSON cannot hold, or no cache: still correct, only slower
    return module_path, spec, constraints


def no_result(res):
    """A bootstrap run that printed no JSON result: fail, showing what came back."""
    return dict(failed=True, msg="edgewarden lean transport: no module result (rc=%s)" % res.get("rc"),
                module_stdout=res.get("stdout", ""), module_stderr=res.get("stderr", ""), rc=res.get("rc"))


def _remember(marker):
    try:
        os.makedirs(os.path.dirname(marker), mode=0o700, exist_ok=True)
        with open(marker, "a"):
            pass
    except OSError:
        pass  # not remembered: the next call sends the code again, still correct


def _forget(marker):
    try:
        os.unlink(marker)
    except OSError:
        pass
