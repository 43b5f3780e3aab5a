# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""AppArmor profiles without apparmor-utils: only ``apparmor_parser`` and securityfs.

Flow (see ``run``): check the input -> read the profile files, their mode links and the
kernel's list of loaded profiles -> validate every new profile text with the parser
(compile, no kernel load) and fail before anything changes -> read the kernel's audit
messages about these profiles since their mode was set -> ``plan`` (pure) -> apply
(real runs only) -> read the loaded modes back from the kernel.

Where the state lives, all of it readable and writable without Python tools:
- the profile text: ``<profile_dir>/<file>`` (``/etc/apparmor.d``), loaded at boot by the
  distribution's loader (``apparmor.service``, the init script on Yocto);
- the boot mode: a symlink in ``<profile_dir>/force-complain/`` (complain) or
  ``<profile_dir>/disable/`` (not loaded). ``apparmor_parser`` itself honours both links,
  even for a single file, which is why they are set before the profile is loaded;
- the live mode: ``<apparmorfs>/profiles`` lists ``name (mode)``; ``apparmor_parser -r``
  loads or replaces (``-C`` for complain), ``<apparmorfs>/.remove`` unloads;
- when each profile entered its current mode (to report denials "since complain"):
  a small JSON state file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import time

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import (
    CHANGED,
    ERROR,
    UNCHANGED,
    any_changed,
    record,
)
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import (
    atomic_write,
    read_first_line,
    read_text,
)

APPARMORFS = "/sys/kernel/security/apparmor"
PROFILE_DIR = "/etc/apparmor.d"
STATE_FILE = "/var/lib/edgewarden/apparmor.json"
KMSG = "/dev/kmsg"
AUDIT_LOG = "/var/log/audit/audit.log"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
ID_PREFIX = "apparmor.profile/"

ENFORCE = "enforce"
COMPLAIN = "complain"
DISABLED = "disabled"
MODES = (ENFORCE, COMPLAIN, DISABLED)
PRESENT = "present"
ABSENT = "absent"
LOG_SOURCES = ("auto", "journal", "kmsg", "audit", "none")

MANAGED_MARK = "# Managed by edgewarden.hardening (apparmor_profile)."
MANAGED_HEADER = MANAGED_MARK + " Rewritten on every run: change the source, not this file.\n"
# The parser's own sub-directories and files it skips in a directory load: a profile
# file must not be named like them, or it would never load at boot.
RESERVED_FILES = ("disable", "force-complain", "local", "tunables", "abstractions", "abi", "cache")
SKIPPED_SUFFIXES = (".rpmnew", ".rpmsave", ".orig", ".rej", "~", ".dpkg-new", ".dpkg-old", ".dpkg-dist",
                    ".dpkg-bak", ".dpkg-remove", ".pacsave", ".pacnew")
MODE_LINK_DIRS = {DISABLED: "disable", COMPLAIN: "force-complain"}
# audit string fields that the kernel hex-encodes (without quotes) when they hold
# spaces, quotes or control characters
HEX_FIELDS = ("name", "comm", "profile", "target", "peer", "exe", "info", "fstype", "srcname", "label", "peer_label")
AUDIT_ID_RE = re.compile(r"audit\((\d+(?:\.\d+)?):(\d+)\)")
FIELD_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)=("(?:[^"]*)"|\S+)')
FLAGS_RE = re.compile(r"\bflags\s*=\s*\(([^)]*)\)")
HEX_RE = re.compile(r"^(?:[0-9A-F]{2})+$")
_BAD_NAME_CHARS = re.compile(r"[\s\x00-\x1f\x7f\"]")
# what identifies one kind of event in a report (counted, not listed one by one)
EVENT_KEYS = ("apparmor", "operation", "profile", "name", "target", "capname", "family", "sock_type",
              "protocol", "requested_mask", "denied_mask", "comm")


# --- names and files ----------------------------------------------------------------


def control_id(name):
    return ID_PREFIX + name


def default_file_name(name):
    """The packaging convention: ``/usr/sbin/ntpd`` lives in ``usr.sbin.ntpd``."""
    return name.lstrip("/").replace("/", ".")


def name_error(name):
    if not isinstance(name, str) or not name:
        return "empty profile name"
    if _BAD_NAME_CHARS.search(name):
        return "profile name contains whitespace, quotes or control characters"
    if "//" in name:
        return "child profiles (with //) are managed through their parent's file"
    return None


