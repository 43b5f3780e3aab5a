# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""The SSH server on a device: OpenSSH's sshd_config or dropbear's command line, and
authorized_keys, replaced only behind a validation and a commit-confirm.

Pure parts (rendering, input checks, ``sshd -T`` parsing, the access pre-flight, the
inittab rewrite, authorized_keys merging) take text and return text or data, so unit
tests run them without a device. The :class:`Step` class is the only code that writes.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import pwd
import re

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import commit_confirm as cc
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import procfs
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import record
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import (
    atomic_write,
    is_readonly_fs,
    read_text,
)

STATE_ROOTS = cc.state_roots("sshd")
C_ENV = {"LC_ALL": "C", "LANG": "C"}
HEADER = "# Managed by edgewarden.hardening (sshd_config): replaced after validation and a confirmed new connection.\n"

# keywords whose list value is one comma-separated argument
COMMA_LISTS = frozenset(k.lower() for k in (
    "Ciphers", "MACs", "KexAlgorithms", "HostKeyAlgorithms", "PubkeyAcceptedAlgorithms",
    "PubkeyAcceptedKeyTypes", "HostbasedAcceptedAlgorithms", "CASignatureAlgorithms"))
# keywords that may appear on several lines (a list value gives one line per item)
REPEATED = frozenset(k.lower() for k in (
    "HostKey", "HostCertificate", "ListenAddress", "Port", "Subsystem", "AcceptEnv", "SetEnv",
    "AuthorizedKeysFile", "Include"))
_KEYWORD = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_CRITERION = r"(User|Group|Host|LocalAddress|LocalPort|Address|RDomain)\s+\S+"
_CRITERIA = re.compile(r"^(All|%s(\s+%s)*)$" % (_CRITERION, _CRITERION))
DROPBEAR_OWNED = ("-F", "-E")  # foreground and stderr logging: the init respawning it needs them
_DROPBEAR_OPT = re.compile(r"^-[A-Za-z]$")


class SshdError(Exception):
    def __init__(self, message, detail=""):
        super(SshdError, self).__init__(message)
        self.detail = detail


# ----------------------------------------------------------------------------- OpenSSH config (pure)


