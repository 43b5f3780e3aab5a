# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Confinement without systemd: an /etc/inittab service (BusyBox init, SysV init) started
as its own user with only its listed capabilities.

Devices of this class have no util-linux setpriv or capsh, and their python3-minimal
has no ctypes, so nothing can call prctl/capset directly. What does work with the
standard library and BusyBox:

1. the respawn line runs ``confine-exec`` (a short Python launcher written by this
   module) instead of the program; as root it switches to the app's user and group
   (``os.setgroups``/``setresgid``/``setresuid``, which clears every capability);
2. it then execs a per-app copy of ``setpriv`` (BusyBox's applet or util-linux's) that
   carries the listed capabilities as file capabilities (the ``security.capability``
   extended attribute, written with ``os.setxattr``), owned by root and the app's group,
   mode 0750, so only that app may run it;
3. setpriv sets NoNewPrivileges, raises the capabilities into the inheritable and ambient
   sets, and execs the program, which keeps exactly them, and its PID (init respawns it).

A util-linux setpriv also shrinks the bounding set (its copy gets CAP_SETPCAP for that);
BusyBox's cannot, and the result says so. Apps with no capabilities need no copy: the
device's own setpriv sets NoNewPrivileges. Namespaces and seccomp need a service manager
that sets them up before exec: ``confine.unavailable_protections`` lists what is missing.

Changing a running respawn entry is done in two steps, so the old and the new process
never compete for the same port: the entry is parked (commented with a marker) and init
re-reads inittab (SIGHUP), the old process is terminated, then the new line is written
and init, on a second SIGHUP, starts it. A new line that does not come up healthy is
parked, and the previous line restored, the same way.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import struct

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine_host as host
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import CHANGED, ERROR, record
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import atomic_write, read_text
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.procfs import list_pids, process_info

INITTAB = "/etc/inittab"
LAUNCHER_NAME = "confine-exec"
HELPER_NAME = "setpriv"
PARKED = "#edgewarden-confine-parked# "
RESPAWNING = ("respawn", "respawnlate", "askfirst", "askconsole")
SERVICE_ACTIONS = RESPAWNING + ("once",)
TERM_WAIT = 5.0
POLL = 0.5
# struct vfs_cap_data, revision 2 (linux/capability.h): magic, then permitted/inheritable
# in two 32-bit halves; the effective flag makes the permitted set effective at exec.
VFS_CAP_REVISION_2 = 0x02000000
VFS_CAP_FLAGS_EFFECTIVE = 0x000001
XATTR = "security.capability"

LAUNCHER = r'''#!%(python)s -IS
# Written by edgewarden.hardening (app_confine); rewritten on every run.
# Starts a service as its own user: switches user and group while root (which clears
# every capability), then execs the program through setpriv, which sets NoNewPrivileges
# and raises the listed capabilities as ambient ones. The per-service setpriv copy holds
# those capabilities as file capabilities; only the service's group may run it.
import grp
import os
import pwd
import sys


def fail(message):
    sys.stderr.write("confine-exec: %%s\n" %% message)
    sys.exit(126)


def main(argv):
    opts = {"--user": None, "--group": None, "--setpriv": None, "--caps": ""}
    flags = set()
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] in ("--nnp", "--bounding"):
            flags.add(argv[i])
            i += 1
        elif argv[i] in opts and i + 1 < len(argv):
            opts[argv[i]] = argv[i + 1]
            i += 2
        else:
            fail("unknown argument %%r" %% argv[i])
    command = argv[i + 1:]
    if not command or not opts["--user"]:
        fail("usage: confine-exec --user USER [--group GROUP] [--setpriv PATH [--caps A,B] [--nnp] [--bounding]] -- PROGRAM ARGS")
    try:
        user = pwd.getpwnam(opts["--user"])
        gid = grp.getgrnam(opts["--group"]).gr_gid if opts["--group"] else user.pw_gid
    except KeyError as exc:
        fail("no such user or group: %%s" %% exc)
    os.setgroups([gid])
    os.setresgid(gid, gid, gid)
    os.setresuid(user.pw_uid, user.pw_uid, user.pw_uid)
    os.environ.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
    caps = [cap for cap in opts["--caps"].split(",") if cap]
    if opts["--setpriv"]:
        wrapped = [opts["--setpriv"]]
        if "--nnp" in flags:
            wrapped.append("--nnp")
        if caps:
            plus = ",".join("+" + cap for cap in caps)
            if "--bounding" in flags:
                wrapped += ["--bounding-set", "-all," + plus]
            wrapped += ["--inh-caps", plus, "--ambient-caps", plus]
        command = wrapped + command
    path = command[0]
    if opts["--setpriv"]:
        # BusyBox chooses the applet by argv[0]; the per-service copy has another file name
        command[0] = "setpriv"
    try:
        os.execv(path, command)
    except OSError as exc:
        fail("cannot run %%s: %%s" %% (path, exc))


main(sys.argv[1:])
'''


