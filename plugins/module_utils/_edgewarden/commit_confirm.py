# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Commit-confirm on the device, for anything that can cut access (firewall, sshd, keys).

The caller saves what it needs and gives a list of shell commands that put the old state
back (``restore``). :func:`arm` writes them to ``restore.sh`` in a token directory and
starts a detached ``/bin/sh`` that sleeps, then runs them unless the change was
confirmed. Confirmation and rollback race on one ``rename`` of the ``armed`` marker:
whichever renames it first wins, so a late confirmation can never pretend a rolled-back
change is live.

The confirmation must come over a different TCP connection than the apply:
:func:`ssh_connection` identifies the SSH connection a process runs under from /proc.

Only the standard library, Python 3.8+; the rollback needs sh, sleep, mv and date
(BusyBox has them) plus whatever the restore commands call.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import signal
import time

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import procfs
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import read_text

KEEP_STATE_DIRS = 5

ARMED, CONFIRMED, ROLLING, ROLLED_BACK, ROLLBACK_FAILED, CANCELLED, STALE = (
    "armed", "confirmed", "rolling", "rolled-back", "rollback-failed", "cancelled", "stale")
# the file present in a token directory says its state; checked in this order
STATE_FILES = (ROLLED_BACK, ROLLBACK_FAILED, ROLLING, CONFIRMED, CANCELLED, STALE, ARMED)

# <epoch>-<12 hex>: made by the action plugin (so it can ask about an apply whose answer
# never came back) or here; also what keeps a token from naming another path
TOKEN_RE = re.compile(r"^[0-9]+-[0-9a-f]{12}$")


class CommitConfirmError(Exception):
    """Arming failed; ``detail`` holds what the device said."""

    def __init__(self, message, detail=""):
        super(CommitConfirmError, self).__init__(message)
        self.detail = detail


def state_roots(name):
    """Where the token directories of one domain (``firewall``, ``sshd``) live: tmpfs /run first."""
    return ("/run/edgewarden/%s" % name, "/tmp/edgewarden-%s" % name)


def state_root(candidates):
    """The first state directory that exists or can be made."""
    last = None
    for path in candidates:
        try:
            if not os.path.isdir(path):
                os.makedirs(path, 0o700)
            if os.access(path, os.W_OK):
                return path
        except OSError as exc:
            last = exc
    raise OSError("no writable state directory among %s: %s" % (", ".join(candidates), last))


def new_token():
    return "%d-%s" % (int(time.time()), hashlib.sha256(os.urandom(16)).hexdigest()[:12])


def use_token(token):
    """The controller's token when it is well formed (so the controller can ask about an
    apply whose answer never came back), else a new one."""
    return token if token and TOKEN_RE.match(token) else new_token()


def find_token_dir(token, roots):
    if not TOKEN_RE.match(token or ""):
        return None
    for root in roots:
        path = os.path.join(root, token)
        if os.path.isdir(path):
            return path
    return None


def token_state(token_dir):
    """The state of one apply from the marker files in its directory."""
    for name in STATE_FILES:
        if os.path.exists(os.path.join(token_dir, name)):
            return name
    return None


def shell_quote(text):
    return "'" + str(text).replace("'", "'\"'\"'") + "'"


# ----------------------------------------------------------------------------- scripts (pure)


def restore_script(commands, label):
    """``restore.sh``: the caller's commands, stopping at the first that fails."""
    lines = ["#!/bin/sh", "# edgewarden %s rollback: puts the state from before the apply back" % label, "set -e"]
    lines.extend(commands)
    return "\n".join(lines) + "\n"


def rollback_script(timeout, token_dir, label):
    """The detached rollback: only sh, sleep, mv and date, then ``restore.sh``.

    ``mv armed rolling`` is a rename(2): if the confirmation renamed ``armed`` first,
    this fails and nothing is restored; if this wins, the confirmation fails and says so.
    """
    return """#!/bin/sh
# edgewarden {label} rollback: restores the saved state unless the apply is confirmed
trap '' HUP
cd {dir} || exit 1
echo $$ > pid
sleep {timeout}
if mv armed rolling 2>/dev/null; then
  if /bin/sh ./restore.sh >rollback.out 2>rollback.err; then
    date +%s > rolled-back
  else
    date +%s > rollback-failed
  fi
fi
rm -f pid
""".format(dir=shell_quote(token_dir), timeout=int(timeout), label=label)


# ----------------------------------------------------------------------------- token directories


def read_json(path):
    text = read_text(path)
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


