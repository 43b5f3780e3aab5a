# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import mounts

# a namespace host of the lab: overlay root, tmpfs /tmp and /dev/shm, /var/tmp on the root
MOUNTINFO = """\
1247 1250 0:271 / / rw,relatime - overlay overlay rw,lowerdir=/images/debian,upperdir=/run/hosts/debian1/upper,workdir=/run/hosts/debian1/work
1248 1247 0:273 / /proc rw,relatime - proc proc rw
1291 1247 0:274 / /dev rw,relatime - tmpfs tmpfs rw,size=16384k,mode=755
1361 1291 0:276 / /dev/shm rw,nosuid,nodev,relatime - tmpfs tmpfs rw
1286 1247 0:278 / /tmp rw,relatime - tmpfs tmpfs rw,size=65536k,mode=1777,inode64
"""
BOUND = MOUNTINFO + "1400 1247 0:271 /var/tmp /var/tmp rw,nosuid,nodev,noexec,relatime - overlay overlay rw\n"
HARDENED = [
    {"path": "/tmp", "options": ["nodev", "nosuid", "noexec"]},
    {"path": "/dev/shm", "options": ["nodev", "nosuid", "noexec"]},
    {"path": "/var/tmp", "options": ["nodev", "nosuid", "noexec"], "if_not_mounted": "bind"},
]
ALL = ["/tmp", "/dev/shm", "/var/tmp"]


def state(mountinfo=MOUNTINFO, fstab="", real=None, reader=(True, "systemd"), readonly=False, volatile=False, busybox=False):
    return {
        "mounts": mounts.parse_mountinfo(mountinfo),
        "real": dict((p, p) for p in ALL) if real is None else real,
        "fstab_path": "/etc/fstab",
        "fstab_text": fstab,
        "fstab_readonly": readonly,
        "overlay_volatile": volatile,
        "reader": reader,
        "mount_is_busybox": busybox,
        "root_readonly": readonly,
    }


def by_key(records):
    return dict(((r["id"], r["where"]), r) for r in records)


def test_parse_mountinfo_fields():
    parsed = mounts.parse_mountinfo(MOUNTINFO + "9 1 8:1 /a\\040b /mnt/x\\040y rw shared:1 - ext4 /dev/sda1 rw\n")
    assert parsed[0]["fstype"] == "overlay" and parsed[0]["mountpoint"] == "/"
    assert parsed[4]["super_options"] == ["rw", "size=65536k", "mode=1777", "inode64"]
    last = parsed[-1]
    assert (last["root"], last["mountpoint"], last["source"]) == ("/a b", "/mnt/x y", "/dev/sda1")


@pytest.mark.parametrize("options, expected", [
    (["rw", "relatime"], {"nodev": False, "nosuid": False, "noexec": False}),
    (["rw", "nosuid", "nodev", "noexec"], {"nodev": True, "nosuid": True, "noexec": True}),
    (["defaults", "noexec"], {"nodev": False, "nosuid": False, "noexec": True}),
    (["noexec", "exec"], {"nodev": False, "nosuid": False, "noexec": False}),
])
def test_effective_flags(options, expected):
    assert mounts.effective_flags(options) == expected


@pytest.mark.parametrize("options, desired, expected", [
    (["defaults"], ["nodev", "nosuid", "noexec"], ["defaults", "nodev", "nosuid", "noexec"]),
    (["rw", "exec", "size=10m"], ["noexec"], ["rw", "size=10m", "noexec"]),
    (["nodev", "noexec"], ["nodev", "exec"], ["nodev", "exec"]),
])
def test_merge_options(options, desired, expected):
    assert mounts.merge_options(options, desired) == expected


@pytest.mark.parametrize("base, desired, expected", [
    (["rw", "relatime"], {"noexec": True}, ["rw", "relatime", "dev", "suid", "noexec"]),
    (["ro", "nosuid", "noatime"], {"nodev": True}, ["ro", "noatime", "nodev", "nosuid", "exec"]),
    (["nosuid"], {"nosuid": False}, ["rw", "dev", "suid", "exec"]),
])
def test_remount_options_keep_the_other_flags(base, desired, expected):
    assert mounts.remount_options(base, desired) == expected