# ------------------------------------------------------------------ pure pieces

def render_launcher(python):
    return LAUNCHER % {"python": python}


def digest(data):
    if data is None:
        return None
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()[:12]


def file_caps_xattr(caps, effective=False):
    """The ``security.capability`` value granting ``caps`` as permitted (and effective)."""
    mask = confine.cap_mask(caps)
    magic = VFS_CAP_REVISION_2 | (VFS_CAP_FLAGS_EFFECTIVE if effective else 0)
    return struct.pack("<IIIII", magic, mask & 0xFFFFFFFF, 0, mask >> 32, 0)


def parse_file_caps(data):
    """``security.capability`` bytes -> ``(permitted names, effective)``; None when unreadable."""
    if not data or len(data) < 12:
        return None
    magic = struct.unpack("<I", data[:4])[0]
    low = struct.unpack("<I", data[4:8])[0]
    high = struct.unpack("<I", data[12:16])[0] if len(data) >= 16 else 0
    return confine.cap_names(low | (high << 32)), bool(magic & VFS_CAP_FLAGS_EFFECTIVE)


def parse_inittab_lines(text):
    """/etc/inittab as ``[{line, parked, action, process}]``, every line kept for writing back."""
    entries = []
    for line in (text or "").splitlines():
        body = line[len(PARKED):] if line.startswith(PARKED) else line
        entry = {"line": line, "parked": line.startswith(PARKED), "action": None, "process": None, "fields": None}
        if not body.lstrip().startswith("#"):
            fields = body.split(":", 3)
            if len(fields) == 4:
                entry["fields"] = fields
                entry["action"] = fields[2].strip()
                entry["process"] = fields[3].strip()
        entries.append(entry)
    return entries


def unwrap(process, launcher):
    """``(original command, launcher arguments)`` of an inittab process field."""
    words = process.split()
    if not words or words[0] != launcher or " -- " not in process:
        return process, None
    head, original = process.split(" -- ", 1)
    return original.strip(), head.split()[1:]


def command_words(process):
    return process.lstrip("-").split()


def program_words(words):
    """The program and, for an interpreter, the script it runs (its first non-option argument)."""
    found = words[:1]
    for word in words[1:]:
        if not word.startswith("-"):
            found.append(word)
            break
    return found


def entry_matches(app, process, launcher):
    original, dummy = unwrap(process, launcher)
    words = program_words(command_words(original))
    if not words:
        return False
    if app["binary"]:
        return app["binary"] in words
    return any(os.path.basename(word) == app["name"] for word in words)


def find_entry(app, entries, launcher):
    """Index of the app's inittab entry, or an error string."""
    found = [i for i, e in enumerate(entries)
             if e["action"] in SERVICE_ACTIONS and entry_matches(app, e["process"], launcher)]
    if not found:
        what = app["binary"] or app["name"]
        return None, "no %s entry (respawn or once) runs %s; set binary to the program's path" % (INITTAB, what)
    if len(found) > 1:
        return None, "%d %s entries run %s; set binary to tell them apart" % (len(found), INITTAB, app["binary"] or app["name"])
    return found[0], None


