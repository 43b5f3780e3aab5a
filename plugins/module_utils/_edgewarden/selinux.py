# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""SELinux on a device: mode, booleans, local file contexts and policy modules.

Flow (see ``run``): read selinuxfs, ``/etc/selinux/config``, the local customisation
files and ``semodule --list-modules`` -> ``plan`` (pure: records and commands) -> apply
(real runs only) -> read back. Policy modules arrive already built (the action plugin
compiles ``.te`` and checks ``.cil`` sources on the controller); ``semodule -i`` then
checks them against the device's policy and installs them in one transaction.

What is read, without Python tools:
- live mode: ``/sys/fs/selinux/enforce`` (selinuxfs exists only while SELinux is on);
- boot mode and policy name: ``SELINUX=`` and ``SELINUXTYPE=`` in ``/etc/selinux/config``;
- booleans: ``/sys/fs/selinux/booleans/<name>`` (live), ``booleans.local`` in the policy
  store (persistent);
- file contexts: ``file_contexts.local`` of the policy (what ``semanage fcontext`` added);
- modules: ``semodule --list-modules=full``, and a state file with the digest of each
  package this collection installed.
What is written: the enforce file and the config (atomic), ``setsebool -P``,
``semanage fcontext`` + ``restorecon``, ``semodule -i``/``-r``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import tempfile

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import (
    CHANGED,
    ERROR,
    UNCHANGED,
    UNSUPPORTED,
    any_changed,
    record,
)
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import atomic_write, read_text

SELINUXFS = "/sys/fs/selinux"
CONFIG = "/etc/selinux/config"
STATE_FILE = "/var/lib/edgewarden/selinux.json"
STORE_ROOT = "/var/lib/selinux"
MODES = ("enforcing", "permissive")
FTYPES = {"a": "", "f": "--", "d": "-d", "c": "-c", "b": "-b", "s": "-s", "l": "-l", "p": "-p"}
FTYPE_BY_FLAG = dict((flag, letter) for letter, flag in FTYPES.items())
DEFAULT_PRIORITY = 400  # semodule's priority for locally installed modules
REBOOT_FROM_DISABLED = ("SELinux is disabled in the running kernel: the mode takes effect after a reboot, and on "
                        "Debian only with selinux=1 security=selinux on the kernel command line (selinux-activate); "
                        "the first boot relabels the filesystem")


# --- reading -------------------------------------------------------------------------


def parse_config(text):
    values = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip().strip('"')
    return values


def render_config(text, mode):
    """The config with ``SELINUX=<mode>``; every other line kept as it is."""
    lines = (text or "").splitlines()
    out = []
    done = False
    for line in lines:
        if re.match(r"^\s*SELINUX\s*=", line):
            if not done:
                out.append("SELINUX=%s" % mode)
                done = True
            continue
        out.append(line)
    if not done:
        out.append("SELINUX=%s" % mode)
    return "\n".join(out) + "\n"


def live_mode(selinuxfs):
    text = read_text(os.path.join(selinuxfs, "enforce"))
    if text is None:
        return None
    return "enforcing" if text.strip() == "1" else "permissive"


def read_boolean(selinuxfs, name):
    """(current, pending) as booleans, or None when the policy has no such boolean."""
    text = read_text(os.path.join(selinuxfs, "booleans", name))
    if text is None:
        return None
    parts = text.split()
    try:
        return bool(int(parts[0])), bool(int(parts[-1]))
    except (ValueError, IndexError):
        return None


def parse_booleans_local(text):
    values = {}
    for line in (text or "").splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" not in line:
            continue
        name, value = line.split("=", 1)
        value = value.strip().lower()
        values[name.strip()] = value in ("1", "true", "on")
    return values


def parse_fcontexts_local(text):
    """``file_contexts.local`` -> ``{(target, ftype letter): setype}``."""
    entries = {}
    for line in (text or "").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) == 3 and parts[1] in FTYPE_BY_FLAG:
            target, flag, context = parts
        elif len(parts) == 2:
            target, flag, context = parts[0], "", parts[1]
        else:
            continue
        fields = context.split(":")
        entries[(target, FTYPE_BY_FLAG.get(flag, "a"))] = fields[2] if len(fields) >= 3 else context
    return entries


def parse_module_list(text):
    """``semodule --list-modules=full`` (``400 name pp``) or ``-l`` (``name [version]``) -> names."""
    names = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) >= 3 and parts[0].isdigit():
            names[parts[1]] = int(parts[0])
        else:
            names.setdefault(parts[0], None)
    return names


