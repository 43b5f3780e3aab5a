# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Mount options (nodev, nosuid, noexec) applied live and persisted in /etc/fstab.

Flow (``run``): read /proc/self/mountinfo, fstab, the init system and the root
filesystem -> ``plan_live`` and ``plan_persist`` (pure: every validation error at once,
the predicted records, the new fstab text) -> ``apply_live`` (``mount -o remount,bind``;
real runs only) -> write fstab atomically (real runs only).

Live changes use ``remount,bind`` with the full set of per-mount flags: it changes only
this mount point's flags (never the filesystem's own options, which other mounts of the
same filesystem share), needs no filesystem-specific data, and works with util-linux
and BusyBox ``mount`` alike. A directory that is not a mount point can be bind-mounted
onto itself first (``if_not_mounted: bind``), the usual way to give /var/tmp its own flags.

Persistence is only written where something reads fstab at boot: systemd, OpenRC,
SysV init, and BusyBox init when its startup scripts run ``mount -a``. A read-only
fstab, a root overlay whose upper layer is tmpfs (lost at reboot) and an init that reads
no fstab are reported as ``unsupported`` with the reason, never attempted.
"""

from __future__ import annotations

import os
import re

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import (
    ABSENT,
    CHANGED,
    ERROR,
    UNCHANGED,
    UNSUPPORTED,
    STATUSES,
    any_changed,
    record,
)
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import (
    atomic_write,
    is_readonly_fs,
    read_text,
)
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.procfs import unescape_mount_field

ID_PREFIX = "integrity.mount/"
FSTAB = "/etc/fstab"
MOUNTINFO = "/proc/self/mountinfo"
PERSIST_CHOICES = ("auto", "fstab", "none")
IF_NOT_MOUNTED = ("skip", "bind")
# flag -> (family, set?): the three per-mount security flags and their opposites
FLAGS = {
    "nodev": ("nodev", True), "dev": ("nodev", False),
    "nosuid": ("nosuid", True), "suid": ("nosuid", False),
    "noexec": ("noexec", True), "exec": ("noexec", False),
}
FAMILIES = ("nodev", "nosuid", "noexec")
OPPOSITE = {"nodev": "dev", "nosuid": "suid", "noexec": "exec"}
# per-mount flags kept as they are when remounting (everything the kernel shows besides ours)
KEPT_FLAGS = ("ro", "rw", "noatime", "relatime", "strictatime", "nodiratime", "nosymfollow")
# tmpfs options worth carrying into a new fstab line (size and ownership of the mount)
TMPFS_KEEP = ("size", "nr_inodes", "mode", "uid", "gid")
BLOCK_BEGIN = "# BEGIN edgewarden mount_options"
BLOCK_END = "# END edgewarden mount_options"
BLOCK_NOTE = "# Managed by edgewarden.hardening (mount_options): lines between these markers are rewritten."
# an init script line running mount -a (also -at nonfs, -a -O no_netdev, ...)
_MOUNT_A = re.compile(r"(^|[\s;&|(`])(/s?bin/|/usr/s?bin/)?mount(\s+-[A-Za-z]*)*\s+-[A-Za-z]*a[A-Za-z]*(\s|$)", re.M)
INITS_READING_FSTAB = {
    "systemd": "systemd-fstab-generator reads /etc/fstab at boot",
    "openrc": "OpenRC's localmount service runs mount -a at boot",
    "sysv": "SysV init's mountall runs mount -a at boot",
}


def _under(root, path):
    return os.path.join(root, path.lstrip("/"))


# --- parsing (pure) ------------------------------------------------------------------


def parse_mountinfo(text):
    """/proc/self/mountinfo lines as dicts, in file order (later entries stack on earlier)."""
    mounts = []
    for line in (text or "").splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        rest = right.split()
        if not sep or len(fields) < 6 or len(rest) < 2:
            continue
        mounts.append({
            "id": fields[0],
            "parent": fields[1],
            "dev": fields[2],
            "root": unescape_mount_field(fields[3]),
            "mountpoint": unescape_mount_field(fields[4]),
            "options": fields[5].split(","),
            "fstype": rest[0],
            "source": unescape_mount_field(rest[1]),
            "super_options": rest[2].split(",") if len(rest) > 2 else [],
        })
    return mounts


def mount_at(mounts, path):
    """The visible mount whose mount point is ``path`` (the last one stacked), or None."""
    found = None
    for mount in mounts:
        if mount["mountpoint"] == path:
            found = mount
    return found


def containing_mount(mounts, path):
    """The visible mount that holds ``path`` (longest mount point prefix), or None."""
    best = None
    for mount in mounts:
        point = mount["mountpoint"]
        if path == point or point == "/" or path.startswith(point.rstrip("/") + "/"):
            if best is None or len(point) >= len(best["mountpoint"]):
                best = mount
    return best


def flag_state(options):
    """``{family: True/False}`` for the families the options mention; later options win."""
    state = {}
    for option in options:
        if option == "defaults":
            for family in FAMILIES:
                state[family] = False
        elif option in FLAGS:
            family, value = FLAGS[option]
            state[family] = value
    return state


def effective_flags(mount_options):
    """All three families for a live mount: a flag the kernel does not show is off."""
    state = flag_state(mount_options)
    return dict((family, state.get(family, False)) for family in FAMILIES)


def render_flags(state, families):
    return ",".join(family if state.get(family) else OPPOSITE[family] for family in families)


def is_self_bind(mount, mounts):
    """True when ``mount`` is a directory bind-mounted onto itself (same device, same path)."""
    if mount is None or mount["mountpoint"] == "/":
        return False
    parent = None
    for other in mounts:
        if other["id"] == mount["parent"]:
            parent = other
    if parent is None or parent["dev"] != mount["dev"]:
        return False
    rel = os.path.relpath(mount["mountpoint"], parent["mountpoint"])
    return os.path.normpath(os.path.join(parent["root"], rel)) == mount["root"]


def parse_fstab(text):
    """fstab as a list of ``(line, fields)``; fields is None for comments and blank lines."""
    lines = []
    for line in (text or "").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            lines.append((line, None))
            continue
        fields = stripped.split()
        lines.append((line, fields if len(fields) >= 4 else None))
    return lines


def fstab_entries(text):
    """``{mountpoint: [options, ...]}`` of the fstab's entries (every line for a mount point)."""
    entries = {}
    for _line, fields in parse_fstab(text):
        if fields:
            entries.setdefault(unescape_mount_field(fields[1]), []).append(fields[3].split(","))
    return entries