def launcher_args(app, tools, helper):
    """``helper`` is the app's setpriv copy (None when it has no capabilities)."""
    """The launcher's arguments for ``app``: user, group and, with a setpriv, caps and NNP."""
    args = ["--user", app["user"]]
    if app["group"]:
        args += ["--group", app["group"]]
    if app["capabilities"]:
        args += ["--setpriv", helper, "--caps", ",".join(app["capabilities"]), "--nnp"]
        if tools["setpriv_bounding"]:
            args.append("--bounding")
    elif tools["setpriv"]:
        args += ["--setpriv", tools["setpriv"], "--nnp"]
    return args


def wrap(original, launcher, args):
    return "%s %s -- %s" % (launcher, " ".join(args), original)


def render_line(entry, process):
    fields = list(entry["fields"])
    fields[3] = process
    return ":".join(fields)


def expected_view(app, tools):
    expected = {"user": app["user"], "cap_eff": confine.cap_mask(app["capabilities"])}
    if tools["setpriv_bounding"] and app["capabilities"]:
        expected["cap_bnd"] = confine.cap_mask(app["capabilities"])
    return expected


def helper_caps(app, tools):
    # util-linux setpriv needs CAP_SETPCAP (effective) to shrink the bounding set
    if tools["setpriv_bounding"]:
        return sorted(set(app["capabilities"]) | set(["setpcap"]), key=lambda c: confine.CAP_BITS[c]), True
    return app["capabilities"], False


def helper_dir_of(helper_dir, app):
    return "%s/%s" % (helper_dir, app["name"])


def helper_path(helper_dir, app, caps, effective):
    """One file per capability set: a rollback to the previous line finds its copy untouched."""
    key = "%s%s" % (",".join(caps), "+e" if effective else "")
    return "%s/%s-%s" % (helper_dir_of(helper_dir, app), HELPER_NAME, hashlib.sha256(key.encode("ascii")).hexdigest()[:8])


def describe_helper(state):
    if not state or not state.get("exists"):
        return "absent"
    caps = state.get("caps")
    shown = ",".join(caps[0]) if caps else "no file capabilities"
    return "copy of %s (sha256:%s), mode %04o, gid %s, file caps %s" % (
        state.get("source") or "?", state.get("digest"), state.get("mode", 0), state.get("gid"), shown)


# ------------------------------------------------------------------ reading

def find_program(name, root="/", path_dirs=("/usr/sbin", "/usr/bin", "/sbin", "/bin")):
    for directory in path_dirs:
        candidate = host.host_path(root, "%s/%s" % (directory, name))
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return "%s/%s" % (directory, name)
    return None


def read_tools(run, root="/"):
    """The setpriv this device has, what it can do, and the file it really is."""
    tools = {"setpriv": None, "setpriv_real": None, "setpriv_bounding": False, "setpriv_caps": False}
    path = find_program("setpriv", root)
    if path is None:
        return tools
    rc, out, err = run([path, "--help"])
    text = out + err
    if "--nnp" not in text:
        return tools
    tools["setpriv"] = path
    tools["setpriv_caps"] = "--ambient-caps" in text and "--inh-caps" in text
    tools["setpriv_bounding"] = "--bounding-set" in text
    real = os.path.realpath(host.host_path(root, path))
    tools["setpriv_real"] = "/" + os.path.relpath(real, root) if root != "/" else real
    return tools


def read_helper(path, source, root="/"):
    host_file = host.host_path(root, path)
    try:
        st = os.lstat(host_file)
    except OSError:
        return {"exists": False}
    with open(host_file, "rb") as handle:
        data = handle.read()
    try:
        caps = parse_file_caps(os.getxattr(host_file, XATTR))
    except OSError:
        caps = None
    return {"exists": True, "digest": digest(data), "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
            "gid": st.st_gid, "caps": caps, "source": source}


def read_helpers(directory, source, root="/"):
    """``{path: state}`` of the setpriv copies in an app's directory."""
    try:
        names = sorted(os.listdir(host.host_path(root, directory)))
    except OSError:
        return {}
    return dict(("%s/%s" % (directory, name), read_helper("%s/%s" % (directory, name), source, root))
                for name in names if name.startswith(HELPER_NAME + "-"))


def read_source(source, root="/"):
    if not source:
        return None
    try:
        with open(host.host_path(root, source), "rb") as handle:
            return handle.read()
    except OSError:
        return None


