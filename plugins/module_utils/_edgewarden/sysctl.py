# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""sysctl settings without the ``sysctl`` binary: key <-> /proc/sys path, value
normalisation and validation, a pure planner, the persisted file (owned file or
managed block), and the readers/appliers that touch /proc/sys.

Flow (see ``run``): read live values and the persisted file -> ``plan`` (pure:
every validation error at once, predicted records) -> ``apply_live`` and
``settle_live`` (real runs only) -> ``plan_persist`` (pure) -> ``write_persisted``
(real runs only).
Check mode runs the same code minus the two writers, so it returns the records
a real run would, except for what only a real write can reveal: a kernel that
refuses a value (EINVAL) and the clamp found by probing after such a refusal.
Readers and appliers take ``proc_sys`` so tests can use a fake tree.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import (
    CHANGED,
    UNCHANGED,
    UNSUPPORTED,
    ABSENT,
    ERROR,
    STATUSES,
    any_changed,
    record,
)
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import (
    atomic_write,
    is_readonly_fs,
    read_text,
)

PROC_SYS = "/proc/sys"
# Sorts after every distribution file (99-sysctl.conf, systemd's 99-protect-links.conf):
# at boot, the hardened value is the one that stays
DEFAULT_PERSIST_PATH = "/etc/sysctl.d/99-zz-edgewarden.conf"
SYSCTL_CONF = "/etc/sysctl.conf"
AUTO = "auto"


def choose_persist_path(persist_path, init_name):
    """Resolve ``auto``: BusyBox init runs only ``sysctl -p`` (sysctl.conf) from its rcS;
    systemd, procps' init script and OpenWrt's procd read sysctl.d."""
    if persist_path != AUTO:
        return persist_path
    return SYSCTL_CONF if init_name == "busybox" else DEFAULT_PERSIST_PATH


# Directories systemd-sysctl and `sysctl --system` read; later file names win.
SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")
ID_PREFIX = "kernel.sysctl/"
MANAGED_MARK = "# Managed by edgewarden.hardening (kernel_sysctl)."
OWNED_HEADER = (
    MANAGED_MARK + " Do not edit: this file is rewritten.\n"
    "# Applied at boot by systemd-sysctl or `sysctl --system`; override keys in the inventory instead.\n"
)
BLOCK_BEGIN = "# BEGIN edgewarden"
BLOCK_END = "# END edgewarden"
BLOCK_NOTE = MANAGED_MARK + " Lines between these markers are rewritten; edit outside them."
# sysctl values are at most a page; a bound keeps a mistaken path (a device) from being read forever.
MAX_READ = 65536
MISSING_POLICIES = ("fail", "warn", "skip")


# Values the kernel documents (and mostly enforces with proc_dointvec_minmax). Checked
# before anything is written so a typo fails the task instead of half-applying.
STATIC_RANGES = {
    "kernel.randomize_va_space": (0, 2),
    "kernel.kptr_restrict": (0, 2),
    "kernel.dmesg_restrict": (0, 1),
    "kernel.yama.ptrace_scope": (0, 3),
    "kernel.unprivileged_bpf_disabled": (0, 2),
    "kernel.unprivileged_userns_clone": (0, 1),
    "kernel.kexec_load_disabled": (0, 1),
    "kernel.modules_disabled": (0, 1),
    "kernel.io_uring_disabled": (0, 2),
    "net.core.bpf_jit_harden": (0, 2),
    "fs.protected_symlinks": (0, 1),
    "fs.protected_hardlinks": (0, 1),
    "fs.protected_fifos": (0, 2),
    "fs.protected_regular": (0, 2),
    "fs.suid_dumpable": (0, 2),
    "dev.tty.ldisc_autoload": (0, 1),
    "dev.tty.legacy_tiocsti": (0, 1),
    "vm.unprivileged_userfaultfd": (0, 1),
    "vm.mmap_min_addr": (0, None),
    "user.max_user_namespaces": (0, None),
    "net.ipv4.tcp_syncookies": (0, 2),
    "net.ipv4.conf.*.rp_filter": (0, 2),
    "net.ipv4.conf.*.log_martians": (0, 1),
    "net.ipv6.conf.*.accept_ra": (0, 2),
}

# Switches the kernel locks once set to this value: any other value is refused until reboot.
ONE_WAY = {
    "kernel.kexec_load_disabled": "1",
    "kernel.modules_disabled": "1",
    "kernel.unprivileged_bpf_disabled": "1",
    "kernel.yama.ptrace_scope": "3",
}

