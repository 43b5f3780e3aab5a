# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Services on every init system a device may run, without relying on its tools.

One small backend per init system: systemd, OpenRC, SysV-rc, BusyBox init and OpenWrt
procd. Each one

- ``read(name)``: reads the service's state from the filesystem (unit files and their
  ``.wants/`` links, ``/etc/rcN.d`` or ``/etc/rc.d`` links, ``/etc/runlevels``,
  ``/etc/inittab`` lines) and, for the running state, from the service manager when one
  runs (``systemctl is-active``, an init script's ``status``, cgroups, pidfiles, /proc);
- ``plan(state, desired)``: pure: the change records and the operations (links to make or
  remove, lines to comment out, modes, commands) that reach the desired state;
- the operations are plain data, applied by ``apply_ops`` only outside check mode, so
  check mode returns exactly the records of a real run.

Boot configuration is always managed through files, the way the init system reads it at
boot, so it works where ``systemctl``, ``update-rc.d`` or ``rc-update`` are missing and
where PID 1 is not the init system the image boots with (containers, chroots, image
builds). Commands are only used for what files cannot do: asking a running manager
whether a service runs, and starting or stopping it.

Every reader and applier takes ``root`` (default ``/``) so tests run on a fake tree.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import signal
import time

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import (
    ABSENT,
    CHANGED,
    ERROR,
    UNCHANGED,
    UNSUPPORTED,
    record,
)
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import atomic_write, read_text
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.procfs import (
    ancestors,
    list_pids,
    process_info,
)

BACKENDS = ("systemd", "openrc", "sysv", "busybox", "procd")
RUNNING, STOPPED = "running", "stopped"
ENABLED, DISABLED, STATIC = "enabled", "disabled", "static"
MASKED, UNMASKED = "masked", "unmasked"

SYSTEMD_ETC = "/etc/systemd/system"
# Where unit files are found, in systemd's order of precedence (the /run generator
# directories are left out: a generated unit is found through its init script).
SYSTEMD_UNIT_DIRS = (
    SYSTEMD_ETC,
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)
UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path", ".target", ".mount")
INIT_D = "/etc/init.d"
INITTAB = "/etc/inittab"
RC_D = "/etc/rc.d"
RUNLEVELS = "0123456S"
SYSV_START_LEVELS = ("2", "3", "4", "5", "S")
OPENRC_RUNLEVELS = "/etc/runlevels"
# The marker on /etc/inittab lines this module commented out, so it can restore them.
INITTAB_OFF = "#edgewarden-off# "
# Entries that run a service. sysinit/wait/shutdown/restart/ctrlaltdel lines are boot
# plumbing: disabling one can leave a device that never finishes booting.
INITTAB_SERVICE_ACTIONS = ("respawn", "once", "askfirst", "askconsole", "respawnlate")
INITTAB_RESPAWNING = ("respawn", "askfirst", "askconsole", "respawnlate")
PIDFILE_DIRS = ("/run", "/var/run")
DEFAULT_RC_START = 50
# seconds to wait for a terminated process before SIGKILL
TERM_WAIT = 5.0

_RC_LINK = re.compile(r"^([SK])(\d{1,3})(.+)$")
_LSB_FIELD = re.compile(r"^#\s*(Default-Start|Default-Stop):\s*(.*)$", re.M)
_OPENWRT_PRIO = re.compile(r"^\s*(START|STOP)=(\d+)\s*$", re.M)
_STATUS_ACTION = re.compile(r"(^|[\s|(])status\)|^\s*status\s*\(\)", re.M)


# ------------------------------------------------------------------ small helpers

def host_path(root, path):
    """Where the device path ``path`` is on this machine when the device root is ``root``."""
    return os.path.join(root, path.lstrip("/"))


def _readlink(root, path):
    try:
        return os.readlink(host_path(root, path))
    except OSError:
        return None


def _lexists(root, path):
    return os.path.lexists(host_path(root, path))


def _listdir(root, path):
    try:
        return sorted(os.listdir(host_path(root, path)))
    except OSError:
        return []


def _mode(root, path):
    try:
        return os.stat(host_path(root, path)).st_mode & 0o7777
    except OSError:
        return None


def _isdir(root, path):
    return os.path.isdir(host_path(root, path))


def _isfile(root, path):
    return os.path.isfile(host_path(root, path))


def _link_basename(target):
    return os.path.basename(target.rstrip("/")) if target else None


def executable_mode(mode):
    """A mode with execute bits back wherever it has read bits (0644 -> 0755)."""
    return mode | ((mode & 0o444) >> 2)


def split_unit(name):
    """``foo`` -> (``foo``, None); ``foo.service`` -> (``foo``, ``.service``)."""
    for suffix in UNIT_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)], suffix
    return name, None


def parse_install_section(text):
    """The [Install] section of a unit file: ``{WantedBy: [...], RequiredBy: [...], Alias: [...], Also: [...]}``."""
    install = {"WantedBy": [], "RequiredBy": [], "Alias": [], "Also": []}
    section = None
    found = False
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            found = found or section == "Install"
            continue
        if section != "Install":
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if sep and key in install:
            if not value.strip():
                install[key] = []  # an empty assignment resets the list, as in systemd
            else:
                install[key].extend(value.split())
    return install if found else None


def parse_lsb_levels(text):
    """Default-Start and Default-Stop runlevels of an LSB init script header."""
    levels = {"Default-Start": None, "Default-Stop": None}
    for key, value in _LSB_FIELD.findall(text or ""):
        levels[key] = value.split()
    return levels


def parse_openwrt_priorities(text):
    """``START=`` and ``STOP=`` of an OpenWrt rc.common script (None when not set)."""
    found = dict((key, int(value)) for key, value in _OPENWRT_PRIO.findall(text or ""))
    return found.get("START"), found.get("STOP")


def parse_inittab(text):
    """/etc/inittab as a list of line dicts, keeping every line so it can be written back.

    Each dict: ``line`` (as in the file), ``off`` (commented out by this module),
    ``action``, ``process`` and ``program`` (basename of the command) for entries.
    """
    entries = []
    for line in (text or "").splitlines():
        body = line
        off = line.startswith(INITTAB_OFF)
        if off:
            body = line[len(INITTAB_OFF):]
        entry = {"line": line, "off": off, "action": None, "process": None, "program": None}
        if not body.lstrip().startswith("#"):
            fields = body.split(":", 3)
            if len(fields) == 4:
                entry["action"] = fields[2].strip()
                entry["process"] = fields[3].strip()
                words = entry["process"].lstrip("-").split()
                if words:
                    entry["program"] = os.path.basename(words[0])
        entries.append(entry)
    return entries


def render_inittab(entries):
    return "".join(entry["line"] + "\n" for entry in entries)


def _process_table(root):
    proc_root = host_path(root, "/proc")
    return [process_info(pid, proc_root) for pid in list_pids(proc_root)]


def _pid_alive(root, pid):
    return os.path.isdir(host_path(root, "/proc/%d" % pid))