def running_pids(original, root="/", final_only=True):
    """Processes init started for a command: children of PID 1 whose argv is that command.

    With ``final_only`` false, also the launcher and setpriv stages on the way to it (their
    argv ends with the command), so a service dying before it gets there is still seen.
    """
    words = command_words(original)
    proc_root = host.host_path(root, "/proc")
    pids = []
    for pid in list_pids(proc_root):
        info = process_info(pid, proc_root)
        if info["ppid"] != 1 or not words:
            continue
        argv = info["cmdline"]
        if argv == words or (not final_only and len(argv) > len(words) and argv[-len(words):] == words):
            pids.append(pid)
    return pids


def read(apps, ctx):
    root = ctx["root"]
    text = read_text(host.host_path(root, INITTAB))
    state = {"inittab_text": text, "entries": parse_inittab_lines(text), "errors": [], "apps": {}, "paths": {}}
    if text is None:
        state["errors"].append("%s does not exist: this device starts no services from inittab" % INITTAB)
    state["tools"] = read_tools(ctx["run"], root)
    state["accounts"] = host.read_accounts(root)
    state["launcher_path"] = "%s/%s" % (ctx["helper_dir"], LAUNCHER_NAME)
    state["launcher_text"] = read_text(host.host_path(root, state["launcher_path"]))
    source = state["tools"]["setpriv_real"]
    state["source_bytes"] = read_source(source, root)
    for app in apps:
        index, error = find_entry(app, state["entries"], state["launcher_path"]) if text is not None else (None, None)
        if error:
            state["errors"].append("%s: %s" % (app["name"], error))
        entry = state["entries"][index] if index is not None else None
        original = unwrap(entry["process"], state["launcher_path"])[0] if entry else None
        pids = running_pids(original, root) if original else []
        view = confine.read_process_view(pids[0], root) if pids else None
        state["apps"][app["name"]] = {
            "index": index, "entry": entry, "original": original, "pids": pids, "view": view,
            "helpers": read_helpers(helper_dir_of(ctx["helper_dir"], app), source, root),
        }
        for path in app["writable_paths"]:
            state["paths"][path] = host.read_path(path, root)
    return state


# ------------------------------------------------------------------ planning

def plan(apps, state, ctx):
    tools = state["tools"]
    errors = list(state["errors"]) + host.check_system_dirs(apps)
    if ctx["init"] not in ("busybox", "sysv"):
        errors.append("PID 1 is %s: only BusyBox and SysV init re-read /etc/inittab on SIGHUP" % ctx["init"])
    present = [a for a in apps if a["state"] == "present"]
    for app in present:
        if app["capabilities"] and not tools["setpriv_caps"]:
            errors.append("%s: capabilities %s need a setpriv with --inh-caps and --ambient-caps (BusyBox with "
                          "FEATURE_SETPRIV_CAPABILITIES, or util-linux); this device has %s"
                          % (app["name"], ",".join(app["capabilities"]), tools["setpriv"] or "none"))
        if app["user"] == confine.USER_ROOT and app["capabilities"]:
            errors.append("%s: user root keeps every capability without a bounding set; name an account" % app["name"])
    acc_records, acc_actions, acc_errors = host.plan_accounts(apps, state["accounts"], ctx["root"])
    path_records, path_actions = host.plan_paths(apps, state["paths"], state["accounts"], acc_actions)
    errors.extend(acc_errors)
    records = acc_records + path_records
    launcher_after = render_launcher(ctx["python"]) if present else state["launcher_text"]
    files = []
    if present:
        records.append(record("confine.launcher", digest(state["launcher_text"]) or "absent", digest(launcher_after),
                              where="persisted", detail=state["launcher_path"]))
        if state["launcher_text"] != launcher_after:
            files.append({"op": "launcher", "content": launcher_after})
    plans = []
    for app in apps:
        current = state["apps"][app["name"]]
        p = {"app": app, "current": current, "expected": None}
        p["helper"], p["helper_write"], p["helper_cleanup"], helper_record = _plan_helper(app, current, tools, state, acc_actions, ctx)
        if helper_record:
            records.append(helper_record)
        if current["entry"] is None:
            plans.append(p)
            continue
        original = current["original"]
        if app["state"] == "present":
            args = launcher_args(app, tools, p["helper"])
            process = wrap(original, state["launcher_path"], args)
            p["expected"] = expected_view(app, tools)
        else:
            process = original
        entry = current["entry"]
        p["line_before"] = entry["line"]
        p["line_after"] = render_line(entry, process)
        p["inittab_record"] = record("confine.inittab/%s" % app["name"], entry["line"], p["line_after"], where="persisted",
                                     detail="parked by an interrupted run; restored" if entry["parked"] else None)
        p["live_record"], p["restart"] = _plan_live(p, ctx)
        records.extend([p["inittab_record"], p["live_record"]])
        plans.append(p)
    return records, acc_actions, path_actions, files, plans, errors