def file_error(file_name):
    if not file_name:
        return "empty file name"
    if "/" in file_name or file_name.startswith("."):
        return "file must be a plain name inside the profile directory (no '/', no leading '.')"
    if file_name in RESERVED_FILES:
        return "file name %r is one of the parser's own directories" % file_name
    if file_name.endswith(SKIPPED_SUFFIXES):
        return "file name %r ends like a backup the loader skips at boot" % file_name
    return None


def desired_text(content):
    """What the file holds: our marker line, then the profile text as given."""
    if not content.endswith("\n"):
        content += "\n"
    return MANAGED_HEADER + content


def is_managed(text):
    return text is not None and text.startswith(MANAGED_MARK)


def digest(text):
    if text is None:
        return None
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:12]


def profile_flags(text):
    """Every flag named in a ``flags=(...)`` clause of the text (comments ignored)."""
    flags = set()
    for line in (text or "").splitlines():
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#include") else ""
        for match in FLAGS_RE.finditer(code):
            flags.update(part for part in re.split(r"[\s,]+", match.group(1)) if part)
    return flags


def flag_errors(name, text, mode):
    """Modes a profile's own flags would contradict, found before anything is loaded."""
    flags = profile_flags(text)
    errors = []
    if "unconfined" in flags and mode in (ENFORCE, COMPLAIN):
        errors.append("%s: an 'unconfined' stub profile (flags=(unconfined)): setting it to %s would make "
                      "the program deny-all; leave it alone or replace it with a real profile" % (name, mode))
    if "complain" in flags and mode == ENFORCE:
        errors.append("%s: the profile text says flags=(complain), which wins over mode enforce; remove the "
                      "flag or use mode complain" % name)
    return errors


def parse_profiles_list(text):
    """``<apparmorfs>/profiles`` -> ``{name: mode}`` (children included as ``a//b``)."""
    loaded = {}
    for line in (text or "").splitlines():
        line = line.rstrip()
        if not line.endswith(")") or " (" not in line:
            continue
        name, mode = line[:-1].rsplit(" (", 1)
        loaded[name] = mode
    return loaded


# --- input --------------------------------------------------------------------------


def normalize_items(items):
    """Fill defaults and collect every input error at once (nothing read yet)."""
    errors = []
    out = []
    seen_names = {}
    seen_files = {}
    for index, raw in enumerate(items or []):
        item = dict(raw)
        label = item.get("name") or "profiles[%d]" % index
        err = name_error(item.get("name"))
        if err:
            errors.append("%s: %s" % (label, err))
            continue
        item.setdefault("state", PRESENT)
        item["mode"] = item.get("mode") or ENFORCE
        item["file"] = item.get("file") or default_file_name(item["name"])
        item["staged"] = bool(item.get("staged"))
        err = file_error(item["file"])
        if err:
            errors.append("%s: %s" % (label, err))
        if item["state"] not in (PRESENT, ABSENT):
            errors.append("%s: state must be present or absent" % label)
        if item["mode"] not in MODES:
            errors.append("%s: mode must be one of %s" % (label, ", ".join(MODES)))
        if item.get("content") is not None and not str(item["content"]).strip():
            errors.append("%s: content is empty" % label)
        if item["staged"] and item["mode"] != ENFORCE:
            errors.append("%s: staged applies to mode enforce only" % label)
        if item["name"] in seen_names:
            errors.append("%s: listed twice" % label)
        if item["file"] in seen_files and seen_files[item["file"]] != item["name"]:
            errors.append("%s: file %s is also used by %s" % (label, item["file"], seen_files[item["file"]]))
        seen_names[item["name"]] = True
        seen_files[item["file"]] = item["name"]
        out.append(item)
    return out, errors


# --- reading the device ------------------------------------------------------------


def profile_path(profile_dir, file_name):
    return os.path.join(profile_dir, file_name)


def link_path(profile_dir, mode, file_name):
    return os.path.join(profile_dir, MODE_LINK_DIRS[mode], file_name)


def boot_mode_from_links(disabled, force_complain):
    """The mode the boot loader gives a profile file: disable/ wins (the file is skipped)."""
    if disabled:
        return DISABLED
    if force_complain:
        return COMPLAIN
    return ENFORCE


def read_file_state(profile_dir, file_name):
    return {
        "text": read_text(profile_path(profile_dir, file_name)),
        "disable": os.path.lexists(link_path(profile_dir, DISABLED, file_name)),
        "force-complain": os.path.lexists(link_path(profile_dir, COMPLAIN, file_name)),
    }


def read_loaded(apparmorfs):
    """``{name: mode}`` of loaded profiles, or None when AppArmor is not active/readable."""
    text = read_text(os.path.join(apparmorfs, "profiles"))
    if text is None:
        return None
    return parse_profiles_list(text)