def merge_options(options, desired):
    """fstab options with the desired flags: opposites dropped, flags appended in order."""
    managed = set(FLAGS)
    wanted = list(desired)
    kept = [opt for opt in options if opt not in managed]
    for flag in wanted:
        family, _value = FLAGS[flag]
        kept = [opt for opt in kept if FLAGS.get(opt, (None,))[0] != family]
    return kept + wanted


def _code(text):
    return "\n".join(line for line in (text or "").splitlines() if not line.lstrip().startswith("#"))


def find_mount_a(texts):
    """Names of the startup scripts (``{name: text}``) that run ``mount -a``. Pure."""
    return sorted(name for name, text in texts.items() if text and _MOUNT_A.search(_code(text)))


def fstab_reader(init_name, mount_a_scripts):
    """``(reads_fstab, reason)``: whether the boot applies /etc/fstab. Pure."""
    if init_name in INITS_READING_FSTAB:
        return True, INITS_READING_FSTAB[init_name]
    if init_name == "busybox":
        if mount_a_scripts:
            return True, "BusyBox init runs mount -a in %s" % ", ".join(mount_a_scripts)
        return False, "BusyBox init's startup scripts never run mount -a, so /etc/fstab is not applied at boot"
    if init_name == "procd":
        return False, "OpenWrt mounts /tmp from procd and reads /etc/config/fstab (block-mount), not /etc/fstab"
    return False, "pid 1 is %s, which applies no /etc/fstab at boot" % (init_name or "unknown")


