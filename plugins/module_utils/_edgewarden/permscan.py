# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Inventory of SUID/SGID and world-writable files under configured paths only.

Whole-filesystem scans are slow on device CPUs and wear flash with metadata reads, so
the walk covers only the directories it is given, once each (overlapping and symlinked
roots are merged by their real path), stays on each root's filesystem (``xdev``), never
follows symlinks, and stops at ``max_entries``. One walk serves both inventories.

Flow: ``scan`` (reads) -> ``plan`` (pure: which SUID/SGID files are not allowlisted and,
when asked, the records for removing their bits) -> ``apply`` (chmod; real runs only).
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import (
    CHANGED,
    ERROR,
    UNSUPPORTED,
    STATUSES,
    any_changed,
    record,
)
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import is_readonly_fs, read_text
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.mounts import (
    MOUNTINFO,
    containing_mount,
    mount_at,
    overlay_upper_volatile,
    parse_mountinfo,
)

ID_PREFIX = "integrity.suid/"
DEFAULT_MAX_ENTRIES = 200000
SPECIAL = stat.S_ISUID | stat.S_ISGID


def _under(root, path):
    return os.path.join(root, path.lstrip("/"))


def _device_path(root, host_path):
    rel = os.path.relpath(host_path, os.path.realpath(root))
    return "/" if rel == "." else "/" + rel


def matches(path, patterns):
    """True when ``path`` equals a pattern or matches it as a glob (``*`` crosses ``/``)."""
    for pattern in patterns or []:
        if path == pattern or fnmatch.fnmatchcase(path, pattern):
            return True
    return False


