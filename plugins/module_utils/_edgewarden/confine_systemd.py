# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Confinement on systemd: one drop-in per unit, checked before it is installed.

For each app: the drop-in is rendered from the policy and verified as a candidate
(``systemd-analyze verify`` with the candidate first on ``SYSTEMD_UNIT_PATH``, where a
drop-in of the same name masks the installed one), and its exposure is predicted with
``systemd-analyze security --offline``, all before anything is written, in check mode
too. A real run then writes it, reloads, restarts the unit if it was running and checks
it is healthy: active, its main process running as the policy says (user, capability
sets read from /proc), its ports listening, the optional health command passing. An
unhealthy unit gets its previous drop-in back, is restarted again, and the app is
reported as rolled back.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine_host as host
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import CHANGED, ERROR, record
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import atomic_write, read_text

UNIT_DIR = "/etc/systemd/system"
SHOW_PROPS = "LoadState,ActiveState,SubState,MainPID,NRestarts,Result,User,DynamicUser,FragmentPath,DropInPaths"
KEYS = confine.KEYS_ORDER
POLL = 0.5
SHOW_EVERY = 2.0


def dropin_path(unit):
    return "%s/%s.d/%s" % (UNIT_DIR, unit, confine.DROPIN_NAME)


def summarize(text):
    """A drop-in as a record value: absent, or its size and digest (the diff shows it whole)."""
    if text is None:
        return "absent"
    lines = [line for line in text.splitlines() if line and not line.startswith(("#", "["))]
    return "%d lines, sha256:%s" % (len(lines), hashlib.sha256(text.encode("utf-8")).hexdigest()[:12])


def show(ctx, unit, props=SHOW_PROPS):
    rc, out, err = ctx["run"]([ctx["tools"]["systemctl"], "show", "--property=" + props, unit])
    return confine.parse_show(out) if rc == 0 else {}


def measure(ctx, unit, offline_path=None):
    """Overall exposure of ``unit``: of the loaded unit, or offline with a candidate unit path."""
    argv = [ctx["tools"]["systemd-analyze"], "security", "--no-pager"]
    env = None
    if offline_path:
        argv.append("--offline=true")
        env = {"SYSTEMD_UNIT_PATH": offline_path + ":"}
    rc, out, err = ctx["run"](argv + [unit], env)
    return confine.parse_exposure(out)


def check_candidate(ctx, unit, content, predict):
    """Verify a candidate drop-in without installing it; returns ``(problems, predicted)``."""
    tmp = tempfile.mkdtemp(prefix="edgewarden-confine-")
    try:
        os.makedirs(os.path.join(tmp, unit + ".d"))
        with open(os.path.join(tmp, unit + ".d", confine.DROPIN_NAME), "w") as handle:
            handle.write(content)
        env = {"SYSTEMD_UNIT_PATH": tmp + ":"}
        verify = [ctx["tools"]["systemd-analyze"], "verify", "--man=no", unit]
        rc, out, err = ctx["run"](verify, env)
        # systemd only warns about unknown keys and bad values: each one naming the candidate is an error
        problems = [line.replace(tmp, UNIT_DIR).strip() for line in (out + "\n" + err).splitlines() if tmp in line]
        if rc != 0:
            base_rc, dummy, dummy2 = ctx["run"](verify)
            if base_rc == 0:
                problems.append("systemd-analyze verify fails with the drop-in (rc %d): %s" % (rc, (err or out).strip()[-400:]))
        predicted = measure(ctx, unit, tmp)[0] if predict and not problems else None
        return problems, predicted
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _running_view(ctx, props):
    if props.get("ActiveState") != "active":
        return None
    try:
        pid = int(props.get("MainPID") or 0)
    except ValueError:
        pid = 0
    return confine.read_process_view(pid, ctx["root"]) if pid > 0 else None


def read(apps, ctx):
    """Everything a plan needs, read once: units, drop-ins, processes, accounts, paths, exposure."""
    state = {"version": None, "units": {}, "errors": []}
    rc, out, err = ctx["run"]([ctx["tools"]["systemctl"], "--version"])
    state["version"] = confine.parse_systemd_version(out)
    state["accounts"] = host.read_accounts(ctx["root"])
    state["paths"] = {}
    for app in apps:
        props = show(ctx, app["unit"])
        if props.get("LoadState") != "loaded":
            state["errors"].append("%s: no such unit (LoadState=%s)" % (app["unit"], props.get("LoadState") or "unknown"))
            continue
        unit = {"props": props, "dropin": read_text(host.host_path(ctx["root"], dropin_path(app["unit"])))}
        unit["view"] = _running_view(ctx, props)
        unit["exposure_before"] = measure(ctx, app["unit"]) if ctx["measure"] else (None, None)
        state["units"][app["unit"]] = unit
        for path in app["writable_paths"]:
            state["paths"][path] = host.read_path(path, ctx["root"])
    return state