def pids_named(processes, name):
    """Processes whose command is ``name`` (comm is cut to 15 characters by the kernel)."""
    found = []
    for proc in processes:
        argv0 = os.path.basename(proc["cmdline"][0]) if proc.get("cmdline") else None
        exe = os.path.basename(proc["exe"]) if proc.get("exe") else None
        if name in (argv0, exe) or (proc.get("comm") and proc["comm"] == name[:15]):
            found.append(proc["pid"])
    return found


def _pidfile_pid(root, name):
    for directory in PIDFILE_DIRS:
        text = read_text(host_path(root, "%s/%s.pid" % (directory, name)))
        if text is not None:
            try:
                return int(text.split()[0])
            except (IndexError, ValueError):
                return None
    return None


def _absent_state(name, unit, backend, reason):
    return {"name": name, "unit": unit, "backend": backend, "exists": False, "reason": reason,
            "running": None, "enabled": None, "masked": False, "pids": []}


# ------------------------------------------------------------------ rc links (SysV, BusyBox, procd)

def rc_dirs(root):
    """Existing start/stop link directories: /etc/rcN.d (or /etc/rc.d/rcN.d) and /etc/rc.d."""
    found = []
    for level in RUNLEVELS:
        for template in ("/etc/rc%s.d", "/etc/rc.d/rc%s.d"):
            path = template % level
            if _isdir(root, path):
                found.append((level, path))
                break
    if _isdir(root, RC_D):
        found.append((None, RC_D))
    return found


def read_rc_links(root, name):
    """Every ``S<nn>name``/``K<nn>name`` entry in the rc directories, as dicts."""
    links = []
    for level, directory in rc_dirs(root):
        for entry in _listdir(root, directory):
            match = _RC_LINK.match(entry)
            if not match or match.group(3) != name:
                continue
            path = "%s/%s" % (directory, entry)
            links.append({
                "level": level,
                "dir": directory,
                "path": path,
                "kind": match.group(1),
                "prio": match.group(2),
                "target": _readlink(root, path),
            })
    return links


def _link_desc(path, target):
    return "%s -> %s" % (path, target) if target is not None else "%s (file)" % path


# ------------------------------------------------------------------ operations

def op_link(path, target, before=None):
    return {"op": "link", "path": path, "target": target, "before": before}


def op_unlink(path, target):
    return {"op": "unlink", "path": path, "before": target}


def op_rename(path, to, target):
    return {"op": "rename", "path": path, "to": to, "before": target}


def op_chmod(path, mode, before):
    return {"op": "chmod", "path": path, "mode": mode, "before": before}


def op_run(argv, what, detach=False):
    return {"op": "run", "argv": list(argv), "what": what, "detach": detach}


def op_terminate(pids, what, argvs=None):
    """Terminate processes; ``argvs``: command lines to look for again afterwards, in
    case init respawned one before it re-read its inittab."""
    return {"op": "terminate", "pids": sorted(pids), "what": what, "argvs": sorted(list(a) for a in (argvs or []))}


def describe_op(op):
    kind = op["op"]
    if kind == "link":
        return "link %s -> %s" % (op["path"], op["target"])
    if kind == "unlink":
        return "remove %s" % _link_desc(op["path"], op["before"])
    if kind == "rename":
        return "rename %s to %s" % (op["path"], op["to"])
    if kind == "chmod":
        return "chmod %04o %s" % (op["mode"], op["path"])
    if kind == "write":
        return "rewrite %s (%s)" % (op["path"], op["what"])
    if kind == "run":
        return "run %s" % " ".join(shlex.quote(arg) for arg in op["argv"])
    if kind == "terminate":
        return "terminate pid %s (%s)" % (", ".join(str(pid) for pid in op["pids"]), op["what"])
    if kind == "signal":
        return "send SIG%s to pid %d (%s)" % (op["signal"], op["pid"], op["what"])
    return kind


# ------------------------------------------------------------------ the backend contract

class Backend(object):
    """Shared shape of every backend; subclasses implement read and the per-attribute planners.

    ``live``: the init system runs as PID 1, so runtime state can be read and changed.
    ``run``: callable(argv) -> (rc, stdout, stderr), the only way a backend runs commands.
    ``tools``: ``{name: path}`` of the optional tools found on the device.
    """

    name = None

    def __init__(self, root="/", live=True, run=None, tools=None):
        self.root = root
        self.live = live
        self.run = run
        self.tools = tools or {}
        self._processes = None

    # -- reading helpers

    def processes(self):
        if self._processes is None:
            self._processes = _process_table(self.root)
        return self._processes

    def _run(self, argv):
        if self.run is None:
            return None, "", "no command runner"
        return self.run(argv)

    def units(self, name):
        """The units one requested name stands for (systemd: the service and its socket)."""
        return [split_unit(name)[0]]

    def read_all(self, name):
        return [self.read(unit, name) for unit in self.units(name)]

    def read(self, unit, requested):
        raise NotImplementedError

    # -- planning (pure: uses only the state dict, the desired dict and self.live/tools)

    def plan(self, state, desired):
        """``(records, file_ops, reload_ops, runtime_ops)`` for one unit."""
        unit = state["unit"]
        records = []
        file_ops = []
        runtime_ops = []
        if not state["exists"]:
            for attr in ("state", "enabled", "masked"):
                if desired.get(attr) is not None:
                    records.append(record(_record_id(attr, unit), None, None, where=_WHERE[attr], status=ABSENT,
                                          detail=state["reason"]))
            return records, [], [], []
        if desired.get("masked") is not None:
            rec, ops = self.plan_masked(state, desired["masked"])
            records.append(rec)
            file_ops.extend(ops)
        if desired.get("enabled") is not None:
            rec, ops = self.plan_enabled(state, desired["enabled"], desired.get("masked"))
            records.append(rec)
            file_ops.extend(ops)
        if desired.get("state") is not None:
            rec, ops = self.plan_running(state, desired["state"], desired)
            records.append(rec)
            runtime_ops.extend(ops)
        reload_ops = self.reload_ops(state) if file_ops and self.live else []
        return records, file_ops, reload_ops, runtime_ops

    def reload_ops(self, state):
        return []

    # -- runtime planning shared by the script-based backends

    def _plan_script_running(self, state, wanted):
        unit = state["unit"]
        before = _running_value(state["running"])
        after = RUNNING if wanted == "started" else STOPPED
        if state["running"] is None:
            return record(_record_id("state", unit), None, after, where="live", status=UNSUPPORTED,
                          detail=state.get("running_source") or "running state unknown"), []
        if before == after:
            return record(_record_id("state", unit), before, after, where="live"), []
        if not state.get("script") or not self.live_control(state):
            verb = "start" if wanted == "started" else "stop"
            return record(_record_id("state", unit), before, after, where="live", status=UNSUPPORTED,
                          detail="no way to %s it here: %s" % (verb, self.no_control_reason(state))), []
        ops = [op_run([state["script"], "start" if wanted == "started" else "stop"],
                      "%s %s" % ("start" if wanted == "started" else "stop", unit), detach=wanted == "started")]
        if wanted == "stopped":
            # before the files change: a masked script can no longer be executed
            ops[0]["first"] = True
        return record(_record_id("state", unit), before, after, where="live",
                      detail="; ".join(describe_op(op) for op in ops)), ops

    def live_control(self, state):
        return True

    def no_control_reason(self, state):
        return "no init script"