def overlay_upper_volatile(mounts, path_exists):
    """True when / is an overlay whose upper layer sits on tmpfs (writes lost at reboot),
    False when it sits on a visible persistent mount, None when unknown. Pure apart from
    ``path_exists``."""
    root = mount_at(mounts, "/")
    if root is None or root["fstype"] != "overlay":
        return False
    upper = None
    for option in root["super_options"]:
        if option.startswith("upperdir="):
            upper = option[len("upperdir="):]
    if not upper:
        return False  # an overlay without upper layer is read-only: is_readonly_fs says so
    if not path_exists(upper):
        return None  # the upper layer lives outside this mount namespace (initramfs, container)
    holder = containing_mount([m for m in mounts if m is not root], upper)
    if holder is None:
        return None
    return holder["fstype"] in ("tmpfs", "ramfs")


# --- planning (pure) -----------------------------------------------------------------


def validate(entries, persist):
    """Every problem with the requested mounts, as a list."""
    errors = []
    seen = set()
    if persist not in PERSIST_CHOICES:
        errors.append("persist must be one of %s" % ", ".join(PERSIST_CHOICES))
    for index, entry in enumerate(entries or []):
        if not isinstance(entry, dict):
            errors.append("mounts[%d]: must be a dict with path and options" % index)
            continue
        path = entry.get("path")
        label = "mounts[%d] (%s)" % (index, path)
        if not isinstance(path, str) or not path.startswith("/") or path == "/":
            errors.append("%s: path must be an absolute directory other than /" % label)
        elif os.path.normpath(path) in seen:
            errors.append("%s: listed twice" % label)
        else:
            seen.add(os.path.normpath(path))
        options = entry.get("options")
        if not isinstance(options, list) or not options:
            errors.append("%s: options must be a non-empty list" % label)
            continue
        unknown = [str(opt) for opt in options if opt not in FLAGS]
        if unknown:
            errors.append("%s: unknown options %s (allowed: %s)" % (label, ", ".join(unknown), ", ".join(sorted(FLAGS))))
        families = [FLAGS[opt][0] for opt in options if opt in FLAGS]
        clashing = sorted(set(f for f in families if families.count(f) > 1))
        if clashing:
            errors.append("%s: contradicting or repeated options for %s" % (label, ", ".join(clashing)))
        extra = set(entry) - set(("path", "options", "if_not_mounted"))
        if extra:
            errors.append("%s: unknown keys %s" % (label, ", ".join(sorted(extra))))
        if entry.get("if_not_mounted", "skip") not in IF_NOT_MOUNTED:
            errors.append("%s: if_not_mounted must be one of %s" % (label, ", ".join(IF_NOT_MOUNTED)))
    return errors