# Keys whose kernel maximum depends on the architecture and build: on EINVAL the applier
# probes downwards for the highest value the kernel accepts (more bits = more ASLR).
PROBE_KEYS = ("vm.mmap_rnd_bits", "vm.mmap_rnd_compat_bits")
KCONFIG_LIMITS = {
    "vm.mmap_rnd_bits": ("CONFIG_ARCH_MMAP_RND_BITS_MIN", "CONFIG_ARCH_MMAP_RND_BITS_MAX"),
    "vm.mmap_rnd_compat_bits": ("CONFIG_ARCH_MMAP_RND_COMPAT_BITS_MIN", "CONFIG_ARCH_MMAP_RND_COMPAT_BITS_MAX"),
}

# Text keys whose current value may look like a number (a numeric hostname, a single port
# in a list): never infer "must be integers" from their live value.
TEXT_KEYS = (
    "kernel.hostname",
    "kernel.domainname",
    "kernel.core_pattern",
    "kernel.modprobe",
    "kernel.poweroff_cmd",
    "net.core.default_qdisc",
    "net.ipv4.tcp_congestion_control",
    "net.ipv4.tcp_allowed_congestion_control",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv6.conf.*.stable_secret",
)

_INT_RE = re.compile(r"^-?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$")
_BAD_KEY_CHARS = re.compile(r"[\s=\x00-\x1f\x7f]")


# --- keys -------------------------------------------------------------------------


def control_id(key):
    return ID_PREFIX + key


def key_error(key):
    """Why ``key`` cannot name a sysctl, or None. Refuses anything that could leave /proc/sys."""
    if not isinstance(key, str) or not key:
        return "empty key"
    if _BAD_KEY_CHARS.search(key):
        return "key contains whitespace, '=' or control characters"
    segments = split_key(key)
    if any(seg in ("", ".", "..") for seg in segments):
        return "key has an empty, '.' or '..' segment"
    return None


def split_key(key):
    """Path segments of ``key``, as sysctl(8) and sysctl.d(5) read it.

    When the first separator is '/', slashes separate and dots are literal
    (``net/ipv4/conf/eth0.1/rp_filter``); when it is '.', dots separate and a '/'
    stands for a literal dot (``net.ipv4.conf.eth0/1.rp_filter``).
    """
    first = re.search(r"[./]", key)
    if first is None:
        return [key]
    if first.group() == "/":
        return key.split("/")
    return [seg.replace("/", ".") for seg in key.split(".")]


def canonical_key(segments):
    """The dotted spelling sysctl.d(5) files need: literal dots inside a segment become '/'."""
    return ".".join(seg.replace(".", "/") for seg in segments)


def normalise_key(key):
    """Canonical spelling of ``key`` without looking at the filesystem."""
    return canonical_key(split_key(key))


def _search(base, segments):
    # Shortest segment first, so the literal dot-per-level mapping wins when both exist.
    for i in range(1, len(segments) + 1):
        name = ".".join(segments[:i])
        path = os.path.join(base, name)
        if i == len(segments):
            if os.path.isfile(path):
                return [name]
        elif os.path.isdir(path):
            rest = _search(path, segments[i:])
            if rest is not None:
                return [name] + rest
    return None


def resolve_key(key, proc_sys=PROC_SYS):
    """``(segments, path)`` of the entry ``key`` names under ``proc_sys``; path is None if absent.

    Users often write a VLAN interface unescaped (``net.ipv4.conf.eth0.1.rp_filter``),
    so a dotted key whose literal path does not exist is matched against the tree,
    joining neighbouring segments with dots. ``key`` must have passed ``key_error``.
    """
    segments = split_key(key)
    path = os.path.join(proc_sys, *segments)
    if os.path.exists(path):
        return segments, path
    if "/" not in key and len(segments) > 1:
        found = _search(proc_sys, segments)
        if found is not None:
            return found, os.path.join(proc_sys, *found)
    return segments, None


def matches(key, patterns):
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)


def static_range(key):
    if key in STATIC_RANGES:
        return STATIC_RANGES[key]
    for pattern, bounds in STATIC_RANGES.items():
        if "*" in pattern and fnmatch.fnmatchcase(key, pattern):
            return bounds
    return None


# --- values -----------------------------------------------------------------------


def parse_int(token):
    """The integer the kernel reads from ``token`` (base 0 like its parser: 0x hex, 0 octal), or None."""
    if not _INT_RE.match(token):
        return None
    negative = token.startswith("-")
    body = token.lstrip("-")
    if body[:2].lower() == "0x":
        number = int(body, 16)
    elif len(body) > 1 and body.startswith("0"):
        number = int(body, 8)
    else:
        number = int(body)
    return -number if negative else number


