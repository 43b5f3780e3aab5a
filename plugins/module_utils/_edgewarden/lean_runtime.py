# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""The part of AnsibleModule that edgewarden modules use, for the lean transport.

The lean transport (plugins/plugin_utils/_lean.py) ships a module with only its own
_edgewarden helpers and this file, installed in the payload as
``ansible.module_utils.basic``: the device never receives ansible-core's module_utils
(about 110 KB per call). Arguments arrive already validated and completed with defaults
by ansible-core's own ArgumentSpecValidator on the controller.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import traceback
import zlib

# set by the transport's bootstrap before the module runs
PAYLOAD_ARGS = {}
# a list while run_steps runs a step: the step's result goes there instead of to stdout
_step_results = None
# a result longer than this travels compressed; plugins/plugin_utils/_lean.py reads both
COMPRESS_ABOVE = 2048
RESULT_PREFIX = "EWZ1 "

SEARCH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


class AnsibleModule(object):
    """A stand-in with the AnsibleModule attributes and methods edgewarden modules call."""

    def __init__(self, argument_spec=None, supports_check_mode=False, **_constraints):
        # the controller already applied argument_spec and every constraint
        self.params = dict(PAYLOAD_ARGS.get("params", {}))
        self.check_mode = bool(PAYLOAD_ARGS.get("check_mode"))
        self._diff = bool(PAYLOAD_ARGS.get("diff"))
        self._warnings = []
        if self.check_mode and not supports_check_mode:
            self.exit_json(skipped=True, msg="remote module does not support check mode")

    def warn(self, warning):
        self._warnings.append(str(warning))

    def get_bin_path(self, arg, required=False, opt_dirs=None):
        dirs = list(opt_dirs or []) + os.environ.get("PATH", "").split(os.pathsep) + list(SEARCH_DIRS)
        for directory in dirs:
            candidate = os.path.join(directory, arg)
            if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        if required:
            self.fail_json(msg="Failed to find required executable %s in paths: %s" % (arg, os.pathsep.join(dirs)))
        return None

    def run_command(self, args, check_rc=False, data=None, environ_update=None, cwd=None, binary_data=False, **_ignored):
        if isinstance(args, str):
            self.fail_json(msg="edgewarden modules pass commands as argv lists", cmd=args)
        env = dict(os.environ, LANG="C", LC_ALL="C", LC_MESSAGES="C")
        env.update(environ_update or {})
        try:
            proc = subprocess.Popen([str(a) for a in args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, cwd=cwd)
        except OSError as exc:
            if check_rc:
                self.fail_json(msg="%s: %s" % (args[0], exc), cmd=args, rc=2)
            return 2, "", str(exc)
        if data is not None and not isinstance(data, bytes):
            data = data.encode("utf-8")
            if not binary_data:
                data += b"\n"
        out, err = proc.communicate(data)
        out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        if check_rc and proc.returncode != 0:
            self.fail_json(msg="command failed: %s" % " ".join(str(a) for a in args), rc=proc.returncode,
                           stdout=out, stderr=err, cmd=args)
        return proc.returncode, out, err

    def _finish(self, result, rc):
        if self._warnings:
            result["warnings"] = list(result.get("warnings", [])) + self._warnings
        if _step_results is not None:
            _step_results.append(result)
        else:
            _write_result(result)
        sys.exit(rc)

    def exit_json(self, **result):
        result.setdefault("changed", False)
        self._finish(result, 0)

    def fail_json(self, msg=None, **result):
        result["failed"] = True
        result["msg"] = msg if msg is not None else "module failed"
        self._finish(result, 1)


def _write_result(result):
    text = json.dumps(result, default=str)
    if len(text) > COMPRESS_ABOVE:
        # records and diffs are repetitive JSON: a fifth of the bytes on a slow link
        text = RESULT_PREFIX + base64.b64encode(zlib.compress(text.encode("utf-8"), 6)).decode("ascii")
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run_steps(payload, read_module):
    """Run several modules in this one process, in order (the batch action's payload):
    ``payload["steps"]`` is a list of ``{"name", "module", "params"}``; ``read_module(module)``
    returns a module's compiled code. Stops at the first step that fails: later steps may rely on
    it (listeners are read after services are stopped). Writes one result,
    ``{"steps": [result, ...]}``, in the order run."""
    global PAYLOAD_ARGS, _step_results
    results = []
    for step in payload["steps"]:
        PAYLOAD_ARGS = {"params": step["params"], "check_mode": payload.get("check_mode"),
                        "diff": payload.get("diff")}
        _step_results = []
        try:
            exec(read_module(step["module"]), {"__name__": "__main__"})
        except SystemExit:
            pass
        except Exception:  # a bug in one module must still come back as that step's failure
            _step_results.append({"failed": True, "msg": "%s raised %s" % (step["module"], sys.exc_info()[1]),
                                  "exception": traceback.format_exc()})
        result = _step_results[0] if _step_results else {
            "failed": True, "msg": "%s ended without a result" % step["module"]}
        _step_results = None
        results.append(result)
        if result.get("failed"):
            break
    _write_result({"steps": results})