def literal_prefix(target):
    """The longest leading directory of a file-context regex without regex characters:
    what restorecon can be pointed at (``/srv/app(/.*)?`` -> ``/srv/app``)."""
    match = re.match(r"^(/[^\\^$.*+?()\[\]{}|]*)", target)
    prefix = match.group(1) if match else "/"
    rest = target[len(prefix):]
    # "/srv/app(/.*)?": the literal part is a whole name; "/srv/cam[0-9]": only its directory
    if rest and not prefix.endswith("/") and not rest.startswith("(/"):
        prefix = prefix.rsplit("/", 1)[0] or "/"
    return prefix.rstrip("/") or "/"


def package_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()[:16]


# --- input ---------------------------------------------------------------------------


def check_input(mode, booleans, fcontexts, modules):
    errors = []
    if mode is not None and mode not in MODES:
        errors.append("mode must be enforcing or permissive")
    for name, value in (booleans or {}).items():
        if not re.match(r"^[A-Za-z0-9_]+$", str(name)):
            errors.append("boolean %r: invalid name" % name)
        if not isinstance(value, bool):
            errors.append("boolean %s: value must be true or false" % name)
    for item in fcontexts or []:
        if not str(item.get("target", "")).startswith("/"):
            errors.append("fcontext %r: target must be an absolute path regular expression" % item.get("target"))
        if item.get("state", "present") == "present" and not re.match(r"^[a-z0-9_]+_t$", str(item.get("setype"))):
            errors.append("fcontext %s: setype must be a type name ending in _t" % item.get("target"))
        if item.get("ftype", "a") not in FTYPES:
            errors.append("fcontext %s: ftype must be one of %s" % (item.get("target"), ", ".join(sorted(FTYPES))))
    for item in modules or []:
        if item.get("state", "present") == "present":
            if not item.get("package") or item.get("package_format") not in ("pp", "cil"):
                errors.append("module %s: no built package (modules are built from src by the action plugin on the "
                              "controller)" % item.get("name"))
            else:
                try:
                    base64.b64decode(item["package"], validate=True)
                except (ValueError, TypeError):
                    errors.append("module %s: package is not base64" % item.get("name"))
    return errors


# --- planning --------------------------------------------------------------------------


def plan_mode(mode, live, config_mode):
    """Records and operations for the mode; ``reboot`` when only the next boot can apply it."""
    records = []
    ops = []
    reboot = None
    if mode is None:
        return records, ops, reboot
    if config_mode != mode:
        ops.append({"op": "config", "mode": mode})
    records.append(record("selinux.mode", config_mode, mode, where="persisted", detail=CONFIG))
    if live is None:
        records.append(record("selinux.mode", "disabled", mode, where="live", status=UNSUPPORTED,
                              detail=REBOOT_FROM_DISABLED))
        reboot = REBOOT_FROM_DISABLED
    else:
        if live != mode:
            ops.append({"op": "enforce", "mode": mode})
        records.append(record("selinux.mode", live, mode, where="live"))
    return records, ops, reboot


def _onoff(value):
    if value is None:
        return None
    return "on" if value else "off"


def plan_booleans(booleans, live, persisted):
    """``live``: ``{name: (current, pending) or None}``; ``persisted``: booleans.local."""
    records = []
    changes = []
    for name in sorted(booleans or {}):
        wanted = booleans[name]
        if live.get(name) is None:
            records.append(record("selinux.boolean/" + name, None, _onoff(wanted), where="live", status=ERROR,
                                  detail="the loaded policy has no boolean %s" % name))
            continue
        current = live[name][0]
        stored = persisted.get(name)
        records.append(record("selinux.boolean/" + name, _onoff(current), _onoff(wanted), where="live"))
        records.append(record("selinux.boolean/" + name, _onoff(stored), _onoff(wanted), where="persisted"))
        if current != wanted or stored != wanted:
            changes.append("%s=%s" % (name, "1" if wanted else "0"))
    ops = [{"op": "setsebool", "settings": changes}] if changes else []
    return records, ops


def plan_fcontexts(fcontexts, local):
    records = []
    ops = []
    for item in fcontexts or []:
        ftype = item.get("ftype", "a")
        key = (item["target"], ftype)
        before = local.get(key)
        rid = "selinux.fcontext/%s" % item["target"] + ("" if ftype == "a" else " (%s)" % ftype)
        if item.get("state", "present") == "absent":
            if before is not None:
                ops.append({"op": "fcontext", "action": "-d", "target": item["target"], "ftype": ftype})
            records.append(record(rid, before, None, where="persisted"))
            continue
        if before != item["setype"]:
            ops.append({"op": "fcontext", "action": "-m" if before else "-a", "target": item["target"],
                        "ftype": ftype, "setype": item["setype"]})
            ops.append({"op": "restorecon", "path": literal_prefix(item["target"])})
        records.append(record(rid, before, item["setype"], where="persisted"))
    return records, ops