def read_markers(state_file):
    text = read_text(state_file)
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    profiles = data.get("profiles") if isinstance(data, dict) else None
    return profiles if isinstance(profiles, dict) else {}


def list_managed_files(profile_dir):
    """Files in the profile directory that carry our marker (what ``purge`` may remove)."""
    found = []
    try:
        names = sorted(os.listdir(profile_dir))
    except OSError:
        return found
    for name in names:
        path = os.path.join(profile_dir, name)
        if name.startswith(".") or not os.path.isfile(path) or os.path.islink(path):
            continue
        if is_managed(read_first_line(path)):
            found.append(name)
    return found


# --- the kernel's audit messages ---------------------------------------------------


def _decode(key, value):
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        return value[1:-1]
    if key in HEX_FIELDS and HEX_RE.match(value):
        try:
            return bytes.fromhex(value).decode("utf-8", "replace")
        except ValueError:
            return value
    return value


def parse_audit_fields(text):
    """``key=value`` pairs of an audit message; quoted values unquoted, hex strings decoded."""
    return dict((key, _decode(key, value)) for key, value in FIELD_RE.findall(text or ""))


def parse_event(message):
    """An AppArmor audit message -> event dict, or None for anything else.

    Works on the kernel's printk form (``audit: type=1400 audit(T:S): apparmor=...``),
    auditd's log lines (``type=AVC msg=audit(T:S): apparmor=...``) and journald's audit
    transport (``AVC apparmor=...``, time and serial given separately)."""
    if not message or "apparmor=" not in message:
        return None
    fields = parse_audit_fields(message)
    if "apparmor" not in fields:
        return None
    event = dict((k, v) for k, v in fields.items() if k in EVENT_KEYS or k in ("pid",))
    match = AUDIT_ID_RE.search(message)
    if match:
        event["time"] = float(match.group(1))
        event["serial"] = int(match.group(2))
    return event


def parse_kmsg_record(raw):
    """One ``/dev/kmsg`` record (``prio,seq,usec,flags;text``) -> (seq, usec, text)."""
    head, sep, text = raw.partition(";")
    if not sep:
        return None
    parts = head.split(",")
    if len(parts) < 3:
        return None
    try:
        seq = int(parts[1])
        usec = int(parts[2])
    except ValueError:
        return None
    # continuation lines (" KEY=value" dictionary entries) are not part of the message
    return seq, usec, text.split("\n", 1)[0]


def events_from_kmsg(records, boot_id):
    events = []
    for seq, usec, text in records:
        event = parse_event(text)
        if event is not None:
            event.update({"seq": seq, "monotonic_us": usec, "boot_id": boot_id})
            events.append(event)
    return events


def events_from_journal(lines):
    """``journalctl -o json`` lines -> events (kernel and audit transports alike)."""
    events = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        message = entry.get("MESSAGE")
        if isinstance(message, list):  # journald gives non-UTF-8 messages as byte arrays
            message = bytes(message).decode("utf-8", "replace")
        event = parse_event(message)
        if event is None:
            continue
        if "serial" not in event and entry.get("_AUDIT_ID"):
            try:
                event["serial"] = int(entry["_AUDIT_ID"])
            except ValueError:
                pass
        if "time" not in event:
            stamp = entry.get("_SOURCE_REALTIME_TIMESTAMP") or entry.get("__REALTIME_TIMESTAMP")
            if stamp:
                event["time"] = int(stamp) / 1e6
        if entry.get("_BOOT_ID"):
            event["boot_id"] = entry["_BOOT_ID"]
        if entry.get("__MONOTONIC_TIMESTAMP"):
            event["monotonic_us"] = int(entry["__MONOTONIC_TIMESTAMP"])
        events.append(event)
    return events


def events_from_audit_log(text):
    return [e for e in (parse_event(line) for line in (text or "").splitlines()) if e is not None]


def dedupe_events(events):
    """The same audit record arrives through journald's kernel and audit transports."""
    seen = set()
    out = []
    for event in events:
        if "serial" in event and "time" in event:
            key = (event["serial"], int(round(event["time"] * 1000)))
            if key in seen:
                continue
            seen.add(key)
        out.append(event)
    return out


def normalize_boot_id(value):
    return (value or "").replace("-", "").strip().lower() or None