def plan(apps, state, ctx):
    """Records, per-app plans and every error, before anything is written."""
    errors = list(state["errors"]) + host.check_system_dirs(apps)
    acc_records, acc_actions, acc_errors = host.plan_accounts(apps, state["accounts"], ctx["root"])
    path_records, path_actions = host.plan_paths(apps, state["paths"], state["accounts"], acc_actions)
    errors.extend(acc_errors)
    plans = []
    for app in apps:
        unit = state["units"].get(app["unit"])
        if unit is None:
            continue
        p = {"app": app, "unit": unit, "skipped": [], "content": None, "expected": None, "predicted": None}
        if app["state"] == "present":
            directives, p["skipped"] = confine.systemd_directives(app, state["version"], ctx["overrides"])
            p["content"] = confine.render_dropin(app["unit"], directives)
            p["expected"] = confine.expected_process(directives, unit["props"].get("User") or None, app["name"])
            if p["content"] != unit["dropin"]:
                # an unchanged drop-in was verified when it was installed: save slow devices two runs
                problems, p["predicted"] = check_candidate(ctx, app["unit"], p["content"], ctx["measure"])
                errors.extend("%s: %s" % (app["unit"], problem) for problem in problems)
        p["dropin_record"] = record("confine.dropin/%s" % app["unit"], summarize(unit["dropin"]), summarize(p["content"]),
                                    where="persisted", detail=dropin_path(app["unit"]))
        p["live_record"], p["restart"] = _plan_live(p)
        plans.append(p)
    return acc_records, acc_actions, path_records, path_actions, plans, errors


def _plan_live(p):
    """The live record (the running main process) and whether the unit must restart."""
    unit, expected = p["unit"], p["expected"]
    rid = "confine.live/%s" % p["app"]["unit"]
    view = unit["view"]
    dropin_changes = p["dropin_record"]["status"] == CHANGED
    if unit["props"].get("ActiveState") != "active":
        return record(rid, "not running", "not running", detail="takes effect when the unit starts; not health-checked"), False
    if view is None:
        # active without a main process (oneshot with RemainAfterExit): nothing to compare
        return record(rid, "no main process", "no main process"), dropin_changes
    last_cap = view["last_cap"]
    if expected is None:
        # state: absent: the unit restarts unconfined
        before = confine.descriptor(view, KEYS, last_cap)
        if dropin_changes:
            return record(rid, before, "unconfined", detail="restarted without the drop-in"), True
        return record(rid, before, before), False
    keys = [k for k in KEYS if k in expected]
    before = confine.descriptor(view, keys, last_cap)
    after = confine.descriptor(expected, keys, last_cap)
    wrong = confine.matches_expected(view, expected)
    detail = "restarted to apply the drop-in" if dropin_changes and not wrong else None
    return record(rid, before, after, detail=detail), bool(wrong) or dropin_changes


def wait_healthy(ctx, app, expected):
    """(healthy, reason, view): active, main process as expected and stable, ports listening.

    Called right after a restart. Any automatic restart from then on (``NRestarts`` grows,
    ``auto-restart``, ``failed``) means the app does not survive its confinement. On a slow
    device every ``systemctl`` spawn competes with the starting service for the CPU, so the
    manager is asked every SHOW_EVERY seconds and /proc is read in between.
    """
    clock = ctx["clock"]
    deadline = clock.now() + ctx["timeout"]
    last_pid, since, reason, restarts = -1, clock.now(), "not checked", None
    props, next_show = {}, 0.0
    while True:
        if clock.now() >= next_show:
            props = show(ctx, app["unit"])
            next_show = clock.now() + SHOW_EVERY
            active, sub = props.get("ActiveState"), props.get("SubState")
            if restarts is None:
                restarts = props.get("NRestarts")
            if active == "failed" or sub == "auto-restart":
                return False, "%s is %s/%s (result %s)" % (app["unit"], active, sub, props.get("Result")), None
            if props.get("NRestarts") != restarts:
                return False, "%s exited and systemd restarted it (NRestarts %s -> %s)" % (
                    app["unit"], restarts, props.get("NRestarts")), None
        verdict = _judge(ctx, app, expected, props, last_pid, since)
        if verdict["pid"] != last_pid:
            last_pid, since = verdict["pid"], clock.now()
        if verdict["done"] and verdict["healthy"]:
            # confirm with the manager that nothing restarted since its last answer
            props_now = show(ctx, app["unit"])
            if props_now.get("NRestarts") == restarts and props_now.get("ActiveState") == "active" \
                    and props_now.get("MainPID") == props.get("MainPID"):
                return True, verdict["reason"], verdict["view"]
            next_show = 0.0
            continue
        if verdict["done"] and not verdict["healthy"]:
            return False, verdict["reason"], verdict["view"]
        reason = verdict["reason"]
        if clock.now() >= deadline:
            return False, "not healthy after %ds: %s" % (ctx["timeout"], reason), None
        clock.sleep(POLL)