def _plan_helper(app, current, tools, state, acc_actions, ctx):
    """The app's setpriv copy: ``(path or None, write action or None, paths to remove once the
    app is healthy, record or None)``. Pure."""
    helpers = current["helpers"]
    rid = "confine.helper/%s" % app["name"]
    if app["state"] != "present" or not app["capabilities"]:
        if not helpers:
            return None, None, [], None
        shown = ", ".join(sorted(os.path.basename(path) for path in helpers))
        return None, None, sorted(helpers), record(rid, shown, "absent", where="persisted", detail="no capabilities to carry")
    caps, effective = helper_caps(app, tools)
    path = helper_path(ctx["helper_dir"], app, caps, effective)
    gid = _group_id(app, state["accounts"], acc_actions)
    wanted = {"exists": True, "digest": digest(state["source_bytes"]), "mode": 0o750, "uid": 0, "gid": gid,
              "caps": (caps, effective), "source": state["tools"]["setpriv_real"]}
    have = helpers.get(path) or {"exists": False}
    stale = sorted(other for other in helpers if other != path)
    same = all(have.get(k) == wanted[k] for k in ("exists", "digest", "mode", "uid", "gid", "caps"))
    before = describe_helper(have)
    if stale:
        before += " (other copies: %s)" % ", ".join(os.path.basename(other) for other in stale)
    after = describe_helper(wanted if not same else have)
    write = None if same else {"path": path, "gid": gid, "caps": caps, "effective": effective, "new": not have["exists"]}
    return path, write, stale, record(rid, before, after, where="persisted", detail=path)


def _group_id(app, accounts, acc_actions):
    if not app["group"]:
        return 0
    for action in acc_actions:
        if action["group"] == app["group"]:
            return action["gid"]
    fields = accounts["groups"].get(app["group"])
    return int(fields[2]) if fields else None


def _plan_live(p, ctx):
    app, current, expected = p["app"], p["current"], p["expected"]
    rid = "confine.live/%s" % app["name"]
    entry = current["entry"]
    line_changes = p["line_before"] != p["line_after"]
    view = current["view"]
    respawning = entry["action"] in RESPAWNING
    last_cap = view["last_cap"] if view else None
    keys = [k for k in confine.KEYS_ORDER if k in expected] if expected else ["user", "cap_eff"]
    before = confine.descriptor(view, keys, last_cap) if view else "not running"
    if not respawning:
        return record(rid, before, before, detail="a %s entry: the change takes effect at the next boot" % entry["action"]), False
    if expected is None:
        if line_changes:
            return record(rid, before, "unconfined", detail="restarted without the launcher"), True
        return record(rid, before, before), False
    after = confine.descriptor(expected, keys, last_cap)
    wrong = confine.matches_expected(view, expected)
    detail = "restarted to apply the new line" if line_changes and not wrong else None
    return record(rid, before, after, detail=detail), bool(wrong) or line_changes


# ------------------------------------------------------------------ applying

def write_helper(action, source, root="/"):
    """Copy setpriv with file capabilities: temp file, owner, mode, xattr, rename.

    The xattr goes last before the rename because a chown clears file capabilities."""
    path = host.host_path(root, action["path"])
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    tmp = path + ".edgewarden-new"
    with open(source, "rb") as src, open(tmp, "wb") as dst:
        dst.write(src.read())
        dst.flush()
        os.fsync(dst.fileno())
    try:
        os.chown(tmp, 0, action["gid"])
        os.chmod(tmp, 0o750)
        os.setxattr(tmp, XATTR, file_caps_xattr(action["caps"], action["effective"]))
        os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def apply_files(files, state, ctx):
    root = ctx["root"]
    for action in files:
        if action["op"] == "launcher":
            directory = host.host_path(root, ctx["helper_dir"])
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o755)
            atomic_write(host.host_path(root, state["launcher_path"]), action["content"], mode=0o755)