def to_text(value):
    """``(text, error)``: a setting as one line with single spaces; lists become space-separated."""
    if isinstance(value, bool):
        # YAML turns yes/no/true into booleans; every boolean sysctl takes 1/0.
        return ("1" if value else "0"), None
    if isinstance(value, int):
        return str(value), None
    if isinstance(value, float):
        return None, "floats are not sysctl values (got %r)" % value
    if isinstance(value, (list, tuple)):
        parts = []
        for element in value:
            if isinstance(element, (list, tuple, dict)) or element is None:
                return None, "list elements must be numbers or words (got %r)" % (element,)
            text, error = to_text(element)
            if error:
                return None, error
            parts.append(text)
        value = " ".join(parts)
    if isinstance(value, dict):
        return None, "a mapping is not a sysctl value"
    if not isinstance(value, str):
        value = str(value)
    stripped = value.strip()
    if "\n" in stripped or "\r" in stripped:
        return None, "value contains a line break"
    if re.search(r"[\x00-\x08\x0b-\x1f\x7f]", stripped):
        return None, "value contains control characters"
    text = " ".join(stripped.split())
    if not text:
        return None, "empty value"
    return text, None


def is_int_list(text):
    return bool(text) and all(parse_int(token) is not None for token in text.split())


def value_kind(key, live_value):
    """``int`` when the kernel shows whole numbers for this key (so the new value must be
    the same count of integers), else ``text``. Inferred from the live value because
    userspace has no other way to learn a key's type."""
    if live_value is None or matches(key, TEXT_KEYS):
        return "text"
    return "int" if is_int_list(live_value) else "text"


def normalise(text, kind):
    """``(value, error)``: ``text`` as compared and written; integers become canonical decimal."""
    if kind != "int":
        return " ".join(text.split()), None
    numbers = [parse_int(token) for token in text.split()]
    if any(number is None for number in numbers):
        return None, "expects integers, got %r" % text
    return " ".join(str(number) for number in numbers), None


def same(a, b):
    """Compare two values as the kernel would: whitespace-insensitive, integers as integers."""
    if a is None or b is None:
        return a is b
    ta, tb = a.split(), b.split()
    if len(ta) != len(tb):
        return False
    for x, y in zip(ta, tb):
        ix, iy = parse_int(x), parse_int(y)
        if ix is not None and iy is not None:
            if ix != iy:
                return False
        elif x != y:
            return False
    return True


# --- limits -----------------------------------------------------------------------


def arch_limits(machine):
    """Per-architecture maxima the kernel does not enforce but KSPP documents."""
    if machine.startswith("arm") and not machine.startswith("arm64"):
        # 32-bit ARM: the Kconfig help for DEFAULT_MMAP_MIN_ADDR says not above 32768
        # (the vectors/loader layout); KSPP recommends 32768 there and 65536 elsewhere.
        return {"vm.mmap_min_addr": {"min": None, "max": 32768, "action": "clamp",
                                     "source": "32-bit ARM (%s): KSPP and Kconfig say not above 32768" % machine}}
    return {}


def kconfig_limits(config, source):
    """mmap_rnd_bits bounds from a parsed kernel config (see kconfig.parse_kconfig)."""
    limits = {}
    for key, (min_option, max_option) in KCONFIG_LIMITS.items():
        low = parse_int(str(config.get(min_option, "")))
        high = parse_int(str(config.get(max_option, "")))
        if low is None and high is None:
            continue
        used = [option for option, bound in ((min_option, low), (max_option, high)) if bound is not None]
        limits[key] = {"min": low, "max": high, "action": "clamp",
                       "source": "%s in %s" % (" and ".join(used), source)}
    return limits


def wants_kconfig_limits(settings, user_limits):
    """Only read the kernel config when a setting needs a bound it provides."""
    wanted = set(normalise_key(str(k)) for k, v in settings.items() if v is not None)
    given = set(normalise_key(str(k)) for k in (user_limits or {}))
    return any(key in wanted and key not in given for key in KCONFIG_LIMITS)


def merge_limits(builtin, user):
    """``(limits, errors)``: user limits win per key; an int is shorthand for ``{max: N}``."""
    limits = dict((normalise_key(k), dict(v)) for k, v in (builtin or {}).items())
    errors = []
    for key, spec in sorted((user or {}).items(), key=lambda kv: str(kv[0])):
        key = str(key)
        if isinstance(spec, int) and not isinstance(spec, bool):
            spec = {"max": spec}
        if not isinstance(spec, dict):
            errors.append("limits.%s: expected an integer maximum or a dict with min/max/action" % key)
            continue
        unknown = sorted(set(spec) - set(("min", "max", "action")))
        if unknown:
            errors.append("limits.%s: unknown field(s) %s" % (key, ", ".join(unknown)))
            continue
        entry = {"min": None, "max": None, "action": spec.get("action") or "clamp", "source": "limits option"}
        bad = False
        for bound in ("min", "max"):
            raw = spec.get(bound)
            if raw is None:
                continue
            number = parse_int(str(raw)) if not isinstance(raw, bool) else None
            if number is None:
                errors.append("limits.%s.%s: not an integer (%r)" % (key, bound, raw))
                bad = True
            entry[bound] = number
        if entry["action"] not in ("clamp", "reject"):
            errors.append("limits.%s.action: must be clamp or reject" % key)
            bad = True
        if not bad and entry["min"] is not None and entry["max"] is not None and entry["min"] > entry["max"]:
            errors.append("limits.%s: min %s is above max %s" % (key, entry["min"], entry["max"]))
            bad = True
        if not bad:
            limits[normalise_key(key)] = entry
    return limits, errors