def plan_live(entries, state):
    """Live items with their records. ``state`` holds what ``read_state`` found."""
    items = []
    by_real = {}
    mounts = state["mounts"]
    for entry in entries:
        path = os.path.normpath(entry["path"])
        desired = dict((FLAGS[opt][0], FLAGS[opt][1]) for opt in entry["options"])
        families = [f for f in FAMILIES if f in desired]
        item = {"path": path, "real": state["real"].get(path), "desired": desired, "families": families,
                "action": None, "mount": None, "bind": False}
        cid = ID_PREFIX + path
        wanted = render_flags(desired, families)
        real = item["real"]
        if real is None:
            item["live"] = record(cid, None, wanted, "live", ABSENT, "no such directory")
            items.append(item)
            continue
        if real in by_real:
            first = by_real[real]
            if first["desired"] != desired:
                item["live"] = record(cid, None, wanted, "live", ERROR,
                                      "same directory as %s, which asks for other options" % first["path"])
            else:
                item["live"] = record(cid, first["live"]["before"], wanted, "live", UNCHANGED,
                                      "same directory as %s (%s), managed there" % (first["path"], real))
            items.append(item)
            continue
        by_real[real] = item
        note = "resolves to %s" % real if real != path else None
        mount = mount_at(mounts, real)
        if mount is None:
            holder = containing_mount(mounts, real)
            current = effective_flags(holder["options"] if holder else [])
            before = render_flags(current, families)
            if entry.get("if_not_mounted", "skip") != "bind":
                item["live"] = record(cid, before, wanted, "live", UNSUPPORTED, _join(
                    note, "not a mount point (part of %s); if_not_mounted=bind would bind-mount it onto itself"
                    % (holder["mountpoint"] if holder else "?")))
                items.append(item)
                continue
            item.update(action="bind", bind=True, base_options=holder["options"] if holder else ["rw"])
            item["live"] = record(cid, before, wanted, "live", CHANGED, _join(note, "bind-mounted onto itself"))
            items.append(item)
            continue
        item["mount"] = mount
        item["bind"] = is_self_bind(mount, mounts)
        current = effective_flags(mount["options"])
        before = render_flags(current, families)
        if all(current[f] == desired[f] for f in families):
            item["live"] = record(cid, before, wanted, "live", UNCHANGED, note)
        else:
            item.update(action="remount", base_options=mount["options"])
            item["live"] = record(cid, before, wanted, "live", CHANGED, note)
        items.append(item)
    return items


def remount_options(base_options, desired):
    """Every per-mount flag for ``mount -o remount,bind``: the kept ones plus the three families."""
    current = effective_flags(base_options)
    current.update(desired)
    kept = [opt for opt in base_options if opt in KEPT_FLAGS]
    if "ro" not in kept and "rw" not in kept:
        kept.insert(0, "rw")
    return kept + [family if current[family] else OPPOSITE[family] for family in FAMILIES]


def _tmpfs_line(path, mount, flags):
    extra = [opt for opt in mount["super_options"] if opt.split("=", 1)[0] in TMPFS_KEEP]
    return "tmpfs %s tmpfs %s 0 0" % (_escape(path), ",".join(flags + extra))


def _escape(path):
    return path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011")


def _join(*parts):
    text = "; ".join(p for p in parts if p)
    return text or None


