# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Confinement through OpenRC's conf.d: the pure pieces, then probes and check-mode runs on
a fake device.

No mocks: the device is a tree under tmp_path, and its start-stop-daemon, supervise-daemon
and rc-service are small shell scripts that really run (through subprocess), answering like
Debian's openrc 0.45.2 build or like a build with libcap.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import confine_openrc as orc
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.confine_host import Clock

SCRIPT = """\
#!/sbin/openrc-run
description="edgewarden demo service"
command=/usr/bin/python3
command_args="-IS /usr/local/bin/ew-demo 8080"
command_background=true
pidfile=/run/ew-demo.pid
"""
NO_SUPPORT = {"path": "/sbin/start-stop-daemon", "capabilities": False, "no_new_privs": False}
FULL_SUPPORT = {"path": "/sbin/start-stop-daemon", "capabilities": True, "no_new_privs": True}


def app(**kw):
    raw = {"name": "ew-demo", "binary": "/usr/local/bin/ew-demo", "ports": [8080]}
    raw.update(kw)
    apps, errors, dummy = confine.validate_apps([raw], False)
    assert not errors
    return apps[0]


@pytest.mark.parametrize("text, name, want", [
    (SCRIPT, "command", "/usr/bin/python3"),
    (SCRIPT, "pidfile", "/run/ew-demo.pid"),
    (SCRIPT, "supervisor", None),
    ("supervisor=supervise-daemon\n", "supervisor", "supervise-daemon"),
    ("supervisor='s6'\nsupervisor=\"supervise-daemon\"\n", "supervisor", "supervise-daemon"),
    ("  export retry=TERM/10\n", "retry", "TERM/10"),
    ("# retry=TERM/10\n", "retry", None),
    (None, "command", None),
])
def test_script_value(text, name, want):
    assert orc.script_value(text, name) == want


@pytest.mark.parametrize("text, want", [
    (SCRIPT, True),
    ("#!/usr/sbin/openrc-run\n", True),
    ("#!/bin/sh\n### BEGIN INIT INFO\n", False),
    ("", False),
    (None, False),
])
def test_is_openrc_script(text, want):
    assert orc.is_openrc_script(text) is want


@pytest.mark.parametrize("case, support, retry_set, kw, want", [
    ("debian build: user, umask, retry", NO_SUPPORT, False, {},
     [("command_user", "ew-demo:ew-demo"), ("umask", "0077"), ("retry", "TERM/5/KILL/5")]),
    ("the service's own retry is kept", NO_SUPPORT, True, {"group": "daemon"},
     [("command_user", "ew-demo:daemon"), ("umask", "0077")]),
    ("libcap build: capabilities and no_new_privs", FULL_SUPPORT, True, {"capabilities": ["CAP_NET_BIND_SERVICE"]},
     [("command_user", "ew-demo:ew-demo"), ("umask", "0077"),
      ("capabilities", orc.iab_text(["net_bind_service"], 40)), ("no_new_privs", "yes")]),
    ("root keeps root, with only the listed capabilities", FULL_SUPPORT, True,
     {"user": "root", "capabilities": ["net_raw"]},
     [("umask", "0077"), ("capabilities", orc.iab_text(["net_raw"], 40)), ("no_new_privs", "yes")]),
])
def test_settings(case, support, retry_set, kw, want):
    assert orc.settings(app(**kw), support, 40, retry_set) == want, case


def test_iab_text_raises_the_listed_and_drops_every_other():
    words = orc.iab_text(["net_bind_service", "net_raw"], 40).split(",")
    assert words[:2] == ["^cap_net_bind_service", "^cap_net_raw"]
    dropped = [w[5:] for w in words if w.startswith("!cap_")]
    assert len(dropped) == 41 - 2
    assert "chown" in dropped and "checkpoint_restore" in dropped
    assert "net_bind_service" not in dropped and "net_raw" not in dropped
    # an older kernel (cap_last_cap 37) knows fewer to drop
    assert len(orc.iab_text([], 37).split(",")) == 38


@pytest.mark.parametrize("case, confd, rest, block", [
    ("no file", None, None, None),
    ("the user's lines only", "rc_ulimit=-n 64\n", "rc_ulimit=-n 64\n", None),
    ("ours after the user's", "a=1\n" + "\n".join(orc.render_block("ew-demo", [("umask", "0077")])) + "\n",
     "a=1\n", ['umask="0077"']),
    ("another app's block is not ours", "\n".join(orc.render_block("other", [("umask", "0077")])) + "\n",
     "\n".join(orc.render_block("other", [("umask", "0077")])) + "\n", None),
])
def test_split_block(case, confd, rest, block):
    assert orc.split_block(confd, "ew-demo") == (rest, block), case