def _alive(pid, root):
    text = read_text(host.host_path(root, "/proc/%d/stat" % pid))
    if text is None:
        return False
    return text[text.rfind(")") + 2:][:1] != "Z"


def terminate(pids, ctx):
    """SIGTERM, then SIGKILL after TERM_WAIT; init reaps them."""
    clock = ctx["clock"]
    for pid in pids:
        try:
            ctx["kill"](pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = clock.now() + TERM_WAIT
    while any(_alive(pid, ctx["root"]) for pid in pids) and clock.now() < deadline:
        clock.sleep(0.2)
    for pid in pids:
        if _alive(pid, ctx["root"]):
            try:
                ctx["kill"](pid, signal.SIGKILL)
            except OSError:
                pass


class Inittab(object):
    """The inittab text this run keeps in step with the file and init."""

    def __init__(self, state, ctx):
        self.entries = state["entries"]
        self.ctx = ctx

    def set_line(self, index, line):
        self.entries[index] = dict(self.entries[index], line=line)
        text = "".join(e["line"] + "\n" for e in self.entries)
        atomic_write(host.host_path(self.ctx["root"], INITTAB), text, mode=0o644)
        # BusyBox and SysV init both re-read /etc/inittab on SIGHUP
        self.ctx["kill"](1, signal.SIGHUP)

    def switch(self, index, old_line, new_line, old_original):
        """Park the entry, stop its process, then let init start the new line."""
        body = old_line[len(PARKED):] if old_line.startswith(PARKED) else old_line
        self.set_line(index, PARKED + body)
        self.ctx["clock"].sleep(POLL)
        terminate(running_pids(old_original, self.ctx["root"], final_only=False), self.ctx)
        self.set_line(index, new_line)


def wait_healthy(app, original, expected, ctx):
    """(healthy, reason, view): one process for the entry, stable, as expected, listening."""
    clock = ctx["clock"]
    deadline = clock.now() + ctx["timeout"]
    seen, since, reason = set(), clock.now(), "not started"
    while True:
        starting = running_pids(original, ctx["root"], final_only=False)
        for pid in starting:
            if pid not in seen:
                seen.add(pid)
                since = clock.now()
        pids = running_pids(original, ctx["root"])
        if len(seen) > 2:
            # init started it more than twice: it keeps dying
            return False, "%s keeps exiting (respawned as pids %s)" % (app["name"], ", ".join(str(p) for p in sorted(seen))), None
        if pids:
            verdict, reason, view = host.judge_process(app, pids[0], expected, ctx,
                                                       clock.now() - since >= ctx["settle"], "running as")
            if verdict is not None:
                return verdict, reason, view
        else:
            reason = "no process for the entry"
        if clock.now() >= deadline:
            return False, "not healthy after %ds: %s" % (ctx["timeout"], reason), None
        clock.sleep(POLL)


def _remove(paths, root):
    for path in paths:
        try:
            os.unlink(host.host_path(root, path))
        except OSError:
            pass


def apply_app(p, inittab, ctx):
    """Write the app's setpriv copy and line, restart it, prove it; roll back when unhealthy.

    A new copy is written before the line that uses it; copies the old line used are
    removed only once the app is healthy, so a rollback finds everything it needs.
    """
    app, current = p["app"], p["current"]
    root = ctx["root"]
    outcome = {"healthy": None, "health": None, "rolled_back": False, "view": current["view"], "error": None}
    write = p.get("helper_write")
    try:
        if write:
            write_helper(write, host.host_path(root, ctx["setpriv_real"]), root)
    except OSError as exc:
        outcome["error"] = "writing %s: %s" % (write["path"], exc)
        return outcome
    if "line_after" not in p:
        _remove(p["helper_cleanup"], root)
        return outcome
    index, original = current["index"], current["original"]
    line_changes = p["line_before"] != p["line_after"]
    if line_changes and not p["restart"]:
        inittab.set_line(index, p["line_after"])
    elif line_changes:
        inittab.switch(index, p["line_before"], p["line_after"], original)
    elif p["restart"]:
        terminate(running_pids(original, root, final_only=False), ctx)
    if p["restart"]:
        healthy, reason, view = wait_healthy(app, original, p["expected"], ctx)
        outcome.update(healthy=healthy, health=reason, view=view)
        if not healthy:
            detail = "rolled back to the previous line: %s" % reason
            if line_changes:
                inittab.switch(index, p["line_after"], p["line_before"].replace(PARKED, "", 1), original)
                healthy, again, view = wait_healthy(app, original, None, ctx)
                outcome["view"] = view
                detail += "; after the rollback: %s" % (again if healthy else "STILL UNHEALTHY: " + again)
                outcome["rolled_back"] = True
                if write and write["new"]:
                    _remove([write["path"]], root)
            outcome["error"] = detail
            return outcome
    _remove(p["helper_cleanup"], root)
    return outcome


def run(apps, ctx, check_mode):
    state = read(apps, ctx)
    records, acc_actions, path_actions, files, plans, errors = plan(apps, state, ctx)
    tools = state["tools"]
    result = {"backend": ctx["init"], "apps": [], "errors": errors, "file_diffs": [], "records": records,
              "setpriv": tools["setpriv"]}
    if errors:
        return result
    if not check_mode:
        try:
            host.apply_accounts_files(state["accounts"], acc_actions, ctx["root"])
            host.apply_paths(path_actions, ctx["root"])
            apply_files(files, state, ctx)
        except OSError as exc:
            failure = "accounts, paths or launcher files: %s" % exc
            errors.append(failure)
            result["records"] = host.error_records(records, failure)
            return result
    inittab = Inittab(state, ctx)
    ctx = dict(ctx, setpriv_real=tools["setpriv_real"])
    by_id = dict((r["id"], i) for i, r in enumerate(result["records"]))
    for p in plans:
        app = p["app"]
        outcome = {"healthy": None, "health": None, "rolled_back": False, "view": p["current"]["view"], "error": None}
        if not check_mode:
            outcome = apply_app(p, inittab, ctx)
        if outcome["error"]:
            errors.append("%s: %s" % (app["name"], outcome["error"]))
            for rid in ("confine.helper/", "confine.inittab/", "confine.live/"):
                i = by_id.get(rid + app["name"])
                if i is not None and (result["records"][i]["status"] == CHANGED or rid != "confine.helper/"):
                    result["records"][i] = dict(result["records"][i], status=ERROR, detail=outcome["error"])
        if "live_record" in p:
            live_index = by_id[p["live_record"]["id"]]
            if not outcome["error"] and not check_mode and outcome["view"] is not None and p["expected"] is not None \
                    and outcome["healthy"]:
                keys = [k for k in confine.KEYS_ORDER if k in p["expected"]]
                result["records"][live_index] = dict(result["records"][live_index],
                                                     after=confine.descriptor(outcome["view"], keys, outcome["view"]["last_cap"]))
            if p["inittab_record"]["status"] == CHANGED:
                result["file_diffs"].append({"path": INITTAB, "before": p["line_before"] + "\n", "after": p["line_after"] + "\n"})
        result["apps"].append(_report(p, outcome, tools, ctx))
    return result


def _report(p, outcome, tools, ctx):
    app = p["app"]
    view = outcome["view"]
    return {
        "name": app["name"],
        "unit": None,
        "state": app["state"],
        "backend": ctx["init"],
        "user": app["user"],
        "capabilities": app["capabilities"],
        "inittab_line": p.get("line_after"),
        "exposure": {"before": None, "after": None, "predicted": None, "threshold": None, "above_threshold": False},
        "process": confine.process_report(view, view and view["last_cap"]),
        "healthy": outcome["healthy"],
        "health": outcome["health"],
        "rolled_back": outcome["rolled_back"],
        "skipped_directives": [],
        "unavailable": confine.unavailable_protections(bool(tools["setpriv"]), tools["setpriv_bounding"] and bool(app["capabilities"])),
    }