def plan_persist(items, state, persist):
    """Persisted records and the new fstab text (None when nothing is to be written)."""
    result = {"records": [], "text": None, "persisted_to": None, "warnings": []}
    if persist == "none":
        return result
    fstab = state["fstab_path"]
    candidates = [item for item in items
                  if item["real"] is not None and item["live"]["status"] in (CHANGED, UNCHANGED)
                  and not item["live"].get("detail", "").startswith("same directory as")]
    refusal = None
    if persist == "auto" and not state["reader"][0]:
        refusal = "not persisted: %s" % state["reader"][1]
    elif state["fstab_readonly"]:
        refusal = "not persisted: %s is on a read-only filesystem" % fstab
    elif state["overlay_volatile"]:
        refusal = "not persisted: the root overlay's upper layer is on tmpfs, so %s would be lost at reboot" % fstab
    text = state["fstab_text"] or ""
    lines = parse_fstab(text)
    block_paths = _block_paths(text)
    new_block = []
    changes = {}
    records = result["records"]
    for item in candidates:
        cid = ID_PREFIX + item["path"]
        real = item["real"]
        families = item["families"]
        desired_flags = [family if item["desired"][family] else OPPOSITE[family] for family in families]
        wanted = ",".join(desired_flags)
        indexes = [i for i, (_line, fields) in enumerate(lines)
                   if fields and unescape_mount_field(fields[1]) in (real, item["path"])]
        if indexes:
            before_state = flag_state(lines[indexes[-1]][1][3].split(","))
            before = render_flags(dict((f, before_state.get(f, False)) for f in families), families)
            pending = [i for i in indexes if any(flag_state(lines[i][1][3].split(",")).get(f, False) != item["desired"][f]
                                                 for f in families)]
            if not pending:
                records.append(record(cid, before, wanted, "persisted", UNCHANGED))
                continue
            if refusal:
                records.append(record(cid, before, wanted, "persisted", UNSUPPORTED, refusal))
                continue
            for i in pending:
                changes[i] = merge_options(lines[i][1][3].split(","), desired_flags)
            records.append(record(cid, before, wanted, "persisted", CHANGED))
            continue
        # no fstab line yet: what would mount it at boot?
        mount = item["mount"]
        if item["bind"]:
            if state["mount_is_busybox"]:
                records.append(record(cid, None, wanted, "persisted", UNSUPPORTED,
                                      "not persisted: BusyBox mount applies no options to bind mounts from fstab"))
                continue
            line = "%s %s none %s 0 0" % (_escape(real), _escape(real), ",".join(["bind"] + desired_flags))
        elif mount is not None and mount["fstype"] == "tmpfs":
            line = _tmpfs_line(real, mount, desired_flags)
        else:
            what = "%s (%s)" % (mount["source"], mount["fstype"]) if mount else "?"
            records.append(record(cid, None, wanted, "persisted", UNSUPPORTED,
                                  "not persisted: mounted from %s with no fstab line; add one to the image" % what))
            continue
        if refusal:
            records.append(record(cid, None, wanted, "persisted", UNSUPPORTED, refusal))
            continue
        new_block.append(line)
        records.append(record(cid, None, wanted, "persisted", CHANGED, "added to %s" % fstab))
    # a mount point still asked for keeps its block line even when it could not be handled now
    managed_now = set(item["real"] for item in items if item["real"]) | set(item["path"] for item in items)
    for path in block_paths:
        if path not in managed_now:
            if refusal:
                records.append(record(ID_PREFIX + path, "managed", None, "persisted", UNSUPPORTED, refusal))
            else:
                records.append(record(ID_PREFIX + path, "managed", None, "persisted", CHANGED,
                                      "removed from %s: no longer managed" % fstab))
    if not any_changed(records):
        if any(r["status"] == UNCHANGED for r in records):
            result["persisted_to"] = fstab
        return result
    result["text"] = render_fstab(lines, changes, new_block, managed_now)
    result["persisted_to"] = fstab
    return result


def _block_paths(text):
    paths = []
    inside = False
    for line, fields in parse_fstab(text):
        if line.strip() == BLOCK_BEGIN:
            inside = True
        elif line.strip() == BLOCK_END:
            inside = False
        elif inside and fields:
            paths.append(unescape_mount_field(fields[1]))
    return paths


def _replace_options(line, options):
    parts = re.split(r"(\s+)", line)
    # parts alternate: [lead?, field, sep, field, ...]; leading whitespace gives an empty first part
    index = 0
    field_no = 0
    for i, part in enumerate(parts):
        if part and not part.isspace():
            if field_no == 3:
                index = i
                break
            field_no += 1
    parts[index] = ",".join(options)
    return "".join(parts)


def render_fstab(lines, changes, new_block, managed_now):
    """The new fstab: changed options in place, the managed block rebuilt at the end."""
    out = []
    block = []
    inside = False
    for i, (line, fields) in enumerate(lines):
        if line.strip() == BLOCK_BEGIN:
            inside = True
            continue
        if line.strip() == BLOCK_END:
            inside = False
            continue
        if i in changes:
            line = _replace_options(line, changes[i])
        if inside:
            if fields and unescape_mount_field(fields[1]) in managed_now:
                block.append(line)
            continue
        out.append(line)
    block.extend(new_block)
    if block:
        out.extend([BLOCK_BEGIN, BLOCK_NOTE] + block + [BLOCK_END])
    return "\n".join(out) + "\n"


# --- reading ---------------------------------------------------------------------------