def apply_limit(value, limit):
    """``(value, detail, error)`` for a single-integer value against one limit entry."""
    number = parse_int(value)
    if number is None or limit is None:
        return value, None, None
    low, high = limit.get("min"), limit.get("max")
    if high is not None and number > high:
        bound, side = high, "max"
    elif low is not None and number < low:
        bound, side = low, "min"
    else:
        return value, None, None
    if limit.get("action") == "reject":
        return None, None, "%s is outside this kernel's range (%s %s, from %s)" % (value, side, bound, limit.get("source"))
    return str(bound), "clamped %s to %s (%s %s, from %s)" % (value, bound, side, bound, limit.get("source")), None


# --- reading /proc/sys ------------------------------------------------------------


def _errno_text(exc):
    name = errno.errorcode.get(exc.errno, "errno %s" % exc.errno) if exc.errno else "error"
    return "%s: %s" % (name, exc.strerror or exc)


def read_value(path):
    """``(value, error)``: the file's value with whitespace collapsed, or why it is unreadable."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_READ)
    except (IOError, OSError) as exc:
        return None, _errno_text(exc)
    return " ".join(data.decode("utf-8", "replace").split()), None


def _unwritable_reason(path):
    if is_readonly_fs(path):
        return "not writable here: /proc/sys is mounted read-only (container?)"
    try:
        if not os.stat(path).st_mode & 0o222:
            return "not writable: the kernel exposes this key read-only"
    except OSError:
        pass
    return "not writable here (permission denied; namespaced or unprivileged?)"


def read_live(keys, proc_sys=PROC_SYS):
    """``{given key: entry}`` describing each key on this kernel; invalid keys map to None."""
    live = {}
    for given in keys:
        name = str(given)
        if key_error(name):
            live[given] = None
            continue
        segments, path = resolve_key(name, proc_sys)
        entry = {"key": canonical_key(segments), "path": path, "exists": path is not None,
                 "is_dir": False, "value": None, "read_error": None, "writable": False, "unwritable": None}
        if path is not None and os.path.isdir(path):
            entry["is_dir"] = True
        elif path is not None:
            entry["value"], entry["read_error"] = read_value(path)
            entry["writable"] = os.access(path, os.W_OK)
            if not entry["writable"]:
                entry["unwritable"] = _unwritable_reason(path)
        live[given] = entry
    return live


# --- persisted file: parse and render (pure) ---------------------------------------


def parse_conf(text):
    """``[(line_number, canonical key, value)]`` of the assignments in sysctl.conf syntax."""
    entries = []
    for number, line in enumerate((text or "").splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;" or "=" not in stripped:
            continue
        key, value = stripped.split("=", 1)
        # A leading '-' tells systemd-sysctl to ignore failures; the key is the same.
        key = key.strip().lstrip("-").strip()
        if key and not key_error(key):
            entries.append((number, normalise_key(key), " ".join(value.split())))
    return entries


def conf_values(text):
    """Later assignments win, as at boot."""
    return dict((key, value) for _number, key, value in parse_conf(text))


def render_lines(values):
    return ["%s = %s" % (key, values[key]) for key in sorted(values)]


def render_owned(values):
    return OWNED_HEADER + "".join(line + "\n" for line in render_lines(values))


def split_block(text):
    """``(before, block, after, error)`` as line lists; block is None when there is none."""
    lines = (text or "").splitlines()
    begin = [i for i, line in enumerate(lines) if line.strip() == BLOCK_BEGIN]
    if not begin:
        return lines, None, [], None
    start = begin[0]
    for end in range(start + 1, len(lines)):
        if lines[end].strip() == BLOCK_END:
            return lines[:start], lines[start:end + 1], lines[end + 1:], None
        if lines[end].strip() == BLOCK_BEGIN:
            break
    return lines, None, [], "%s on line %d has no matching %s; fix the file by hand" % (BLOCK_BEGIN, start + 1, BLOCK_END)


def render_block(text, values):
    """``text`` with the managed block replaced (or appended), foreign lines untouched.
    With no values the block is removed. Returns ``(new_text, error)``."""
    before, block, after, error = split_block(text)
    if error:
        return None, error
    new_block = [BLOCK_BEGIN, BLOCK_NOTE] + render_lines(values) + [BLOCK_END] if values else []
    if block is None:
        lines = list(before)
        if new_block and lines and lines[-1].strip():
            lines.append("")
        lines += new_block
    else:
        lines = before + new_block + after
    return ("\n".join(lines) + "\n") if lines else "", None


def persist_mode(path, text):
    """``block`` for sysctl.conf (BusyBox reads only that file) and for any existing file
    this module did not write; ``owned`` otherwise (the module writes every line)."""
    if os.path.basename(path) == "sysctl.conf":
        return "block"
    if text and text.strip() and not text.startswith(MANAGED_MARK):
        return "block"
    return "owned"


def managed_text(text, mode):
    if mode == "owned":
        return text or "", None
    _before, block, _after, error = split_block(text)
    return "\n".join(block or []), error


# --- reading the persisted side ----------------------------------------------------


def _later_files(path, sysctl_dirs, sysctl_conf):
    """Files read after ours at boot that could override our keys. BusyBox-style
    sysctl.conf targets have none: that init reads no other file."""
    if os.path.basename(path) == "sysctl.conf":
        return []
    found = []
    real = os.path.realpath(path)
    name = os.path.basename(path)
    for directory in sysctl_dirs:
        try:
            entries = sorted(os.listdir(directory))
        except OSError:
            continue
        for entry in entries:
            if entry.endswith(".conf") and entry > name:
                found.append(os.path.join(directory, entry))
    if sysctl_conf:
        # `sysctl --system` (procps, OpenWrt) reads /etc/sysctl.conf after sysctl.d.
        found.append(sysctl_conf)
    seen, result = set([real]), []
    for candidate in found:
        resolved = os.path.realpath(candidate)
        if resolved in seen or not os.path.isfile(resolved):
            continue
        seen.add(resolved)
        text = read_text(resolved)
        if text:
            result.append((candidate, text))
    return result


def read_persisted(path, sysctl_dirs=SYSCTL_DIRS, sysctl_conf=SYSCTL_CONF):
    """Everything the planner needs about the persist target, read once."""
    real = os.path.realpath(path)
    exists = os.path.isfile(real)
    try:
        mode = os.stat(real).st_mode & 0o7777 if exists else 0o644
    except OSError:
        mode = 0o644
    return {
        "path": path,
        "real_path": real,
        "exists": exists,
        "text": read_text(real) if exists else None,
        "mode": mode,
        "readonly": is_readonly_fs(real),
        "later": _later_files(path, sysctl_dirs, sysctl_conf),
    }


# --- planning (pure) ---------------------------------------------------------------


def _tolerated(given, key, optional_keys):
    if optional_keys is None:
        return True
    optional = set(normalise_key(str(k)) for k in optional_keys)
    return key in optional or normalise_key(given) in optional


def plan(settings, live, persisted=None, limits=None, missing="fail", optional_keys=None, limit_errors=None):
    """Validate everything and predict one live record per managed key.

    ``live`` comes from ``read_live``; ``persisted`` from ``read_persisted`` (None when
    persisting is off); ``limits`` from ``merge_limits``. ``missing`` applies to every
    key when ``optional_keys`` is None, else only to the listed keys (the rest must
    exist). A value of None means "not managed": no live change, and the key leaves the
    persisted file. Returns ``{"errors", "warnings", "items", "unmanaged"}``.
    """
    errors = list(limit_errors or [])
    warnings = []
    items = []
    unmanaged = []
    absent = []
    seen = {}
    limits = limits or {}
    for given in sorted(settings, key=str):
        name = str(given)
        value = settings[given]
        problem = key_error(name)
        if problem:
            errors.append("%s: %s" % (name, problem))
            continue
        entry = live.get(given) or {"key": normalise_key(name), "exists": False}
        key = entry["key"]
        if key in seen:
            errors.append("%s: same key as %s" % (name, seen[key]))
            continue
        seen[key] = name
        if value is None:
            unmanaged.append(key)
            continue
        text, problem = to_text(value)
        if problem:
            errors.append("%s: %s" % (name, problem))
            continue
        if entry.get("is_dir"):
            errors.append("%s: is a directory under /proc/sys, not a setting" % name)
            continue
        if not entry["exists"]:
            if missing == "fail" or not _tolerated(name, key, optional_keys):
                errors.append("%s: no such key on this kernel (%s)" % (name, os.path.join(PROC_SYS, *split_key(key))))
                continue
            absent.append(key)
            items.append({"key": key, "given": name, "path": None, "value": None, "kind": "text", "write": False,
                          "persist": False, "probe": False,
                          "live": record(control_id(key), None, text, "live", ABSENT,
                                         "not present on this kernel (optional key)")})
            continue
        kind = value_kind(key, entry.get("value"))
        desired, problem = normalise(text, kind)
        if problem:
            errors.append("%s: %s" % (name, problem))
            continue
        current = entry.get("value")
        if kind == "int" and len(desired.split()) != len(current.split()):
            errors.append("%s: expects %d integer(s) like the kernel's %r, got %r"
                          % (name, len(current.split()), current, desired))
            continue
        detail = None
        single = kind == "int" and len(desired.split()) == 1
        if single and key in limits:
            desired, detail, problem = apply_limit(desired, limits[key])
            if problem:
                errors.append("%s: %s" % (name, problem))
                continue
        bounds = static_range(key)
        if single and bounds is not None:
            number = parse_int(desired)
            low, high = bounds
            if (low is not None and number < low) or (high is not None and number > high):
                errors.append("%s: %s is outside %s..%s" % (name, desired, low, "" if high is None else high))
                continue
        items.append(_live_item(key, name, entry, desired, kind, detail))
    if absent and missing == "warn":
        warnings.append("sysctl keys not present on this kernel, skipped: %s" % ", ".join(sorted(absent)))
    if persisted is not None and not errors:
        warnings += _override_warnings(items, persisted)
    return {"errors": errors, "warnings": warnings, "items": items, "unmanaged": unmanaged}


def _live_item(key, given, entry, desired, kind, detail):
    current = entry.get("value")
    item = {"key": key, "given": given, "path": entry["path"], "value": desired, "kind": kind,
            "write": False, "persist": True, "probe": key in PROBE_KEYS and kind == "int"}
    cid = control_id(key)
    if entry.get("read_error"):
        item["live"] = record(cid, None, desired, "live", UNSUPPORTED, _join(detail, "cannot read: %s" % entry["read_error"]))
    elif same(current, desired):
        item["live"] = record(cid, current, desired, "live", UNCHANGED, detail)
    elif key in ONE_WAY and same(current, ONE_WAY[key]):
        item["live"] = record(cid, current, desired, "live", UNSUPPORTED,
                              _join(detail, "one-way switch: the kernel keeps %s until reboot" % current))
    elif not entry.get("writable"):
        item["live"] = record(cid, current, desired, "live", UNSUPPORTED, _join(detail, entry.get("unwritable")))
    else:
        item["write"] = True
        item["live"] = record(cid, current, desired, "live", CHANGED, detail)
    return item


def _join(*parts):
    text = "; ".join(p for p in parts if p)
    return text or None


def _override_warnings(items, persisted):
    """Keys another boot-time file sets differently (it would undo ours at boot)."""
    wanted = dict((item["key"], item["value"]) for item in items if item["value"] is not None)
    warnings = []
    mode = persist_mode(persisted["path"], persisted.get("text"))
    sources = list(persisted.get("later") or [])
    if mode == "block" and persisted.get("text"):
        before, _block, after, _error = split_block(persisted["text"])
        sources.append((persisted["path"] + " (outside the managed block)", "\n".join(before + after)))
    for source, text in sources:
        for number, key, value in parse_conf(text):
            if key in wanted and not same(value, wanted[key]):
                warnings.append("%s line %d sets %s = %s, which may override %s at boot"
                                % (source, number, key, value, wanted[key]))
    return warnings


def plan_persist(items, unmanaged, persisted):
    """Pure: persisted records and the new file text (None when nothing changes).

    Returns ``{"records", "text", "persisted_to", "warnings", "errors"}``.
    """
    path = persisted["path"]
    mode = persist_mode(path, persisted.get("text"))
    managed, error = managed_text(persisted.get("text"), mode)
    on_disk = conf_values(managed)
    result = {"records": [], "text": None, "persisted_to": path, "warnings": [], "errors": [], "mode": mode}
    records = result["records"]
    if error:
        for item in items:
            records.append(record(control_id(item["key"]), None, item["value"], "persisted", ERROR, error))
        result["errors"].append(error)
        result["persisted_to"] = None
        return result
    target = dict(on_disk)
    keys_seen = set()
    for item in items:
        key = item["key"]
        keys_seen.add(key)
        cid = control_id(key)
        before = on_disk.get(key)
        if before is not None and item["kind"] == "int":
            before = normalise(before, "int")[0] or before
        if item["value"] is None:
            if before is None:
                records.append(record(cid, None, None, "persisted", ABSENT, "not persisted: key does not exist on this kernel"))
            else:
                target.pop(key, None)
                records.append(record(cid, before, None, "persisted", CHANGED, "removed: key does not exist on this kernel"))
        elif not item["persist"]:
            records.append(record(cid, before, item["value"], "persisted", UNSUPPORTED,
                                  "not persisted: the kernel rejected this value"))
        else:
            status = UNCHANGED if same(before, item["value"]) else CHANGED
            if status == CHANGED:
                target[key] = item["value"]
            records.append(record(cid, before, item["value"], "persisted", status))
    for key in sorted(set(on_disk) - keys_seen):
        target.pop(key, None)
        detail = "removed: no longer managed" if key in unmanaged else "removed: not in settings (file is managed)"
        records.append(record(control_id(key), on_disk[key], None, "persisted", CHANGED, detail))
    if not any_changed(records):
        if not persisted.get("exists") and not target:
            result["persisted_to"] = None
        return result
    if persisted.get("readonly"):
        for i, rec in enumerate(records):
            if rec["status"] == CHANGED:
                records[i] = record(rec["id"], rec["before"], rec["after"], "persisted", UNSUPPORTED, "read-only filesystem")
        result["persisted_to"] = None
        result["warnings"].append("could not persist sysctl settings: %s is on a read-only filesystem" % path)
        return result
    if mode == "owned":
        result["text"] = render_owned(target)
    else:
        result["text"], _error = render_block(persisted.get("text"), target)
    return result


# --- applying (real runs only) -----------------------------------------------------


def write_value(path, value):
    """One write() of ``value``; returns None or the OSError (the kernel's refusal surfaces
    on write). No O_CREAT: a key that vanished (interface removed) must not become a file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    except OSError as exc:
        return exc
    try:
        os.write(fd, value.encode("utf-8"))
    except OSError as exc:
        return exc
    finally:
        os.close(fd)
    return None