def merge_roots(roots):
    """Roots without those inside another root, in order (the walk covers them once). Pure."""
    kept = []
    for root in sorted(set(roots), key=lambda r: (len(r), r)):
        if not any(root == k or root.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(root)
    return sorted(kept)


def classify(mode):
    """Which findings a file mode is: ``suid``, ``sgid`` and/or ``world_writable``. Pure.

    World-writable counts regular files, and directories without the sticky bit
    (a sticky world-writable directory such as /tmp is the intended shared kind).
    """
    found = []
    if stat.S_ISREG(mode):
        if mode & stat.S_ISUID:
            found.append("suid")
        if mode & stat.S_ISGID:
            found.append("sgid")
        if mode & stat.S_IWOTH:
            found.append("world_writable")
    elif stat.S_ISDIR(mode) and mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        found.append("world_writable")
    return found


def scan(suid_paths, world_writable_paths, exclude=None, xdev=True, max_entries=DEFAULT_MAX_ENTRIES, root="/"):
    """Walk the configured roots once; returns findings and walk statistics. Reads only."""
    started = time.time()
    wanted = {}
    missing = []
    for kind, paths in (("suid", suid_paths), ("world_writable", world_writable_paths)):
        for path in paths or []:
            host = os.path.realpath(_under(root, path))
            if not os.path.isdir(host):
                missing.append(path)
                continue
            wanted.setdefault(_device_path(root, host), set()).add(kind)
    findings = []
    entries = 0
    truncated = False
    walked = merge_roots(list(wanted))
    for top in walked:
        host_top = _under(root, top)
        try:
            top_dev = os.lstat(host_top).st_dev
        except OSError:
            continue
        stack = [(host_top, top_dev)]
        while stack and not truncated:
            directory, dev = stack.pop()
            try:
                iterator = os.scandir(directory)
            except OSError:
                continue
            with iterator:
                for entry in iterator:
                    entries += 1
                    if entries > max_entries:
                        truncated = True
                        break
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    path = _device_path(root, entry.path)
                    if exclude and matches(path, exclude):
                        continue
                    kinds = _kinds_for(path, wanted)
                    found = [k for k in classify(st.st_mode)
                             if (k == "world_writable" and "world_writable" in kinds)
                             or (k in ("suid", "sgid") and "suid" in kinds)]
                    if found:
                        findings.append({"path": path, "mode": "%04o" % stat.S_IMODE(st.st_mode),
                                         "uid": st.st_uid, "gid": st.st_gid,
                                         "type": "directory" if stat.S_ISDIR(st.st_mode) else "file",
                                         "kinds": found})
                    # another filesystem is entered only when it is itself a configured root
                    if stat.S_ISDIR(st.st_mode) and (not xdev or st.st_dev == dev or path in wanted):
                        stack.append((entry.path, st.st_dev))
    findings.sort(key=lambda f: f["path"])
    return {"findings": findings, "missing_roots": missing, "entries": entries, "truncated": truncated,
            "roots": walked, "seconds": round(time.time() - started, 3)}


def _kinds_for(path, wanted):
    kinds = set()
    for top, top_kinds in wanted.items():
        if top == "/" or path == top or path.startswith(top.rstrip("/") + "/"):
            kinds |= top_kinds
    return kinds


VOLATILE_NOTE = "on a root overlay whose upper layer is tmpfs: lost at reboot, fix the image"


def plan(scanned, suid_allowlist, world_writable_allowlist, remove_unlisted, readonly, volatile=None):
    """Inventories and removal records from a scan. Pure.

    ``readonly(path)`` tells whether a file sits on a read-only filesystem, ``volatile(path)``
    whether a change to it vanishes at reboot (a root overlay on tmpfs).
    """
    suid = []
    writable = []
    records = []
    for finding in scanned["findings"]:
        kinds = finding["kinds"]
        if "suid" in kinds or "sgid" in kinds:
            allowed = matches(finding["path"], suid_allowlist)
            suid.append(dict(finding, kinds=[k for k in kinds if k != "world_writable"], allowed=allowed))
            if remove_unlisted and not allowed:
                mode = int(finding["mode"], 8)
                after = "%04o" % (mode & ~SPECIAL)
                cid = ID_PREFIX + finding["path"]
                if readonly(finding["path"]):
                    records.append(record(cid, finding["mode"], after, "persisted", UNSUPPORTED, "read-only filesystem"))
                else:
                    detail = "%s bit removed: not in the allowlist" % "/".join(k for k in kinds if k != "world_writable")
                    if volatile is not None and volatile(finding["path"]):
                        detail += "; " + VOLATILE_NOTE
                    records.append(record(cid, finding["mode"], after, "persisted", CHANGED, detail))
        if "world_writable" in kinds:
            writable.append(dict(finding, kinds=["world_writable"], allowed=matches(finding["path"], world_writable_allowlist)))
    return {
        "suid": suid,
        "world_writable": writable,
        "unlisted_suid": [f["path"] for f in suid if not f["allowed"]],
        "unlisted_world_writable": [f["path"] for f in writable if not f["allowed"]],
        "records": records,
    }


def on_volatile_root(root="/"):
    """``volatile(path)``: True for paths on the root overlay when its upper layer is tmpfs."""
    mounts = parse_mountinfo(read_text(_under(root, MOUNTINFO), ""))
    if not overlay_upper_volatile(mounts, lambda p: os.path.exists(_under(root, p))):
        return lambda path: False
    top = mount_at(mounts, "/")
    return lambda path: containing_mount(mounts, path) is top


def apply(records, root="/"):
    """chmod every planned removal; a file that changed since the scan is left alone."""
    done = []
    for rec in records:
        if rec["status"] != CHANGED:
            done.append(rec)
            continue
        path = rec["id"][len(ID_PREFIX):]
        host = _under(root, path)
        try:
            st = os.lstat(host)
            if not stat.S_ISREG(st.st_mode) or "%04o" % stat.S_IMODE(st.st_mode) != rec["before"]:
                done.append(record(rec["id"], rec["before"], rec["after"], rec["where"], ERROR,
                                   "changed since the scan; left alone"))
                continue
            # chmod after lstat: the path is a regular file, not a symlink, so chmod hits it
            os.chmod(host, int(rec["after"], 8))
            done.append(rec)
        except OSError as exc:
            done.append(record(rec["id"], rec["before"], rec["after"], rec["where"], ERROR,
                               "chmod failed: %s" % (exc.strerror or exc)))
    return done


def summarise(records):
    counts = dict((status, 0) for status in STATUSES)
    for rec in records:
        counts[rec["status"]] += 1
    return counts


def run(suid_paths, world_writable_paths, suid_allowlist=None, world_writable_allowlist=None, remove_unlisted=False,
        exclude=None, xdev=True, max_entries=DEFAULT_MAX_ENTRIES, strict=False, check_mode=False, root="/"):
    errors = []
    for name, paths in (("suid_paths", suid_paths), ("world_writable_paths", world_writable_paths)):
        bad = [p for p in paths or [] if not isinstance(p, str) or not p.startswith("/")]
        if bad:
            errors.append("%s: not absolute paths: %s" % (name, ", ".join(str(p) for p in bad)))
    if not isinstance(max_entries, int) or max_entries < 1:
        errors.append("max_entries must be a positive integer")
    if errors:
        return {"failed": True, "changed": False, "records": [], "errors": errors,
                "msg": "invalid scan options, nothing was changed: " + "; ".join(errors)}
    scanned = scan(suid_paths, world_writable_paths, exclude, xdev, max_entries, root)
    planned = plan(scanned, suid_allowlist, world_writable_allowlist, remove_unlisted,
                   lambda p: is_readonly_fs(_under(root, p)), on_volatile_root(root))
    records = planned["records"] if check_mode else apply(planned["records"], root)
    result = dict(planned, records=records, changed=any_changed(records), summary=summarise(records),
                  scan={k: scanned[k] for k in ("roots", "missing_roots", "entries", "truncated", "seconds")})
    warnings = []
    if scanned["truncated"]:
        warnings.append("scan stopped after %d entries (max_entries): the inventory is incomplete" % max_entries)
    lost = [r for r in records if r["status"] == CHANGED and VOLATILE_NOTE in (r.get("detail") or "")]
    if lost:
        warnings.append("SUID/SGID bits removed only until reboot (%s): %s"
                        % (VOLATILE_NOTE, ", ".join(r["id"][len(ID_PREFIX):] for r in lost)))
    not_done = [r for r in records if r["status"] == UNSUPPORTED]
    if not_done:
        warnings.append("SUID/SGID bits not removed (read-only filesystem): %s"
                        % ", ".join(r["id"][len(ID_PREFIX):] for r in not_done))
    result["warnings"] = warnings
    failed = [r for r in records if r["status"] == ERROR]
    if strict:
        failed += [r for r in records if r["status"] == UNSUPPORTED]
    if failed:
        result["failed"] = True
        result["msg"] = "suid inventory: " + "; ".join("%s: %s" % (r["id"], r.get("detail")) for r in failed)
    return result