def _judge(ctx, app, expected, props, last_pid, since):
    """One look at the unit's main process and ports, from /proc only."""
    verdict = {"done": False, "healthy": False, "reason": "", "view": None, "pid": None}
    if props.get("ActiveState") != "active":
        verdict["reason"] = "%s/%s" % (props.get("ActiveState"), props.get("SubState"))
        return verdict
    view = _running_view(ctx, props)
    verdict["view"] = view
    verdict["pid"] = view["pid"] if view else None
    missing = host.missing_ports(app, ctx["root"])
    if view is None and props.get("MainPID", "0") not in ("", "0"):
        verdict["reason"] = "main process gone"
    elif missing:
        verdict["reason"] = "not listening on %s" % ", ".join(missing)
    elif verdict["pid"] != last_pid or ctx["clock"].now() - since < ctx["settle"]:
        verdict["reason"] = "settling"
    else:
        wrong = confine.matches_expected(view, expected) if expected and view is not None else []
        if wrong:
            keys = [k for k in KEYS if k in expected]
            verdict.update(done=True, reason="runs with %s, the policy says %s" % (
                confine.descriptor(view, keys, view["last_cap"]), confine.descriptor(expected, keys, view["last_cap"])))
        elif app["health_command"]:
            ok, message = host.run_health_command(ctx["run"], app["health_command"])
            verdict.update(done=ok, healthy=ok, reason=message)
        else:
            verdict.update(done=True, healthy=True,
                           reason="active, main pid %s%s" % (verdict["pid"], ", listening" if app["ports"] else ""))
    return verdict


def _journal(ctx, unit):
    journalctl = ctx["tools"].get("journalctl")
    if not journalctl:
        return ""
    rc, out, err = ctx["run"]([journalctl, "-u", unit, "-n", "8", "--no-pager", "-o", "cat"])
    return " | ".join(line.strip() for line in out.splitlines() if line.strip())[-600:]


def _write_dropin(ctx, unit, content):
    path = host.host_path(ctx["root"], dropin_path(unit))
    if content is None:
        if os.path.exists(path):
            os.unlink(path)
        return
    if not os.path.isdir(os.path.dirname(path)):
        os.makedirs(os.path.dirname(path), 0o755)
    atomic_write(path, content, mode=0o644)


def _reload(ctx):
    rc, out, err = ctx["run"]([ctx["tools"]["systemctl"], "daemon-reload"])
    return rc == 0, (err or out).strip()


def _restart(ctx, unit):
    rc, out, err = ctx["run"]([ctx["tools"]["systemctl"], "restart", unit])
    return rc == 0, (err or out).strip()


def apply_app(p, ctx):
    """Install one app's drop-in and prove it; roll back when the unit is not healthy."""
    app, unit = p["app"], p["unit"]
    outcome = {"healthy": None, "health": None, "rolled_back": False, "view": unit["view"], "error": None}
    changed = p["dropin_record"]["status"] == CHANGED
    if not changed and not p["restart"]:
        return outcome
    if changed:
        _write_dropin(ctx, app["unit"], p["content"])
        ok, message = _reload(ctx)
        if not ok:
            outcome["error"] = "daemon-reload failed: %s" % message
    if outcome["error"] is None and p["restart"]:
        ok, message = _restart(ctx, app["unit"])
        if ok:
            healthy, reason, view = wait_healthy(ctx, app, p["expected"])
        else:
            healthy, reason, view = False, "restart failed: %s" % message, None
        outcome.update(healthy=healthy, health=reason, view=view)
        if not healthy:
            outcome["error"] = reason
    if outcome["error"] is None:
        return outcome
    journal = _journal(ctx, app["unit"])
    _write_dropin(ctx, app["unit"], unit["dropin"])
    _reload(ctx)
    outcome["rolled_back"] = True
    detail = "rolled back to the previous drop-in: %s" % outcome["error"]
    if journal:
        detail += "; journal: %s" % journal
    if p["restart"]:
        ok, message = _restart(ctx, app["unit"])
        healthy, reason, view = wait_healthy(ctx, app, None) if ok else (False, message, None)
        outcome["view"] = view
        detail += "; after the rollback: %s" % (reason if healthy else "STILL UNHEALTHY: " + reason)
    outcome["error"] = detail
    return outcome