def write_file(path, text, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def sleeper_pid(token_dir, proc_root="/proc"):
    """The pid of this token's rollback shell when it is still running, else None."""
    text = read_text(os.path.join(token_dir, "pid"))
    if not text or not text.strip().isdigit():
        return None
    pid = int(text.strip())
    cmdline = procfs.parse_cmdline(procfs.read_bytes(os.path.join(proc_root, str(pid), "cmdline"), b""))
    if any(arg.endswith(os.path.join(token_dir, "rollback.sh")) for arg in cmdline):
        return pid
    return None


def stop_sleeper(token_dir):
    pid = sleeper_pid(token_dir)
    if pid is None:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            return False
    return True


def pending_rollbacks(root):
    """Armed rollbacks of earlier runs whose shell still runs; stale ones are marked stale."""
    pending = []
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return pending
    for name in names:
        path = os.path.join(root, name)
        if not os.path.isdir(path) or token_state(path) != ARMED:
            continue
        if sleeper_pid(path) is None:
            try:
                os.rename(os.path.join(path, ARMED), os.path.join(path, STALE))
            except OSError:
                pass
            continue
        info = read_json(os.path.join(path, "armed.json"))
        pending.append({"token": name, "deadline": info.get("deadline")})
    return pending


def prune(root, keep=KEEP_STATE_DIRS):
    """Remove the oldest finished token directories, keeping ``keep`` of them."""
    try:
        names = sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)))
    except OSError:
        return
    finished = [n for n in names if token_state(os.path.join(root, n)) not in (ARMED, ROLLING)]
    for name in finished[:-keep] if keep else finished:
        path = os.path.join(root, name)
        for entry in os.listdir(path):
            try:
                os.unlink(os.path.join(path, entry))
            except OSError:
                pass
        try:
            os.rmdir(path)
        except OSError:
            pass


def launch_detached(script_path, run, systemd_run=None, unit=None, setsid=None):
    """Start the rollback shell so it outlives the SSH session that started it.

    Under systemd a transient unit (``systemd-run``): it is not part of the login
    session, so logind's KillUserProcesses cannot take it down at logout. Elsewhere a
    background job in a session of its own (``setsid`` where it exists; the script also
    ignores SIGHUP) with no terminal and no inherited descriptors, so the SSH channel
    closes and the module's answer gets back. Returns how it was started.
    """
    last = None
    if systemd_run and unit:
        rc, _out, err = run([systemd_run, "--quiet", "--collect", "--unit", unit, "/bin/sh", script_path])
        if rc == 0:
            return "systemd-run"
        last = err.strip()
    argv = ([setsid] if setsid else []) + ["/bin/sh", script_path]
    rc, _out, err = run(["/bin/sh", "-c", '"$@" </dev/null >/dev/null 2>&1 &', "edgewarden-launch"] + argv)
    if rc != 0:
        raise CommitConfirmError("could not start the rollback process, so nothing was applied", err.strip())
    method = "detached (setsid)" if setsid else "detached"
    return method if last is None else "%s; systemd-run failed: %s" % (method, last[:120])