def event_after(event, marker):
    """Whether an event happened after a mode-switch marker.

    Same boot: the kmsg sequence number when both have one (exact), else the monotonic
    clock. Another boot, or no boot id: the wall-clock time of the audit record (a device
    whose clock jumps at boot can misplace events around that jump)."""
    if not marker:
        return True
    same_boot = (normalize_boot_id(event.get("boot_id")) is not None
                 and normalize_boot_id(event.get("boot_id")) == normalize_boot_id(marker.get("boot_id")))
    if same_boot:
        if event.get("seq") is not None and marker.get("kmsg_seq") is not None:
            return event["seq"] > marker["kmsg_seq"]
        if event.get("monotonic_us") is not None and marker.get("monotonic_us") is not None:
            return event["monotonic_us"] >= marker["monotonic_us"]
    if event.get("time") is None or marker.get("time") is None:
        return True
    return event["time"] >= marker["time"]


def owner_profile(event_profile, names):
    """Which managed profile an event belongs to: itself or one of its children (a//b)."""
    if not event_profile:
        return None
    for name in names:
        if event_profile == name or event_profile.startswith(name + "//"):
            return name
    return None


def summarize_denials(events, names, markers, limit=20):
    """Per managed profile: what it denied (enforce) or would have denied (complain,
    ``apparmor="ALLOWED"``) since it entered its current mode, grouped and counted."""
    report = {}
    for name in names:
        report[name] = {"since": (markers.get(name) or {}).get("time"), "mode": (markers.get(name) or {}).get("mode"),
                        "denied": 0, "allowed": 0, "events": []}
    groups = {}
    for event in events:
        if event.get("apparmor") not in ("DENIED", "ALLOWED"):
            continue
        name = owner_profile(event.get("profile"), names)
        if name is None or not event_after(event, markers.get(name)):
            continue
        entry = report[name]
        entry["denied" if event["apparmor"] == "DENIED" else "allowed"] += 1
        key = (name,) + tuple(event.get(k) for k in EVENT_KEYS)
        group = groups.get(key)
        if group is None:
            group = dict((k, event[k]) for k in EVENT_KEYS if event.get(k) is not None)
            group["count"] = 0
            group["first"] = event.get("time")
            groups[key] = group
            entry["events"].append(group)
        group["count"] += 1
        group["last"] = event.get("time")
    for entry in report.values():
        entry["events"].sort(key=lambda g: (-g["count"], g.get("operation") or "", g.get("name") or ""))
        entry["kinds"] = len(entry["events"])
        entry["events"] = entry["events"][:limit]
    return report


def choose_log_source(requested, auditd_running, audit_log_readable, journalctl, journald_running, kmsg_readable):
    """auditd takes AppArmor's messages away from the kernel log when it runs; journald
    keeps them across boots; /dev/kmsg (this boot only) is what is left on small images."""
    if requested != "auto":
        return requested
    if auditd_running and audit_log_readable:
        return "audit"
    if journalctl and journald_running:
        return "journal"
    if kmsg_readable:
        return "kmsg"
    return "none"


def read_kmsg(path=KMSG):
    """Every record still in the kernel ring buffer, without blocking."""
    records = []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        while True:
            try:
                chunk = os.read(fd, 16384)
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records overwritten while reading: go on
                    continue
                break
            if not chunk:
                break
            parsed = parse_kmsg_record(chunk.decode("utf-8", "replace"))
            if parsed is not None:
                records.append(parsed)
    finally:
        os.close(fd)
    return records


def pid_alive(pidfile):
    pid = read_first_line(pidfile)
    if not pid or not pid.isdigit():
        return False
    return os.path.exists("/proc/%s" % pid)


def make_marker(mode, boot_id, now, monotonic_us, kmsg_seq):
    return {"mode": mode, "boot_id": boot_id, "time": round(now, 3), "monotonic_us": monotonic_us,
            "kmsg_seq": kmsg_seq}


# --- planning ------------------------------------------------------------------------


def effective_mode(item, loaded_mode, report):
    """The mode to set, and why when it is not the one asked for.

    ``staged`` profiles (mode enforce) go through complain first: a profile that is not
    loaded yet is loaded in complain; one in complain that would have denied something
    since it entered complain stays there, so the denials can be read and the profile
    fixed before enforcement breaks the program."""
    wanted = item["mode"]
    if not item.get("staged") or wanted != ENFORCE:
        return wanted, None
    if loaded_mode == ENFORCE:
        return ENFORCE, None
    if loaded_mode != COMPLAIN:
        return COMPLAIN, "staged: loaded in complain mode first; enforced on a later run without denials"
    seen = report.get("allowed", 0) + report.get("denied", 0) if report else 0
    if seen:
        return COMPLAIN, ("staged: held in complain mode, %d access(es) it would deny were logged since "
                          "complain mode started" % seen)
    return ENFORCE, None


