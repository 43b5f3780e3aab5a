# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build SELinux policy modules on the controller, then run selinux_policy on the device.

Devices rarely carry the policy compilers (checkpolicy, semodule-utils, secilc) and
should not: the controller builds each ``.te`` source into a ``.pp`` package
(``checkmodule -M -m``, then ``semodule_package`` with the optional ``.fc``) and checks
each ``.cil`` source with ``secilc``. Any compiler error fails the task here, with the
compiler's message, before the device is touched. The device module gets the built
packages inline (base64; modules are kilobytes), so it is still one round trip.

The build functions are plain functions of a source path and a command runner, so the
unit tests run the real compilers on good and broken sources.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tempfile

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

MODULE = "edgewarden.hardening.selinux_policy"
TOOLS = {"checkmodule": "checkpolicy", "semodule_package": "semodule-utils", "secilc": "secilc"}
TE_MODULE = re.compile(r"^\s*module\s+([A-Za-z0-9_-]+)\s+[0-9][0-9.]*\s*;", re.M)
PP_MAGIC = b"\x8f\xff\x7c\xf9"  # SELinux module package (semodule_package output)


def run_command(argv, cwd=None):
    proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
                          env=dict(os.environ, LC_ALL="C", LANG="C"))
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def find_tools(which=shutil.which):
    return dict((tool, which(tool)) for tool in TOOLS)


def missing_tools(tools, formats):
    needed = set()
    if "te" in formats:
        needed.update(("checkmodule", "semodule_package"))
    if "cil" in formats:
        needed.add("secilc")
    return ["%s (Debian package %s)" % (tool, TOOLS[tool]) for tool in sorted(needed) if not tools.get(tool)]


def _message(out, err, rc):
    text = (err or "").strip() or (out or "").strip()
    return text or "exited with %d" % rc


def classify_secilc(rc, out, err):
    """``ok``: compiled as a whole policy; ``unresolved``: parsed, but refers to names
    of a policy the controller does not have (resolved by semodule on the device);
    ``invalid``: a syntax or structure error secilc found while reading the source."""
    if rc == 0:
        return "ok"
    text = (err or "") + (out or "")
    if "Failed to resolve AST" in text and "Failure adding" not in text and "Failed to build AST" not in text:
        return "unresolved"
    return "invalid"


def build_te(name, te_path, fc_path, workdir, tools, run=run_command):
    """``.te`` (+ ``.fc``) -> ``.pp`` bytes. Returns ``(data, None)`` or ``(None, error)``."""
    with open(te_path, "r", errors="replace") as handle:
        text = handle.read()
    match = TE_MODULE.search(text)
    if not match:
        return None, "%s: no 'module NAME VERSION;' statement" % te_path
    if match.group(1) != name:
        return None, "%s declares module %s, not %s (semodule installs it under its declared name)" % (
            te_path, match.group(1), name)
    mod = os.path.join(workdir, name + ".mod")
    pp = os.path.join(workdir, name + ".pp")
    rc, out, err = run([tools["checkmodule"], "-M", "-m", "-o", mod, te_path])
    if rc != 0:
        return None, "checkmodule refused %s: %s" % (te_path, _message(out, err, rc))
    argv = [tools["semodule_package"], "-o", pp, "-m", mod]
    if fc_path:
        argv += ["-f", fc_path]
    rc, out, err = run(argv)
    if rc != 0:
        return None, "semodule_package refused %s: %s" % (fc_path or mod, _message(out, err, rc))
    with open(pp, "rb") as handle:
        return handle.read(), None


def check_cil(name, cil_path, workdir, tools, run=run_command):
    """``.cil`` -> its bytes once secilc found no error it can see without the device's
    policy. Returns ``(data, validation, None)`` or ``(None, None, error)``."""
    rc, out, err = run([tools["secilc"], "--output", os.path.join(workdir, "policy.bin"),
                        "--filecontext", os.path.join(workdir, "file_contexts"), cil_path])
    verdict = classify_secilc(rc, out, err)
    if verdict == "invalid":
        return None, None, "secilc refused %s: %s" % (cil_path, _message(out, err, rc))
    with open(cil_path, "rb") as handle:
        data = handle.read()
    return data, "compiled" if verdict == "ok" else "syntax (names resolved by semodule on the device)", None


def build_modules(modules, find, tools, run=run_command):
    """Build every present module. ``find(path) -> absolute path`` locates sources.
    Returns ``(modules with package fields, built report, errors)``; all errors at once."""
    errors = []
    out = []
    report = []
    formats = set()
    for item in modules or []:
        if item.get("state", "present") == "present" and isinstance(item.get("src"), str):
            formats.add("cil" if item["src"].endswith(".cil") else "te")
    missing = missing_tools(tools, formats)
    if missing:
        return None, [], ["the controller lacks %s to build SELinux policy modules" % ", ".join(missing)]
    workdir = tempfile.mkdtemp(prefix="edgewarden-sebuild-")
    try:
        for item in modules or []:
            item = dict(item)
            if item.get("state", "present") != "present":
                out.append(item)
                continue
            name = item.get("name")
            try:
                src = find(item["src"])
                fc = find(item["fc"]) if item.get("fc") else None
            except (AnsibleError, KeyError, TypeError) as exc:
                errors.append("module %s: source not found: %s" % (name, exc))
                continue
            if src.endswith(".cil"):
                staged = os.path.join(workdir, name + ".cil")
                shutil.copyfile(src, staged)
                data, validation, error = check_cil(name, staged, workdir, tools, run)
                fmt = "cil"
            else:
                data, error = build_te(name, src, fc, workdir, tools, run)
                validation, fmt = "compiled", "pp"
            if error:
                errors.append("module %s: %s" % (name, error))
                continue
            item.update({"package": base64.b64encode(data).decode("ascii"), "package_format": fmt,
                         "validation": validation})
            out.append(item)
            report.append({"name": name, "format": fmt, "validation": validation, "bytes": len(data)})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out, report, errors


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset(("mode", "booleans", "fcontexts", "modules"))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        report = []
        if args.get("modules"):
            def find(path):
                return self._find_needle("files", path)
            modules, report, errors = build_modules(args["modules"], find, find_tools())
            if errors:
                result.update(failed=True, changed=False, errors=errors, records=[],
                              msg="nothing was sent to the device: " + "; ".join(errors))
                return result
            args["modules"] = modules
        res = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        result.update(res)
        if report:
            result["built"] = report
        return result