_WHERE = {"state": "live", "enabled": "persisted", "masked": "persisted"}


def _record_id(attr, unit):
    return "service.%s/%s" % ({"state": "running"}.get(attr, attr), unit)


def _running_value(running):
    if running is None:
        return None
    return RUNNING if running else STOPPED


def _ops_detail(ops):
    return "; ".join(describe_op(op) for op in ops) if ops else None


# ------------------------------------------------------------------ systemd

class SystemdBackend(Backend):
    """systemd, running or not.

    Enablement is the ``.wants/``/``.requires/`` and alias symlinks in /etc/systemd/system
    that ``systemctl enable`` would make from the unit's [Install] section; a mask is the
    ``/etc/systemd/system/UNIT -> /dev/null`` link. A service with only an init script is
    enabled, as systemd-sysv-generator reads it, by its /etc/rcN.d start links. With systemd
    as PID 1, ``systemctl`` (when present) reports and changes the running state and a
    daemon-reload follows file changes; without it, the cgroup says whether a service runs.
    """

    name = "systemd"

    def units(self, name):
        base, suffix = split_unit(name)
        if suffix:
            return [name]
        units = [base + ".service"]
        # stopping a socket-activated service is undone by its socket: handle both
        if self._fragment(base + ".socket") or _readlink(self.root, "%s/%s.socket" % (SYSTEMD_ETC, base)) == "/dev/null":
            units.append(base + ".socket")
        return units

    def _fragment(self, unit):
        """Device path of the unit file systemd would load, following /etc links; None if none."""
        seen = set()
        for directory in SYSTEMD_UNIT_DIRS:
            path = "%s/%s" % (directory, unit)
            real = os.path.realpath(host_path(self.root, path))
            if real in seen:
                continue  # /lib -> /usr/lib on merged-/usr systems
            seen.add(real)
            target = _readlink(self.root, path)
            if target == "/dev/null":
                continue
            if target is not None:
                resolved = target if target.startswith("/") else os.path.normpath(os.path.join(directory, target))
                if _isfile(self.root, resolved):
                    return path
                continue
            if _isfile(self.root, path):
                return path
        return None

    def _cgroup_pids(self, unit):
        for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"):
            for slice_dir in ("system.slice",):
                procs = read_text(host_path(self.root, "%s/%s/%s/cgroup.procs" % (base, slice_dir, unit)))
                if procs is not None:
                    return [int(pid) for pid in procs.split() if pid.isdigit()], True
        return [], False

    def read(self, unit, requested):
        base, suffix = split_unit(unit)
        etc_path = "%s/%s" % (SYSTEMD_ETC, unit)
        etc_target = _readlink(self.root, etc_path)
        masked = etc_target == "/dev/null"
        fragment = self._fragment(unit)
        script = None
        if suffix == ".service" and fragment is None and _isfile(self.root, "%s/%s" % (INIT_D, base)):
            script = "%s/%s" % (INIT_D, base)
        if fragment is None and script is None and not masked:
            return _absent_state(requested, unit, self.name,
                                 "no unit file for %s and no %s/%s script" % (unit, INIT_D, base))
        state = {
            "name": requested, "unit": unit, "backend": self.name, "exists": True, "reason": None,
            "fragment": fragment, "script": script, "masked": masked,
            # a unit file of its own in /etc cannot be masked without deleting it
            "mask_blocked": etc_path if (not masked and _lexists(self.root, etc_path)) else None,
            "install": None, "enable_links": [], "rc_links": [], "lsb": None,
        }
        if script is not None:
            # init-script-only service: systemd-sysv-generator enables it from the rc links
            state["rc_links"] = read_rc_links(self.root, base)
            state["rc_dirs"] = rc_dirs(self.root)
            state["lsb"] = parse_lsb_levels(read_text(host_path(self.root, script)))
            state["enabled"] = any(link["kind"] == "S" and link["level"] in SYSV_START_LEVELS for link in state["rc_links"])
        else:
            install = parse_install_section(read_text(host_path(self.root, fragment))) if fragment else None
            state["install"] = install
            state["enable_links"] = self._enable_links(unit, install)
            if install is None or not (install["WantedBy"] or install["RequiredBy"] or install["Alias"]):
                state["enabled"] = None if not state["enable_links"] else True
            else:
                state["enabled"] = bool(state["enable_links"])
        self._read_running(state, base)
        return state

    def _enable_links(self, unit, install):
        """Symlinks in /etc/systemd/system that enable ``unit``: in .wants/.requires dirs and aliases."""
        links = []
        for entry in _listdir(self.root, SYSTEMD_ETC):
            directory = "%s/%s" % (SYSTEMD_ETC, entry)
            if entry.endswith((".wants", ".requires")) and _isdir(self.root, directory):
                path = "%s/%s" % (directory, unit)
                target = _readlink(self.root, path)
                if target is not None:
                    links.append({"path": path, "target": target})
        for alias in (install or {}).get("Alias", []):
            path = "%s/%s" % (SYSTEMD_ETC, alias)
            target = _readlink(self.root, path)
            if target is not None and _link_basename(target) == unit:
                links.append({"path": path, "target": target})
        return links

    def _read_running(self, state, base):
        unit = state["unit"]
        state["pids"] = []
        if self.live and self.tools.get("systemctl"):
            rc, out, err = self._run([self.tools["systemctl"], "is-active", unit])
            word = (out or "").strip().splitlines()[-1:] or [""]
            word = word[0]
            if word in ("active", "reloading", "activating", "deactivating", "refreshing"):
                state["running"] = True
            elif word in ("inactive", "failed", "dead"):
                state["running"] = False
            else:
                state["running"] = None
            state["running_source"] = "systemctl is-active %s: %s" % (unit, word or (err or "").strip() or "rc %s" % rc)
            state["pids"], dummy = self._cgroup_pids(unit)
            return
        if self.live:
            pids, found = self._cgroup_pids(unit)
            state["pids"] = pids
            if unit.endswith(".service"):
                state["running"] = bool(pids)
                state["running_source"] = "cgroup system.slice/%s (%d processes)" % (unit, len(pids)) if found \
                    else "no cgroup for %s" % unit
            else:
                state["running"] = None
                state["running_source"] = "systemctl is missing: the state of %s cannot be read" % unit
            return
        # systemd is the boot init but does not run (container, chroot, image build):
        # only an init script can tell and change whether the service runs
        script = state["script"] or ("%s/%s" % (INIT_D, base) if unit.endswith(".service")
                                     and _isfile(self.root, "%s/%s" % (INIT_D, base)) else None)
        state["control_script"] = script
        if script:
            state["running"], state["running_source"], state["pids"] = _script_running(self, script, base)
        else:
            state["running"] = None
            state["running_source"] = "systemd is not running (PID 1 is another program); only the boot configuration is managed"

    def plan_masked(self, state, wanted):
        unit = state["unit"]
        etc_path = "%s/%s" % (SYSTEMD_ETC, unit)
        before = MASKED if state["masked"] else UNMASKED
        after = MASKED if wanted else UNMASKED
        if before == after:
            return record(_record_id("masked", unit), before, after, where="persisted"), []
        if wanted and state["mask_blocked"]:
            return record(_record_id("masked", unit), before, after, where="persisted", status=UNSUPPORTED,
                          detail="%s is a unit file of its own: masking would replace it" % state["mask_blocked"]), []
        ops = [op_link(etc_path, "/dev/null")] if wanted else [op_unlink(etc_path, "/dev/null")]
        return record(_record_id("masked", unit), before, after, where="persisted", detail=_ops_detail(ops)), ops

    def plan_enabled(self, state, wanted, masked=None):
        unit = state["unit"]
        if state["script"] is not None:
            return _plan_sysv_enabled(unit, split_unit(unit)[0], state, wanted)
        install = state["install"]
        if state["enabled"] is None:
            detail = "static unit: no [Install] section (mask it to keep it from being started)"
            if wanted:
                return record(_record_id("enabled", unit), STATIC, ENABLED, where="persisted", status=UNSUPPORTED,
                              detail=detail), []
            return record(_record_id("enabled", unit), STATIC, STATIC, where="persisted", detail=detail), []
        before = ENABLED if state["enabled"] else DISABLED
        after = ENABLED if wanted else DISABLED
        if before == after:
            return record(_record_id("enabled", unit), before, after, where="persisted"), []
        if not wanted:
            ops = [op_unlink(link["path"], link["target"]) for link in state["enable_links"]]
        else:
            if "@" in unit:
                return record(_record_id("enabled", unit), before, after, where="persisted", status=UNSUPPORTED,
                              detail="template units are not enabled by file; use systemctl"), []
            fragment = state["fragment"]
            ops = []
            for target in install["WantedBy"]:
                ops.append(op_link("%s/%s.wants/%s" % (SYSTEMD_ETC, target, unit), fragment))
            for target in install["RequiredBy"]:
                ops.append(op_link("%s/%s.requires/%s" % (SYSTEMD_ETC, target, unit), fragment))
            for alias in install["Alias"]:
                ops.append(op_link("%s/%s" % (SYSTEMD_ETC, alias), fragment))
        return record(_record_id("enabled", unit), before, after, where="persisted", detail=_ops_detail(ops)), ops

    def plan_running(self, state, wanted, desired):
        unit = state["unit"]
        before = _running_value(state["running"])
        after = RUNNING if wanted == "started" else STOPPED
        if wanted == "started" and (desired.get("masked") or (desired.get("masked") is None and state["masked"])):
            return record(_record_id("state", unit), before, after, where="live", status=ERROR,
                          detail="a masked unit cannot be started"), []
        if state["running"] is None:
            return record(_record_id("state", unit), None, after, where="live", status=UNSUPPORTED,
                          detail=state.get("running_source")), []
        if before == after:
            return record(_record_id("state", unit), before, after, where="live"), []
        verb = "start" if wanted == "started" else "stop"
        if self.live:
            if not self.tools.get("systemctl"):
                return record(_record_id("state", unit), before, after, where="live", status=UNSUPPORTED,
                              detail="systemctl is missing: cannot %s %s" % (verb, unit)), []
            ops = [op_run([self.tools["systemctl"], verb, unit], "%s %s" % (verb, unit))]
        else:
            ops = [op_run([state["control_script"], verb], "%s %s" % (verb, unit), detach=verb == "start")]
        return record(_record_id("state", unit), before, after, where="live", detail=_ops_detail(ops)), ops

    def reload_ops(self, state):
        if self.tools.get("systemctl"):
            return [op_run([self.tools["systemctl"], "daemon-reload"], "systemd daemon-reload")]
        return []