def _persisted_value(text, mode):
    if text is None:
        return None
    return "%s %s" % (mode, digest(text))


def _op(kind, name, **kwargs):
    kwargs.update({"op": kind, "name": name})
    return kwargs


def plan(items, files, loaded, denials, validated, profile_dir):
    """Pure: the records a run produces and the operations that make them true.

    ``files``: ``{file: read_file_state()}``; ``loaded``: ``{name: mode}``; ``denials``:
    ``summarize_denials()``; ``validated``: ``{name: [top-level profile names]}`` of the
    texts the parser checked. Returns ``(records, ops, held)``; the operations of one
    profile come in the order that keeps the kernel consistent: file, mode links (the
    parser reads them), then load or unload."""
    records = []
    ops = []
    held = {}
    for item in items:
        name = item["name"]
        current = files[item["file"]]
        path = profile_path(profile_dir, item["file"])
        text_before = current["text"]
        boot_before = boot_mode_from_links(current["disable"], current["force-complain"])
        live_before = loaded.get(name)
        if item["state"] == ABSENT:
            if live_before is not None:
                ops.append(_op("unload", name, names=validated.get(name) or [name]))
            for link_mode in (DISABLED, COMPLAIN):
                if current[MODE_LINK_DIRS[link_mode]]:
                    ops.append(_op("unlink", name, path=link_path(profile_dir, link_mode, item["file"])))
            if text_before is not None:
                ops.append(_op("remove", name, path=path))
            ops.append(_op("forget", name))
            records.append(record(control_id(name), _persisted_value(text_before, boot_before), None,
                                  where="persisted", detail=path))
            records.append(record(control_id(name), live_before, None, where="live"))
            continue
        text_after = desired_text(item["content"]) if item.get("content") is not None else text_before
        mode, why = effective_mode(item, live_before, denials.get(name))
        if why:
            held[name] = why
        text_changed = text_after != text_before
        if text_changed:
            ops.append(_op("write", name, path=path, text=text_after, before=text_before))
        for link_mode in (DISABLED, COMPLAIN):
            want_link = mode == link_mode
            have_link = current[MODE_LINK_DIRS[link_mode]]
            if want_link and not have_link:
                ops.append(_op("link", name, path=link_path(profile_dir, link_mode, item["file"]), target=path))
            elif have_link and not want_link:
                ops.append(_op("unlink", name, path=link_path(profile_dir, link_mode, item["file"])))
        records.append(record(control_id(name), _persisted_value(text_before, boot_before),
                              _persisted_value(text_after, mode), where="persisted",
                              detail=why or (path if text_changed else None)))
        live_after = None if mode == DISABLED else mode
        status = None
        detail = why
        if mode == DISABLED:
            if live_before is not None:
                ops.append(_op("unload", name, names=validated.get(name) or [name]))
        elif live_before != mode or text_changed:
            ops.append(_op("load", name, path=path, complain=mode == COMPLAIN))
            status = CHANGED
            if live_before == mode:
                detail = detail or "replaced in the kernel: the profile text changed"
        if live_before != live_after:
            # the new mode starts now: denials are reported from this point on
            ops.append(_op("mark", name, mode=mode))
        records.append(record(control_id(name), live_before, live_after, where="live", status=status,
                              detail=detail))
    return records, ops, held


def plan_purge(managed_files, kept_files, profile_dir, loaded, names_of, links_of):
    """Files carrying our marker that are no longer listed: unload and delete them.
    Distribution profiles never carry the marker, so they are never purged."""
    records = []
    ops = []
    for file_name in managed_files:
        if file_name in kept_files:
            continue
        path = profile_path(profile_dir, file_name)
        names = top_level(names_of(file_name) or []) or [file_name]
        label = names[0]
        for name in names:
            if name in loaded:
                ops.append(_op("unload", label, names=[name]))
        for link in links_of(file_name):
            ops.append(_op("unlink", label, path=link))
        ops.append(_op("remove", label, path=path))
        records.append(record(control_id(label), "present", None, where="persisted", detail="purged " + path))
        for name in names:
            ops.append(_op("forget", name))
            if name in loaded:
                records.append(record(control_id(name), loaded[name], None, where="live", detail="purged"))
    return records, ops


def describe_op(op):
    """One line per operation, for the ``operations`` result (check mode shows the plan)."""
    kind = op["op"]
    if kind == "write":
        return "write %s (%s)" % (op["path"], digest(op["text"]))
    if kind == "link":
        return "link %s -> %s" % (op["path"], op["target"])
    if kind in ("unlink", "remove"):
        return "%s %s" % (kind, op["path"])
    if kind == "load":
        return "apparmor_parser --replace%s %s" % (" --Complain" if op["complain"] else "", op["path"])
    if kind == "unload":
        return "unload %s" % ", ".join(top_level(op["names"]))
    if kind == "mark":
        return "record that %s entered %s mode" % (op["name"], op["mode"])
    return "forget when %s entered its mode" % op["name"]


