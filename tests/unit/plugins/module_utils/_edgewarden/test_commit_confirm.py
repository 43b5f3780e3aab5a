# SPDX-License-Identifier: GPL-3.0-or-later
"""commit_confirm.py on real token directories in tmp_path (the rollback shell runs for real)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import commit_confirm as cc


def run(argv):
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    return res.returncode, res.stdout, res.stderr


def test_restore_script_stops_at_first_failure():
    text = cc.restore_script(["false", "echo never"], "x")
    assert "set -e" in text and text.endswith("echo never\n")


def test_unconfirmed_change_is_restored(tmp_path):
    target = tmp_path / "conf"
    target.write_text("new\n")
    info = cc.arm(str(tmp_path), cc.new_token(), ["cat ./saved > %s" % cc.shell_quote(str(target))], 1, run, "test",
                  files={"saved": "old\n"})
    deadline = time.time() + 10
    while cc.token_state(info["state_dir"]) not in (cc.ROLLED_BACK, cc.ROLLBACK_FAILED) and time.time() < deadline:
        time.sleep(0.1)
    assert cc.status(info["state_dir"])["state"] == cc.ROLLED_BACK
    assert target.read_text() == "old\n"


def test_confirmed_change_stays(tmp_path):
    target = tmp_path / "conf"
    target.write_text("new\n")
    info = cc.arm(str(tmp_path), cc.new_token(), ["echo old > %s" % cc.shell_quote(str(target))], 2, run, "test")
    assert cc.confirm(info["state_dir"]) == cc.CONFIRMED
    time.sleep(2.5)
    assert target.read_text() == "new\n"
    assert cc.confirm(info["state_dir"]) == cc.CONFIRMED


def test_rollback_now_and_late_confirm(tmp_path):
    target = tmp_path / "conf"
    target.write_text("new\n")
    info = cc.arm(str(tmp_path), cc.new_token(), ["cat ./saved > %s" % cc.shell_quote(str(target))], 60, run, "test",
                  files={"saved": "old\n"})
    assert cc.rollback_now(info["state_dir"], run) == cc.ROLLED_BACK
    assert target.read_text() == "old\n"
    assert cc.confirm(info["state_dir"]) == cc.ROLLED_BACK


def test_find_token_dir_rejects_paths(tmp_path):
    assert cc.find_token_dir("../etc", [str(tmp_path)]) is None
    token = cc.new_token()
    os.mkdir(os.path.join(str(tmp_path), token))
    assert cc.find_token_dir(token, [str(tmp_path)]) == os.path.join(str(tmp_path), token)


def test_use_token_keeps_the_controllers_token_only_when_well_formed():
    assert cc.use_token("1700000000-0123456789ab") == "1700000000-0123456789ab"
    for bad in (None, "", "../etc", "1-XYZ"):
        assert cc.TOKEN_RE.match(cc.use_token(bad)) and cc.use_token(bad) != bad


def test_arm_check_refuses_before_anything_is_armed(tmp_path):
    def refuse(token_dir):
        assert (tmp_path / "1-dddddddddddd" / "saved").read_text() == "old\n"  # the saved files are there to check
        raise cc.CommitConfirmError("cannot restore this")
    with pytest.raises(cc.CommitConfirmError, match="cannot restore this"):
        cc.arm(str(tmp_path), "1-dddddddddddd", ["true"], 5, run, "test", files={"saved": "old\n"}, check=refuse)
    d = tmp_path / "1-dddddddddddd"
    assert cc.token_state(str(d)) is None and not (d / "rollback.sh").exists()


# ------------------------------------------------------------------ token directories without a shell


def armed_dir(root, token="1-aaaaaaaaaaaa"):
    d = root / token
    d.mkdir(parents=True)
    (d / "armed").write_text("1\n")
    (d / "armed.json").write_text(json.dumps({"armed_at": 100, "timeout": 30, "deadline": 130}))
    return d


def test_confirm_wins_the_rename(tmp_path):
    d = armed_dir(tmp_path)
    assert cc.confirm(str(d)) == cc.CONFIRMED
    assert cc.token_state(str(d)) == cc.CONFIRMED


def test_confirm_after_the_rollback_reports_it(tmp_path):
    d = armed_dir(tmp_path)
    os.rename(str(d / "armed"), str(d / "rolling"))
    (d / "rolled-back").write_text("131\n")
    assert cc.confirm(str(d)) == cc.ROLLED_BACK
    assert cc.status(str(d))["restored_after"] == 31


def test_pending_rollbacks_marks_dead_ones_stale(tmp_path):
    d = armed_dir(tmp_path)
    (d / "pid").write_text("%d\n" % os.getpid())  # alive, but not our rollback shell
    assert cc.pending_rollbacks(str(tmp_path)) == []
    assert cc.token_state(str(d)) == cc.STALE


def test_prune_keeps_the_newest_finished(tmp_path):
    for i in range(8):
        d = tmp_path / ("%d-%012x" % (i, i))
        d.mkdir()
        (d / ("confirmed" if i != 7 else "armed")).write_text("x")
    cc.prune(str(tmp_path), keep=3)
    assert sorted(os.listdir(str(tmp_path))) == ["4-000000000004", "5-000000000005", "6-000000000006", "7-000000000007"]


def test_rollback_script_runs_on_plain_sh():
    script = cc.rollback_script(90, "/run/edgewarden/firewall/1-x", "firewall")
    assert "sleep 90\n" in script and "if mv armed rolling 2>/dev/null; then" in script
    assert "trap '' HUP" in script and "cd '/run/edgewarden/firewall/1-x' || exit 1" in script
    assert "/bin/sh ./restore.sh" in script


# ------------------------------------------------------------------ which connection


TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0 100 0 0 10 0
   1: 0B4DA8C0:0016 014DA8C0:8908 01 0000014C:00000000 01:00000014 00000000     0        0 2222 3 0 20 5 15 33 -1
"""


def fake_proc(tmp_path, tree):
    """/proc with processes {pid: (ppid, [socket inodes])} and one tcp table."""
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    (proc / "net" / "tcp").write_text(TCP)
    for pid, (ppid, inodes) in tree.items():
        base = proc / str(pid)
        (base / "fd").mkdir(parents=True)
        (base / "stat").write_text("%d (x y) S %d 1 1 0 -1\n" % (pid, ppid))
        for i, inode in enumerate(inodes):
            os.symlink("socket:[%d]" % inode, str(base / "fd" / str(i)))
    return str(proc)


def test_parse_tcp_connections_keeps_established_only():
    conns = cc.parse_tcp_connections(TCP)
    if sys.byteorder == "little":
        assert conns == {2222: ("192.168.77.11", 22, "192.168.77.1", 0x8908)}


@pytest.mark.skipif(sys.byteorder != "little", reason="the sample /proc/net/tcp was captured on a little-endian host")
def test_ssh_connection_is_found_up_the_process_tree(tmp_path):
    # 1 sshd listener (inode 1111) -> 59 session (inode 2222) -> 65 shell -> 77 module
    proc = fake_proc(tmp_path, {1: (0, [1111]), 59: (1, [1111, 2222]), 65: (59, []), 77: (65, [])})
    assert cc.ssh_connection(77, proc) == "192.168.77.1:35080"
    assert cc.ssh_connection(1, proc) is None
    assert cc.ssh_connection(77, str(tmp_path / "no-proc")) is None
