# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Confinement on OpenRC: the service's own settings in /etc/conf.d/<service>.

openrc-run sources /etc/conf.d/<service> before the service script and passes
``command_user``, ``umask``, ``capabilities`` and ``no_new_privs`` to the program that
starts the daemon (start-stop-daemon or supervise-daemon). This backend writes those
settings as one marked block at the end of that file (the user's own lines stay), restarts
the service with ``rc-service``, checks it is healthy as the policy says (user and
capability sets read from /proc/<pid>/status), and puts the previous file back if not.

Which settings a device can take is probed, not assumed: OpenRC builds without libcap
refuse ``--capabilities`` ("Capabilities support not enabled"), Debian's start-stop-daemon
is dpkg's, which knows neither ``--capabilities`` nor ``--no-new-privs``, and Debian's
supervise-daemon.sh (0.45.2) passes ``--no_new_privs``, which its supervise-daemon rejects.
A setting the starter would reject is never written (it would stop the service from
starting): an app that needs capabilities there is refused before anything changes, and
the result lists what the app goes without.
"""

from __future__ import annotations

import os
import re

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine_host as host
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import ERROR, record
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.confine_inittab import (
    command_words, find_program, program_words)
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import atomic_write, read_text
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.procfs import list_pids, process_info

CONFD_DIR = "/etc/conf.d"
INITD_DIR = "/etc/init.d"
RC_SH_DIRS = ("/lib/rc/sh", "/usr/libexec/rc/sh", "/libexec/rc/sh")
BEGIN = "# BEGIN edgewarden.hardening app_confine: least privilege for %s (managed; change the app's policy)"
END = "# END edgewarden.hardening app_confine"
SUPERVISORS = ("start-stop-daemon", "supervise-daemon")
# Debian's start-stop-daemon (dpkg's) does not wait for the old process on --stop: a
# restart then races it for its port and pidfile. A service that sets no retry gets one.
DEFAULT_RETRY = "TERM/5/KILL/5"
UMASK = "0077"
POLL = 0.5
# start-stop-daemon returns once it has forked, so OpenRC says "started" for a daemon that
# exits at once (and dpkg's start-stop-daemon records nothing OpenRC could call crashed):
# started with no process for this long counts as dead.
NO_PROCESS_GRACE = 5.0

_ASSIGN = r"^[ \t]*(?:export[ \t]+)?%s=[\"']?([^\"'\s;#]+)"
_NNP_FLAG = re.compile(r"no_new_privs:\+(--[A-Za-z_-]+)")


# ------------------------------------------------------------------ pure pieces

def script_value(text, name):
    """The last plain ``name=value`` assignment in a shell script (no expansion)."""
    found = re.findall(_ASSIGN % re.escape(name), text or "", re.M)
    return found[-1] if found else None


def is_openrc_script(text):
    first = (text or "").split("\n", 1)[0]
    return first.startswith("#!") and "openrc-run" in first


def split_block(text, name):
    """``(text without our block, block lines or None)``; the rest is kept byte for byte."""
    if text is None:
        return None, None
    begin = BEGIN % name
    lines = text.splitlines(True)
    start = None
    for i, line in enumerate(lines):
        if line.rstrip("\n") == begin:
            start = i
        elif start is not None and line.rstrip("\n") == END:
            return "".join(lines[:start] + lines[i + 1:]), [l.rstrip("\n") for l in lines[start + 1:i]]
    return text, None


def iab_text(caps, last_cap):
    """libcap IAB text: the listed capabilities inheritable and ambient (``^``), every other
    one dropped from the bounding set (``!``)."""
    top = last_cap if last_cap is not None else len(confine.CAPABILITIES) - 1
    words = ["^cap_%s" % cap for cap in caps]
    words += ["!cap_%s" % confine.CAPABILITIES[bit] for bit in range(top + 1)
              if bit < len(confine.CAPABILITIES) and confine.CAPABILITIES[bit] not in caps]
    return ",".join(words)


def settings(app, support, last_cap, retry_set):
    """The ``(name, value)`` settings the app's block carries. Pure."""
    out = []
    if app["user"] != confine.USER_ROOT:
        out.append(("command_user", "%s:%s" % (app["user"], app["group"] or app["user"])))
    out.append(("umask", UMASK))
    if support["capabilities"] and (app["capabilities"] or app["user"] != confine.USER_ROOT):
        out.append(("capabilities", iab_text(app["capabilities"], last_cap)))
    if support["no_new_privs"]:
        out.append(("no_new_privs", "yes"))
    if not retry_set:
        out.append(("retry", DEFAULT_RETRY))
    return out


def render_block(name, items):
    lines = [BEGIN % name]
    lines.extend('%s="%s"' % (key, value) for key, value in items)
    lines.append(END)
    return lines


def render_confd(rest, block):
    """The conf.d text: the user's lines, then our block (last, so it wins)."""
    text = rest or ""
    if block is None:
        return text
    if text and not text.endswith("\n"):
        text += "\n"
    return text + "".join(line + "\n" for line in block)


def block_settings(lines):
    """``'a="x"; b="y"'`` view of a block's lines (markers left out)."""
    if lines is None:
        return "none"
    return "; ".join(line for line in lines if not line.startswith("#")) or "none"


def expected_view(app, support):
    expected = {"user": app["user"]}
    caps = confine.cap_mask(app["capabilities"])
    if support["capabilities"]:
        expected["cap_eff"] = caps
        expected["cap_bnd"] = caps
    elif app["user"] != confine.USER_ROOT:
        # a non-root user keeps no capability across the switch
        expected["cap_eff"] = 0
    return expected


def unavailable(app, support, supervisor):
    """What the app goes without on this OpenRC, as ``[{protection, why}]``."""
    missing = list(confine.NON_SYSTEMD_UNAVAILABLE)
    if not support["capabilities"]:
        missing.append(("CapabilityBoundingSet/AmbientCapabilities",
                        "this %s has no capability support (capabilities= would stop the service from starting): "
                        "the app keeps no capability as a non-root user, and the bounding set stays full" % supervisor))
    if not support["no_new_privs"]:
        missing.append(("NoNewPrivileges", "this %s rejects the no_new_privs option openrc-run passes: setuid "
                        "programs the app runs still gain privileges" % supervisor))
    return [{"protection": name, "why": why} for name, why in missing]


# ------------------------------------------------------------------ reading

def find_rc_sh(root="/"):
    for directory in RC_SH_DIRS:
        if os.path.isdir(host.host_path(root, directory)):
            return directory
    return None


def probe_support(run, root="/"):
    """Which confinement settings each starter accepts, by asking it (``--help`` after the
    option: accepted options lead to the help text and exit 0, nothing is started)."""
    rc_sh = find_rc_sh(root)
    support = {}
    for name in SUPERVISORS:
        path = find_program(name, root)
        entry = {"path": path, "capabilities": False, "no_new_privs": False}
        if path:
            env = {"RC_SVCNAME": "edgewarden-probe"}
            prefix = [path, "edgewarden-probe"] if name == "supervise-daemon" else [path]
            rc, dummy, dummy = run(prefix + ["--capabilities", "^cap_chown", "--help"], env)
            entry["capabilities"] = rc == 0
            # the exact flag openrc-run passes for no_new_privs (Debian 0.45.2: --no_new_privs)
            helper = read_text(host.host_path(root, "%s/%s.sh" % (rc_sh, name))) if rc_sh else None
            match = _NNP_FLAG.search(helper or "")
            if match:
                rc, dummy, dummy = run(prefix + [match.group(1), "--help"], env)
                entry["no_new_privs"] = rc == 0
        support[name] = entry
    return support


def find_pids(target, root="/"):
    """Processes running ``target`` (as the program, or the script after an interpreter)
    whose parent is not one too; supervisors carry the command later in their argv."""
    proc_root = host.host_path(root, "/proc")
    infos = {}
    for pid in list_pids(proc_root):
        info = process_info(pid, proc_root)
        if target in program_words(command_words(" ".join(info["cmdline"] or []))):
            infos[pid] = info
    return sorted(pid for pid, info in infos.items() if info["ppid"] not in infos)


def service_status(run, rc_service, name):
    rc, out, err = run([rc_service, name, "status"])
    text = (out + err).strip()
    match = re.search(r"status:\s*(\S+)", text)
    return rc, match.group(1) if match else ("started" if rc == 0 else "stopped")


def read(apps, ctx):
    root = ctx["root"]
    run = ctx["run"]
    state = {"errors": [], "apps": {}, "paths": {}}
    state["rc_service"] = find_program("rc-service", root)
    if not state["rc_service"]:
        state["errors"].append("rc-service not found: OpenRC is not installed")
    state["support"] = probe_support(run, root)
    state["accounts"] = host.read_accounts(root)
    state["last_cap"] = confine.read_last_cap(root)
    for app in apps:
        script_path = "%s/%s" % (INITD_DIR, app["name"])
        confd_path = "%s/%s" % (CONFD_DIR, app["name"])
        script = read_text(host.host_path(root, script_path))
        confd = read_text(host.host_path(root, confd_path))
        rest, block = split_block(confd, app["name"])
        supervisor = script_value(rest, "supervisor") or script_value(script, "supervisor") or "start-stop-daemon"
        command = script_value(script, "command")
        target = app["binary"] or command
        current = {"script_path": script_path, "script": script, "confd_path": confd_path, "confd": confd,
                   "rest": rest, "block": block, "supervisor": supervisor, "target": target,
                   "retry_set": bool(script_value(script, "retry") or script_value(rest, "retry")),
                   "status": None, "pids": [], "view": None}
        if script is None:
            state["errors"].append("%s: %s does not exist" % (app["name"], script_path))
        elif not is_openrc_script(script):
            state["errors"].append("%s: %s is not an openrc-run script (an LSB script run by OpenRC takes no "
                                   "command_user from conf.d)" % (app["name"], script_path))
        elif state["rc_service"]:
            dummy, current["status"] = service_status(run, state["rc_service"], app["name"])
            current["pids"] = find_pids(target, root) if target else []
            current["view"] = confine.read_process_view(current["pids"][0], root) if current["pids"] else None
        state["apps"][app["name"]] = current
        for path in app["writable_paths"]:
            state["paths"][path] = host.read_path(path, root)
    return state


# ------------------------------------------------------------------ planning

def plan(apps, state, ctx):
    """Records and actions for every app (pure over ``state``)."""
    errors = list(state["errors"]) + host.check_system_dirs(apps)
    for app in apps:
        current = state["apps"][app["name"]]
        if app["state"] != "present" or current["script"] is None:
            continue
        supervisor = current["supervisor"]
        if supervisor not in SUPERVISORS:
            errors.append("%s: supervisor=%s is not handled (only start-stop-daemon and supervise-daemon take "
                          "command_user)" % (app["name"], supervisor))
            continue
        if not current["target"]:
            errors.append("%s: %s sets no plain command=; set binary to the program's path" % (app["name"], current["script_path"]))
        support = state["support"][supervisor]
        if app["capabilities"] and not support["capabilities"]:
            errors.append("%s: capabilities %s cannot be given here: this OpenRC's %s has no capability support "
                          "(Debian's openrc 0.45.2 is built without libcap and its start-stop-daemon is dpkg's); "
                          "a capabilities= setting would stop the service from starting"
                          % (app["name"], ",".join(app["capabilities"]), support["path"] or supervisor))
        if app["user"] == confine.USER_ROOT and not support["capabilities"]:
            errors.append("%s: user root keeps every capability: without capability support here, name an account"
                          % app["name"])
    acc_records, acc_actions, acc_errors = host.plan_accounts(apps, state["accounts"], ctx["root"])
    path_records, path_actions = host.plan_paths(apps, state["paths"], state["accounts"], acc_actions)
    errors.extend(acc_errors)
    records = acc_records + path_records
    plans = []
    for app in apps:
        current = state["apps"][app["name"]]
        p = {"app": app, "current": current, "expected": None, "support": None}
        if current["script"] is None or current["supervisor"] not in SUPERVISORS:
            plans.append(p)
            continue
        support = state["support"][current["supervisor"]]
        p["support"] = support
        if app["state"] == "present":
            block = render_block(app["name"], settings(app, support, state["last_cap"], current["retry_set"]))
            p["expected"] = expected_view(app, support)
        else:
            block = None
        p["confd_after"] = render_confd(current["rest"], block)
        if block is None and current["confd"] is not None and not p["confd_after"].strip() and current["block"] is not None:
            p["confd_after"] = None  # the file held only our block: it goes
        if current["confd"] is None and block is None:
            p["confd_after"] = None
        p["confd_record"] = record("confine.confd/%s" % app["name"], block_settings(current["block"]),
                                   block_settings(block[1:-1] if block else None), where="persisted",
                                   detail=current["confd_path"])
        p["live_record"], p["restart"] = _plan_live(p)
        records.extend([p["confd_record"], p["live_record"]])
        plans.append(p)
    return records, acc_actions, path_actions, plans, errors


def _plan_live(p):
    app, current, expected = p["app"], p["current"], p["expected"]
    rid = "confine.live/%s" % app["name"]
    view = current["view"]
    started = current["status"] == "started"
    file_changes = p["confd_after"] != current["confd"]
    last_cap = view["last_cap"] if view else None
    keys = [k for k in confine.KEYS_ORDER if k in expected] if expected else ["user", "cap_eff"]
    before = confine.descriptor(view, keys, last_cap) if view else "not running"
    if not started:
        return record(rid, before, before, detail="service %s: the change takes effect at its next start"
                      % (current["status"] or "not started")), False
    if expected is None:
        if file_changes:
            return record(rid, before, "unconfined", detail="restarted without the confinement"), True
        return record(rid, before, before), False
    wrong = confine.matches_expected(view, expected)
    after = confine.descriptor(expected, keys, last_cap)
    detail = "restarted to apply %s" % current["confd_path"] if file_changes else None
    return record(rid, before, after, detail=detail), bool(wrong) or file_changes


# ------------------------------------------------------------------ applying

def write_confd(path, text, root):
    host_file = host.host_path(root, path)
    if text is None:
        if os.path.exists(host_file):
            os.unlink(host_file)
        return
    directory = os.path.dirname(host_file)
    if not os.path.isdir(directory):
        # Debian's openrc package ships no /etc/conf.d
        os.makedirs(directory, 0o755)
    atomic_write(host_file, text, mode=0o644)


def restart(ctx, rc_service, name, target):
    rc, out, err = ctx["run"]([rc_service, name, "restart"])
    if rc != 0 and target and not find_pids(target, ctx["root"]):
        # its daemon died, so the stop half failed ("none killed") and OpenRC still says
        # started: nothing runs it, so forget that state (zap) and start it
        ctx["run"]([rc_service, name, "zap"])
        rc, out, err = ctx["run"]([rc_service, name, "start"])
    return rc, (out + err).strip()[-300:]


def wait_healthy(app, current, expected, ctx, rc_service):
    """(healthy, reason, view): started, one stable main process as expected, listening."""
    clock = ctx["clock"]
    deadline = clock.now() + ctx["timeout"]
    seen, since, reason = None, clock.now(), "not started"
    started_at = clock.now()
    while True:
        rc, status = service_status(ctx["run"], rc_service, app["name"])
        pids = find_pids(current["target"], ctx["root"])
        if status != "started":
            reason = "rc-service status: %s" % status
            if status in ("stopped", "crashed"):
                return False, reason, None
        elif not pids:
            reason = "started, but no process runs %s" % current["target"]
            if clock.now() - started_at >= NO_PROCESS_GRACE:
                return False, reason + " (it exited)", None
        else:
            if pids[0] != seen:
                seen, since = pids[0], clock.now()
            verdict, reason, view = host.judge_process(app, pids[0], expected, ctx,
                                                       clock.now() - since >= ctx["settle"], "started,")
            if verdict is not None:
                return verdict, reason, view
        if clock.now() >= deadline:
            return False, "not healthy after %ds: %s" % (ctx["timeout"], reason), None
        clock.sleep(POLL)


def apply_app(p, ctx, rc_service):
    """Write the conf.d file, restart, prove it; put the previous file back when unhealthy."""
    app, current = p["app"], p["current"]
    outcome = {"healthy": None, "health": None, "rolled_back": False, "view": current["view"], "error": None}
    if "confd_after" not in p:
        return outcome
    changes = p["confd_after"] != current["confd"]
    try:
        if changes:
            write_confd(current["confd_path"], p["confd_after"], ctx["root"])
    except OSError as exc:
        outcome["error"] = "writing %s: %s" % (current["confd_path"], exc)
        return outcome
    if not p["restart"]:
        return outcome
    rc, output = restart(ctx, rc_service, app["name"], current["target"])
    if rc == 0:
        healthy, reason, view = wait_healthy(app, current, p["expected"], ctx, rc_service)
    else:
        healthy, reason, view = False, "rc-service restart failed: %s" % output, None
    outcome.update(healthy=healthy, health=reason, view=view)
    if healthy:
        return outcome
    detail = "rolled back to the previous %s: %s" % (current["confd_path"], reason)
    if changes:
        try:
            write_confd(current["confd_path"], current["confd"], ctx["root"])
        except OSError as exc:
            outcome["error"] = detail + "; the rollback could not write it back: %s" % exc
            return outcome
        rc, output = restart(ctx, rc_service, app["name"], current["target"])
        again_ok, again, view = wait_healthy(app, current, None, ctx, rc_service) if rc == 0 else \
            (False, "rc-service restart failed: %s" % output, None)
        outcome["view"] = view
        detail += "; after the rollback: %s" % (again if again_ok else "STILL UNHEALTHY: " + again)
        outcome["rolled_back"] = True
    outcome["error"] = detail
    return outcome


def run(apps, ctx, check_mode):
    state = read(apps, ctx)
    records, acc_actions, path_actions, plans, errors = plan(apps, state, ctx)
    result = {"backend": "openrc", "apps": [], "errors": errors, "file_diffs": [], "records": records}
    if errors:
        # refused before any change: no record may claim one
        result["records"] = []
        return result
    if not check_mode:
        try:
            host.apply_accounts_files(state["accounts"], acc_actions, ctx["root"])
            host.apply_paths(path_actions, ctx["root"])
        except OSError as exc:
            failure = "accounts or paths: %s" % exc
            errors.append(failure)
            result["records"] = host.error_records(records, failure)
            return result
    by_id = dict((r["id"], i) for i, r in enumerate(result["records"]))
    for p in plans:
        app = p["app"]
        outcome = {"healthy": None, "health": None, "rolled_back": False, "view": p["current"]["view"], "error": None}
        if not check_mode:
            outcome = apply_app(p, ctx, state["rc_service"])
        if outcome["error"]:
            errors.append("%s: %s" % (app["name"], outcome["error"]))
            for rid in ("confine.confd/", "confine.live/"):
                i = by_id.get(rid + app["name"])
                if i is not None:
                    result["records"][i] = dict(result["records"][i], status=ERROR, detail=outcome["error"])
        if "live_record" in p:
            i = by_id[p["live_record"]["id"]]
            view = outcome["view"]
            if not outcome["error"] and not check_mode and view is not None and p["expected"] is not None \
                    and outcome["healthy"]:
                keys = [k for k in confine.KEYS_ORDER if k in p["expected"]]
                result["records"][i] = dict(result["records"][i], after=confine.descriptor(view, keys, view["last_cap"]))
            if p["confd_after"] != p["current"]["confd"]:
                result["file_diffs"].append({"path": p["current"]["confd_path"], "before": p["current"]["confd"] or "",
                                             "after": p["confd_after"] or ""})
        result["apps"].append(_report(p, outcome))
    return result


def _report(p, outcome):
    app = p["app"]
    view = outcome["view"]
    supervisor = p["current"]["supervisor"]
    support = p["support"] or {"capabilities": False, "no_new_privs": False}
    return {
        "name": app["name"],
        "unit": None,
        "state": app["state"],
        "backend": "openrc",
        "user": app["user"],
        "capabilities": app["capabilities"],
        "confd": p["current"]["confd_path"],
        "supervisor": supervisor,
        "exposure": {"before": None, "after": None, "predicted": None, "threshold": None, "above_threshold": False},
        "process": confine.process_report(view, view and view["last_cap"]),
        "healthy": outcome["healthy"],
        "health": outcome["health"],
        "rolled_back": outcome["rolled_back"],
        "skipped_directives": [],
        "unavailable": unavailable(app, support, supervisor),
    }