@pytest.mark.parametrize("entries, message", [
    ([{"path": "tmp", "options": ["nodev"]}], "absolute directory"),
    ([{"path": "/", "options": ["nodev"]}], "absolute directory"),
    ([{"path": "/tmp", "options": ["nodev", "noatime"]}], "unknown options noatime"),
    ([{"path": "/tmp", "options": ["noexec", "exec"]}], "contradicting or repeated options for noexec"),
    ([{"path": "/tmp", "options": []}], "non-empty list"),
    ([{"path": "/tmp", "options": ["nodev"]}, {"path": "/tmp/", "options": ["nodev"]}], "listed twice"),
    ([{"path": "/tmp", "options": ["nodev"], "if_not_mounted": "tmpfs"}], "if_not_mounted must be one of"),
])
def test_validate_names_every_problem(entries, message):
    errors = mounts.validate(entries, "auto")
    assert any(message in e for e in errors), errors


def test_validate_reports_all_problems_at_once():
    errors = mounts.validate([{"path": "x", "options": ["bogus"]}], "sometimes")
    assert len(errors) == 3


def test_plan_live_fresh_host():
    items = mounts.plan_live(HARDENED, state())
    live = dict((i["path"], i["live"]) for i in items)
    assert live["/tmp"]["status"] == "changed" and live["/tmp"]["before"] == "dev,suid,exec"
    assert live["/dev/shm"]["before"] == "nodev,nosuid,exec"
    assert live["/var/tmp"]["status"] == "changed" and "bind-mounted onto itself" in live["/var/tmp"]["detail"]
    assert [i["action"] for i in items] == ["remount", "remount", "bind"]


def test_plan_live_hardened_host_is_unchanged():
    hardened = BOUND.replace("/tmp rw,relatime", "/tmp rw,nosuid,nodev,noexec,relatime").replace(
        "/dev/shm rw,nosuid,nodev,relatime", "/dev/shm rw,nosuid,nodev,noexec,relatime")
    items = mounts.plan_live(HARDENED, state(hardened))
    assert [i["live"]["status"] for i in items] == ["unchanged"] * 3
    assert [i["bind"] for i in items] == [False, False, True]


def test_plan_live_not_a_mount_point_without_bind():
    items = mounts.plan_live([{"path": "/var/tmp", "options": ["nodev"]}], state())
    assert items[0]["live"]["status"] == "unsupported"
    assert "not a mount point (part of /)" in items[0]["live"]["detail"]


def test_plan_live_absent_directory_is_not_created():
    items = mounts.plan_live(HARDENED, state(real={"/tmp": "/tmp", "/dev/shm": "/dev/shm", "/var/tmp": None}))
    assert items[2]["live"]["status"] == "absent"
    assert items[2]["action"] is None


def test_plan_live_symlinked_directory_is_managed_once():
    entries = [{"path": "/tmp", "options": ["noexec"]}, {"path": "/var/tmp", "options": ["noexec"]}]
    items = mounts.plan_live(entries, state(real={"/tmp": "/tmp", "/var/tmp": "/tmp"}))
    assert items[0]["live"]["status"] == "changed"
    assert items[1]["live"]["status"] == "unchanged" and "same directory as /tmp" in items[1]["live"]["detail"]
    clash = [{"path": "/tmp", "options": ["noexec"]}, {"path": "/var/tmp", "options": ["exec"]}]
    items = mounts.plan_live(clash, state(real={"/tmp": "/tmp", "/var/tmp": "/tmp"}))
    assert items[1]["live"]["status"] == "error"