def _plan_sysv_enabled(unit, name, state, wanted):
    """Debian sysv-rc semantics (as ``update-rc.d enable|disable``): S links in the start
    runlevels become K links with the same number, and back; without any link, enabling
    creates S01/K01 links in the LSB header's Default-Start/Default-Stop runlevels."""
    links = state["rc_links"]
    starts = [link for link in links if link["kind"] == "S" and link["level"] in SYSV_START_LEVELS]
    before = ENABLED if starts else DISABLED
    after = ENABLED if wanted else DISABLED
    if before == after:
        return record(_record_id("enabled", unit), before, after, where="persisted"), []
    ops = []
    if not wanted:
        for link in starts:
            ops.append(op_rename(link["path"], "%s/K%s%s" % (link["dir"], link["prio"], name), link["target"]))
    else:
        lsb = state.get("lsb") or {}
        start_levels = lsb.get("Default-Start") or ["2", "3", "4", "5"]
        stops = [link for link in links if link["kind"] == "K" and link["level"] in start_levels]
        if stops:
            for link in stops:
                ops.append(op_rename(link["path"], "%s/S%s%s" % (link["dir"], link["prio"], name), link["target"]))
        else:
            dirs = dict((level, directory) for level, directory in state.get("rc_dirs") or [] if level)
            for level in start_levels:
                directory = dirs.get(level, "/etc/rc%s.d" % level)
                ops.append(op_link("%s/S01%s" % (directory, name), "../init.d/%s" % name))
            for level in lsb.get("Default-Stop") or []:
                directory = dirs.get(level, "/etc/rc%s.d" % level)
                if not [link for link in links if link["level"] == level]:
                    ops.append(op_link("%s/K01%s" % (directory, name), "../init.d/%s" % name))
    return record(_record_id("enabled", unit), before, after, where="persisted", detail=_ops_detail(ops)), ops


def _script_running(backend, script, name):
    """(running, how it was found out, pids) for a script-managed service.

    The script's own ``status`` (LSB exit codes) when it has one, else a pidfile, else a
    process of that name. None when nothing can tell.
    """
    root = backend.root
    text = read_text(host_path(root, script)) or ""
    pid = _pidfile_pid(root, name)
    pids = [pid] if pid and _pid_alive(root, pid) else []
    if not pids:
        pids = pids_named(backend.processes(), name)
    if _STATUS_ACTION.search(text) and _mode(root, script) and _mode(root, script) & 0o111:
        rc, dummy, dummy2 = backend._run([script, "status"])
        # LSB: 0 running; 1 dead, pidfile left; 2 dead, lock left; 3 not running
        if rc == 0:
            return True, "%s status: running" % script, pids
        if rc in (1, 2, 3):
            return False, "%s status: not running (exit %d)" % (script, rc), []
    if pid is not None:
        alive = _pid_alive(root, pid)
        return alive, "pidfile: pid %d %s" % (pid, "running" if alive else "gone"), pids
    return bool(pids), "processes named %s: %s" % (name, ", ".join(str(p) for p in pids) or "none"), pids


# ------------------------------------------------------------------ script-based backends