def classify_write_error(exc):
    """``(reason, persist)``: why the kernel refused, and whether the value is still worth
    persisting (a permission problem here does not make the value wrong for boot)."""
    code = getattr(exc, "errno", None)
    if code in (errno.EINVAL, errno.ERANGE):
        return "rejected by the kernel (%s)" % _errno_text(exc), False
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "not writable here (%s)" % _errno_text(exc), True
    return "write failed (%s)" % _errno_text(exc), True


def _probe(item, current):
    """After EINVAL on a PROBE_KEY: the highest value between current and desired the
    kernel accepts. Refused writes change nothing, so probing is harmless."""
    desired = parse_int(item["value"])
    low = max(current + 1, desired - 64)
    for candidate in range(desired - 1, low - 1, -1):
        if write_value(item["path"], str(candidate)) is None:
            return candidate
    return None


def apply_live(items):
    """Write every planned change, read it back, and rewrite each item's live record."""
    for item in items:
        if not item["write"]:
            continue
        rec = item["live"]
        cid, before, desired = rec["id"], rec["before"], item["value"]
        note = rec.get("detail")
        exc = write_value(item["path"], desired)
        if exc is not None:
            reason, persist = classify_write_error(exc)
            current = parse_int(before or "")
            if (getattr(exc, "errno", None) == errno.EINVAL and item["probe"] and current is not None
                    and parse_int(desired) is not None and parse_int(desired) > current):
                accepted = _probe(item, current)
                if accepted is not None:
                    item["value"] = str(accepted)
                    item["live"] = record(cid, before, item["value"], "live", CHANGED, _join(
                        note, "clamped: the kernel refused %s (EINVAL) and no Kconfig limit was known; "
                              "%s is the highest value it accepted" % (desired, accepted)))
                    continue
                reason = "rejected: the kernel refused %s (EINVAL) and nothing above %s; kept %s" % (desired, before, before)
            item["persist"] = persist
            item["live"] = record(cid, before, desired, "live", UNSUPPORTED, _join(note, reason))
            continue
        after, read_error = read_value(item["path"])
        if read_error:
            item["live"] = record(cid, before, desired, "live", CHANGED, _join(note, "written; read-back failed: %s" % read_error))
        elif same(after, desired):
            item["live"] = record(cid, before, desired, "live", CHANGED, note)
        elif same(after, before):
            item["live"] = record(cid, before, after, "live", UNSUPPORTED,
                                  _join(note, "the kernel kept %s after writing %s" % (after, desired)))
        else:
            item["live"] = record(cid, before, after, "live", CHANGED,
                                  _join(note, "the kernel stored %s when asked for %s" % (after, desired)))


