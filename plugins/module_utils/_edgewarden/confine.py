# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Least-privilege confinement of services: the per-app policy and its pure pieces.

A policy says what an application truly needs (its own user, the paths it writes, the
ports it binds, the capabilities it uses). This file validates it, turns it into systemd
directives (``systemd_directives``, ``render_dropin``), says which protections an init
system without systemd cannot give (``unavailable_protections``), and describes a running
process (``parse_proc_status``, ``describe_process``) so the result is read from the
kernel, not assumed. Everything here is pure except the few ``read_*`` helpers, which
take a root path so tests run them on a tree under tmp_path.
"""

from __future__ import annotations

import os
import re

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import read_text

# Linux capability names by bit number (capability.h); names beyond the table print as cap_N.
CAPABILITIES = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
    "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
    "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
    "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
    "lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
    "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
)
CAP_BITS = dict((name, bit) for bit, name in enumerate(CAPABILITIES))

# Capabilities whose system calls are in systemd's @privileged / @resources groups: an app
# that needs one of them cannot also have that group denied.
PRIVILEGED_SYSCALL_CAPS = frozenset((
    "chown", "fowner", "fsetid", "setuid", "setgid", "setpcap", "sys_chroot", "sys_module", "sys_rawio",
    "sys_boot", "sys_time", "sys_admin", "sys_pacct", "dac_read_search", "bpf", "sys_resource",
))
RESOURCES_SYSCALL_CAPS = frozenset(("sys_nice", "sys_resource", "ipc_lock"))

USER_DYNAMIC = "dynamic"
USER_ROOT = "root"
# systemd's range for DynamicUser= identities (DYNAMIC_UID_MIN..DYNAMIC_UID_MAX)
DYNAMIC_UID_RANGE = (61184, 65519)
# With DynamicUser= a service can only own directories systemd manages for it.
DYNAMIC_DIRECTORIES = (
    ("/var/lib/", "StateDirectory"),
    ("/var/cache/", "CacheDirectory"),
    ("/var/log/", "LogsDirectory"),
    ("/run/", "RuntimeDirectory"),
)
DEFAULT_ADDRESS_FAMILIES = ("AF_UNIX", "AF_INET", "AF_INET6")
# What is compared between a running process and its policy, in this order.
KEYS_ORDER = ("user", "cap_eff", "cap_bnd")

DROPIN_NAME = "99-edgewarden-confine.conf"
DROPIN_HEADER = (
    "# Managed by edgewarden.hardening (app_confine): least-privilege confinement of %s.\n"
    "# Rewritten on every run: change the app's policy, not this file.\n"
)

# The protections every confined unit gets, with the systemd release that introduced each:
# older systemd (Yocto LTS images) gets the ones it knows and the result lists the others.
BASE_DIRECTIVES = (
    ("NoNewPrivileges", "yes", 187),
    ("ProtectSystem", "strict", 232),
    ("ProtectHome", "yes", 214),
    ("PrivateTmp", "yes", 0),
    ("PrivateDevices", "yes", 209),
    ("PrivateIPC", "yes", 248),
    ("ProtectKernelTunables", "yes", 232),
    ("ProtectKernelModules", "yes", 232),
    ("ProtectKernelLogs", "yes", 244),
    ("ProtectControlGroups", "yes", 232),
    ("ProtectClock", "yes", 245),
    ("ProtectHostname", "yes", 242),
    ("ProtectProc", "invisible", 247),
    ("RestrictNamespaces", "yes", 233),
    ("RestrictRealtime", "yes", 231),
    ("RestrictSUIDSGID", "yes", 242),
    ("LockPersonality", "yes", 235),
    ("MemoryDenyWriteExecute", "yes", 231),
    ("SystemCallArchitectures", "native", 213),
    ("SystemCallErrorNumber", "EPERM", 209),
    ("UMask", "0077", 0),
)
DERIVED_MIN_VERSION = {
    "DynamicUser": 232, "StateDirectory": 235, "CacheDirectory": 235, "LogsDirectory": 235,
    "RuntimeDirectory": 211, "StateDirectoryMode": 235, "CacheDirectoryMode": 235, "LogsDirectoryMode": 235,
    "RuntimeDirectoryMode": 211, "RemoveIPC": 232, "PrivateUsers": 232, "AmbientCapabilities": 229,
    "ReadWritePaths": 231, "RestrictAddressFamilies": 211, "SystemCallFilter": 187,
    "CapabilityBoundingSet": 0, "DevicePolicy": 0, "DeviceAllow": 0,
}

# What systemd gives a unit that BusyBox init, SysV init, OpenRC or procd cannot, with the
# mechanism the module uses there instead (namespaces and seccomp need a service manager
# that sets them up before exec; setpriv and a Python launcher cannot).
NON_SYSTEMD_UNAVAILABLE = (
    ("ProtectSystem/ReadWritePaths", "no read-only mount namespace: the app can write wherever file permissions let its user"),
    ("ProtectHome", "no mount namespace: home directories are protected by their permissions only"),
    ("PrivateTmp", "no private /tmp: the app shares /tmp with every other process"),
    ("PrivateDevices", "no private /dev: device nodes are protected by their permissions only"),
    ("ProtectKernelTunables/Modules/Logs", "no read-only /proc/sys or /sys: only the missing capabilities protect them"),
    ("SystemCallFilter", "no seccomp filter: every system call stays available"),
    ("RestrictAddressFamilies", "no socket family filter (seccomp)"),
    ("MemoryDenyWriteExecute", "no W^X enforcement (seccomp)"),
    ("RestrictNamespaces/RestrictRealtime/LockPersonality", "not enforced (seccomp)"),
    ("exposure score", "systemd-analyze security measures systemd units only"),
)
# Without a setpriv that can shrink it, the bounding set stays full; NoNewPrivileges keeps
# exec from using it (no setuid or file-capability gain).
BOUNDING_SET_UNAVAILABLE = ("CapabilityBoundingSet", "the bounding set stays full (this setpriv has no --bounding-set): "
                            "NoNewPrivileges keeps an exec from gaining any capability")
NNP_UNAVAILABLE = ("NoNewPrivileges", "no setpriv on the device: setuid programs the app runs still gain privileges")

_USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}\$?$")
_DIRECTIVE = re.compile(r"^[A-Z][A-Za-z0-9]+$")
_FAMILY = re.compile(r"^~?AF_[A-Z0-9]+$")
_UNIT_SUFFIX = ".service"
_EXPOSURE = re.compile(r"Overall exposure level for (\S+): ([0-9]+(?:\.[0-9]+)?) (\S+)")


# ------------------------------------------------------------------ capabilities

def normalize_capability(name):
    """``CAP_NET_BIND_SERVICE``, ``cap_net_bind_service`` or ``net_bind_service`` -> ``net_bind_service``; None if unknown."""
    text = str(name or "").strip().lower()
    if text.startswith("cap_"):
        text = text[4:]
    return text if text in CAP_BITS else None


def cap_mask(names):
    mask = 0
    for name in names:
        mask |= 1 << CAP_BITS[name]
    return mask


def cap_names(mask):
    """Names of the bits set in ``mask``, lowest bit first."""
    names = []
    bit = 0
    while mask >> bit:
        if (mask >> bit) & 1:
            names.append(CAPABILITIES[bit] if bit < len(CAPABILITIES) else "cap_%d" % bit)
        bit += 1
    return names


def describe_caps(mask, last_cap=None):
    """``none``, ``all`` (every capability this kernel has), ``all except a,b`` when most are
    set (a root process in a trimmed bounding set), or a comma-separated list."""
    if not mask:
        return "none"
    if last_cap is not None:
        full = (1 << (last_cap + 1)) - 1
        if mask == full:
            return "all"
        if mask & full == mask and len(cap_names(mask)) > (last_cap + 1) // 2:
            return "all except " + ",".join(cap_names(full & ~mask))
    return ",".join(cap_names(mask))


def systemd_cap(name):
    return "CAP_" + name.upper()


# ------------------------------------------------------------------ policy

def unit_name(name):
    return name if name.endswith(_UNIT_SUFFIX) else name + _UNIT_SUFFIX


def app_basename(name):
    return name[:-len(_UNIT_SUFFIX)] if name.endswith(_UNIT_SUFFIX) else name


def parse_port(value):
    """``80``, ``"80"``, ``"tcp/80"`` or ``"udp/5353"`` -> ``("tcp", 80)``; None when invalid."""
    text = str(value).strip().lower()
    proto = "tcp"
    if "/" in text:
        proto, text = text.split("/", 1)
    if proto not in ("tcp", "udp") or not text.isdigit():
        return None
    port = int(text)
    if not 0 < port < 65536:
        return None
    return proto, port


def _check_path(path, label, errors):
    if not isinstance(path, str) or not path.startswith("/"):
        errors.append("%s: %r is not an absolute path" % (label, path))
        return None
    if re.search(r"\s", path):
        errors.append("%s: %r contains whitespace, which systemd path lists cannot hold unquoted" % (label, path))
        return None
    normal = os.path.normpath(path)
    if normal == "/":
        errors.append("%s: / cannot be a writable path (that is no confinement)" % label)
        return None
    return normal


def _dynamic_directory(path):
    for prefix, directive in DYNAMIC_DIRECTORIES:
        if path.startswith(prefix) and len(path) > len(prefix):
            return directive, path[len(prefix):]
    return None, None


def validate_apps(apps, systemd):
    """Normalise the per-app policies. Pure.

    ``systemd`` says whether the device runs systemd (DynamicUser and directive overrides
    only mean something there). Returns ``(normalized, errors, warnings)``; every problem
    of every app is in ``errors`` so one message can name them all.
    """
    errors, warnings, normalized, seen = [], [], [], set()
    for index, raw in enumerate(apps or []):
        raw = raw or {}
        name = str(raw.get("name") or "").strip()
        label = name or "apps[%d]" % index
        if not name:
            errors.append("%s: name is required" % label)
            continue
        if re.search(r"[\s/]", name):
            errors.append("%s: a service name cannot contain whitespace or /" % label)
            continue
        base = app_basename(name)
        if base in seen:
            errors.append("%s: listed twice" % label)
        seen.add(base)
        app = {
            "name": base,
            "unit": unit_name(name),
            "state": raw.get("state") or "present",
            "binary": raw.get("binary"),
            "create_user": raw.get("create_user", True) is not False,
            "jit": bool(raw.get("jit")),
            "health_command": raw.get("health_command") or [],
            "max_exposure": raw.get("max_exposure"),
            "overrides": raw.get("systemd") or {},
        }
        if app["binary"] is not None and _check_path(app["binary"], "%s: binary" % label, errors) is None:
            app["binary"] = None
        user = raw.get("user") or base
        if user == USER_DYNAMIC and not systemd:
            errors.append("%s: user: dynamic needs systemd (DynamicUser=); name an account instead" % label)
        elif user not in (USER_DYNAMIC,) and not _USER_NAME.match(user):
            errors.append("%s: %r is not a valid user name; set user" % (label, user))
        app["user"] = user
        group = raw.get("group") or (user if user not in (USER_DYNAMIC, USER_ROOT) else None)
        if group is not None and not _USER_NAME.match(group):
            errors.append("%s: %r is not a valid group name" % (label, group))
        app["group"] = group

        caps = []
        for cap in raw.get("capabilities") or []:
            canonical = normalize_capability(cap)
            if canonical is None:
                errors.append("%s: unknown capability %r" % (label, cap))
            elif canonical not in caps:
                caps.append(canonical)
        app["capabilities"] = sorted(caps, key=lambda c: CAP_BITS[c])

        ports = []
        for port in raw.get("ports") or []:
            parsed = parse_port(port)
            if parsed is None:
                errors.append("%s: port %r is not 1-65535, tcp/N or udp/N" % (label, port))
            elif parsed not in ports:
                ports.append(parsed)
        app["ports"] = ports
        if user != USER_ROOT and "net_bind_service" not in caps and any(p < 1024 for dummy, p in ports):
            warnings.append("%s: binds a port below 1024 as %s without CAP_NET_BIND_SERVICE; it will fail unless "
                            "net.ipv4.ip_unprivileged_port_start allows it" % (label, user))

        paths = []
        for path in raw.get("writable_paths") or []:
            normal = _check_path(path, "%s: writable_paths" % label, errors)
            if normal is not None and normal not in paths:
                paths.append(normal)
                if user == USER_DYNAMIC and _dynamic_directory(normal)[0] is None:
                    errors.append("%s: with user: dynamic a writable path must be a directory under /var/lib, "
                                  "/var/cache, /var/log or /run (systemd owns it for the dynamic user): %s" % (label, normal))
        app["writable_paths"] = paths

        devices = []
        for path in raw.get("devices") or []:
            normal = _check_path(path, "%s: devices" % label, errors)
            if normal is not None and normal not in devices:
                devices.append(normal)
        app["devices"] = devices

        families = raw.get("address_families")
        families = list(DEFAULT_ADDRESS_FAMILIES) if families is None else [str(f).upper() for f in families]
        for family in families:
            if not _FAMILY.match(family):
                errors.append("%s: %r is not an address family such as AF_INET" % (label, family))
        app["address_families"] = families

        if not isinstance(app["overrides"], dict):
            errors.append("%s: systemd must be a dict of directive: value" % label)
            app["overrides"] = {}
        errors.extend(check_overrides(app["overrides"], label))
        if app["overrides"] and not systemd:
            warnings.append("%s: systemd directives are ignored: the device does not run systemd" % label)

        command = app["health_command"]
        if not isinstance(command, list) or not all(isinstance(word, str) for word in command):
            errors.append("%s: health_command must be a list of strings (argv)" % label)
            app["health_command"] = []
        if app["max_exposure"] is not None:
            try:
                app["max_exposure"] = float(app["max_exposure"])
            except (TypeError, ValueError):
                errors.append("%s: max_exposure %r is not a number" % (label, app["max_exposure"]))
        if app["state"] not in ("present", "absent"):
            errors.append("%s: state must be present or absent" % label)
        normalized.append(app)
    return normalized, errors, warnings


def check_overrides(overrides, label):
    errors = []
    for key, value in (overrides or {}).items():
        if not _DIRECTIVE.match(str(key)):
            errors.append("%s: %r is not a systemd directive name" % (label, key))
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is not None and not isinstance(item, (str, int, float, bool)):
                errors.append("%s: %s: values must be strings, numbers, booleans or lists of them" % (label, key))
            elif isinstance(item, str) and "\n" in item:
                errors.append("%s: %s: a value cannot span lines" % (label, key))
    return errors


# ------------------------------------------------------------------ systemd directives

def _directive_value(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def systemd_directives(app, version=None, common_overrides=None):
    """The ``[Service]`` directives of ``app`` as an ordered list of ``(key, value)``.

    A value that is a list is an accumulating directive: it renders as an empty assignment
    (which resets whatever the unit or earlier drop-ins set) followed by one line per item,
    so the drop-in is the whole truth for that directive. Returns ``(directives, skipped)``;
    ``skipped`` names the default protections this systemd ``version`` is too old for.
    """
    user = app["user"]
    caps = app["capabilities"]
    out = []
    skipped = []

    def add(key, value, minimum=None):
        if minimum is None:
            minimum = DERIVED_MIN_VERSION.get(key, 0)
        if version is not None and minimum and version < minimum:
            skipped.append("%s (systemd %d+)" % (key, minimum))
            return
        out.append((key, value))

    # Paths in /var/lib, /var/cache and /var/log become StateDirectory= and the like, for
    # any user: systemd then owns them for the service, and moves them to and from
    # /var/lib/private when DynamicUser= is switched, so a rollback across that switch
    # finds them. /run stays a ReadWritePaths= for named users (a RuntimeDirectory= is
    # removed when the service stops).
    managed, writable = [], []
    for path in app["writable_paths"]:
        directive, relative = _dynamic_directory(path)
        if directive and (user == USER_DYNAMIC or directive != "RuntimeDirectory"):
            managed.append((directive, relative))
        else:
            writable.append(path)
    if user == USER_DYNAMIC:
        add("DynamicUser", "yes")
    else:
        add("User", user)
        if app["group"]:
            add("Group", app["group"])
    for dummy, directive in DYNAMIC_DIRECTORIES:
        names = [relative for kind, relative in managed if kind == directive]
        if names:
            add(directive, names)
            add(directive + "Mode", "0750")
    for key, value, minimum in BASE_DIRECTIVES:
        if key == "MemoryDenyWriteExecute" and app["jit"]:
            continue
        if key == "PrivateDevices" and app["devices"]:
            add(key, "no", minimum)
            add("DevicePolicy", "closed")
            add("DeviceAllow", ["%s rw" % device for device in app["devices"]])
            continue
        add(key, value, minimum)
    if user != USER_DYNAMIC or writable:
        add("ReadWritePaths", writable)
    if user != USER_ROOT:
        add("RemoveIPC", "yes")
        if not caps:
            # a user namespace would make the listed capabilities useless on host resources
            add("PrivateUsers", "yes")
    add("CapabilityBoundingSet", [systemd_cap(cap) for cap in caps])
    if user != USER_ROOT:
        add("AmbientCapabilities", [systemd_cap(cap) for cap in caps])
    families = app["address_families"]
    add("RestrictAddressFamilies", list(families) if families else ["none"])
    syscall_filter = ["@system-service"]
    if not PRIVILEGED_SYSCALL_CAPS.intersection(caps) and user != USER_ROOT:
        syscall_filter.append("~@privileged")
    if not RESOURCES_SYSCALL_CAPS.intersection(caps):
        syscall_filter.append("~@resources")
    add("SystemCallFilter", syscall_filter)

    merged = list(out)
    for overrides in (common_overrides or {}, app["overrides"] or {}):
        for key, value in overrides.items():
            merged = [(k, v) for k, v in merged if k != key]
            if value is None:
                continue
            if isinstance(value, list):
                merged.append((key, [_directive_value(item) for item in value]))
            else:
                merged.append((key, _directive_value(value)))
    return merged, skipped


def render_dropin(unit, directives):
    lines = [DROPIN_HEADER % unit, "[Service]\n"]
    for key, value in directives:
        if isinstance(value, list):
            lines.append("%s=\n" % key)
            lines.extend("%s=%s\n" % (key, item) for item in value)
        else:
            lines.append("%s=%s\n" % (key, value))
    return "".join(lines)


def _directive(directives, key):
    for name, value in directives:
        if name == key:
            return value
    return None


def expected_process(directives, unit_user=None, unit_base=None):
    """What the running process must look like under ``directives``: user and capability sets.

    Keys the directives do not decide (an override removed them) are left out, so they are
    not compared. With DynamicUser= systemd reuses a static account of the same name (User=
    or the unit's name) when one exists, so that name satisfies ``dynamic`` too.
    """
    expected = {}
    if str(_directive(directives, "DynamicUser")).lower() in ("yes", "true", "1", "on"):
        expected["user"] = USER_DYNAMIC
        expected["dynamic_name"] = _directive(directives, "User") or unit_base
    else:
        expected["user"] = _directive(directives, "User") or unit_user or USER_ROOT
    bounding = _directive(directives, "CapabilityBoundingSet")
    ambient = _directive(directives, "AmbientCapabilities")
    bnd = _caps_of(bounding) if isinstance(bounding, list) else None
    if bnd is not None:
        expected["cap_bnd"] = bnd
    if expected["user"] == USER_ROOT:
        if bnd is not None:
            expected["cap_eff"] = bnd
    elif isinstance(ambient, list):
        eff = _caps_of(ambient)
        expected["cap_eff"] = eff & bnd if bnd is not None else eff
    elif not ambient:
        expected["cap_eff"] = 0
    return expected


def _caps_of(values):
    names = []
    for value in values:
        for word in str(value).split():
            canonical = normalize_capability(word)
            if canonical:
                names.append(canonical)
    return cap_mask(names)


# ------------------------------------------------------------------ the running process

def parse_proc_status(text):
    """/proc/<pid>/status -> uid, gid, capability masks, NoNewPrivs and Seccomp. Pure."""
    info = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        value = value.strip()
        try:
            if key in ("Uid", "Gid"):
                info[key.lower()] = int(value.split()[1])  # the effective id
            elif key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                info["cap_" + key[3:].lower()] = int(value, 16)
            elif key == "NoNewPrivs":
                info["nnp"] = int(value)
            elif key == "Seccomp":
                info["seccomp"] = int(value)
            elif key == "Name":
                info["name"] = value
        except (ValueError, IndexError):
            continue
    return info


def parse_passwd(text):
    """/etc/passwd or /etc/group text -> list of field lists (comments and blanks skipped)."""
    entries = []
    for line in (text or "").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        entries.append(line.split(":"))
    return entries


def user_name_of(uid, passwd_entries):
    for fields in passwd_entries:
        if len(fields) > 2 and fields[2] == str(uid):
            return fields[0]
    return None


def describe_process(status, passwd_entries, last_cap=None):
    """The comparable view of a running process: ``{user, cap_eff, cap_bnd}`` plus details."""
    uid = status.get("uid")
    if uid is None:
        return None
    name = user_name_of(uid, passwd_entries)
    if name is None and DYNAMIC_UID_RANGE[0] <= uid <= DYNAMIC_UID_RANGE[1]:
        name = USER_DYNAMIC
    return {
        "uid": uid,
        "user": name or "uid %d" % uid,
        "cap_eff": status.get("cap_eff", 0),
        "cap_bnd": status.get("cap_bnd", 0),
        "cap_amb": status.get("cap_amb", 0),
        "nnp": status.get("nnp"),
        "seccomp": status.get("seccomp"),
        "last_cap": last_cap,
    }


def descriptor(view, keys=("user", "cap_eff", "cap_bnd"), last_cap=None):
    """``user=ew-demo cap_eff=net_bind_service cap_bnd=net_bind_service`` for the keys given."""
    if view is None:
        return "not running"
    parts = []
    for key in keys:
        if key not in view:
            continue
        value = view[key]
        if key.startswith("cap_"):
            value = describe_caps(value, last_cap)
        parts.append("%s=%s" % (key, value))
    return " ".join(parts)


def process_report(view, last_cap=None):
    """The observed process as plain data for the module's result."""
    if view is None:
        return None
    return {
        "uid": view["uid"],
        "user": view["user"],
        "cap_eff": describe_caps(view["cap_eff"], last_cap),
        "cap_bnd": describe_caps(view["cap_bnd"], last_cap),
        "cap_amb": describe_caps(view["cap_amb"], last_cap),
        "no_new_privs": view.get("nnp") == 1 if view.get("nnp") is not None else None,
        "seccomp": {0: "disabled", 1: "strict", 2: "filter"}.get(view.get("seccomp")),
    }


def read_process_view(pid, root="/"):
    """The comparable view of process ``pid`` read under ``root``, or None when it is gone."""
    proc = os.path.join(root, "proc", str(pid), "status")
    status = parse_proc_status(read_text(proc))
    if not status:
        return None
    view = describe_process(status, parse_passwd(read_text(os.path.join(root, "etc/passwd"))), read_last_cap(root))
    view["pid"] = pid
    return view


def read_last_cap(root="/"):
    text = read_text(os.path.join(root, "proc/sys/kernel/cap_last_cap"))
    try:
        return int(text.strip())
    except (AttributeError, ValueError):
        return None


def matches_expected(view, expected):
    """The keys of ``expected`` that ``view`` does not satisfy (empty when it complies)."""
    if view is None:
        return ["not running"]
    wrong = []
    for key, value in expected.items():
        if key == "dynamic_name":
            continue
        if key == "user" and value == USER_DYNAMIC and view.get("user") == expected.get("dynamic_name"):
            continue
        if view.get(key) != value:
            wrong.append(key)
    return wrong


# ------------------------------------------------------------------ health and exposure

def ports_listening(ports, sockets):
    """The ``(proto, port)`` pairs of ``ports`` that no listening socket serves."""
    missing = []
    for proto, port in ports:
        if not any(s["port"] == port and s["proto"].startswith(proto) for s in sockets):
            missing.append("%s/%d" % (proto, port))
    return missing


def parse_exposure(text):
    """``systemd-analyze security`` output -> ``(score, rating)`` or ``(None, None)``."""
    match = _EXPOSURE.search(text or "")
    if not match:
        return None, None
    return float(match.group(2)), match.group(3)


def parse_systemd_version(text):
    """``systemctl --version`` -> 252 (None when it cannot be read)."""
    match = re.search(r"^systemd (\d+)", text or "", re.M)
    return int(match.group(1)) if match else None


def parse_show(text):
    """``systemctl show -p A,B`` output -> dict."""
    props = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key] = value
    return props


def unavailable_protections(has_setpriv, bounding_set):
    """Protections an app started by a non-systemd init cannot have here, as ``{name: why}``."""
    missing = list(NON_SYSTEMD_UNAVAILABLE)
    if not has_setpriv:
        missing.append(NNP_UNAVAILABLE)
    if not bounding_set:
        missing.append(BOUNDING_SET_UNAVAILABLE)
    return [{"protection": name, "why": why} for name, why in missing]