def plan_modules(modules, installed, ours):
    """``installed``: ``{name: priority}``; ``ours``: ``{name: digest}`` of what we installed."""
    records = []
    ops = []
    for item in modules or []:
        name = item["name"]
        priority = item.get("priority") or DEFAULT_PRIORITY
        rid = "selinux.module/" + name
        before = None
        if name in installed:
            before = ours.get(name) or "installed"
        if item.get("state", "present") == "absent":
            if name in installed and name in ours:
                ops.append({"op": "semodule_remove", "name": name, "priority": priority})
                records.append(record(rid, before, None, where="live"))
            elif name in installed:
                records.append(record(rid, before, before, where="live", status=UNSUPPORTED,
                                      detail="not installed by edgewarden: left alone"))
            else:
                records.append(record(rid, None, None, where="live"))
            continue
        data = base64.b64decode(item["package"])
        after = package_digest(data)
        if before != after:
            ops.append({"op": "semodule_install", "name": name, "priority": priority,
                        "format": item["package_format"], "data": data, "digest": after})
        records.append(record(rid, before, after, where="live", detail=item.get("src")))
    return records, ops


# --- applying --------------------------------------------------------------------------


def apply_ops(ops, runner, tools, selinuxfs, config_path, config_text, ours):
    """Run the operations; returns ``{record id prefix: error}``."""
    failed = {}
    restored = set()
    for op in ops:
        kind = op["op"]
        if kind == "config":
            try:
                atomic_write(config_path, render_config(config_text, op["mode"]), mode=0o644)
            except (IOError, OSError) as exc:
                failed["selinux.mode"] = "writing %s failed: %s" % (config_path, exc)
        elif kind == "enforce":
            try:
                with open(os.path.join(selinuxfs, "enforce"), "w") as handle:
                    handle.write("1" if op["mode"] == "enforcing" else "0")
            except (IOError, OSError) as exc:
                failed["selinux.mode"] = "switching to %s failed: %s" % (op["mode"], exc)
        elif kind == "setsebool":
            rc, out, err = runner([tools["setsebool"], "-P"] + op["settings"])
            if rc != 0:
                for setting in op["settings"]:
                    failed["selinux.boolean/" + setting.split("=")[0]] = "setsebool -P failed: %s" % (err or out).strip()
        elif kind == "fcontext":
            argv = [tools["semanage"], "fcontext", op["action"], "-f", op["ftype"]]
            if op.get("setype"):
                argv += ["-t", op["setype"]]
            rc, out, err = runner(argv + [op["target"]])
            if rc != 0:
                failed["selinux.fcontext/" + op["target"]] = "semanage fcontext failed: %s" % (err or out).strip()
        elif kind == "restorecon":
            if op["path"] in restored or not os.path.exists(op["path"]):
                continue
            restored.add(op["path"])
            runner([tools["restorecon"], "-R", op["path"]])
        elif kind == "semodule_install":
            workdir = tempfile.mkdtemp(prefix="edgewarden-semodule-")
            try:
                # semodule takes the module's language from the extension (.pp, .cil)
                path = os.path.join(workdir, "%s.%s" % (op["name"], op["format"]))
                with open(path, "wb") as handle:
                    handle.write(op["data"])
                rc, out, err = runner([tools["semodule"], "-X", str(op["priority"]), "-i", path])
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            if rc != 0:
                failed["selinux.module/" + op["name"]] = "semodule -i refused it: %s" % (err or out).strip()
            else:
                ours[op["name"]] = op["digest"]
        elif kind == "semodule_remove":
            rc, out, err = runner([tools["semodule"], "-X", str(op["priority"]), "-r", op["name"]])
            if rc != 0:
                failed["selinux.module/" + op["name"]] = "semodule -r failed: %s" % (err or out).strip()
            else:
                ours.pop(op["name"], None)
    return failed


def describe_op(op):
    kind = op["op"]
    if kind == "config":
        return "set SELINUX=%s in %s" % (op["mode"], CONFIG)
    if kind == "enforce":
        return "switch to %s now" % op["mode"]
    if kind == "setsebool":
        return "setsebool -P " + " ".join(op["settings"])
    if kind == "fcontext":
        setype = " -t " + op["setype"] if op.get("setype") else ""
        return "semanage fcontext %s -f %s%s %s" % (op["action"], op["ftype"], setype, op["target"])
    if kind == "restorecon":
        return "restorecon -R %s" % op["path"]
    if kind == "semodule_install":
        return "semodule -X %s -i %s.%s (%s)" % (op["priority"], op["name"], op["format"], op["digest"])
    return "semodule -X %s -r %s" % (op["priority"], op["name"])