def wait_for_pid_file(token_dir, seconds=5.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if sleeper_pid(token_dir) is not None:
            return True
        time.sleep(0.05)
    return False


def arm(root, token, restore, timeout, run, label, systemd_run=None, setsid=None, files=None, check=None):
    """Write ``restore.sh`` (and ``files``, name -> text, saved copies the commands use)
    into a new token directory and start the rollback shell; returns the arming facts.

    Call it after everything that can be checked was checked and before the first
    change: a change that no rollback could undo must not be made. ``check(token_dir)``,
    when given, vets the saved files before anything is armed and raises to refuse
    (a state we could not restore is a state we must not replace).
    """
    token_dir = os.path.join(root, token)
    os.mkdir(token_dir, 0o700)
    for name, text in sorted((files or {}).items()):
        write_file(os.path.join(token_dir, name), text)
    if check is not None:
        check(token_dir)
    write_file(os.path.join(token_dir, "restore.sh"), restore_script(restore, label), 0o700)
    script = os.path.join(token_dir, "rollback.sh")
    write_file(script, rollback_script(timeout, token_dir, label), 0o700)
    now = int(time.time())
    info = {"token": token, "armed_at": now, "timeout": int(timeout), "deadline": now + int(timeout)}
    write_file(os.path.join(token_dir, "armed.json"), json.dumps(info))
    write_file(os.path.join(token_dir, ARMED), "%d\n" % now)
    unit = "edgewarden-%s-rollback-%s" % (label, token.split("-")[-1])
    method = launch_detached(script, run, systemd_run=systemd_run, unit=unit, setsid=setsid)
    if not wait_for_pid_file(token_dir):
        cancel(token_dir)
        raise CommitConfirmError("the rollback process did not start, so nothing was applied (method: %s)" % method)
    info["method"] = method
    info["pid"] = sleeper_pid(token_dir)
    info["state_dir"] = token_dir
    return info


def cancel(token_dir):
    """Disarm after a failed apply (nothing was changed, or the caller undid it)."""
    try:
        os.rename(os.path.join(token_dir, ARMED), os.path.join(token_dir, CANCELLED))
    except OSError:
        pass
    stop_sleeper(token_dir)


def confirm(token_dir):
    """Win the rename race against the rollback; returns the resulting state."""
    try:
        os.rename(os.path.join(token_dir, ARMED), os.path.join(token_dir, CONFIRMED))
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
        state = token_state(token_dir)
        deadline = time.time() + 10
        while state == ROLLING and time.time() < deadline:  # the rollback is restoring right now
            time.sleep(0.1)
            state = token_state(token_dir)
        return state
    stop_sleeper(token_dir)
    return CONFIRMED


def rollback_now(token_dir, run):
    """Restore immediately (a failed apply, or a confirmation that proves nothing)."""
    try:
        os.rename(os.path.join(token_dir, ARMED), os.path.join(token_dir, ROLLING))
    except OSError:
        return token_state(token_dir)
    stop_sleeper(token_dir)
    # the restore commands name saved copies relative to the token directory, as in rollback.sh
    rc, out, err = run(["/bin/sh", "-c", 'cd "$1" && /bin/sh ./restore.sh', "edgewarden-restore", token_dir])
    write_file(os.path.join(token_dir, "rollback.out"), out or "")
    write_file(os.path.join(token_dir, "rollback.err"), err or "")
    state = ROLLED_BACK if rc == 0 else ROLLBACK_FAILED
    write_file(os.path.join(token_dir, state), "%d\n" % int(time.time()))
    return state


def status(token_dir):
    """What happened to one apply, for the controller after a failed confirmation."""
    state = token_state(token_dir) if token_dir and os.path.isdir(token_dir) else None
    if state is None:
        return {"state": None}
    info = read_json(os.path.join(token_dir, "armed.json"))
    out = {"state": state, "armed_at": info.get("armed_at"), "timeout": info.get("timeout"), "deadline": info.get("deadline")}
    for name in (ROLLED_BACK, ROLLBACK_FAILED):
        text = read_text(os.path.join(token_dir, name))
        if text and text.strip().isdigit():
            out["restored_at"] = int(text.strip())
            if info.get("armed_at"):
                out["restored_after"] = int(text.strip()) - int(info["armed_at"])
    err = read_text(os.path.join(token_dir, "rollback.err"))
    if err and err.strip():
        out["rollback_error"] = err.strip()[:2000]
    return out


# ----------------------------------------------------------------------------- which connection is this?


def parse_tcp_connections(text):
    """``{inode: (local, lport, remote, rport)}`` of ESTABLISHED sockets in /proc/net/tcp{,6}."""
    conns = {}
    for line in (text or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3].upper() != "01":
            continue
        try:
            local, lport = fields[1].split(":")
            remote, rport = fields[2].split(":")
            conns[int(fields[9])] = (procfs.decode_address(local), int(lport, 16),
                                     procfs.decode_address(remote), int(rport, 16))
        except ValueError:
            continue
    return conns


def _unmap(address):
    return address[7:] if address.startswith("::ffff:") and "." in address else address


def ssh_connection(pid=None, proc_root="/proc"):
    """The TCP peer (``addr:port``) of the SSH session this process runs under, or None.

    Walks up the process tree to the first ancestor holding an established TCP socket
    (sshd's or dropbear's session process). Needs root to read their fd tables; without
    it, or without /proc, the answer is None ("cannot tell").
    """
    conns = {}
    for proto in ("tcp", "tcp6"):
        conns.update(parse_tcp_connections(read_text(os.path.join(proc_root, "net", proto))))
    if not conns:
        return None
    for ancestor in procfs.ancestors(pid or os.getpid(), proc_root)[1:]:
        for inode in sorted(procfs.socket_inodes(ancestor, proc_root)):
            if inode in conns:
                _local, _lport, remote, rport = conns[inode]
                return "%s:%d" % (_unmap(remote), rport)
    return None


# ----------------------------------------------------------------------------- the steps a module runs


def confirm_step(token, roots, apply_connection, run):
    """The ``confirm`` step: refuse (and roll back at once) a confirmation over the
    apply's own connection, else win the race. Returns a dict for the module result."""
    token_dir = find_token_dir(token, roots)
    if token_dir is None:
        return {"state": None, "confirmed": False, "detail": "no state for token %s (device rebooted?)" % token}
    connection = ssh_connection()
    if apply_connection and connection and apply_connection == connection:
        state = rollback_now(token_dir, run)
        return {"state": state, "confirmed": False, "connection": connection,
                "detail": "the confirmation came over the apply's own TCP connection (%s), so it proves nothing "
                          "about new connections; the previous state was restored" % connection}
    state = confirm(token_dir)
    result = {"state": state, "confirmed": state == CONFIRMED, "connection": connection}
    if not (apply_connection and connection):
        result["warning"] = ("could not identify the SSH connections from /proc (not root?): the confirmation "
                             "relies on the controller having opened a new one")
    if state != CONFIRMED:
        result.update(status(token_dir))
    return result


def status_step(token, roots):
    token_dir = find_token_dir(token, roots)
    if token_dir is None:
        return {"state": None, "detail": "no state for token %s (device rebooted?)" % token}
    return status(token_dir)