class ScriptBackend(Backend):
    """A service is an executable script in /etc/init.d; a mask is that script without its
    execute bits (the rc runners skip non-executable scripts, and so does a manual start)."""

    def _script_state(self, unit, requested):
        script = "%s/%s" % (INIT_D, unit)
        if not _isfile(self.root, script):
            return None
        mode = _mode(self.root, script)
        return {
            "name": requested, "unit": unit, "backend": self.name, "exists": True, "reason": None,
            "script": script, "script_mode": mode, "masked": not (mode & 0o111),
            "script_text": read_text(host_path(self.root, script)) or "",
        }

    def plan_masked(self, state, wanted):
        unit = state["unit"]
        before = MASKED if state["masked"] else UNMASKED
        after = MASKED if wanted else UNMASKED
        if before == after:
            return record(_record_id("masked", unit), before, after, where="persisted"), []
        if not state.get("script"):
            return self.plan_masked_without_script(state, wanted)
        mode = state["script_mode"]
        new_mode = (mode & ~0o111) if wanted else executable_mode(mode)
        ops = [op_chmod(state["script"], new_mode, mode)]
        return record(_record_id("masked", unit), before, after, where="persisted", detail=_ops_detail(ops)), ops

    def plan_masked_without_script(self, state, wanted):
        return record(_record_id("masked", state["unit"]), None, MASKED if wanted else UNMASKED, where="persisted",
                      status=UNSUPPORTED, detail="no init script to mask"), []

    def plan_running(self, state, wanted, desired):
        if wanted == "started" and (desired.get("masked") or (desired.get("masked") is None and state["masked"])):
            return record(_record_id("state", state["unit"]), _running_value(state["running"]), RUNNING,
                          where="live", status=ERROR, detail="a masked service cannot be started"), []
        return self._plan_script_running(state, wanted)

    def live_control(self, state):
        return True


class SysvBackend(ScriptBackend):
    """SysV-rc (Debian sysv-rc, Red Hat chkconfig layouts): /etc/init.d scripts started
    by S links in /etc/rcN.d; disabling turns S links into K links, as update-rc.d does."""

    name = "sysv"

    def read(self, unit, requested):
        state = self._script_state(unit, requested)
        if state is None:
            return _absent_state(requested, unit, self.name, "no %s/%s script" % (INIT_D, unit))
        state["rc_links"] = read_rc_links(self.root, unit)
        state["rc_dirs"] = rc_dirs(self.root)
        state["lsb"] = parse_lsb_levels(state["script_text"])
        state["enabled"] = any(link["kind"] == "S" and link["level"] in SYSV_START_LEVELS for link in state["rc_links"])
        state["running"], state["running_source"], state["pids"] = _script_running(self, state["script"], unit)
        return state

    def plan_enabled(self, state, wanted, masked=None):
        return _plan_sysv_enabled(state["unit"], state["unit"], state, wanted)


class OpenrcBackend(ScriptBackend):
    """OpenRC: enabled means a link in any /etc/runlevels/<level>; enabling adds one to
    ``default``. OpenRC records started services in /run/openrc/started."""

    name = "openrc"

    def read(self, unit, requested):
        state = self._script_state(unit, requested)
        if state is None:
            return _absent_state(requested, unit, self.name, "no %s/%s script" % (INIT_D, unit))
        links = []
        for level in _listdir(self.root, OPENRC_RUNLEVELS):
            path = "%s/%s/%s" % (OPENRC_RUNLEVELS, level, unit)
            target = _readlink(self.root, path)
            if target is not None or _lexists(self.root, path):
                links.append({"path": path, "target": target, "level": level})
        state["runlevel_links"] = links
        state["enabled"] = bool(links)
        state["pids"] = []
        started = None
        for directory in ("/run/openrc", "/lib/rc/init.d"):
            if _isdir(self.root, directory + "/started"):
                started = _lexists(self.root, "%s/started/%s" % (directory, unit))
                state["running_source"] = "%s/started/%s %s" % (directory, unit, "exists" if started else "absent")
                break
        if started is None:
            state["running"], state["running_source"], state["pids"] = _script_running(self, state["script"], unit)
        else:
            state["running"] = started
            if started:
                pid = _pidfile_pid(self.root, unit)
                state["pids"] = [pid] if pid and _pid_alive(self.root, pid) else pids_named(self.processes(), unit)
        return state

    def plan_enabled(self, state, wanted, masked=None):
        unit = state["unit"]
        before = ENABLED if state["enabled"] else DISABLED
        after = ENABLED if wanted else DISABLED
        if before == after:
            return record(_record_id("enabled", unit), before, after, where="persisted"), []
        if wanted:
            ops = [op_link("%s/default/%s" % (OPENRC_RUNLEVELS, unit), "%s/%s" % (INIT_D, unit))]
        else:
            ops = [op_unlink(link["path"], link["target"]) for link in state["runlevel_links"]]
        return record(_record_id("enabled", unit), before, after, where="persisted", detail=_ops_detail(ops)), ops