def run(apps, ctx, check_mode):
    """Read, plan (verifying every candidate), then apply unless ``check_mode``."""
    state = read(apps, ctx)
    acc_records, acc_actions, path_records, path_actions, plans, errors = plan(apps, state, ctx)
    result = {"backend": "systemd", "systemd_version": state["version"], "apps": [], "errors": errors, "file_diffs": []}
    records = acc_records + path_records
    if errors:
        result["records"] = records + [p["dropin_record"] for p in plans] + [p["live_record"] for p in plans]
        return result
    if not check_mode:
        failure = _apply_host(acc_actions, path_actions, ctx)
        if failure:
            errors.append(failure)
            result["records"] = host.error_records(records, failure)
            return result
    for p in plans:
        app, unit = p["app"], p["unit"]
        outcome = {"healthy": None, "health": None, "rolled_back": False, "view": unit["view"], "error": None}
        if not check_mode:
            outcome = apply_app(p, ctx)
        app_records = [p["dropin_record"], p["live_record"]]
        if outcome["error"]:
            errors.append("%s: %s" % (app["unit"], outcome["error"]))
            app_records = [dict(r, status=ERROR, detail=outcome["error"]) if r["status"] == CHANGED or r is p["live_record"]
                           else r for r in app_records]
        elif not check_mode and p["restart"] and outcome["view"] is not None and p["expected"] is not None:
            keys = [k for k in KEYS if k in p["expected"]]
            live = app_records[1]
            app_records[1] = dict(live, after=confine.descriptor(outcome["view"], keys, outcome["view"]["last_cap"]))
        records.extend(app_records)
        if p["dropin_record"]["status"] == CHANGED:
            result["file_diffs"].append({"path": dropin_path(app["unit"]), "before": unit["dropin"] or "", "after": p["content"] or ""})
        result["apps"].append(_report(p, outcome, ctx, check_mode))
    result["records"] = records
    return result


def _apply_host(acc_actions, path_actions, ctx):
    try:
        errors = host.apply_accounts_sysusers(acc_actions, ctx["run"], ctx["tools"]["systemd-sysusers"], ctx["root"])
        if errors:
            return "; ".join(errors)
        host.apply_paths(path_actions, ctx["root"])
    except OSError as exc:
        return "accounts/paths: %s" % exc
    return None


def _report(p, outcome, ctx, check_mode):
    app, unit = p["app"], p["unit"]
    before = unit["exposure_before"][0]
    after = None
    if ctx["measure"] and not check_mode:
        changed = outcome["rolled_back"] or p["dropin_record"]["status"] == CHANGED
        after = measure(ctx, app["unit"])[0] if changed else before
    threshold = app["max_exposure"] if app["max_exposure"] is not None else ctx["max_exposure"]
    if check_mode:
        # an unchanged drop-in has no prediction: its live score is the one that stays
        judged = p["predicted"] if p["predicted"] is not None else before
    else:
        judged = after
    view = outcome["view"]
    return {
        "name": app["name"],
        "unit": app["unit"],
        "state": app["state"],
        "backend": "systemd",
        "user": app["user"],
        "capabilities": app["capabilities"],
        "dropin": dropin_path(app["unit"]),
        "exposure": {"before": before, "after": after, "predicted": p["predicted"], "threshold": threshold,
                     "above_threshold": bool(threshold is not None and judged is not None and judged > threshold)},
        "process": confine.process_report(view, view and view["last_cap"]),
        "healthy": outcome["healthy"],
        "health": outcome["health"],
        "rolled_back": outcome["rolled_back"],
        "skipped_directives": p["skipped"],
        "unavailable": [],
    }