# --- the parser ------------------------------------------------------------------------


class Parser(object):
    """``apparmor_parser`` through a ``runner(argv, data=None, cwd=None) -> (rc, out, err)``."""

    def __init__(self, path, runner, profile_dir=PROFILE_DIR, apparmorfs=APPARMORFS):
        self.path = path
        self.runner = runner
        self.profile_dir = profile_dir
        self.apparmorfs = apparmorfs

    def _cwd(self):
        # quoted includes are relative to the profile directory; a trimmed image may not have one yet
        return self.profile_dir if os.path.isdir(self.profile_dir) else None

    def _base(self):
        # -b: includes, and the disable/ and force-complain/ links, are looked up here
        args = [self.path, "--base", self.profile_dir]
        if self.apparmorfs != APPARMORFS:
            args += ["--subdomainfs", self.apparmorfs]
        return args

    def validate(self, text):
        """Compile without loading (-Q) or touching the cache (-K); text on stdin, so a
        check-mode run and a read-only root work too. Returns (names, error)."""
        rc, out, err = self.runner(self._base() + ["--skip-kernel-load", "--skip-cache", "--quiet"],
                                   data=text, cwd=self._cwd())
        if rc != 0:
            return None, _parser_message(err, out, rc)
        rc, out, err = self.runner(self._base() + ["--names"], data=text, cwd=self._cwd())
        if rc != 0:
            return None, _parser_message(err, out, rc)
        return [line.strip() for line in out.splitlines() if line.strip()], None

    def names(self, path):
        rc, out, err = self.runner(self._base() + ["--names", path], cwd=self._cwd())
        if rc != 0:
            return None
        return [line.strip() for line in out.splitlines() if line.strip()]

    def unload(self, name):
        """Write the name to securityfs' .remove: the kernel drops the profile and its children."""
        try:
            with open(os.path.join(self.apparmorfs, ".remove"), "w") as handle:
                handle.write(name)
        except (IOError, OSError) as exc:
            if exc.errno == errno.ENOENT:
                return None  # already gone
            return "unloading %s failed: %s" % (name, exc)
        return None

    def load(self, path, complain):
        # -r loads or replaces; -T -W: compile afresh and refresh the boot cache (the parser
        # never caches complain-mode profiles and tolerates a read-only cache)
        argv = self._base() + ["--replace", "--skip-read-cache", "--write-cache", "--quiet"]
        if complain:
            argv.append("--Complain")
        rc, out, err = self.runner(argv + [path], cwd=self._cwd())
        if rc != 0:
            return _parser_message(err, out, rc)
        return None


def _parser_message(err, out, rc):
    text = (err or "").strip() or (out or "").strip()
    return text or "apparmor_parser exited with %d" % rc


def top_level(names):
    return [n for n in names if "//" not in n]


# --- applying ------------------------------------------------------------------------


def _ensure_dir(path):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)


def apply_ops(ops, parser, markers, marker_factory):
    """Run the planned operations in order; ``{name: error}`` for the profiles that failed.
    A profile whose file could not be written is not loaded (the kernel keeps the old one)."""
    failed = {}
    for op in ops:
        kind = op["op"]
        name = op["name"]
        if name in failed and kind in ("load", "mark"):
            continue
        try:
            if kind == "write":
                _ensure_dir(op["path"])
                atomic_write(op["path"], op["text"], mode=0o644)
            elif kind == "link":
                _ensure_dir(op["path"])
                if os.path.lexists(op["path"]):
                    os.unlink(op["path"])
                os.symlink(op["target"], op["path"])
            elif kind in ("unlink", "remove"):
                if os.path.lexists(op["path"]):
                    os.unlink(op["path"])
            elif kind == "load":
                error = parser.load(op["path"], op["complain"])
                if error:
                    failed[name] = "apparmor_parser could not load it: %s" % error
            elif kind == "unload":
                for loaded_name in top_level(op["names"]):
                    error = parser.unload(loaded_name)
                    if error:
                        failed[name] = error
            elif kind == "mark":
                markers[name] = marker_factory(op["mode"])
            elif kind == "forget":
                markers.pop(name, None)
        except (IOError, OSError) as exc:
            failed[name] = "%s failed: %s" % (describe_op(op), exc)
    return failed