def test_render_confd_keeps_the_users_lines_and_puts_ours_last():
    block = orc.render_block("ew-demo", [("command_user", "ew-demo:ew-demo")])
    text = orc.render_confd("rc_ulimit='-n 64'", block)
    assert text.startswith("rc_ulimit='-n 64'\n# BEGIN ")
    assert text.endswith('command_user="ew-demo:ew-demo"\n' + orc.END + "\n")
    # rewriting is a no-op, removing gives back the user's text exactly
    rest, lines = orc.split_block(text, "ew-demo")
    assert orc.render_confd(rest, block) == text
    assert rest == "rc_ulimit='-n 64'\n"
    assert lines == ['command_user="ew-demo:ew-demo"']


@pytest.mark.parametrize("case, support, kw, want", [
    ("no capability support: none at all as a user", NO_SUPPORT, {}, {"user": "ew-demo", "cap_eff": 0}),
    ("with support: effective and bounding are the list", FULL_SUPPORT, {"capabilities": ["net_bind_service"]},
     {"user": "ew-demo", "cap_eff": 1 << 10, "cap_bnd": 1 << 10}),
    ("root without support: capabilities not compared", NO_SUPPORT, {"user": "root"}, {"user": "root"}),
])
def test_expected_view(case, support, kw, want):
    assert orc.expected_view(app(**kw), support) == want, case


def test_unavailable_names_what_this_openrc_cannot_give():
    names = [u["protection"] for u in orc.unavailable(app(), NO_SUPPORT, "start-stop-daemon")]
    assert "CapabilityBoundingSet/AmbientCapabilities" in names and "NoNewPrivileges" in names
    assert "SystemCallFilter" in names and "ProtectSystem/ReadWritePaths" in names
    names = [u["protection"] for u in orc.unavailable(app(), FULL_SUPPORT, "start-stop-daemon")]
    assert "NoNewPrivileges" not in names and "CapabilityBoundingSet/AmbientCapabilities" not in names


# ------------------------------------------------------------------ a fake device

# dpkg's start-stop-daemon: neither option exists
DPKG_SSD = """#!/bin/sh
for a; do case $a in --capabilities|--no-new-privs) echo "start-stop-daemon: unrecognized option '$a'" >&2; exit 3;; esac; done
echo usage; exit 0
"""
# Debian's supervise-daemon (no libcap): refuses --capabilities, knows --no-new-privs only
DEBIAN_SD = """#!/bin/sh
[ -n "$RC_SVCNAME" ] || { echo " * supervise-daemon: The RC_SVCNAME environment variable is not set" >&2; exit 1; }
for a; do case $a in
  --capabilities) echo " * Capabilities support not enabled" >&2; exit 1;;
  --no_new_privs) echo "unrecognized option '--no_new_privs'" >&2; exit 1;;
esac; done
echo usage; exit 0
"""
ACCEPTING = "#!/bin/sh\n[ \"${0##*/}\" = start-stop-daemon ] || [ -n \"$RC_SVCNAME\" ] || exit 1\necho usage; exit 0\n"
RC_SERVICE = "#!/bin/sh\necho \" * status: %s\"\n[ %s = started ]\n"


def write(root, path, text, mode=0o644):
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as handle:
        handle.write(text)
    os.chmod(full, mode)
    return full


