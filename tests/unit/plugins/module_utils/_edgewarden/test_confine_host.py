# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Accounts and writable paths for confined apps, on trees under tmp_path."""

from __future__ import annotations

import os

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine_host as host

PASSWD = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/bin/false\nsvc:x:100:100::/:/bin/false\nnobody:x:65534:65534::/nonexistent:/bin/false\n"
GROUP = "root:x:0:\ndaemon:x:1:\nsvc:x:100:\nnogroup:x:65534:\n"


def tree(tmp_path, files):
    root = str(tmp_path)
    for path, text in files.items():
        full = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as handle:
            handle.write(text)
    return root


def apps_of(*raws):
    apps, errors, dummy = confine.validate_apps(list(raws), systemd=False)
    assert errors == []
    return apps


def test_plan_accounts_picks_free_system_ids(tmp_path):
    root = tree(tmp_path, {"/etc/passwd": PASSWD, "/etc/group": GROUP})
    accounts = host.read_accounts(root)
    records, actions, errors = host.plan_accounts(apps_of({"name": "ew-demo"}, {"name": "svc"}, {"name": "r", "user": "root"}),
                                                  accounts, root)
    assert errors == []
    by_id = dict((r["id"], r) for r in records)
    assert by_id["confine.account/ew-demo"]["before"] == "absent"
    assert by_id["confine.account/ew-demo"]["after"] == "ew-demo (uid 101)"
    assert by_id["confine.account/svc"]["status"] == "unchanged"
    assert "confine.account/r" not in by_id
    assert actions == [{"user": "ew-demo", "uid": 101, "group": "ew-demo", "gid": 101, "new_group": True}]


@pytest.mark.parametrize("raw, error", [
    ({"name": "ghost", "create_user": False}, "does not exist and create_user is false"),
    ({"name": "x", "user": "svc", "group": "nope"}, "group nope does not exist"),
])
def test_plan_accounts_errors(tmp_path, raw, error):
    root = tree(tmp_path, {"/etc/passwd": PASSWD, "/etc/group": GROUP})
    dummy, dummy2, errors = host.plan_accounts(apps_of(raw), host.read_accounts(root), root)
    assert any(error in e for e in errors), errors


def test_two_apps_sharing_a_new_account_create_it_once(tmp_path):
    root = tree(tmp_path, {"/etc/passwd": PASSWD, "/etc/group": GROUP})
    records, actions, errors = host.plan_accounts(apps_of({"name": "a", "user": "shared"}, {"name": "b", "user": "shared"}),
                                                  host.read_accounts(root), root)
    assert errors == [] and len(actions) == 1
    assert [r["status"] for r in records] == ["changed", "changed"]


def test_account_files_gain_one_line_each_and_keep_the_rest(tmp_path):
    root = tree(tmp_path, {"/etc/passwd": PASSWD, "/etc/group": GROUP, "/etc/shadow": "root:*:19000:0:99999:7:::",
                           "/sbin/nologin": ""})
    accounts = host.read_accounts(root)
    dummy, actions, dummy2 = host.plan_accounts(apps_of({"name": "ew-demo"}), accounts, root)
    passwd, group, shadow = host.render_account_files(accounts, actions, root, today=86400 * 20000)
    assert passwd == PASSWD + "ew-demo:x:101:101:edgewarden confined service:/nonexistent:/sbin/nologin\n"
    assert group == GROUP + "ew-demo:x:101:\n"
    assert shadow == "root:*:19000:0:99999:7:::\new-demo:!:20000:0:99999:7:::\n"
    host.apply_accounts_files(accounts, actions, root)
    after = host.read_accounts(root)
    assert after["users"]["ew-demo"][2] == "101" and after["groups"]["ew-demo"][2] == "101"
    # a second plan has nothing left to do
    records, actions, dummy = host.plan_accounts(apps_of({"name": "ew-demo"}), after, root)
    assert actions == [] and records[0]["status"] == "unchanged"


def test_sysusers_line():
    assert host.sysusers_line({"user": "ew-demo", "uid": 101, "gid": 107}) == \
        'u ew-demo 101:107 "edgewarden confined service" /nonexistent\n'


def test_paths_are_created_or_handed_over(tmp_path):
    uid, gid = os.getuid(), os.getgid()
    root = tree(tmp_path, {"/var/lib/ew-demo/state": "x", "/etc/passwd": "me:x:%d:%d::/:/bin/sh\n" % (uid, gid),
                           "/etc/group": "me:x:%d:\n" % gid})
    accounts = host.read_accounts(root)
    apps = apps_of({"name": "ew-demo", "user": "me", "group": "me", "writable_paths": ["/var/lib/ew-demo", "/srv/ew-demo"]})
    states = dict((p, host.read_path(p, root)) for p in apps[0]["writable_paths"])
    records, actions = host.plan_paths(apps, states, accounts, [])
    by_id = dict((r["id"], r) for r in records)
    # the tree is already owned by the running user, so only the missing path is planned
    assert by_id["confine.path/ew-demo:/var/lib/ew-demo"]["status"] == "unchanged"
    assert by_id["confine.path/ew-demo:/srv/ew-demo"]["before"] == "absent"
    assert actions == [{"op": "mkdir", "path": "/srv/ew-demo", "uid": uid, "gid": gid}]
    host.apply_paths(actions, root)
    created = os.stat(os.path.join(root, "srv/ew-demo"))
    assert oct(created.st_mode & 0o777) == oct(0o750)


def test_paths_owned_by_someone_else_are_planned_recursively(tmp_path):
    root = tree(tmp_path, {"/var/lib/ew-demo/a/b": "x", "/etc/passwd": PASSWD, "/etc/group": GROUP})
    accounts = host.read_accounts(root)
    apps = apps_of({"name": "ew-demo", "user": "svc", "writable_paths": ["/var/lib/ew-demo"]})
    state = host.read_path("/var/lib/ew-demo", root)
    state["uid"] = state["gid"] = 0
    state["others"] = [(name, 0, 0) for name, dummy, dummy2 in state["others"]]
    records, actions = host.plan_paths(apps, {"/var/lib/ew-demo": state}, accounts, [])
    assert records[0]["before"] == "root:root, 2 entries owned by others"
    assert records[0]["after"] == "svc:svc"
    assert actions == [{"op": "chown", "path": "/var/lib/ew-demo", "uid": 100, "gid": 100}]


def test_system_directories_cannot_be_handed_over():
    errors = host.check_system_dirs(apps_of({"name": "x", "writable_paths": ["/var/lib", "/var/lib/x", "/etc"]}))
    assert len(errors) == 2 and "/var/lib is a system directory" in errors[0]


@pytest.mark.parametrize("answer, ok, message", [
    ((0, "up\n", ""), True, "health command ok"),
    ((3, "down\n", ""), False, "health command exited 3: down"),
    ((127, "", "no such file"), False, "health command exited 127: no such file"),
])
def test_health_command(answer, ok, message):
    calls = []

    def run(argv, env=None):
        calls.append(argv)
        return answer

    assert host.run_health_command(run, ["/usr/bin/check", "--quick"]) == (ok, message)
    assert calls == [["/usr/bin/check", "--quick"]]


def test_error_records_mark_only_changes():
    records = [{"id": "a", "status": "changed"}, {"id": "b", "status": "unchanged"}]
    marked = host.error_records(records, "boom")
    assert marked[0]["status"] == "error" and marked[0]["detail"] == "boom" and marked[1]["status"] == "unchanged"
