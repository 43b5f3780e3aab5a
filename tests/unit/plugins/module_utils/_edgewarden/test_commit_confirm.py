# SPDX-License-Identifier: GPL-3.0-or-later
"""commit_confirm.py on real token directories in tmp_path (the rollback shell runs for real)."""

from __future__ import annotations

import os
import subprocess
import time

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