def settle_live(items):
    """Writing one key can move another: net.ipv4.ip_forward (and conf.all.forwarding) sets
    conf.all.accept_redirects to its opposite (devinet.c, inet_forward_change), so a gateway
    turned back into an end device would accept redirects while the run reported them off.
    After the writes, read every managed key back and write again each one the kernel moved
    to the value this run left it at; its record keeps its status (the net effect)."""
    if not any(item["write"] for item in items):
        return
    for item in items:
        rec = item["live"]
        if rec["status"] not in (CHANGED, UNCHANGED) or item["path"] is None:
            continue
        current, read_error = read_value(item["path"])
        if read_error or same(current, rec["after"]):
            continue
        moved = "writing other keys moved it to %s" % current
        exc = write_value(item["path"], rec["after"])
        if exc is None:
            after, _error = read_value(item["path"])
            if same(after, rec["after"]):
                item["live"] = record(rec["id"], rec["before"], rec["after"], "live", rec["status"],
                                      _join(rec.get("detail"), moved + "; written again"))
                continue
            current = after or current
        item["live"] = record(rec["id"], rec["before"], current, "live", ERROR,
                              _join(rec.get("detail"), moved + "; could not set it back to %s" % rec["after"]))


def write_persisted(persist_plan, persisted):
    """Write the planned text atomically; on failure turn changed records into errors."""
    if persist_plan["text"] is None:
        return
    real = persisted["real_path"]
    try:
        directory = os.path.dirname(real)
        if not os.path.isdir(directory):
            # systemd reads /etc/sysctl.d even when a minimal image does not ship it.
            os.makedirs(directory, 0o755)
        atomic_write(real, persist_plan["text"], mode=persisted.get("mode", 0o644))
    except (IOError, OSError) as exc:
        detail = "could not write %s: %s" % (persisted["path"], _errno_text(exc))
        records = persist_plan["records"]
        for i, rec in enumerate(records):
            if rec["status"] == CHANGED:
                records[i] = record(rec["id"], rec["before"], rec["after"], "persisted", ERROR, detail)
        persist_plan["errors"].append(detail)
        persist_plan["persisted_to"] = None