def _startup_scripts(root):
    """Texts of the scripts a BusyBox-style init runs at startup: inittab sysinit/wait lines,
    rcS, and the S* scripts of /etc/init.d and /etc/rcS.d (Buildroot, Yocto)."""
    texts = {}
    inittab = read_text(_under(root, "/etc/inittab"))
    commands = []
    for line in (inittab or "").splitlines():
        fields = line.split(":", 3)
        if len(fields) == 4 and fields[2] in ("sysinit", "wait", "once"):
            texts["/etc/inittab"] = inittab
            commands.append(fields[3].split()[0] if fields[3].split() else "")
    for command in commands + ["/etc/init.d/rcS"]:
        if command.startswith("/"):
            text = read_text(_under(root, command))
            if text is not None and len(text) < 262144:
                texts[command] = text
    for directory in ("/etc/init.d", "/etc/rcS.d"):
        try:
            names = sorted(os.listdir(_under(root, directory)))
        except OSError:
            continue
        for name in names:
            if name.startswith("S") or name.startswith("mountall"):
                path = directory + "/" + name
                text = read_text(_under(root, path))
                if text is not None and len(text) < 262144:
                    texts[path] = text
    return texts


def _resolve(root, path):
    """The real path of an existing directory, symlinks followed inside ``root``, or None.

    Resolved by hand, component by component, so an absolute link in a test tree points
    into the tree as it would on the device."""
    parts = path.split("/")
    current = "/"
    hops = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, part)
        host = _under(root, candidate)
        if os.path.islink(host):
            hops += 1
            if hops > 40:
                return None
            target = os.readlink(host)
            if target.startswith("/"):
                current = "/"
            parts = target.split("/") + parts
            continue
        current = candidate
    return current if os.path.isdir(_under(root, current)) else None


def _mount_binary_is_busybox(root):
    """True when the first ``mount`` found is a link to busybox (followed by hand, inside ``root``)."""
    for directory in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        current = directory + "/mount"
        if not os.path.lexists(_under(root, current)):
            continue
        for _hop in range(8):
            host = _under(root, current)
            if not os.path.islink(host):
                break
            target = os.readlink(host)
            current = os.path.normpath(os.path.join(os.path.dirname(current), target))
        return os.path.basename(current).startswith("busybox")
    return False


def read_state(entries, fstab_path=FSTAB, init_name=None, root="/"):
    """Everything the planners need, read once. Reads only."""
    mounts = parse_mountinfo(read_text(_under(root, MOUNTINFO), ""))
    real = {}
    for entry in entries:
        path = os.path.normpath(entry["path"])
        real[path] = _resolve(root, path)
    fstab_host = _under(root, fstab_path)
    return {
        "mounts": mounts,
        "real": real,
        "fstab_path": fstab_path,
        "fstab_text": read_text(fstab_host),
        "fstab_readonly": is_readonly_fs(fstab_host),
        "overlay_volatile": overlay_upper_volatile(mounts, lambda p: os.path.exists(_under(root, p))),
        "reader": fstab_reader(init_name, find_mount_a(_startup_scripts(root)) if init_name == "busybox" else []),
        "mount_is_busybox": _mount_binary_is_busybox(root),
        "root_readonly": is_readonly_fs(root),
    }


# --- applying (real runs only) -------------------------------------------------------


