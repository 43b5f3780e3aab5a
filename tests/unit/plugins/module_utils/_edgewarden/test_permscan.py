# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import permscan

FILES = {
    "/usr/bin/su": 0o4755,
    "/usr/bin/chfn": 0o4755,
    "/usr/bin/wall": 0o2755,
    "/usr/bin/ls": 0o755,
    "/usr/lib/helper": 0o6755,
    "/etc/app.conf": 0o666,
    "/etc/ok.conf": 0o644,
    "/opt/tool/setuid-in-opt": 0o4755,
}
DIRS = {"/etc/dropin.d": 0o777, "/etc/shared": 0o1777}


def build(root):
    for path, mode in FILES.items():
        host = os.path.join(str(root), path.lstrip("/"))
        os.makedirs(os.path.dirname(host), exist_ok=True)
        with open(host, "w") as handle:
            handle.write("x")
        os.chmod(host, mode)
    for path, mode in DIRS.items():
        host = os.path.join(str(root), path.lstrip("/"))
        os.makedirs(host)
        os.chmod(host, mode)
    os.symlink("usr/bin", os.path.join(str(root), "bin"))
    return str(root)


@pytest.mark.parametrize("mode, kinds", [
    (stat.S_IFREG | 0o4755, ["suid"]),
    (stat.S_IFREG | 0o2755, ["sgid"]),
    (stat.S_IFREG | 0o6777, ["suid", "sgid", "world_writable"]),
    (stat.S_IFREG | 0o644, []),
    (stat.S_IFDIR | 0o777, ["world_writable"]),
    (stat.S_IFDIR | 0o1777, []),            # sticky: /tmp-like, intended
    (stat.S_IFLNK | 0o777, []),             # symlinks are always 0777
    (stat.S_IFDIR | 0o4755, []),            # setuid on a directory means nothing here
])
def test_classify(mode, kinds):
    assert permscan.classify(mode) == kinds


@pytest.mark.parametrize("roots, merged", [
    (["/usr/bin", "/usr", "/etc"], ["/etc", "/usr"]),
    (["/usr/bin", "/usr/bin/"], ["/usr/bin"]),
    (["/", "/usr"], ["/"]),
    (["/usr/lib", "/usr/libexec"], ["/usr/lib", "/usr/libexec"]),
])
def test_merge_roots(roots, merged):
    assert permscan.merge_roots(roots) == merged


@pytest.mark.parametrize("path, patterns, hit", [
    ("/usr/bin/su", ["/usr/bin/su"], True),
    ("/usr/lib/x/helper", ["/usr/lib/*/helper"], True),
    ("/usr/lib/a/b/helper", ["/usr/lib/*"], True),
    ("/usr/bin/sudo", ["/usr/bin/su"], False),
    ("/usr/bin/su", None, False),
])
def test_matches(path, patterns, hit):
    assert permscan.matches(path, patterns) is hit


def test_scan_only_the_configured_roots(tmp_path):
    root = build(tmp_path)
    result = permscan.scan(["/bin", "/usr/lib", "/missing"], ["/etc"], root=root)
    paths = dict((f["path"], f["kinds"]) for f in result["findings"])
    # /bin is a link to /usr/bin: walked once, reported under its real path; /opt is not configured
    assert paths == {"/usr/bin/su": ["suid"], "/usr/bin/chfn": ["suid"], "/usr/bin/wall": ["sgid"],
                     "/usr/lib/helper": ["suid", "sgid"], "/etc/app.conf": ["world_writable"],
                     "/etc/dropin.d": ["world_writable"]}
    assert result["missing_roots"] == ["/missing"]
    assert result["roots"] == ["/etc", "/usr/bin", "/usr/lib"]
    assert not result["truncated"]


def test_scan_kinds_follow_their_roots(tmp_path):
    root = build(tmp_path)
    # world-writable under /usr only: the SUID files there are not reported
    result = permscan.scan([], ["/usr"], root=root)
    assert result["findings"] == []


def test_scan_stops_at_max_entries(tmp_path):
    root = build(tmp_path)
    result = permscan.scan(["/usr"], [], max_entries=2, root=root)
    assert result["truncated"] and result["entries"] == 3