# --- the whole flow ----------------------------------------------------------------


def summarise(records):
    counts = dict((status, 0) for status in STATUSES)
    for rec in records:
        counts[rec["status"]] += 1
    return counts


def run(settings, missing="fail", optional_keys=None, strict=False, persist=True,
        persist_path=DEFAULT_PERSIST_PATH, limits=None, builtin_limits=None, check_mode=False,
        proc_sys=PROC_SYS, sysctl_dirs=SYSCTL_DIRS, sysctl_conf=SYSCTL_CONF):
    """Read, plan, apply (unless check_mode), persist; returns the module result dict.

    On failure the dict has ``failed`` and ``msg``; ``warnings`` lists text for module.warn.
    """
    settings = settings or {}
    merged, limit_errors = merge_limits(builtin_limits, limits)
    if persist and not os.path.isabs(persist_path or ""):
        limit_errors.append("persist_path: must be an absolute path (got %r)" % (persist_path,))
    if missing not in MISSING_POLICIES:
        limit_errors.append("missing: must be one of %s" % ", ".join(MISSING_POLICIES))
    live = read_live([k for k in settings if settings[k] is not None], proc_sys)
    persisted = read_persisted(persist_path, sysctl_dirs, sysctl_conf) if persist and not limit_errors else None
    the_plan = plan(settings, live, persisted, merged, missing, optional_keys, limit_errors)
    if the_plan["errors"]:
        return {"failed": True, "changed": False, "records": [], "summary": summarise([]), "persisted_to": None,
                "errors": the_plan["errors"], "warnings": the_plan["warnings"],
                "msg": "invalid sysctl settings, nothing was changed: " + "; ".join(the_plan["errors"])}
    items = the_plan["items"]
    if not check_mode:
        apply_live(items)
        settle_live(items)
    warnings = list(the_plan["warnings"])
    persisted_records, persisted_to, errors = [], None, []
    if persisted is not None:
        persist_plan = plan_persist(items, the_plan["unmanaged"], persisted)
        if not check_mode:
            write_persisted(persist_plan, persisted)
        persisted_records = persist_plan["records"]
        persisted_to = persist_plan["persisted_to"]
        warnings += persist_plan["warnings"]
        errors += persist_plan["errors"]
    records = _ordered([item["live"] for item in items] + persisted_records)
    result = {"changed": any_changed(records), "records": records, "summary": summarise(records),
              "persisted_to": persisted_to, "limits": merged, "warnings": warnings}
    failed = [r for r in records if r["status"] == ERROR]
    if strict:
        failed += [r for r in records if r["status"] == UNSUPPORTED]
    if failed or errors:
        result["failed"] = True
        result["msg"] = "sysctl: " + "; ".join(
            sorted(set(errors + ["%s [%s] %s: %s" % (r["id"], r["where"], r["status"], r.get("detail")) for r in failed])))
    return result


def _ordered(records):
    where_order = {"live": 0, "persisted": 1}
    return sorted(records, key=lambda r: (r["id"], where_order.get(r["where"], 2)))