class BusyboxBackend(ScriptBackend):
    """BusyBox init: services are /etc/inittab entries (respawn, once, askfirst) and init
    scripts started from rc links (/etc/rc.d/S<nn>NAME, or /etc/rcN.d on Yocto images).

    Disabling comments an inittab line out with a marker (enabling restores it) and
    removes the S/K links; enabling creates S<START>NAME links as OpenWrt's rc.common does.
    With BusyBox init running, SIGHUP makes it re-read /etc/inittab: a commented-out
    respawn entry is no longer restarted, so its process can then be terminated, and a
    restored one is started by init itself.
    """

    name = "busybox"
    # BusyBox init re-reads /etc/inittab on SIGHUP; procd does not
    inittab_reload = True

    def _inittab(self):
        text = read_text(host_path(self.root, INITTAB))
        return text, parse_inittab(text)

    def read(self, unit, requested):
        inittab_text, entries = self._inittab()
        matches = [index for index, entry in enumerate(entries)
                   if entry["program"] == unit and entry["action"] in INITTAB_SERVICE_ACTIONS]
        state = self._script_state(unit, requested)
        if state is None and not matches:
            return _absent_state(requested, unit, self.name,
                                 "no %s/%s script and no %s entry running %s" % (INIT_D, unit, INITTAB, unit))
        if state is None:
            state = {"name": requested, "unit": unit, "backend": self.name, "exists": True, "reason": None,
                     "script": None, "script_mode": None, "masked": False, "script_text": ""}
        state["inittab_text"] = inittab_text
        state["inittab"] = entries
        state["inittab_matches"] = matches
        links = [link for link in read_rc_links(self.root, unit) if link["dir"] == RC_D or link["level"] is not None]
        state["rc_links"] = links
        state["rc_dirs"] = rc_dirs(self.root)
        active_lines = [i for i in matches if not entries[i]["off"]]
        state["enabled"] = bool(active_lines) or any(link["kind"] == "S" for link in links)
        if matches and not state["script"]:
            # an inittab-only service has no separate mask: commented out is as off as it gets
            state["masked"] = not active_lines
        start, stop = parse_openwrt_priorities(state["script_text"])
        state["start_prio"], state["stop_prio"] = start, stop
        self._read_running(state, unit)
        return state

    def _inittab_pids(self, state):
        """Processes init started for the matching inittab entries (children of PID 1)."""
        wanted = set()
        for index in state["inittab_matches"]:
            process = state["inittab"][index]["process"].lstrip("-")
            wanted.add(tuple(process.split()))
        pids = []
        for proc in self.processes():
            if proc.get("ppid") != 1 or not proc.get("cmdline"):
                continue
            argv = tuple(proc["cmdline"])
            if argv in wanted or (proc["cmdline"] and os.path.basename(proc["cmdline"][0]) == state["unit"]
                                  and any(os.path.basename(w[0]) == state["unit"] for w in wanted if w)):
                pids.append(proc["pid"])
        return pids

    def _read_running(self, state, unit):
        if state["inittab_matches"] and not state["script"]:
            pids = self._inittab_pids(state)
            state["pids"] = pids
            state["running"] = bool(pids)
            state["running_source"] = "children of PID 1 running %s: %s" % (unit, ", ".join(str(p) for p in pids) or "none")
            return
        state["running"], state["running_source"], state["pids"] = _script_running(self, state["script"], unit)

    def plan_masked_without_script(self, state, wanted):
        # inittab-only: masked is the same as disabled (commented out)
        return self._plan_inittab_switch(state, not wanted, "masked", MASKED if not wanted else UNMASKED,
                                         UNMASKED if not wanted else MASKED)

    def _plan_inittab_switch(self, state, enable, attr, before, after):
        unit = state["unit"]
        entries = state["inittab"]
        new_entries = [dict(entry) for entry in entries]
        changed_lines = []
        for index in state["inittab_matches"]:
            entry = new_entries[index]
            if enable and entry["off"]:
                entry["line"] = entry["line"][len(INITTAB_OFF):]
                entry["off"] = False
                changed_lines.append(entry["line"])
            elif not enable and not entry["off"]:
                entry["line"] = INITTAB_OFF + entry["line"]
                entry["off"] = True
                changed_lines.append(entries[index]["line"])
        if not changed_lines:
            return record(_record_id(attr, unit), before, before, where="persisted"), []
        op = {"op": "write", "path": INITTAB, "before": state["inittab_text"], "content": render_inittab(new_entries),
              "what": "%s %s" % ("restore" if enable else "comment out", " | ".join(changed_lines)),
              "entries": new_entries}
        return record(_record_id(attr, unit), before, after, where="persisted", detail=_ops_detail([op])), [op]

    def plan_enabled(self, state, wanted, masked=None):
        unit = state["unit"]
        before = ENABLED if state["enabled"] else DISABLED
        after = ENABLED if wanted else DISABLED
        if before == after:
            return record(_record_id("enabled", unit), before, after, where="persisted"), []
        ops = []
        if state["inittab_matches"]:
            dummy, inittab_ops = self._plan_inittab_switch(state, wanted, "enabled", before, after)
            ops.extend(inittab_ops)
        if state["script"]:
            if wanted:
                if not any(link["kind"] == "S" for link in state["rc_links"]):
                    directory = self._link_dir(state)
                    prio = state["start_prio"] if state["start_prio"] is not None else DEFAULT_RC_START
                    ops.append(op_link("%s/S%02d%s" % (directory, prio, unit), "../init.d/%s" % unit))
                    if state["stop_prio"] is not None and not any(link["kind"] == "K" for link in state["rc_links"]):
                        ops.append(op_link("%s/K%02d%s" % (directory, state["stop_prio"], unit), "../init.d/%s" % unit))
            else:
                # as rc.common's disable: both S and K links go
                ops.extend(op_unlink(link["path"], link["target"]) for link in state["rc_links"])
        return record(_record_id("enabled", unit), before, after, where="persisted", detail=_ops_detail(ops)), ops

    def _link_dir(self, state):
        dirs = [directory for level, directory in state.get("rc_dirs") or []]
        if RC_D in dirs or not dirs:
            return RC_D
        for level, directory in state["rc_dirs"]:
            if level in ("S", "5"):
                return directory
        return dirs[0]

    def plan_running(self, state, wanted, desired):
        unit = state["unit"]
        if state["inittab_matches"] and not state["script"]:
            return self._plan_inittab_running(state, wanted, desired)
        return ScriptBackend.plan_running(self, state, wanted, desired)

    def _plan_inittab_running(self, state, wanted, desired):
        unit = state["unit"]
        before = _running_value(state["running"])
        after = RUNNING if wanted == "started" else STOPPED
        actions = set(state["inittab"][i]["action"] for i in state["inittab_matches"])
        will_be_enabled = desired.get("enabled") if desired.get("enabled") is not None else state["enabled"]
        if desired.get("masked"):
            will_be_enabled = False
        respawning = bool(actions.intersection(INITTAB_RESPAWNING))
        if wanted == "stopped" and respawning and will_be_enabled:
            return record(_record_id("state", unit), before, after, where="live", status=ERROR,
                          detail="%s respawns %s: set enabled: false to stop it" % (INITTAB, unit)), []
        if before == after:
            return record(_record_id("state", unit), before, after, where="live"), []
        if not self.live:
            return record(_record_id("state", unit), before, after, where="live", status=UNSUPPORTED,
                          detail="%s is not PID 1: the inittab change takes effect at the next boot" % self.name), []
        if wanted == "stopped":
            argvs = [state["inittab"][i]["process"].lstrip("-").split() for i in state["inittab_matches"]]
            ops = [op_terminate(state["pids"], "stop %s" % unit, argvs)]
            return record(_record_id("state", unit), before, after, where="live", detail=_ops_detail(ops)), ops
        if respawning and will_be_enabled and self.inittab_reload:
            # init starts a restored respawn entry itself once it re-reads inittab
            return record(_record_id("state", unit), before, after, where="live",
                          detail="started by init after it re-reads %s" % INITTAB), [{"op": "expect_start"}]
        return record(_record_id("state", unit), before, after, where="live", status=UNSUPPORTED,
                      detail="%s entries (%s) start at the next boot" % (INITTAB, ", ".join(sorted(actions)))), []

    def reload_ops(self, state):
        if self.inittab_reload and state.get("inittab_matches"):
            return [{"op": "signal", "pid": 1, "signal": "HUP", "what": "%s re-reads %s" % (self.name, INITTAB),
                     "when_written": INITTAB}]
        return []


class ProcdBackend(BusyboxBackend):
    """OpenWrt procd: /etc/init.d/NAME (rc.common) started at boot from /etc/rc.d/S<START>NAME,
    stopped from K<STOP>NAME; ``/etc/init.d/NAME disable`` removes both links and ``enable``
    recreates them from START=/STOP=. ``/etc/init.d/NAME running`` asks procd whether it
    runs. procd reads /etc/inittab only at boot, so inittab changes wait for a reboot."""

    name = "procd"
    inittab_reload = False

    def _read_running(self, state, unit):
        lines = state["script_text"].splitlines()
        rc_common = bool(lines) and "rc.common" in lines[0]
        if state["script"] and rc_common and (state["script_mode"] or 0) & 0o111:
            rc, dummy, dummy2 = self._run([state["script"], "running"])
            if rc == 0:
                pid = _pidfile_pid(self.root, unit)
                state["running"] = True
                state["pids"] = [pid] if pid and _pid_alive(self.root, pid) else pids_named(self.processes(), unit)
                state["running_source"] = "%s running: exit 0" % state["script"]
                return
        BusyboxBackend._read_running(self, state, unit)

    def _link_dir(self, state):
        return RC_D


