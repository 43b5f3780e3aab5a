# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""What confinement needs on the device whatever the init system: the service's own
account, the ownership of the paths it writes, and a health check.

Readers take ``root`` so tests run them on a tree under tmp_path; planners are pure and
return change records plus plain-data actions that ``apply_*`` performs.
"""

from __future__ import annotations

import os
import time

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import ERROR, record
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import atomic_write, read_text
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.procfs import listening_sockets

# Directories shared by the whole system: handing one to an app (chown) would be a
# privilege gift, so they cannot be writable paths; apps get a subdirectory.
SYSTEM_DIRS = frozenset((
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt", "/proc", "/root",
    "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/var/cache", "/var/lib", "/var/log", "/var/run",
    "/var/spool", "/var/tmp", "/usr/bin", "/usr/lib", "/usr/local", "/usr/sbin", "/usr/share", "/etc/systemd",
))
SYSTEM_ID_RANGE = (100, 999)
NOLOGIN_SHELLS = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false")
ACCOUNT_GECOS = "edgewarden confined service"
NEW_DIR_MODE = 0o750
SYSUSERS_DIR = "/etc/sysusers.d"


def host_path(root, path):
    return os.path.join(root, path.lstrip("/"))


def check_system_dirs(apps):
    errors = []
    for app in apps:
        for path in app["writable_paths"]:
            if path in SYSTEM_DIRS:
                errors.append("%s: writable path %s is a system directory; give the app its own subdirectory"
                              % (app["name"], path))
    return errors


# ------------------------------------------------------------------ accounts

def read_accounts(root="/"):
    """Users and groups as ``{name: fields}``, plus whether /etc/shadow exists."""
    passwd = confine.parse_passwd(read_text(host_path(root, "/etc/passwd"), ""))
    group = confine.parse_passwd(read_text(host_path(root, "/etc/group"), ""))
    return {
        "passwd": passwd,
        "group": group,
        "users": dict((f[0], f) for f in passwd if len(f) > 3),
        "groups": dict((f[0], f) for f in group if len(f) > 2),
        "shadow": os.path.exists(host_path(root, "/etc/shadow")),
    }


def _free_id(used, preferred=None):
    if preferred is not None and preferred not in used:
        return preferred
    for candidate in range(SYSTEM_ID_RANGE[0], SYSTEM_ID_RANGE[1] + 1):
        if candidate not in used:
            return candidate
    return None


def plan_accounts(apps, accounts, root="/"):
    """Records and actions creating each app's missing account (pure). Apps sharing an
    account create it once; ``dynamic`` and ``root`` need none."""
    records, actions, errors = [], [], []
    used_uids = set(int(f[2]) for f in accounts["users"].values() if f[2].isdigit())
    used_gids = set(int(f[2]) for f in accounts["groups"].values() if f[2].isdigit())
    planned = {}
    for app in apps:
        user, group = app["user"], app["group"]
        if app["state"] != "present" or user in (confine.USER_DYNAMIC, confine.USER_ROOT):
            continue
        rid = "confine.account/%s" % app["name"]
        if user in accounts["users"]:
            fields = accounts["users"][user]
            if group and group not in accounts["groups"] and group not in planned:
                errors.append("%s: group %s does not exist (user %s does)" % (app["name"], group, user))
            records.append(record(rid, "%s (uid %s)" % (user, fields[2]), "%s (uid %s)" % (user, fields[2]), where="persisted"))
            continue
        if user in planned:
            records.append(record(rid, "absent", planned[user], where="persisted", detail="created for another app in this run"))
            continue
        if not app["create_user"]:
            errors.append("%s: user %s does not exist and create_user is false" % (app["name"], user))
            continue
        gid = None
        new_group = group not in accounts["groups"] and group not in planned
        if not new_group:
            existing = accounts["groups"].get(group)
            gid = int(existing[2]) if existing else planned[group + ":gid"]
        uid = _free_id(used_uids, None)
        if new_group:
            gid = _free_id(used_gids, uid)
        if uid is None or gid is None:
            errors.append("%s: no free system id in %d-%d for user %s" % (app["name"], SYSTEM_ID_RANGE[0], SYSTEM_ID_RANGE[1], user))
            continue
        used_uids.add(uid)
        used_gids.add(gid)
        after = "%s (uid %d)" % (user, uid)
        planned[user] = after
        planned[group + ":gid"] = gid
        records.append(record(rid, "absent", after, where="persisted",
                              detail="system account %s, group %s (gid %d), no login shell" % (user, group, gid)))
        actions.append({"user": user, "uid": uid, "group": group, "gid": gid, "new_group": new_group})
    return records, actions, errors


def _nologin(root):
    for shell in NOLOGIN_SHELLS:
        if os.path.exists(host_path(root, shell)):
            return shell
    return "/bin/false"


def render_account_files(accounts, actions, root="/", today=None):
    """New /etc/passwd, /etc/group (and /etc/shadow) texts with the planned accounts appended."""
    shell = _nologin(root)
    days = int((today if today is not None else time.time()) // 86400)
    passwd = read_text(host_path(root, "/etc/passwd"), "")
    group = read_text(host_path(root, "/etc/group"), "")
    shadow = read_text(host_path(root, "/etc/shadow"), "") if accounts["shadow"] else None
    for action in actions:
        if action["new_group"]:
            group = _append(group, "%s:x:%d:" % (action["group"], action["gid"]))
        passwd = _append(passwd, "%s:x:%d:%d:%s:/nonexistent:%s" % (action["user"], action["uid"], action["gid"], ACCOUNT_GECOS, shell))
        if shadow is not None:
            # "!" is a locked password: nobody logs in as the service
            shadow = _append(shadow, "%s:!:%d:0:99999:7:::" % (action["user"], days))
    return passwd, group, shadow


def _append(text, line):
    if text and not text.endswith("\n"):
        text += "\n"
    return text + line + "\n"


def apply_accounts_files(accounts, actions, root="/"):
    """Create the accounts by writing the files (BusyBox has no useradd, often no adduser)."""
    if not actions:
        return
    passwd, group, shadow = render_account_files(accounts, actions, root)
    # group first: a passwd line must never point at a group that does not exist yet
    atomic_write(host_path(root, "/etc/group"), group, mode=0o644)
    atomic_write(host_path(root, "/etc/passwd"), passwd, mode=0o644)
    if shadow is not None:
        atomic_write(host_path(root, "/etc/shadow"), shadow, mode=0o640)


def sysusers_line(action):
    return 'u %s %d:%d "%s" /nonexistent\n' % (action["user"], action["uid"], action["gid"], ACCOUNT_GECOS)


def apply_accounts_sysusers(actions, run, sysusers_bin, root="/"):
    """On systemd: one sysusers.d file per account (recreated at boot on a fresh /etc), then
    systemd-sysusers creates it. Returns error strings."""
    errors = []
    for action in actions:
        lines = ""
        if action["new_group"]:
            lines += "g %s %d\n" % (action["group"], action["gid"])
        lines += sysusers_line(action)
        path = host_path(root, "%s/edgewarden-confine-%s.conf" % (SYSUSERS_DIR, action["user"]))
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path), 0o755)
        atomic_write(path, "# Managed by edgewarden.hardening (app_confine)\n" + lines, mode=0o644)
        rc, out, err = run([sysusers_bin, path])
        if rc != 0:
            errors.append("systemd-sysusers %s failed: %s" % (path, (err or out).strip()))
    return errors


# ------------------------------------------------------------------ writable paths

def read_path(path, root="/"):
    """Owner of ``path`` and how many entries below it another owner holds (symlinks not followed)."""
    host = host_path(root, path)
    try:
        st = os.lstat(host)
    except OSError:
        return {"path": path, "exists": False}
    info = {"path": path, "exists": True, "isdir": os.path.isdir(host) and not os.path.islink(host),
            "uid": st.st_uid, "gid": st.st_gid, "others": []}
    if info["isdir"]:
        for dirpath, dirnames, filenames in os.walk(host):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                try:
                    sub = os.lstat(full)
                except OSError:
                    continue
                info["others"].append((full[len(host):], sub.st_uid, sub.st_gid))
    return info


def _owner_ids(app, accounts, planned_ids):
    if app["user"] == confine.USER_ROOT:
        return 0, 0
    user = accounts["users"].get(app["user"])
    uid = int(user[2]) if user else planned_ids.get(app["user"], (None, None))[0]
    group = accounts["groups"].get(app["group"]) if app["group"] else None
    gid = int(group[2]) if group else planned_ids.get(app["user"], (None, None))[1]
    return uid, gid


def plan_paths(apps, path_states, accounts, account_actions):
    """Records and actions giving each app its writable paths (pure). Missing paths become
    directories (0750); existing ones are handed over recursively, as systemd does for
    StateDirectory=. DynamicUser paths are left to systemd."""
    planned_ids = dict((a["user"], (a["uid"], a["gid"])) for a in account_actions)
    names = {}
    for fields in accounts["passwd"]:
        if len(fields) > 2:
            names.setdefault(fields[2], fields[0])
    gnames = {}
    for fields in accounts["group"]:
        if len(fields) > 2:
            gnames.setdefault(fields[2], fields[0])
    records, actions = [], []
    for app in apps:
        if app["state"] != "present" or app["user"] == confine.USER_DYNAMIC:
            continue
        uid, gid = _owner_ids(app, accounts, planned_ids)
        want = "%s:%s" % (app["user"], app["group"] or "root")
        for path in app["writable_paths"]:
            rid = "confine.path/%s:%s" % (app["name"], path)
            state = path_states.get(path) or {"exists": False}
            if not state["exists"]:
                records.append(record(rid, "absent", "directory %s 0750" % want, where="persisted"))
                actions.append({"op": "mkdir", "path": path, "uid": uid, "gid": gid})
                continue
            top = "%s:%s" % (names.get(str(state["uid"]), state["uid"]), gnames.get(str(state["gid"]), state["gid"]))
            others = [entry for entry in state["others"] if (entry[1], entry[2]) != (uid, gid)]
            if (state["uid"], state["gid"]) == (uid, gid) and not others:
                records.append(record(rid, want, want, where="persisted"))
                continue
            before = top if not others else "%s, %d entries owned by others" % (top, len(others))
            records.append(record(rid, before, want, where="persisted", detail="owner handed to the app (recursive)"))
            actions.append({"op": "chown", "path": path, "uid": uid, "gid": gid})
    return records, actions


def apply_paths(actions, root="/"):
    """mkdir / chown -R (lchown: a symlink inside never redirects the change)."""
    for action in actions:
        uid, gid = action["uid"], action["gid"]
        host = host_path(root, action["path"])
        if action["op"] == "mkdir":
            os.makedirs(host, NEW_DIR_MODE)
            os.chmod(host, NEW_DIR_MODE)
            os.lchown(host, uid, gid)
            continue
        os.lchown(host, uid, gid)
        if os.path.isdir(host) and not os.path.islink(host):
            for dirpath, dirnames, filenames in os.walk(host):
                for name in dirnames + filenames:
                    os.lchown(os.path.join(dirpath, name), uid, gid)


# ------------------------------------------------------------------ health

def run_health_command(run, argv):
    """(ok, message) of the user's health command, run with the module's runner. It must
    end on its own (a client timeout such as curl's --max-time): nothing here kills it."""
    try:
        rc, out, err = run(argv)
    except OSError as exc:
        return False, "health command failed: %s" % exc
    output = (out + err).strip()[-300:]
    if rc != 0:
        return False, "health command exited %d: %s" % (rc, output)
    return True, "health command ok"


def missing_ports(app, root="/"):
    return confine.ports_listening(app["ports"], listening_sockets(host_path(root, "/proc")))


class Clock(object):
    """Time and sleep in one object so health loops can be driven by tests."""

    def now(self):
        return time.monotonic()

    def sleep(self, seconds):
        time.sleep(seconds)


def error_records(records, detail):
    """Mark the changed records of a failed app as errors, keeping what they tried to do."""
    out = []
    for rec in records:
        if rec["status"] == "changed":
            rec = dict(rec, status=ERROR, detail=detail)
        out.append(rec)
    return out


def judge_process(app, pid, expected, ctx, settled, label):
    """How the app's main process ``pid`` does: ``(verdict, reason, view)``, verdict True
    (healthy), False (runs, but not as the policy says: stop waiting) or None (not yet:
    not listening, not settled, or its health command still fails). ``label`` words a
    healthy result ("running as", "started,")."""
    view = confine.read_process_view(pid, ctx["root"])
    missing = missing_ports(app, ctx["root"])
    if missing:
        return None, "not listening on %s" % ", ".join(missing), view
    if view is None or not settled:
        return None, "settling", view
    wrong = confine.matches_expected(view, expected) if expected else []
    if wrong:
        keys = [k for k in confine.KEYS_ORDER if k in expected]
        return False, "runs with %s, the policy says %s" % (
            confine.descriptor(view, keys, view["last_cap"]), confine.descriptor(expected, keys, view["last_cap"])), view
    if app["health_command"]:
        ok, message = run_health_command(ctx["run"], app["health_command"])
        return (True if ok else None), message, view
    return True, "%s pid %d%s" % (label, pid, ", listening" if app["ports"] else ""), view