def device(tmp_path, ssd, sd, nnp_flag="--no_new_privs", status="started", confd=None):
    root = tmp_path / "device"
    write(root, "/sbin/start-stop-daemon", ssd, 0o755)
    write(root, "/sbin/supervise-daemon", sd, 0o755)
    write(root, "/sbin/rc-service", RC_SERVICE % (status, status), 0o755)
    write(root, "/lib/rc/sh/start-stop-daemon.sh", "${no_new_privs:+--no-new-privs}\n")
    write(root, "/lib/rc/sh/supervise-daemon.sh", "${no_new_privs:+%s}\n" % nnp_flag)
    write(root, "/etc/init.d/ew-demo", SCRIPT, 0o755)
    write(root, "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
    write(root, "/etc/group", "root:x:0:\n")
    if confd is not None:
        write(root, "/etc/conf.d/ew-demo", confd)
    return str(root)


def runner(root):
    """Runs the device's programs for real (their paths are under root)."""
    def run(argv, env=None):
        argv = [os.path.join(root, argv[0].lstrip("/"))] + list(argv[1:])
        environ = dict(os.environ)
        environ.update(env or {})
        proc = subprocess.run(argv, capture_output=True, text=True, env=environ, check=False)
        return proc.returncode, proc.stdout, proc.stderr
    return run


def ctx_for(root):
    return {"run": runner(root), "root": root, "timeout": 5, "settle": 0.1, "clock": Clock(), "init": "openrc"}


@pytest.mark.parametrize("case, ssd, sd, nnp_flag, want", [
    ("debian 0.45.2", DPKG_SSD, DEBIAN_SD, "--no_new_privs",
     {"start-stop-daemon": (False, False), "supervise-daemon": (False, False)}),
    ("a libcap build", ACCEPTING, ACCEPTING, "--no-new-privs",
     {"start-stop-daemon": (True, True), "supervise-daemon": (True, True)}),
    ("debian supervise-daemon with the helper's typo fixed", DPKG_SSD, DEBIAN_SD, "--no-new-privs",
     {"start-stop-daemon": (False, False), "supervise-daemon": (False, True)}),
])
def test_probe_support_asks_the_starters(tmp_path, case, ssd, sd, nnp_flag, want):
    root = device(tmp_path, ssd, sd, nnp_flag)
    support = orc.probe_support(runner(root), root)
    got = dict((name, (s["capabilities"], s["no_new_privs"])) for name, s in support.items())
    assert got == want, case


def test_check_mode_plans_the_block_and_writes_nothing(tmp_path):
    root = device(tmp_path, DPKG_SSD, DEBIAN_SD, confd="rc_ulimit='-n 64'\n", status="stopped")
    result = orc.run([app()], ctx_for(root), check_mode=True)
    assert result["errors"] == []
    records = dict((r["id"], r) for r in result["records"])
    assert records["confine.account/ew-demo"]["status"] == "changed"
    assert records["confine.confd/ew-demo"]["before"] == "none"
    assert records["confine.confd/ew-demo"]["after"] == 'command_user="ew-demo:ew-demo"; umask="0077"; retry="TERM/5/KILL/5"'
    # a stopped service is not started: the change waits for its next start
    assert records["confine.live/ew-demo"]["status"] == "unchanged"
    assert "next start" in records["confine.live/ew-demo"]["detail"]
    assert result["file_diffs"][0]["after"].startswith("rc_ulimit='-n 64'\n# BEGIN ")
    with open(os.path.join(root, "etc/conf.d/ew-demo")) as handle:
        assert handle.read() == "rc_ulimit='-n 64'\n"
    assert "ew-demo" not in open(os.path.join(root, "etc/passwd")).read()
    assert result["apps"][0]["supervisor"] == "start-stop-daemon"


def test_a_real_run_writes_the_block_once(tmp_path):
    root = device(tmp_path, DPKG_SSD, DEBIAN_SD, status="stopped")
    first = orc.run([app()], ctx_for(root), check_mode=False)
    assert first["errors"] == []
    with open(os.path.join(root, "etc/conf.d/ew-demo")) as handle:
        text = handle.read()
    assert text.startswith(orc.BEGIN % "ew-demo") and 'command_user="ew-demo:ew-demo"' in text
    second = orc.run([app()], ctx_for(root), check_mode=False)
    assert [r["status"] for r in second["records"]] == ["unchanged"] * len(second["records"])
    # absent takes the block out, and the file that held only it goes
    gone = orc.run([app(state="absent")], ctx_for(root), check_mode=False)
    assert [r["id"] for r in gone["records"] if r["status"] == "changed"] == ["confine.confd/ew-demo"]
    assert not os.path.exists(os.path.join(root, "etc/conf.d/ew-demo"))


@pytest.mark.parametrize("case, kw, confd, message", [
    ("a capability where the starter has no support", {"capabilities": ["CAP_NET_BIND_SERVICE"]}, None,
     "capabilities net_bind_service cannot be given here"),
    ("root without capability support", {"user": "root"}, None, "user root keeps every capability"),
    ("an unhandled supervisor", {}, "supervisor=s6\n", "supervisor=s6 is not handled"),
])
def test_refused_before_any_change(tmp_path, case, kw, confd, message):
    root = device(tmp_path, DPKG_SSD, DEBIAN_SD, confd=confd)
    result = orc.run([app(**kw)], ctx_for(root), check_mode=False)
    assert any(message in error for error in result["errors"]), (case, result["errors"])
    assert result["records"] == []
    assert not os.path.exists(os.path.join(root, "etc/conf.d/ew-demo")) or confd is not None


def test_an_lsb_script_is_not_an_openrc_service(tmp_path):
    root = device(tmp_path, DPKG_SSD, DEBIAN_SD)
    write(root, "/etc/init.d/ew-demo", "#!/bin/sh\n### BEGIN INIT INFO\n", 0o755)
    result = orc.run([app()], ctx_for(root), check_mode=True)
    assert any("is not an openrc-run script" in error for error in result["errors"])