BACKEND_CLASSES = {
    "systemd": SystemdBackend,
    "openrc": OpenrcBackend,
    "sysv": SysvBackend,
    "busybox": BusyboxBackend,
    "procd": ProcdBackend,
}


# ------------------------------------------------------------------ choosing a backend

def boot_init(root="/"):
    """The init system the image boots with, from the filesystem alone (for when PID 1 is
    a container init, a shell or unreadable): ``(name or None, reason)``."""
    target = _readlink(root, "/sbin/init")
    hops = 0
    while target and hops < 8 and not target.startswith("/dev"):
        hops += 1
        resolved = target if target.startswith("/") else os.path.normpath(os.path.join("/sbin", target))
        nxt = _readlink(root, resolved)
        if nxt is None:
            target = resolved
            break
        target = nxt if nxt.startswith("/") else os.path.normpath(os.path.join(os.path.dirname(resolved), nxt))
    program = _link_basename(target) if target else None
    if program == "systemd":
        return "systemd", "/sbin/init is %s" % target
    if program == "procd" or _lexists(root, "/sbin/procd"):
        return "procd", "/sbin/procd exists"
    if program == "openrc-init" or _lexists(root, "/sbin/openrc-run"):
        return "openrc", "OpenRC is installed (/sbin/openrc-run)"
    if program == "busybox":
        return "busybox", "/sbin/init is a link to busybox"
    if _isdir(root, "/lib/systemd/system") and _lexists(root, "/lib/systemd/systemd"):
        return "systemd", "systemd is installed (/lib/systemd/systemd)"
    if _isfile(root, INITTAB) or [level for level, dummy in rc_dirs(root) if level]:
        return "sysv", "/etc/inittab or /etc/rcN.d exists"
    return None, "no init system found on the filesystem"


def select_backend(classified, root="/", requested="auto"):
    """``(backend name or None, live, reason)`` from ``initsys.classify_init`` output.

    The running init system wins; when PID 1 manages no services (tini, a shell, an
    unknown program) the boot configuration of the init system on disk is managed.
    """
    running = classified.get("name")
    if requested and requested != "auto":
        live = running == requested
        how = "running as PID 1" if live else "PID 1 is %s: boot configuration only" % running
        return requested, live, "init_system=%s (%s)" % (requested, how)
    if running in BACKENDS:
        return running, True, classified.get("reason") or running
    name, reason = boot_init(root)
    if name is None:
        return None, False, "PID 1 is %s and %s" % (running, reason)
    return name, False, "PID 1 is %s (%s), which manages no services; %s: boot configuration only" % (
        running, classified.get("reason"), reason)


# ------------------------------------------------------------------ the whole run

def validate(services):
    """Every problem with the requested services at once (empty when fine)."""
    errors = []
    seen = set()
    for spec in services:
        name = spec.get("name")
        if not name or "/" in name or name in (".", ".."):
            errors.append("%r: not a service name" % (name,))
            continue
        if name in seen:
            errors.append("%s: listed twice" % name)
        seen.add(name)
        if spec.get("masked") and spec.get("enabled"):
            errors.append("%s: cannot be both masked and enabled" % name)
        if spec.get("masked") and spec.get("state") == "started":
            errors.append("%s: cannot be both masked and started" % name)
    return errors


def read_states(backend, services):
    return [(spec, backend.read_all(spec["name"])) for spec in services]


def _stops_or_disables(desired):
    return desired.get("state") == "stopped" or desired.get("enabled") is False or bool(desired.get("masked"))


def plan_all(backend, states, protected_pids=None, required=False):
    """Pure: records and ordered operations for every service.

    ``protected_pids``: the processes carrying this connection (the module's ancestors);
    stopping, disabling or masking a service that owns one is refused with an error
    record, because it would cut the access the next run needs.
    """
    protected = set(protected_pids or [])
    records, first_ops, file_ops, reload_ops, runtime_ops = [], [], [], [], []
    summaries = []
    for spec, unit_states in states:
        desired = dict((key, spec.get(key)) for key in ("state", "enabled", "masked"))
        for state in unit_states:
            guard = protected.intersection(state.get("pids") or [])
            if guard and state["exists"] and _stops_or_disables(desired):
                for attr in ("state", "enabled", "masked"):
                    if desired.get(attr) is not None:
                        records.append(record(
                            _record_id(attr, state["unit"]), None, None, where=_WHERE[attr], status=ERROR,
                            detail="refused: %s (pid %s) carries this connection; stopping or disabling it would "
                                   "lock you out (protect_connection=false overrides)"
                                   % (state["unit"], ", ".join(str(p) for p in sorted(guard)))))
                summaries.append(_summary(state, None))
                continue
            recs, files, reloads, runtime = backend.plan(state, desired)
            if required and not state["exists"]:
                recs = [dict(rec, status=ERROR, detail="required: " + (rec.get("detail") or "")) for rec in recs] or [
                    record(_record_id("state", state["unit"]), None, None, status=ERROR,
                           detail="required: " + state["reason"])]
            records.extend(recs)
            file_ops.extend(files)
            for op in reloads:
                if op not in reload_ops:
                    reload_ops.append(op)
            first_ops.extend(op for op in runtime if op.get("first"))
            runtime_ops.extend(op for op in runtime if not op.get("first"))
            summaries.append(_summary(state, recs))
    # script stops, then files, then one reload, then what needs the new files (a start,
    # terminating a process init no longer respawns)
    return {"records": records, "ops": first_ops + file_ops + reload_ops + runtime_ops, "services": summaries}


def _summary(state, recs):
    """What one unit looked like and will look like, for humans (the records are for machines)."""
    if not state["exists"]:
        before = {"running": None, "enabled": None, "masked": None}
    else:
        enabled = state.get("enabled")
        before = {
            "running": _running_value(state.get("running")),
            "enabled": STATIC if enabled is None and state["backend"] == "systemd" else (
                None if enabled is None else (ENABLED if enabled else DISABLED)),
            "masked": MASKED if state.get("masked") else UNMASKED,
        }
    after = dict(before)
    for rec in recs or []:
        if rec["status"] in (CHANGED, UNCHANGED):
            after[rec["id"].split("/", 1)[0].split(".", 1)[1]] = rec["after"]
    return {"name": state["name"], "unit": state["unit"], "exists": state["exists"], "backend": state["backend"],
            "before": before, "after": after, "source": state.get("running_source") or state.get("reason")}


def diff_from_ops(ops):
    """Ansible diffs of what the operations change on disk: links and modes as lines, whole files as text."""
    diffs = []
    before_lines, after_lines = [], []
    for op in ops:
        kind = op["op"]
        if kind == "link":
            before_lines.append("%s: %s\n" % (op["path"], "absent" if op.get("before") is None else "-> " + op["before"]))
            after_lines.append("%s: -> %s\n" % (op["path"], op["target"]))
        elif kind == "unlink":
            before_lines.append("%s: %s\n" % (op["path"], "-> " + op["before"] if op["before"] else "file"))
            after_lines.append("%s: absent\n" % op["path"])
        elif kind == "rename":
            before_lines.append("%s: -> %s\n%s: absent\n" % (op["path"], op["before"], op["to"]))
            after_lines.append("%s: absent\n%s: -> %s\n" % (op["path"], op["to"], op["before"]))
        elif kind == "chmod":
            before_lines.append("%s: mode %04o\n" % (op["path"], op["before"]))
            after_lines.append("%s: mode %04o\n" % (op["path"], op["mode"]))
    if before_lines or after_lines:
        diffs.append({"before_header": "links and modes", "after_header": "links and modes",
                      "before": "".join(before_lines), "after": "".join(after_lines)})
    writes = {}
    for op in ops:
        if op["op"] == "write":
            first = writes.setdefault(op["path"], {"before": op["before"] or ""})
            first["after"] = op["content"]
    for path in sorted(writes):
        diffs.append({"before_header": path, "after_header": path,
                      "before": writes[path]["before"], "after": writes[path]["after"]})
    return diffs