def test_plan_persist_adds_lines_in_a_block():
    st = state(fstab="# static\nUUID=1 / ext4 defaults 0 1\n")
    items = mounts.plan_live(HARDENED, st)
    plan = mounts.plan_persist(items, st, "auto")
    assert [r["status"] for r in plan["records"]] == ["changed"] * 3
    assert plan["text"] == (
        "# static\nUUID=1 / ext4 defaults 0 1\n"
        + mounts.BLOCK_BEGIN + "\n" + mounts.BLOCK_NOTE + "\n"
        "tmpfs /tmp tmpfs nodev,nosuid,noexec,size=65536k,mode=1777 0 0\n"
        "tmpfs /dev/shm tmpfs nodev,nosuid,noexec 0 0\n"
        "/var/tmp /var/tmp none bind,nodev,nosuid,noexec 0 0\n"
        + mounts.BLOCK_END + "\n")
    # written once, the same plan is a no-op
    again = mounts.plan_persist(items, state(fstab=plan["text"]), "auto")
    assert [r["status"] for r in again["records"]] == ["unchanged"] * 3
    assert again["text"] is None and again["persisted_to"] == "/etc/fstab"


def test_plan_persist_edits_an_existing_line_in_place():
    fstab = "tmpfs   /tmp    tmpfs   defaults,size=1g   0  0\n"
    st = state(fstab=fstab)
    plan = mounts.plan_persist(mounts.plan_live(HARDENED[:1], st), st, "auto")
    assert plan["text"] == "tmpfs   /tmp    tmpfs   defaults,size=1g,nodev,nosuid,noexec   0  0\n"
    assert plan["records"][0]["before"] == "dev,suid,exec"


@pytest.mark.parametrize("kwargs, detail", [
    ({"readonly": True}, "read-only filesystem"),
    ({"volatile": True}, "upper layer is on tmpfs"),
    ({"reader": (False, "pid 1 is tini, which applies no /etc/fstab at boot")}, "pid 1 is tini"),
])
def test_plan_persist_refusals_are_reported_not_written(kwargs, detail):
    st = state(**kwargs)
    plan = mounts.plan_persist(mounts.plan_live(HARDENED, st), st, "auto")
    assert plan["text"] is None and plan["persisted_to"] is None
    assert all(r["status"] == "unsupported" and detail in r["detail"] for r in plan["records"])


def test_persist_fstab_ignores_the_reader_but_not_a_readonly_fstab():
    st = state(reader=(False, "tini"))
    assert mounts.plan_persist(mounts.plan_live(HARDENED, st), st, "fstab")["text"] is not None
    st = state(reader=(False, "tini"), readonly=True)
    assert mounts.plan_persist(mounts.plan_live(HARDENED, st), st, "fstab")["text"] is None


def test_persist_none_returns_no_records():
    st = state()
    assert mounts.plan_persist(mounts.plan_live(HARDENED, st), st, "none")["records"] == []


def test_busybox_mount_cannot_persist_a_bind():
    st = state(busybox=True)
    records = by_key(mounts.plan_persist(mounts.plan_live(HARDENED, st), st, "auto")["records"])
    assert records[("integrity.mount//var/tmp", "persisted")]["status"] == "unsupported"
    assert records[("integrity.mount//tmp", "persisted")]["status"] == "changed"


def test_block_lines_no_longer_managed_are_removed():
    st = state(fstab=mounts.BLOCK_BEGIN + "\ntmpfs /run/old tmpfs nodev 0 0\n" + mounts.BLOCK_END + "\n")
    plan = mounts.plan_persist(mounts.plan_live(HARDENED[:1], st), st, "auto")
    records = by_key(plan["records"])
    assert records[("integrity.mount//run/old", "persisted")]["status"] == "changed"
    assert "/run/old" not in plan["text"] and "tmpfs /tmp tmpfs" in plan["text"]


def test_a_mount_from_a_device_without_fstab_line_is_not_invented():
    info = MOUNTINFO + "1500 1247 179:3 / /data rw,relatime - ext4 /dev/mmcblk0p3 rw\n"
    st = state(info, real={"/data": "/data"})
    plan = mounts.plan_persist(mounts.plan_live([{"path": "/data", "options": ["nodev"]}], st), st, "auto")
    assert plan["records"][0]["status"] == "unsupported"
    assert "/dev/mmcblk0p3 (ext4)" in plan["records"][0]["detail"]