def _mark_failed(records, failed):
    out = []
    for rec in records:
        for prefix, message in failed.items():
            if rec["id"] == prefix or rec["id"].startswith(prefix + " "):
                rec = record(rec["id"], rec["before"], rec["after"], where=rec["where"], status=ERROR, detail=message)
        out.append(rec)
    return out


# --- orchestration ------------------------------------------------------------------------


def run(mode=None, booleans=None, fcontexts=None, modules=None, runner=None, tools=None, check_mode=False,
        selinuxfs=SELINUXFS, config_path=CONFIG, store_root=STORE_ROOT, state_file=STATE_FILE, etc_root="/etc/selinux"):
    errors = check_input(mode, booleans, fcontexts, modules)
    tools = tools or {}
    config_text = read_text(config_path)
    live = live_mode(selinuxfs)
    if config_text is None and live is None:
        return {"failed": True, "changed": False, "records": [], "errors": [],
                "msg": "SELinux is not installed here: %s is missing and selinuxfs is not mounted" % config_path}
    needs_live = bool(booleans or fcontexts or modules)
    if needs_live and live is None:
        errors.append("booleans, file contexts and modules need SELinux running; it is disabled in this kernel")
    for tool, wanted in (("setsebool", booleans), ("semanage", fcontexts), ("restorecon", fcontexts),
                         ("semodule", modules)):
        if wanted and not tools.get(tool):
            errors.append("%s not found on the device (Debian: policycoreutils%s)" % (
                tool, ", policycoreutils-python-utils" if tool == "semanage" else ""))
    if errors:
        return {"failed": True, "changed": False, "records": [], "errors": errors,
                "msg": "nothing was changed: " + "; ".join(errors)}

    config = parse_config(config_text)
    policy = config.get("SELINUXTYPE") or "default"
    records, ops, reboot = plan_mode(mode, live, config.get("SELINUX"))
    if booleans:
        current = dict((name, read_boolean(selinuxfs, name)) for name in booleans)
        stored = parse_booleans_local(read_text(os.path.join(store_root, policy, "active", "booleans.local")))
        more, more_ops = plan_booleans(booleans, current, stored)
        records += more
        ops += more_ops
    if fcontexts:
        local = parse_fcontexts_local(read_text(os.path.join(etc_root, policy, "contexts", "files",
                                                             "file_contexts.local")))
        more, more_ops = plan_fcontexts(fcontexts, local)
        records += more
        ops += more_ops
    ours = {}
    if modules:
        state = read_text(state_file)
        try:
            ours = (json.loads(state) if state else {}).get("modules", {})
        except ValueError:
            ours = {}
        rc, out, err = runner([tools["semodule"], "--list-modules=full"])
        installed = parse_module_list(out if rc == 0 else "")
        more, more_ops = plan_modules(modules, installed, ours)
        records += more
        ops += more_ops

    if any(r["status"] == ERROR for r in records):
        bad = [r for r in records if r["status"] == ERROR]
        return {"failed": True, "changed": False, "records": records, "errors": [r["detail"] for r in bad],
                "msg": "nothing was changed: " + "; ".join(r["detail"] for r in bad)}
    if not check_mode and ops:
        failed = apply_ops(ops, runner, tools, selinuxfs, config_path, config_text, ours)
        if modules:
            try:
                if not os.path.isdir(os.path.dirname(state_file)):
                    os.makedirs(os.path.dirname(state_file), 0o755)
                atomic_write(state_file, json.dumps({"modules": ours}, indent=1, sort_keys=True) + "\n", mode=0o600)
            except (IOError, OSError) as exc:
                failed["_state"] = "recording installed modules in %s failed: %s" % (state_file, exc)
        records = _mark_failed(records, failed)
    result = {
        "changed": any_changed(records),
        "records": records,
        "operations": [describe_op(op) for op in ops],
        "reboot_required": reboot is not None,
        "reboot_reason": reboot,
        "live_mode": live_mode(selinuxfs) if not check_mode else live,
        "summary": dict((s, len([r for r in records if r["status"] == s])) for s in (CHANGED, UNCHANGED, UNSUPPORTED, ERROR)),
    }
    bad = [r for r in records if r["status"] == ERROR]
    if bad:
        result["failed"] = True
        result["msg"] = "; ".join("%s: %s" % (r["id"], r.get("detail")) for r in bad)
    return result