def save_markers(state_file, markers):
    _ensure_dir(state_file)
    atomic_write(state_file, json.dumps({"profiles": markers}, indent=1, sort_keys=True) + "\n", mode=0o600)


def readback(records, loaded_after, failed):
    """Live records get what the kernel now reports; a profile whose operations failed,
    or whose mode the kernel does not show as wanted, becomes an error."""
    out = []
    for rec in records:
        name = rec["id"][len(ID_PREFIX):]
        if rec["where"] == "live":
            actual = loaded_after.get(name)
            if name in failed:
                rec = record(rec["id"], rec["before"], actual, where="live", status=ERROR, detail=failed[name])
            elif actual != rec["after"]:
                rec = record(rec["id"], rec["before"], actual, where="live", status=ERROR,
                             detail="the kernel reports %s, wanted %s" % (
                                 actual or "not loaded", rec["after"] or "not loaded"))
        elif name in failed and rec["status"] == CHANGED:
            rec = record(rec["id"], rec["before"], rec["after"], where=rec["where"], status=ERROR,
                         detail=failed[name])
        out.append(rec)
    return out


# --- the outside world, for the module ------------------------------------------------


def make_clock(kmsg_path=KMSG, boot_id_path=BOOT_ID):
    """``clock()`` for ``run``: when a mode switch happens, in every clock a log has."""
    def clock():
        records = read_kmsg(kmsg_path)
        seq = max([r[0] for r in records]) if records else None
        return (normalize_boot_id(read_first_line(boot_id_path)), time.time(), int(time.monotonic() * 1e6), seq)
    return clock


def make_log_reader(requested, runner, journalctl=None, kmsg_path=KMSG, audit_log=AUDIT_LOG,
                    boot_id_path=BOOT_ID):
    """``log_reader(markers)`` for ``run``: the AppArmor audit events of the chosen source.

    journald is asked for the kernel and audit transports from the earliest mode switch
    (the current boot when a profile has no recorded switch); the events are filtered and
    counted on the device, so only the summary crosses the link."""
    def reader(markers):
        source = choose_log_source(
            requested,
            auditd_running=pid_alive("/run/auditd.pid") or pid_alive("/var/run/auditd.pid"),
            audit_log_readable=os.access(audit_log, os.R_OK),
            journalctl=journalctl,
            journald_running=os.path.exists("/run/systemd/journal/socket"),
            kmsg_readable=os.access(kmsg_path, os.R_OK),
        )
        if source == "audit":
            return source, events_from_audit_log(read_text(audit_log, ""))
        if source == "kmsg":
            records = read_kmsg(kmsg_path) or []
            return source, events_from_kmsg(records, normalize_boot_id(read_first_line(boot_id_path)))
        if source == "journal" and journalctl:
            times = [m.get("time") for m in markers.values() if m and m.get("time") is not None]
            window = ["--since", "@%d" % int(min(times))] if times and len(times) == len(markers) else ["--boot"]
            rc, out, err = runner([journalctl, "--output", "json", "--no-pager", "--quiet"] + window
                                  + ["_TRANSPORT=kernel", "_TRANSPORT=audit"])
            if rc != 0:
                return "none", []
            return source, dedupe_events(events_from_journal(out.splitlines()))
        return "none", []
    return reader


# --- orchestration ---------------------------------------------------------------------


def summary(records):
    return dict((status, len([r for r in records if r["status"] == status])) for status in (CHANGED, UNCHANGED, ERROR))


def validate_items(items, files, loaded, parser, profile_dir):
    """Every reason not to touch the device, found before anything changes: unreadable or
    refused profile texts (the parser's own message), texts that do not define the named
    profile, modes the profile's flags contradict, deletions of files we did not write.
    Returns ``(errors, validated)`` with the top-level profile names of each checked text."""
    errors = []
    validated = {}
    for item in items:
        name = item["name"]
        current = files[item["file"]]
        path = profile_path(profile_dir, item["file"])
        if item["state"] == ABSENT:
            if current["text"] is not None and not is_managed(current["text"]):
                errors.append("%s: %s was not deployed by edgewarden (no marker line); refusing to delete it"
                              % (name, path))
            elif current["text"] is not None and loaded.get(name) is not None:
                validated[name] = top_level(parser.names(path) or [name])
            continue
        if item.get("content") is None:
            if current["text"] is None:
                errors.append("%s: no content given and %s does not exist" % (name, path))
                continue
            text = current["text"]
        else:
            text = desired_text(item["content"])
        flag_problems = flag_errors(name, text, item["mode"])
        errors.extend(flag_problems)
        if flag_problems:
            continue
        if text != current["text"]:
            # the text as written, without our marker line: the parser's line numbers match it
            names, error = parser.validate(text[len(MANAGED_HEADER):])
            if error:
                errors.append("%s: apparmor_parser refused the profile: %s" % (name, error))
                continue
            if name not in names:
                errors.append("%s: the text defines %s, not a profile named %s" % (
                    name, ", ".join(names) or "no profile", name))
                continue
            validated[name] = top_level(names)
        elif item["mode"] == DISABLED and loaded.get(name) is not None:
            validated[name] = top_level(parser.names(path) or [name])
    return errors, validated