def format_value(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def setting_lines(key, value, indent=""):
    if isinstance(value, (list, tuple)):
        if key.lower() in COMMA_LISTS:
            return ["%s%s %s" % (indent, key, ",".join(format_value(v) for v in value))]
        if key.lower() in REPEATED:
            return ["%s%s %s" % (indent, key, format_value(v)) for v in value]
        return ["%s%s %s" % (indent, key, " ".join(format_value(v) for v in value))]
    return ["%s%s %s" % (indent, key, format_value(value))]


def render_openssh(settings, match_blocks=None, include=None):
    """The whole sshd_config: global settings sorted by keyword, then ``Include`` (so
    our values win: sshd keeps the first value it reads), then the Match blocks in order."""
    lines = [HEADER.rstrip("\n")]
    for key in sorted(settings or {}, key=lambda k: k.lower()):
        if settings[key] is None:
            continue
        lines.extend(setting_lines(key, settings[key]))
    if include:
        lines.append("# drop-ins may add what is not set above, never override it")
        lines.append("Include %s" % include)
    for block in match_blocks or []:
        lines.append("")
        lines.append("Match %s" % block["criteria"].strip())
        body = block.get("settings") or {}
        for key in sorted(body, key=lambda k: k.lower()):
            if body[key] is not None:
                lines.extend(setting_lines(key, body[key], "    "))
    return "\n".join(lines) + "\n"


def _bad_value(value):
    values = value if isinstance(value, (list, tuple)) else [value]
    for item in values:
        if isinstance(item, (dict, list, tuple)) or item is None:
            return "a nested or empty value"
        text = format_value(item)
        if "\n" in text or "\r" in text or "#" in text or not text.strip():
            return "an empty value or one with a newline or '#'"
    return None


def input_problems(settings, match_blocks):
    """Every problem with the module's OpenSSH input, before sshd ever sees it."""
    problems = []

    def check(where, body):
        if not isinstance(body, dict):
            problems.append("%s must be a dict of sshd_config keywords" % where)
            return
        for key, value in sorted(body.items()):
            if not _KEYWORD.match(str(key)):
                problems.append("%s: %r is not an sshd_config keyword" % (where, key))
            elif key.lower() in ("match", "include"):
                problems.append("%s: %s is not a setting (use match_blocks / the Include the module writes)" % (where, key))
            elif value is not None and _bad_value(value):
                problems.append("%s: %s has %s" % (where, key, _bad_value(value)))

    check("settings", settings or {})
    for i, block in enumerate(match_blocks or []):
        criteria = (block or {}).get("criteria") or ""
        if not _CRITERIA.match(criteria.strip()):
            problems.append("match_blocks[%d]: criteria %r is not 'All' or pairs like 'User jump Address 10.0.0.0/8'" % (i, criteria))
        check("match_blocks[%d].settings" % i, (block or {}).get("settings") or {})
    return problems


def parse_effective(text):
    """``sshd -T`` output as ``{keyword: [value, ...]}`` (keywords lower case)."""
    out = {}
    for line in (text or "").splitlines():
        parts = line.strip().split(None, 1)
        if not parts:
            continue
        out.setdefault(parts[0].lower(), []).append(parts[1] if len(parts) > 1 else "")
    return out


def _first(effective, key, default=""):
    values = effective.get(key) or [default]
    return values[0]


def host_matches(pattern, addr):
    """An AllowUsers/DenyUsers host part: a CIDR, a wildcard, or a literal address."""
    if "/" in pattern:
        try:
            return ipaddress.ip_address(addr) in ipaddress.ip_network(pattern, strict=False)
        except ValueError:
            return False
    return fnmatch.fnmatchcase(addr.lower(), pattern.lower())


def user_pattern_matches(pattern, user, addr):
    if "@" in pattern:
        upat, hpat = pattern.split("@", 1)
        return fnmatch.fnmatchcase(user, upat) and host_matches(hpat, addr)
    return fnmatch.fnmatchcase(user, pattern)


def access_problems(effective, user, addr):
    """Why ``user`` from ``addr`` could NOT log in with a key under this effective
    config (``sshd -T -C`` output, Match blocks already applied); empty when it can."""
    problems = []
    who = "%s from %s" % (user, addr)
    if _first(effective, "pubkeyauthentication", "yes") != "yes":
        problems.append("%s: PubkeyAuthentication is not yes" % who)
    methods = _first(effective, "authenticationmethods", "any")
    if methods != "any" and not any(m.split(",")[0].startswith("publickey") for m in methods.split()):
        problems.append("%s: AuthenticationMethods %s does not start with publickey" % (who, methods))
    if user == "root" and _first(effective, "permitrootlogin", "prohibit-password") in ("no", "forced-commands-only"):
        problems.append("%s: PermitRootLogin is %s" % (who, _first(effective, "permitrootlogin")))
    allow = " ".join(effective.get("allowusers", [])).split()
    if allow and not any(user_pattern_matches(p, user, addr) for p in allow):
        problems.append("%s: not in AllowUsers %s" % (who, " ".join(allow)))
    deny = " ".join(effective.get("denyusers", [])).split()
    if any(user_pattern_matches(p, user, addr) for p in deny):
        problems.append("%s: matched by DenyUsers %s" % (who, " ".join(deny)))
    forced = _first(effective, "forcecommand", "none")
    if forced not in ("none", ""):
        problems.append("%s: ForceCommand %s would replace the controller's commands" % (who, forced))
    return problems


# ----------------------------------------------------------------------------- dropbear (pure)


def dropbear_problems(options):
    problems = []
    for i, opt in enumerate(options or []):
        text = str(opt)
        if not text or any(c in text for c in "\n\r'\"\\;&|`$<>"):
            problems.append("dropbear_options[%d] %r: empty or has a character that is not safe on an inittab line" % (i, text))
    if options and not _DROPBEAR_OPT.match(str(options[0])):
        problems.append("dropbear_options must start with an option like -s, not %r" % options[0])
    for opt in DROPBEAR_OWNED:
        if opt in (options or []):
            problems.append("dropbear_options: %s is added by the module (init needs it), do not list it" % opt)
    return problems


def find_dropbear_line(inittab):
    """``(index, line, argv)`` of the one respawn line that runs dropbear, or None."""
    for i, line in enumerate((inittab or "").splitlines()):
        if line.lstrip().startswith("#"):
            continue
        fields = line.split(":", 3)
        if len(fields) == 4 and fields[2] == "respawn":
            argv = fields[3].split()
            if argv and os.path.basename(argv[0]) == "dropbear":
                return i, line, argv
    return None


def render_inittab(inittab, options):
    """The inittab with dropbear's respawn line carrying exactly ``options`` (plus -F -E)."""
    found = find_dropbear_line(inittab)
    if found is None:
        raise SshdError("no respawn line runs dropbear in the inittab: dropbear's options cannot be managed here")
    index, line, argv = found
    prefix = line.rsplit(":", 1)[0] if line.count(":") == 3 else ":".join(line.split(":", 3)[:3])
    new_line = "%s:%s" % (prefix, " ".join([argv[0]] + list(DROPBEAR_OWNED) + [str(o) for o in options]))
    lines = inittab.splitlines()
    lines[index] = new_line
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- authorized_keys (pure)


def key_id(line):
    """``(type, blob)`` of a key line, options skipped; None for comments and blanks."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    fields = re.findall(r'(?:[^\s"]|"[^"]*")+', text)
    for i, field in enumerate(fields):
        if (field.startswith(("ssh-", "ecdsa-", "sk-")) or "-cert-v01@" in field) and i + 1 < len(fields):
            return field, fields[i + 1]
    return None


def render_authorized_keys(current, keys, options=None, exclusive=False):
    """The file with every key of ``keys`` (with ``options`` in front); other keys kept
    unless ``exclusive``. A key already present is rewritten with the wanted options."""
    wanted = []
    ids = set()
    for key in keys:
        kid = key_id(key)
        if kid is None or kid in ids:
            continue
        ids.add(kid)
        wanted.append(("%s %s" % (options, key.strip())) if options else key.strip())
    kept = []
    if not exclusive:
        for line in (current or "").splitlines():
            kid = key_id(line)
            if kid is not None and kid not in ids:
                kept.append(line.rstrip())
    lines = kept + wanted
    return ("\n".join(lines) + "\n") if lines else ""


def authorized_keys_problems(entries):
    problems = []
    for i, entry in enumerate(entries or []):
        for j, key in enumerate(entry.get("keys") or []):
            if "\n" in key or key_id(key) is None:
                problems.append("authorized_keys[%d].keys[%d] is not one public key line" % (i, j))
        if entry.get("options") and "\n" in entry["options"]:
            problems.append("authorized_keys[%d].options has a newline" % i)
        if entry.get("exclusive") and not entry.get("keys"):
            problems.append("authorized_keys[%d]: exclusive with no keys would remove every key of %s" % (i, entry.get("user")))
    return problems


# ----------------------------------------------------------------------------- processes


def find_master(proc_root, names, pidfile=None):
    """The pid of the listening server (sshd's or dropbear's master), or None.

    The pid file first (checked against the process's cmdline), else the process named
    ``names`` whose parent is not one of them (children are per-connection sessions).
    """
    if pidfile:
        text = read_text(pidfile)
        if text and text.strip().isdigit():
            info = procfs.process_info(int(text.strip()), proc_root)
            if info["cmdline"] and any(n in info["cmdline"][0] for n in names):
                return info["pid"]
    candidates = []
    for pid in procfs.list_pids(proc_root):
        info = procfs.process_info(pid, proc_root)
        if not info["cmdline"] or not any(os.path.basename(info["cmdline"][0].split()[0].rstrip(":")).startswith(n)
                                          or info["cmdline"][0].startswith(n + ":") for n in names):
            continue
        parent = procfs.process_info(info["ppid"], proc_root) if info["ppid"] else {"cmdline": []}
        pcmd = parent["cmdline"][0] if parent["cmdline"] else ""
        if not any(n in pcmd for n in names):
            candidates.append(pid)
    return min(candidates) if candidates else None


def user_home(user):
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None, None, None
    return entry.pw_dir, entry.pw_uid, entry.pw_gid


# ----------------------------------------------------------------------------- the module's steps


def config_id(path):
    return "ssh.sshd_config%s" % path


class Step(object):
    """Plan, then (outside check mode) arm, install, reload; or confirm / report a token."""

    def __init__(self, params, run, bins, check_mode=False, roots=STATE_ROOTS, proc_root="/proc"):
        self.p = params
        self.run = run
        self.bins = bins  # sshd, dropbear, systemctl, systemd_run, setsid (None when absent)
        self.check_mode = check_mode
        self.roots = roots
        self.proc_root = proc_root
        self.warnings = []

    # -- which server

    def flavor(self):
        wanted = self.p["flavor"]
        if wanted != "auto":
            return wanted
        if self.bins.get("sshd"):
            return "openssh"
        if self.bins.get("dropbear"):
            return "dropbear"
        raise SshdError("neither sshd nor dropbear is installed on this device")

    # -- OpenSSH validation

    def sshd_check(self, path, contexts=None):
        """``sshd -t -f path``; then ``sshd -T -C ...`` for every access check."""
        sshd = self.bins["sshd"]
        rc, _out, err = self.run([sshd, "-t", "-f", path])
        if rc != 0:
            raise SshdError("sshd -t refused the candidate config, nothing was changed", err.strip())
        problems = []
        for check in contexts or []:
            spec = "user=%s,addr=%s,host=%s,laddr=%s,lport=%s" % (
                check["user"], check["addr"], check.get("host") or "edgewarden-check",
                check.get("laddr") or "0.0.0.0", check.get("lport") or 22)
            rc, out, err = self.run([sshd, "-T", "-f", path, "-C", spec])
            if rc != 0:
                raise SshdError("sshd -T -C %s refused the candidate config, nothing was changed" % spec, err.strip())
            problems.extend(access_problems(parse_effective(out), check["user"], check["addr"]))
        if problems:
            raise SshdError("the candidate config would lock out a required login, nothing was changed: %s" % "; ".join(problems))

    # -- plan

    def plan(self):
        """``[(record, file_change)]``: file_change is ``(path, old, new, mode, owner)`` or None."""
        flavor = self.flavor()
        items = []
        if flavor == "openssh":
            path = self.p["path"]
            new = render_openssh(self.p["settings"] or {}, self.p["match_blocks"] or [], self.p["include"])
            old = read_text(path)
            self._validate_candidate(new, path)
            items.append((record(config_id(path), _digest(old), _digest(new), "persisted"), (path, old, new, 0o600, None)))
        else:
            path = self.p["inittab"]
            old = read_text(path)
            if old is None:
                raise SshdError("%s does not exist: dropbear's options live on its inittab line here" % path)
            new = render_inittab(old, self.p["dropbear_options"] or [])
            before = find_dropbear_line(old)[1]
            after = find_dropbear_line(new)[1]
            items.append((record("ssh.dropbear%s" % path, before, after, "persisted"), (path, old, new, 0o644, None)))
        for entry in self.p["authorized_keys"] or []:
            home, uid, gid = user_home(entry["user"])
            rid = "ssh.authorized_keys/%s" % entry["user"]
            if home is None and self.check_mode:
                # created by an earlier task of the same play (the bastion's jump accounts)
                items.append((record(rid, None, _keys_summary(render_authorized_keys("", entry.get("keys") or [],
                              entry.get("options"))), "persisted", detail="user does not exist yet"), None))
                continue
            if home is None:
                raise SshdError("authorized_keys: user %s does not exist on this device" % entry["user"])
            path = os.path.join(home, ".ssh", "authorized_keys")
            old = read_text(path)
            new = render_authorized_keys(old, entry.get("keys") or [], entry.get("options"), entry.get("exclusive", False))
            items.append((record(rid, _keys_summary(old), _keys_summary(new), "persisted"), (path, old, new, 0o600, (uid, gid))))
        live = any(r["status"] == "changed" for r, _f in items)
        items.append((record("ssh.server/%s" % flavor, "running", "reloaded" if live else "running", "live"), None))
        self.flavor_name = flavor
        return items

    def _validate_candidate(self, text, path):
        import tempfile
        directory = os.path.dirname(path) if os.path.isdir(os.path.dirname(path)) else None
        fd, tmp = tempfile.mkstemp(prefix=".edgewarden-sshd-", dir=directory)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            self.sshd_check(tmp, self.p["access_checks"])
        finally:
            os.unlink(tmp)

    # -- reload

    def reload_commands(self):
        """Shell commands that make the running server take the files on disk."""
        if self.flavor_name == "openssh":
            unit = self._systemd_unit()
            pidfile = "/run/sshd.pid" if os.path.exists("/run/sshd.pid") else "/var/run/sshd.pid"
            if unit:
                return ["%s reload %s" % (cc.shell_quote(self.bins["systemctl"]), unit)]
            pid = find_master(self.proc_root, ("sshd",), pidfile)
            if pid is None:
                raise SshdError("cannot find the running sshd to reload")
            # SIGHUP: sshd re-executes itself with the new config; sessions stay up
            return ["kill -HUP %d" % pid]
        pid = find_master(self.proc_root, ("dropbear",), "/var/run/dropbear.pid")
        # BusyBox init rereads inittab on SIGHUP; the old master then stops listening and
        # init respawns dropbear from the new line (running sessions are separate processes)
        cmds = ["kill -HUP 1", "sleep 1"]
        if pid is not None:
            cmds.append("kill -TERM %d 2>/dev/null || true" % pid)
        else:
            cmds.append("if [ -r /var/run/dropbear.pid ]; then kill -TERM \"$(cat /var/run/dropbear.pid)\" 2>/dev/null || true; fi")
        return cmds

    def _systemd_unit(self):
        if not (self.bins.get("systemctl") and os.path.isdir("/run/systemd/system")):
            return None
        for unit in ("ssh.service", "sshd.service"):
            rc, out, _err = self.run([self.bins["systemctl"], "is-active", unit])
            if rc == 0 and out.strip() == "active":
                return unit
        return None

    # -- steps

    def apply(self, timeout, token=None):
        items = self.plan()
        records = [r for r, _f in items]
        changes = [f for r, f in items if f is not None and r["status"] == "changed"]
        result = {"records": records, "changed": any(r["status"] == "changed" for r in records), "flavor": self.flavor_name}
        first = items[0][1]
        if first is not None and items[0][0]["status"] == "changed":
            result["diff_text"] = {"before_header": first[0], "after_header": first[0],
                                   "before": first[1] or "", "after": first[2]}
        if self.check_mode or not changes:
            return result
        for path, _old, _new, _mode, _owner in changes:
            if is_readonly_fs(path):
                raise SshdError("%s is on a read-only filesystem: nothing was changed" % path)
        root = cc.state_root(self.roots)
        pending = cc.pending_rollbacks(root)
        if pending:
            raise SshdError("a rollback armed by an earlier run is still waiting (token %s): it would undo this "
                            "run; wait for it to fire, then run again" % pending[0]["token"])
        cc.prune(root)
        token = cc.use_token(token)
        reload = self.reload_commands()
        files, restore = {}, []
        for i, (path, old, _new, mode, _owner) in enumerate(changes):
            if old is None:
                restore.append("rm -f %s" % cc.shell_quote(path))
            else:
                files["saved.%d" % i] = old
                restore.append("cat ./saved.%d > %s.edgewarden-restore && mv -f %s.edgewarden-restore %s"
                               % (i, cc.shell_quote(path), cc.shell_quote(path), cc.shell_quote(path)))
        restore.extend(reload)
        info = cc.arm(root, token, restore, timeout, self.run, "sshd", self.bins.get("systemd_run"),
                      self.bins.get("setsid"), files=files)
        token_dir = info["state_dir"]
        try:
            for path, old, new, mode, owner in changes:
                self._install(path, old, new, mode, owner)
            for command in reload:
                rc, _out, err = self.run(["/bin/sh", "-c", command])
                if rc != 0:
                    raise SshdError("reloading the SSH server failed (%s)" % command, err.strip())
        except Exception as exc:
            state = cc.rollback_now(token_dir, self.run)
            raise SshdError("the change could not be installed and was undone (rollback: %s): %s" % (state, exc),
                            getattr(exc, "detail", ""))
        info["connection"] = cc.ssh_connection()
        result["commit_confirm"] = info
        return result

    def _install(self, path, old, new, mode, owner):
        if owner is not None:
            directory = os.path.dirname(path)
            if not os.path.isdir(directory):
                os.mkdir(directory, 0o700)
                os.chown(directory, owner[0], owner[1])
        if old is not None:
            mode = os.stat(path).st_mode & 0o7777
        validate = None
        if path == self.p["path"] and self.flavor_name == "openssh":
            def validate(tmp):
                try:
                    self.sshd_check(tmp)
                except SshdError as exc:
                    return False, "%s: %s" % (exc, exc.detail)
                return True, ""
        atomic_write(path, new, mode, validate)
        if owner is not None:
            os.chown(path, owner[0], owner[1])

    def confirm(self, token, apply_connection=None):
        result = cc.confirm_step(token, self.roots, apply_connection, self.run)
        if result.pop("warning", None):
            self.warnings.append("could not identify the SSH connections from /proc: the confirmation relies on "
                                 "the controller having opened a new one")
        return result

    def status(self, token):
        return cc.status_step(token, self.roots)


def _digest(text):
    if text is None:
        return None
    import hashlib
    return "sha256:%s" % hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _keys_summary(text):
    if text is None:
        return None
    keys = [key_id(line) for line in text.splitlines()]
    return "%d keys, %s" % (len([k for k in keys if k]), _digest(text))