def apply_live(items, run, mountinfo_path=MOUNTINFO):
    """Bind and remount as planned, then re-read mountinfo to check each result.

    ``run(argv)`` returns ``(rc, stdout, stderr)``.
    """
    for item in items:
        if item["action"] is None:
            continue
        rec = item["live"]
        real = item["real"]
        if item["action"] == "bind":
            rc, _out, err = run(["mount", "-o", "bind", real, real])
            if rc != 0:
                item["live"] = record(rec["id"], rec["before"], rec["after"], "live", ERROR,
                                      "mount -o bind failed: %s" % (err or "").strip())
                item["action"] = None
                continue
        options = ["remount", "bind"] + remount_options(item["base_options"], item["desired"])
        rc, _out, err = run(["mount", "-o", ",".join(options), real])
        if rc != 0:
            item["live"] = record(rec["id"], rec["before"], rec["after"], "live", ERROR,
                                  "mount -o %s failed: %s" % (",".join(options), (err or "").strip()))
            item["action"] = None
    mounts = parse_mountinfo(read_text(mountinfo_path, ""))
    for item in items:
        if item["action"] is None:
            continue
        mount = mount_at(mounts, item["real"])
        rec = item["live"]
        got = effective_flags(mount["options"]) if mount else {}
        if mount is None or any(got.get(f) != item["desired"][f] for f in item["families"]):
            shown = render_flags(got, item["families"]) if mount else "not mounted"
            item["live"] = record(rec["id"], rec["before"], shown, "live", ERROR,
                                  "the kernel shows %s after the remount" % shown)
        else:
            item["mount"] = mount
            item["bind"] = item["bind"] or is_self_bind(mount, mounts)


def summarise(records):
    counts = dict((status, 0) for status in STATUSES)
    for rec in records:
        counts[rec["status"]] += 1
    return counts


def run(entries, persist="auto", strict=False, fstab_path=FSTAB, init_name=None, check_mode=False,
        runner=None, root="/"):
    """Validate, read, plan, apply (unless check mode), persist; returns the module result."""
    errors = validate(entries, persist)
    if not os.path.isabs(fstab_path or ""):
        errors.append("fstab_path must be an absolute path")
    if errors:
        return {"failed": True, "changed": False, "records": [], "summary": summarise([]), "errors": errors,
                "msg": "invalid mount options, nothing was changed: " + "; ".join(errors)}
    state = read_state(entries, fstab_path, init_name, root)
    items = plan_live(entries, state)
    if not check_mode:
        apply_live(items, runner, _under(root, MOUNTINFO))
    persist_plan = plan_persist(items, state, persist)
    warnings = list(persist_plan["warnings"])
    if not check_mode and persist_plan["text"] is not None:
        target = os.path.realpath(_under(root, fstab_path))
        try:
            mode = os.stat(target).st_mode & 0o7777 if os.path.exists(target) else 0o644
            atomic_write(target, persist_plan["text"], mode=mode)
        except (IOError, OSError) as exc:
            detail = "could not write %s: %s" % (fstab_path, exc.strerror or exc)
            persist_plan["records"] = [
                record(r["id"], r["before"], r["after"], r["where"], ERROR, detail) if r["status"] == CHANGED else r
                for r in persist_plan["records"]]
            persist_plan["persisted_to"] = None
    records = sorted([item["live"] for item in items] + persist_plan["records"],
                     key=lambda r: (r["id"], 0 if r["where"] == "live" else 1))
    not_persisted = [r for r in records if r["where"] == "persisted" and r["status"] == UNSUPPORTED]
    if not_persisted:
        warnings.append("mount options not persisted: %s" % "; ".join(
            "%s (%s)" % (r["id"][len(ID_PREFIX):], r.get("detail")) for r in not_persisted))
    result = {
        "changed": any_changed(records),
        "records": records,
        "summary": summarise(records),
        "persisted_to": persist_plan["persisted_to"],
        "fstab_reader": {"reads_fstab": state["reader"][0], "reason": state["reader"][1]},
        "root_readonly": state["root_readonly"],
        "overlay_volatile": state["overlay_volatile"],
        "warnings": warnings,
    }
    failed = [r for r in records if r["status"] == ERROR]
    if strict:
        failed += [r for r in records if r["status"] == UNSUPPORTED]
    if failed:
        result["failed"] = True
        result["msg"] = "mount options: " + "; ".join(
            "%s [%s] %s: %s" % (r["id"], r["where"], r["status"], r.get("detail")) for r in failed)
    return result
