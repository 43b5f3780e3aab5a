# SPDX-License-Identifier: GPL-3.0-or-later
"""sshd.py: rendering, input checks, the access pre-flight, dropbear's inittab line,
authorized_keys merging (pure functions)."""

from __future__ import annotations

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import sshd

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA a"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB b"


@pytest.mark.parametrize("key,value,lines", [
    ("PasswordAuthentication", False, ["PasswordAuthentication no"]),
    ("Ciphers", ["a", "b"], ["Ciphers a,b"]),
    ("HostKey", ["/k1", "/k2"], ["HostKey /k1", "HostKey /k2"]),
    ("AllowUsers", ["root@10.0.0.1", "ops"], ["AllowUsers root@10.0.0.1 ops"]),
    ("MaxAuthTries", 3, ["MaxAuthTries 3"]),
])
def test_setting_lines(key, value, lines):
    assert sshd.setting_lines(key, value) == lines


def test_render_orders_settings_include_then_match():
    text = sshd.render_openssh({"X11Forwarding": False, "AllowTcpForwarding": "local"},
                               [{"criteria": "User jump", "settings": {"PermitTTY": False}}], "/etc/ssh/d/*.conf")
    lines = text.splitlines()
    assert lines[1:3] == ["AllowTcpForwarding local", "X11Forwarding no"]
    assert lines.index("Include /etc/ssh/d/*.conf") < lines.index("Match User jump")
    assert lines[-1] == "    PermitTTY no"


@pytest.mark.parametrize("settings,blocks,fragment", [
    ({"Bogus Key": 1}, [], "'Bogus Key' is not an sshd_config keyword"),
    ({"Banner": "a\nPermitRootLogin yes"}, [], "newline"),
    ({"Match": "User x"}, [], "is not a setting"),
    ({}, [{"criteria": "Foo bar", "settings": {}}], "criteria 'Foo bar'"),
])
def test_input_problems(settings, blocks, fragment):
    assert any(fragment in p for p in sshd.input_problems(settings, blocks))


def test_input_problems_names_every_problem():
    assert len(sshd.input_problems({"A B": 1, "Banner": "x#y"}, [{"criteria": "", "settings": {}}])) == 3


EFFECTIVE_OK = "pubkeyauthentication yes\npermitrootlogin without-password\nallowusers root@192.168.77.1\nallowusers root@fd77::1\n"


@pytest.mark.parametrize("text,user,addr,problem", [
    (EFFECTIVE_OK, "root", "192.168.77.1", None),
    (EFFECTIVE_OK, "root", "fd77::1", None),
    (EFFECTIVE_OK, "root", "192.168.77.12", "not in AllowUsers"),
    ("allowusers root@192.168.77.0/24\n", "root", "192.168.77.12", None),
    ("permitrootlogin no\n", "root", "10.0.0.1", "PermitRootLogin is no"),
    ("pubkeyauthentication no\n", "ops", "10.0.0.1", "PubkeyAuthentication"),
    ("denyusers *@10.0.0.*\n", "ops", "10.0.0.1", "DenyUsers"),
    ("authenticationmethods password\n", "ops", "10.0.0.1", "AuthenticationMethods"),
    ("forcecommand /bin/false\n", "root", "10.0.0.1", "ForceCommand"),
])
def test_access_problems(text, user, addr, problem):
    problems = sshd.access_problems(sshd.parse_effective(text), user, addr)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


INITTAB = "::sysinit:/etc/init.d/rcS\n::respawn:/usr/sbin/dropbear -F -E -s -p 22 -r /k\n::shutdown:/bin/true\n"


def test_render_inittab_replaces_only_dropbears_line():
    new = sshd.render_inittab(INITTAB, ["-s", "-j", "-k", "-p", "22"])
    assert new.splitlines()[1] == "::respawn:/usr/sbin/dropbear -F -E -s -j -k -p 22"
    assert new.splitlines()[0] == INITTAB.splitlines()[0]
    assert sshd.render_inittab(new, ["-s", "-j", "-k", "-p", "22"]) == new


def test_render_inittab_without_dropbear_refuses():
    with pytest.raises(sshd.SshdError):
        sshd.render_inittab("::sysinit:/etc/init.d/rcS\n", ["-s"])


@pytest.mark.parametrize("options,fragment", [
    (["-s", "-F"], "added by the module"),
    (["-s", "-c", "rm -rf /;"], "not safe"),
    (["22"], "must start with an option"),
])
def test_dropbear_problems(options, fragment):
    assert any(fragment in p for p in sshd.dropbear_problems(options))


@pytest.mark.parametrize("current,keys,options,exclusive,expected", [
    ("", [KEY_A], None, False, KEY_A + "\n"),
    (KEY_B + "\n", [KEY_A], None, False, KEY_B + "\n" + KEY_A + "\n"),
    (KEY_B + "\n", [KEY_A], None, True, KEY_A + "\n"),
    (KEY_A + "\n", [KEY_A], 'from="10.0.0.1"', False, 'from="10.0.0.1" ' + KEY_A + "\n"),
    ('from="10.0.0.1" ' + KEY_A + "\n# note\n", [KEY_A], 'from="10.0.0.1"', False, 'from="10.0.0.1" ' + KEY_A + "\n"),
])
def test_render_authorized_keys(current, keys, options, exclusive, expected):
    assert sshd.render_authorized_keys(current, keys, options, exclusive) == expected


def test_authorized_keys_problems():
    problems = sshd.authorized_keys_problems([{"user": "a", "keys": ["not a key"]}, {"user": "b", "keys": [], "exclusive": True}])
    assert len(problems) == 2


def test_find_master_reads_pidfile_and_proc(tmp_path):
    proc = tmp_path / "proc"
    for pid, ppid, cmd in ((2, 1, b"sshd: /usr/sbin/sshd -D [listener]\0"), (40, 2, b"sshd: root@notty\0"), (1, 0, b"tini\0")):
        d = proc / str(pid)
        d.mkdir(parents=True)
        (d / "cmdline").write_bytes(cmd)
        (d / "stat").write_text("%d (x) S %d 0 0\n" % (pid, ppid))
    pidfile = tmp_path / "sshd.pid"
    pidfile.write_text("2\n")
    assert sshd.find_master(str(proc), ("sshd",), str(pidfile)) == 2
    assert sshd.find_master(str(proc), ("sshd",), None) == 2
