# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Kernel module blocklist: one owned modprobe.d file, and unloading what is loaded and unused.

Flow (see ``run``): read the owned file, /proc/modules, the kernel's modules.builtin and
whether this process may unload modules -> ``plan`` (pure: file content, records, unload
order) -> write the file and unload, only outside check mode.

Each blocked module gets two lines: ``install NAME /bin/false`` makes modprobe run
/bin/false instead of loading it, also when another module pulls it in as a dependency,
and ``blacklist NAME`` stops udev/mdev autoloading through its aliases. kmod and BusyBox
modprobe both read /etc/modprobe.d/*.conf. Module names are compared with ``-`` and ``_``
as equal, as modprobe does.
"""

from __future__ import annotations

import os
import re

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import (
    CHANGED,
    UNSUPPORTED,
    any_changed,
    record,
)
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import (
    atomic_write,
    is_readonly_fs,
    read_text,
)

DEFAULT_PATH = "/etc/modprobe.d/edgewarden-blocklist.conf"
DEFAULT_INSTALL_COMMAND = "/bin/false"
HEADER = (
    "# Managed by edgewarden.hardening (kernel_module_blocklist). Do not edit: this file is rewritten.\n"
    "# 'install NAME /bin/false' makes modprobe refuse NAME, also as a dependency of another\n"
    "# module; 'blacklist NAME' stops autoloading through the module's aliases.\n"
)
BLOCKED = "blocked"
LOADED, NOT_LOADED, BUILTIN = "loaded", "not loaded", "built-in"
PERSIST_ID = "kernel.module_blocklist/"
LIVE_ID = "kernel.module/"
CAP_SYS_MODULE = 16
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def normalize(name):
    """modprobe treats ``-`` and ``_`` in module names as the same character."""
    return name.replace("-", "_")


def parse_proc_modules(text):
    """/proc/modules as ``{name: {size, refcount, holders, state}}``.

    Columns: name, size, reference count, the modules using it (``-`` when none, a
    trailing comma otherwise), state, address. ``refcount`` is None when the kernel was
    built without module unloading (it prints ``-``).
    """
    modules = {}
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        try:
            refcount = None if fields[2] == "-" else int(fields[2])
            size = int(fields[1])
        except ValueError:
            continue
        holders = [] if fields[3] == "-" else [h for h in fields[3].split(",") if h]
        modules[fields[0]] = {"size": size, "refcount": refcount, "holders": holders, "state": fields[4]}
    return modules


def parse_builtin(text):
    """Normalized names of modules built into the kernel, from ``modules.builtin`` paths."""
    names = set()
    for line in (text or "").splitlines():
        line = line.strip()
        if line.endswith(".ko"):
            names.add(normalize(os.path.basename(line)[:-3]))
    return names


def parse_modprobe_conf(text):
    """``{"install": {name: command}, "blacklist": set(names)}`` from modprobe.d text (names normalized)."""
    install = {}
    blacklist = set()
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split(None, 2)
        if words[0] == "install" and len(words) == 3:
            install.setdefault(normalize(words[1]), words[2].strip())
        elif words[0] == "blacklist" and len(words) >= 2:
            blacklist.add(normalize(words[1]))
    return {"install": install, "blacklist": blacklist}


def has_capability(status_text, bit):
    """Whether the CapEff mask in /proc/self/status text has capability ``bit``."""
    for line in (status_text or "").splitlines():
        if line.startswith("CapEff:"):
            try:
                return bool(int(line.split()[1], 16) & (1 << bit))
            except (IndexError, ValueError):
                return False
    return False


def unique_names(modules):
    """Requested names without duplicates (``-``/``_`` spellings are one module), sorted."""
    seen = {}
    for name in modules:
        seen.setdefault(normalize(name), name)
    return [seen[key] for key in sorted(seen)]


def validate(modules, install_command):
    errors = ["%r: not a module name" % (name,) for name in modules if not _NAME.match(name or "")]
    if not install_command.startswith("/") or "\n" in install_command:
        errors.append("install_command must be an absolute path on one line, got %r" % install_command)
    return errors


def render(modules, install_command=DEFAULT_INSTALL_COMMAND):
    """The owned file's content: a header, then an install and a blacklist line per module."""
    lines = [HEADER]
    for name in unique_names(modules):
        lines.append("install %s %s\nblacklist %s\n" % (name, install_command, name))
    return "".join(lines)


def unload_order(targets, loaded):
    """Which of ``targets`` (normalized names) can be unloaded, and in what order.

    A module can go when nothing but modules unloaded before it holds it (its reference
    count is exactly its holders, all of them leaving first). Returns ``(order, in_use)``
    where ``in_use`` maps every other loaded target to why it stays.
    """
    order = []
    removable = set()
    progress = True
    while progress:
        progress = False
        for name in sorted(targets):
            if name in removable:
                continue
            info = loaded[name]
            if info["refcount"] is None or info["state"] != "Live":
                continue
            holders = [normalize(h) for h in info["holders"]]
            if all(h in removable for h in holders) and info["refcount"] - len(holders) <= 0:
                removable.add(name)
                order.append(name)
                progress = True
    in_use = {}
    for name in sorted(targets):
        if name in removable:
            continue
        info = loaded[name]
        if info["refcount"] is None:
            in_use[name] = "the kernel was built without module unloading"
        elif info["state"] != "Live":
            in_use[name] = "module is %s" % info["state"].lower()
        else:
            holders = info["holders"]
            others = info["refcount"] - len(holders)
            parts = []
            if holders:
                parts.append("used by %s" % ", ".join(holders))
            if others > 0:
                parts.append("%d other reference%s (open devices, mounts, sockets)" % (others, "" if others == 1 else "s"))
            in_use[name] = "in use: " + "; ".join(parts)
    return order, in_use


def plan(modules, current_text, loaded, builtin, path=DEFAULT_PATH, install_command=DEFAULT_INSTALL_COMMAND,
         unload=True, unload_blocker=None, readonly=False):
    """Pure. Returns ``{content, records, unload, in_use, builtin}``.

    ``current_text``: the owned file now (None when absent). ``loaded``: parse_proc_modules
    output. ``builtin``: parse_builtin output. ``unload_blocker``: why modules cannot be
    unloaded here (no CAP_SYS_MODULE, no rmmod), or None.
    """
    names = unique_names(modules)
    wanted = dict((normalize(name), name) for name in names)
    content = render(names, install_command) if names else None
    current = parse_modprobe_conf(current_text)
    records = []
    persisted_detail = "read-only filesystem" if readonly else None
    for key in sorted(set(wanted) | set(current["install"]) | current["blacklist"]):
        before = BLOCKED if (current["install"].get(key) == install_command and key in current["blacklist"]) else None
        if before is None and (key in current["install"] or key in current["blacklist"]):
            before = "partly blocked"
        after = BLOCKED if key in wanted else None
        status = None
        if readonly and before != after:
            status = UNSUPPORTED
        records.append(record(PERSIST_ID + wanted.get(key, key), before, after, where="persisted", status=status,
                              detail=persisted_detail if status else None))
    # a file that differs only in its header or order still gets rewritten: it is ours
    file_changes = (current_text or None) != content
    if file_changes and not any_changed(records) and not readonly:
        records.append(record(PERSIST_ID + "*", "other content", "%d modules" % len(names), where="persisted",
                              status=CHANGED, detail="rewrite %s" % path))

    targets = set(key for key in wanted if key in loaded)
    order, in_use = unload_order(targets, loaded) if unload else ([], {})
    if unload_blocker:
        in_use.update(dict((key, unload_blocker) for key in order))
        order = []
    for key in sorted(set(wanted) & builtin):
        records.append(record(LIVE_ID + wanted[key], BUILTIN, BUILTIN, status=UNSUPPORTED,
                              detail="built into the kernel: it cannot be blocked or unloaded"))
    for key in sorted(targets):
        name = wanted[key]
        if key in order:
            records.append(record(LIVE_ID + name, LOADED, NOT_LOADED, detail="unload (unused)"))
        elif not unload:
            records.append(record(LIVE_ID + name, LOADED, LOADED, detail="unload: false; blocked from the next boot on"))
        else:
            records.append(record(LIVE_ID + name, LOADED, LOADED, status=UNSUPPORTED,
                                  detail="%s; blocked from the next boot on" % in_use.get(key, "stays loaded")))
    return {
        "content": content,
        "write": file_changes and not readonly,
        "records": records,
        "unload": [wanted[key] for key in order],
        "in_use": [{"name": wanted[key], "reason": in_use[key], "refcount": loaded[key]["refcount"],
                    "holders": loaded[key]["holders"]} for key in sorted(in_use)],
        "builtin": [wanted[key] for key in sorted(set(wanted) & builtin)],
    }


def unload_command(tools, name):
    """argv that unloads one module: rmmod (only that module), else modprobe -r."""
    if tools.get("rmmod"):
        return [tools["rmmod"], name]
    if tools.get("modprobe"):
        return [tools["modprobe"], "-r", name]
    return None


def read_state(root="/", path=DEFAULT_PATH, release=None):
    """Everything ``plan`` needs, read from the device under ``root``."""
    def under(device_path):
        return os.path.join(root, device_path.lstrip("/"))

    release = release or os.uname()[2]
    builtin_path = "/lib/modules/%s/modules.builtin" % release
    builtin_text = read_text(under(builtin_path))
    return {
        "current": read_text(under(path)),
        "loaded": parse_proc_modules(read_text(under("/proc/modules"))),
        "builtin": parse_builtin(builtin_text),
        "builtin_source": builtin_path if builtin_text is not None else None,
        "cap_sys_module": has_capability(read_text(under("/proc/self/status")), CAP_SYS_MODULE),
        "readonly": is_readonly_fs(under(path)),
    }


def write(root, path, content):
    """Write (or, with no content, remove) the owned file atomically."""
    host = os.path.join(root, path.lstrip("/"))
    if content is None:
        if os.path.lexists(host):
            os.unlink(host)
        return
    directory = os.path.dirname(host)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    atomic_write(host, content, mode=0o644)


def in_use_summary(in_use):
    """One line for people: the blocked modules that stay loaded until the next boot, and why."""
    return "%d blocked module(s) stay loaded until the next boot: %s" % (
        len(in_use), "; ".join("%s (%s)" % (entry["name"], entry["reason"]) for entry in in_use))


def run(modules, root="/", path=DEFAULT_PATH, install_command=DEFAULT_INSTALL_COMMAND, unload=True,
        tools=None, runner=None, check_mode=False, release=None):
    """Read, plan and (outside check mode) apply. Returns the module result as a dict."""
    errors = validate(modules, install_command)
    if errors:
        return {"failed": True, "msg": "invalid arguments: " + "; ".join(errors), "records": [], "changed": False}
    tools = tools or {}
    state = read_state(root, path, release)
    blocker = None
    if not state["cap_sys_module"]:
        blocker = "no CAP_SYS_MODULE here (container or namespace): cannot unload"
    elif not unload_command(tools, "x"):
        blocker = "neither rmmod nor modprobe on the device: cannot unload"
    result = plan(modules, state["current"], state["loaded"], state["builtin"], path=path,
                  install_command=install_command, unload=unload, unload_blocker=blocker, readonly=state["readonly"])
    records = result["records"]
    out = {
        "records": records,
        "changed": any_changed(records),
        "path": path if result["content"] is not None else None,
        "unloaded": [],
        "in_use": result["in_use"],
        "builtin": result["builtin"],
        "diff": {"before_header": path, "after_header": path,
                 "before": state["current"] or "", "after": result["content"] or ""},
        "warnings": [],
    }
    # None: no /lib/modules/<release> (a kernel without modules, or a container sharing the
    # host's kernel), so built-in modules cannot be reported
    out["builtin_source"] = state["builtin_source"]
    if check_mode:
        out["unloaded"] = list(result["unload"])
        return out
    if result["write"]:
        write(root, path, result["content"])
    for name in result["unload"]:
        rc, stdout, stderr = runner(unload_command(tools, name))
        if rc == 0:
            out["unloaded"].append(name)
            continue
        message = (stderr or stdout or "").strip()[-300:]
        for rec in records:
            if rec["id"] == LIVE_ID + name:
                rec["status"] = UNSUPPORTED
                rec["after"] = LOADED
                rec["detail"] = "unload failed (exit %s): %s; blocked from the next boot on" % (rc, message)
        out["in_use"].append({"name": name, "reason": "unload failed: %s" % message, "refcount": None, "holders": []})
        out["warnings"].append("could not unload %s: %s" % (name, message))
    out["changed"] = any_changed(records)
    return out