@pytest.mark.parametrize("init_name, scripts, reads", [
    ("systemd", [], True),
    ("openrc", [], True),
    ("sysv", [], True),
    ("busybox", ["/etc/init.d/rcS"], True),
    ("busybox", [], False),
    ("procd", [], False),
    ("tini", [], False),
    (None, [], False),
])
def test_fstab_reader(init_name, scripts, reads):
    assert mounts.fstab_reader(init_name, scripts)[0] is reads


@pytest.mark.parametrize("text, found", [
    ("#!/bin/sh\nmount -a\n", True),
    ("#!/bin/sh\n/bin/mount -at nonfs,nosmbfs\n", True),
    ("[ -f /etc/fstab ] && mount -a", True),
    ("mount -o remount,rw /\n", False),
    ("# mount -a is not run here\numount -a\n", False),
])
def test_find_mount_a(text, found):
    assert bool(mounts.find_mount_a({"rcS": text})) is found


def test_read_state_on_a_tree(tmp_path):
    root = str(tmp_path)
    for path in ("proc/self", "etc/init.d", "tmp", "dev/shm", "usr/bin"):
        os.makedirs(os.path.join(root, path))
    os.symlink("/tmp", os.path.join(root, "var-tmp-link"))
    (tmp_path / "proc/self/mountinfo").write_text(MOUNTINFO)
    (tmp_path / "etc/inittab").write_text("::sysinit:/etc/init.d/rcS\n")
    (tmp_path / "etc/init.d/rcS").write_text("#!/bin/sh\nmount -a\n")
    (tmp_path / "etc/fstab").write_text("proc /proc proc defaults 0 0\n")
    os.symlink("busybox", os.path.join(root, "usr/bin/mount"))
    entries = HARDENED + [{"path": "/var-tmp-link", "options": ["nodev"]}]
    st = mounts.read_state(entries, init_name="busybox", root=root)
    assert st["reader"] == (True, "BusyBox init runs mount -a in /etc/init.d/rcS")
    assert st["mount_is_busybox"] is True
    assert st["real"] == {"/tmp": "/tmp", "/dev/shm": "/dev/shm", "/var/tmp": None, "/var-tmp-link": "/tmp"}
    assert st["fstab_text"].startswith("proc")


@pytest.mark.parametrize("mountinfo, exists, expected", [
    ("1 0 0:1 / / rw - ext4 /dev/vda rw\n", True, False),
    ("1 0 0:1 / / rw - overlay overlay rw,lowerdir=/ro,upperdir=/media/root-rw/overlay,workdir=/w\n"
     "2 1 0:2 / /media/root-rw rw - tmpfs tmpfs rw\n", True, True),
    ("1 0 0:1 / / rw - overlay overlay rw,lowerdir=/ro,upperdir=/data/upper,workdir=/w\n"
     "2 1 179:4 / /data rw - ext4 /dev/mmcblk0p4 rw\n", True, False),
    (MOUNTINFO, False, None),
])
def test_overlay_upper_volatile(mountinfo, exists, expected):
    assert mounts.overlay_upper_volatile(mounts.parse_mountinfo(mountinfo), lambda p: exists) is expected


def test_run_fails_before_reading_on_bad_input():
    result = mounts.run([{"path": "relative", "options": ["nodev"]}], persist="auto", root="/nonexistent")
    assert result["failed"] and "nothing was changed" in result["msg"]


def test_block_line_of_a_requested_but_unmounted_path_is_kept():
    # /var/tmp is asked for without bind and is not mounted now: report it, keep its line
    fstab = mounts.BLOCK_BEGIN + "\n/var/tmp /var/tmp none bind,nodev 0 0\n" + mounts.BLOCK_END + "\n"
    st = state(fstab=fstab)
    entries = [{"path": "/tmp", "options": ["nodev"]}, {"path": "/var/tmp", "options": ["nodev"]}]
    plan = mounts.plan_persist(mounts.plan_live(entries, st), st, "auto")
    assert "/var/tmp /var/tmp none bind,nodev 0 0" in plan["text"]
    assert ("integrity.mount//var/tmp", "persisted") not in by_key(plan["records"])