def merge_writes(ops):
    """Several services commenting lines of one inittab: the later write must keep the
    earlier one's lines, so each write is replanned on top of the previous content."""
    merged = []
    last = {}
    for op in ops:
        if op["op"] != "write":
            merged.append(op)
            continue
        previous = last.get(op["path"])
        if previous is None:
            last[op["path"]] = op
            merged.append(op)
            continue
        base = previous["entries"]
        combined = []
        for old, new, orig in zip(base, op["entries"], parse_inittab(op["before"])):
            combined.append(new if new["line"] != orig["line"] else old)
        previous["entries"] = combined
        previous["content"] = render_inittab(combined)
        previous["what"] = previous["what"] + "; " + op["what"]
    return merged


# ------------------------------------------------------------------ applying

def apply_ops(ops, root="/", run=None, kill=os.kill, sleep=time.sleep):
    """Carry out planned operations in order. Returns a list of ``(op, error message)``
    for the ones that failed; the others went through. Never called in check mode."""
    failures = []
    written = set()
    for op in ops:
        try:
            error = _apply_one(op, root, run, kill, sleep, written)
        except (OSError, IOError) as exc:
            error = "%s: %s" % (describe_op(op), exc)
        if error:
            failures.append((op, error))
    return failures


def _apply_one(op, root, run, kill, sleep, written):
    kind = op["op"]
    if kind == "link":
        path = host_path(root, op["path"])
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o755)
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(op["target"], path)
    elif kind == "unlink":
        path = host_path(root, op["path"])
        if os.path.lexists(path):
            os.unlink(path)
    elif kind == "rename":
        os.rename(host_path(root, op["path"]), host_path(root, op["to"]))
    elif kind == "chmod":
        os.chmod(host_path(root, op["path"]), op["mode"])
    elif kind == "write":
        path = host_path(root, op["path"])
        mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o644
        atomic_write(path, op["content"], mode=mode)
        written.add(op["path"])
    elif kind == "signal":
        if op.get("when_written") and op["when_written"] not in written:
            return None
        kill(op["pid"], getattr(signal, "SIG" + op["signal"]))
        # let init handle the signal before its processes are touched
        sleep(0.3)
    elif kind == "terminate":
        _terminate(op["pids"], root, kill, sleep)
        wanted = set(tuple(argv) for argv in op.get("argvs") or [])
        for dummy in range(3):
            if not wanted:
                break
            sleep(0.3)
            again = [proc["pid"] for proc in _process_table(root)
                     if proc.get("ppid") == 1 and tuple(proc.get("cmdline") or ()) in wanted]
            if not again:
                break
            _terminate(again, root, kill, sleep)
    elif kind == "run":
        argv = op["argv"]
        if op.get("detach"):
            # a daemon started by a script keeps inherited pipes open: give it none
            argv = ["/bin/sh", "-c", 'exec "$0" "$@" </dev/null >/dev/null 2>&1'] + argv
        rc, out, err = run(argv)
        if rc != 0:
            return "%s failed (exit %s): %s" % (describe_op(op), rc, (err or out or "").strip()[-400:])
    elif kind == "expect_start":
        return None
    return None


def _terminate(pids, root, kill, sleep):
    alive = list(pids)
    for pid in alive:
        try:
            kill(pid, signal.SIGTERM)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise
    waited = 0.0
    while waited < TERM_WAIT:
        alive = [pid for pid in alive if _pid_alive(root, pid) and not _is_zombie(root, pid)]
        if not alive:
            return None
        sleep(0.1)
        waited += 0.1
    for pid in alive:
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return None


def _is_zombie(root, pid):
    text = read_text(host_path(root, "/proc/%d/stat" % pid)) or ""
    rest = text[text.rfind(")") + 1:].split()
    return bool(rest) and rest[0] in ("Z", "X")


def run(services, classified, root="/", requested_init="auto", runner=None, tools=None, check_mode=False,
        protect_connection=True, required=False, self_pid=None, kill=os.kill, sleep=time.sleep):
    """Read, plan and (outside check mode) apply. Returns the module result as a dict.

    ``kill`` and ``sleep`` are what signals processes and waits: tests pass fakes, so a
    fake tree's pids never reach this machine's processes.
    """
    errors = validate(services)
    if errors:
        return {"failed": True, "msg": "invalid services: " + "; ".join(errors), "errors": errors,
                "records": [], "changed": False, "init": None, "services": [], "ops": []}
    name, live, reason = select_backend(classified, root, requested_init)
    init = {"name": name, "live": live, "reason": reason, "pid1": classified.get("name")}
    if name is None:
        records = []
        for spec in services:
            for attr in ("state", "enabled", "masked"):
                if spec.get(attr) is not None:
                    records.append(record(_record_id(attr, spec["name"]), None, None, where=_WHERE[attr],
                                          status=UNSUPPORTED, detail=reason))
        return {"records": records, "changed": False, "init": init, "services": [], "ops": []}
    backend = BACKEND_CLASSES[name](root=root, live=live, run=runner, tools=tools)
    states = read_states(backend, services)
    protected = ancestors(self_pid or os.getpid(), host_path(root, "/proc")) if protect_connection else []
    plan = plan_all(backend, states, protected, required=required)
    ops = merge_writes(plan["ops"])
    records = plan["records"]
    result = {"records": records, "init": init, "services": plan["services"],
              "ops": [describe_op(op) for op in ops if op["op"] != "expect_start"]}
    result["diffs"] = diff_from_ops(ops)
    failed_records = [rec for rec in records if rec["status"] == ERROR]
    if failed_records:
        result["failed"] = True
        result["msg"] = "nothing was changed: " + "; ".join("%s: %s" % (rec["id"], rec.get("detail")) for rec in failed_records)
        result["changed"] = False
        return result
    result["changed"] = any(rec["status"] == CHANGED for rec in records)
    if not check_mode and ops:
        failures = apply_ops(ops, root=root, run=runner, kill=kill, sleep=sleep)
        if failures:
            result["failed"] = True
            result["msg"] = "some changes failed: " + "; ".join(message for dummy, message in failures)
            _mark_failures(records, failures)
    return result


def _mark_failures(records, failures):
    for op, message in failures:
        what = op.get("what") or ""
        for rec in records:
            unit = rec["id"].split("/", 1)[1]
            if rec["status"] == CHANGED and (unit in what or unit in op.get("path", "")):
                rec["status"] = ERROR
                rec["detail"] = message