def test_scan_exclude_prunes(tmp_path):
    root = build(tmp_path)
    result = permscan.scan(["/usr"], [], exclude=["/usr/lib"], root=root)
    assert "/usr/lib/helper" not in [f["path"] for f in result["findings"]]


def test_plan_allowlists_and_removals():
    scanned = {"findings": [
        {"path": "/usr/bin/su", "mode": "4755", "kinds": ["suid"]},
        {"path": "/usr/bin/chfn", "mode": "4755", "kinds": ["suid"]},
        {"path": "/usr/lib/helper", "mode": "6755", "kinds": ["suid", "sgid"]},
        {"path": "/ro/tool", "mode": "4711", "kinds": ["suid"]},
        {"path": "/etc/app.conf", "mode": "0666", "kinds": ["world_writable"]},
    ]}
    planned = permscan.plan(scanned, ["/usr/bin/su"], ["/etc/app.conf"], True, lambda p: p.startswith("/ro/"))
    assert planned["unlisted_suid"] == ["/usr/bin/chfn", "/usr/lib/helper", "/ro/tool"]
    assert planned["unlisted_world_writable"] == []
    records = dict((r["id"], r) for r in planned["records"])
    assert records["integrity.suid//usr/bin/chfn"]["after"] == "0755"
    assert records["integrity.suid//usr/lib/helper"]["after"] == "0755"
    assert records["integrity.suid//ro/tool"]["status"] == "unsupported"
    assert "integrity.suid//usr/bin/su" not in records
    inventory_only = permscan.plan(scanned, [], [], False, lambda p: False)
    assert inventory_only["records"] == [] and len(inventory_only["unlisted_suid"]) == 4


def test_run_removes_and_is_idempotent(tmp_path):
    root = build(tmp_path)
    kwargs = dict(suid_paths=["/usr"], world_writable_paths=["/etc"], suid_allowlist=["/usr/bin/su"],
                  remove_unlisted=True, root=root)
    predicted = permscan.run(check_mode=True, **kwargs)
    assert os.stat(os.path.join(root, "usr/bin/chfn")).st_mode & 0o7777 == 0o4755
    first = permscan.run(**kwargs)
    assert predicted["records"] == first["records"] and first["changed"]
    assert os.stat(os.path.join(root, "usr/bin/chfn")).st_mode & 0o7777 == 0o755
    assert os.stat(os.path.join(root, "usr/lib/helper")).st_mode & 0o7777 == 0o755
    assert os.stat(os.path.join(root, "usr/bin/su")).st_mode & 0o7777 == 0o4755
    second = permscan.run(**kwargs)
    assert not second["changed"] and second["records"] == []


def test_apply_leaves_a_file_that_changed_since_the_scan(tmp_path):
    root = build(tmp_path)
    rec = {"id": "integrity.suid//usr/bin/chfn", "before": "4711", "after": "0711", "where": "persisted",
           "status": "changed"}
    done = permscan.apply([rec], root)
    assert done[0]["status"] == "error"
    assert os.stat(os.path.join(root, "usr/bin/chfn")).st_mode & 0o7777 == 0o4755


def test_run_rejects_relative_paths_before_scanning():
    result = permscan.run(["usr/bin"], ["/etc"], root="/nonexistent")
    assert result["failed"] and "not absolute paths: usr/bin" in result["msg"]


def test_removal_on_a_volatile_overlay_root_says_it_is_lost_at_reboot(tmp_path):
    root = build(tmp_path)
    os.makedirs(os.path.join(root, "proc/self"))
    os.makedirs(os.path.join(root, "media/root-rw/upper"))
    with open(os.path.join(root, "proc/self/mountinfo"), "w") as handle:
        handle.write("1 0 0:1 / / rw - overlay overlay rw,lowerdir=/ro,upperdir=/media/root-rw/upper,workdir=/w\n"
                     "2 1 0:2 / /media/root-rw rw - tmpfs tmpfs rw\n")
    result = permscan.run(["/usr/bin"], [], remove_unlisted=True, suid_allowlist=["/usr/bin/su"], root=root)
    assert [r["status"] for r in result["records"]] == ["changed", "changed"]
    assert all(permscan.VOLATILE_NOTE in r["detail"] for r in result["records"])
    assert any("only until reboot" in w for w in result["warnings"])