def run(items, parser, check_mode=False, purge=False, profile_dir=PROFILE_DIR, apparmorfs=APPARMORFS,
        state_file=STATE_FILE, log_reader=None, denials_limit=20, clock=None):
    """Everything the module does, with the outside world passed in: ``parser`` runs
    apparmor_parser, ``log_reader(markers) -> (source, events)`` reads the kernel's audit
    messages, ``clock() -> (boot_id, time, monotonic_us, kmsg_seq)`` stamps mode switches."""
    items, errors = normalize_items(items)
    if errors:
        return {"failed": True, "changed": False, "records": [], "errors": errors,
                "msg": "invalid profiles, nothing was changed: " + "; ".join(errors)}
    loaded = read_loaded(apparmorfs)
    if loaded is None:
        return {"failed": True, "changed": False, "records": [], "errors": [],
                "msg": "AppArmor is not active here: %s/profiles is missing or unreadable (check "
                       "/sys/kernel/security/lsm and that securityfs is mounted)" % apparmorfs}
    files = dict((item["file"], read_file_state(profile_dir, item["file"])) for item in items)
    errors, validated = validate_items(items, files, loaded, parser, profile_dir)
    if errors:
        return {"failed": True, "changed": False, "records": [], "errors": errors,
                "msg": "nothing was changed: " + "; ".join(errors)}

    markers = read_markers(state_file)
    names = [item["name"] for item in items if item["state"] == PRESENT]
    source, events = "none", []
    if log_reader is not None and names:
        source, events = log_reader(dict((n, markers.get(n)) for n in names))
    denials = summarize_denials(events, names, markers, limit=denials_limit)

    records, ops, held = plan(items, files, loaded, denials, validated, profile_dir)
    if purge:
        def links_of(file_name):
            return [link_path(profile_dir, m, file_name) for m in (DISABLED, COMPLAIN)
                    if os.path.lexists(link_path(profile_dir, m, file_name))]
        purge_records, purge_ops = plan_purge(
            list_managed_files(profile_dir), set(item["file"] for item in items), profile_dir, loaded,
            lambda f: parser.names(profile_path(profile_dir, f)), links_of)
        records.extend(purge_records)
        ops.extend(purge_ops)

    failed = {}
    loaded_after = loaded
    if not check_mode and ops:
        stamps = []

        def marker_factory(mode):
            if not stamps:  # one stamp, taken before the first load of this run
                stamps.append(clock() if clock is not None else (None, time.time(), None, None))
            boot_id, now, monotonic_us, kmsg_seq = stamps[0]
            return make_marker(mode, boot_id, now, monotonic_us, kmsg_seq)

        if any(op["op"] == "mark" for op in ops):
            marker_factory(ENFORCE)
        failed = apply_ops(ops, parser, markers, marker_factory)
        if any(op["op"] in ("mark", "forget") for op in ops):
            try:
                save_markers(state_file, markers)
            except (IOError, OSError) as exc:
                # not fatal: the next report counts denials from the start of the log instead
                failed["_state"] = "recording when the modes changed in %s failed: %s" % (state_file, exc)
        loaded_after = read_loaded(apparmorfs) or {}
        records = readback(records, loaded_after, failed)

    result = {
        "changed": any_changed(records),
        "records": records,
        "summary": summary(records),
        "operations": [describe_op(op) for op in ops],
        "loaded_modes": dict((item["name"], loaded_after.get(item["name"])) for item in items),
        "held": held,
        "denials": denials,
        "log_source": source,
        "warnings": [failed["_state"]] if "_state" in failed else [],
        # full texts for --diff; the module drops them otherwise (they can be long)
        "file_diffs": [{"before_header": op["path"], "after_header": op["path"], "before": op["before"] or "",
                        "after": op["text"]} for op in ops if op["op"] == "write"],
    }
    bad = [r for r in records if r["status"] == ERROR]
    if bad:
        result["failed"] = True
        result["msg"] = "; ".join("%s: %s" % (r["id"], r.get("detail")) for r in bad)
    return result
