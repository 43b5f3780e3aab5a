# SPDX-License-Identifier: GPL-3.0-or-later
"""SELinux policy modules built for real on the controller: checkmodule, semodule_package
and secilc run on good and broken sources (Debian packages checkpolicy, semodule-utils,
secilc). No SELinux kernel is needed for this; installing on a device is not covered."""

from __future__ import annotations

import base64
import os

import pytest

from ansible_collections.edgewarden.hardening.plugins.action import selinux_policy as action

TE = """module ewdemo 1.0;

require {
\ttype unconfined_t;
\tclass file { read open getattr };
}

type ewdemo_t;
type ewdemo_exec_t;

allow unconfined_t ewdemo_exec_t:file { read open getattr };
"""
FC = "/usr/local/bin/ew-demo\t--\tsystem_u:object_r:ewdemo_exec_t:s0\n"
CIL_SELF_CONTAINED = """(type ewdemo_t)
(type ewdemo_data_t)
(allow ewdemo_t ewdemo_data_t (file (read open getattr)))
"""
CIL_BROKEN = """(type ewdemo_t
(allow ewdemo_t self (file (read)))
"""

TOOLS = action.find_tools()


@pytest.fixture
def src(tmp_path):
    def write(name, text):
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


def build(modules, tools=None):
    return action.build_modules(modules, lambda p: p, TOOLS if tools is None else tools)


def build_errors(modules, tools=None):
    return build(modules, tools)[2]


def test_the_controller_has_the_policy_compilers():
    # tools/bootstrap installs them; without them every module build fails with the message below
    assert action.missing_tools(TOOLS, {"te", "cil"}) == []


def test_a_good_te_module_builds_a_policy_package(src):
    modules, report, errors = build([{"name": "ewdemo", "src": src("ewdemo.te", TE), "fc": src("ewdemo.fc", FC)}])
    assert errors == []
    data = base64.b64decode(modules[0]["package"])
    assert data[:4] == action.PP_MAGIC and modules[0]["package_format"] == "pp"
    assert report == [{"name": "ewdemo", "format": "pp", "validation": "compiled", "bytes": len(data)}]
    assert b"/usr/local/bin/ew-demo" in data  # the file contexts are packaged with it


@pytest.mark.parametrize("text, message", [
    (TE.replace("allow unconfined_t", "allow unconfined_x"), "ERROR 'unknown type unconfined_x'"),
    (TE.replace("type ewdemo_t;", "type ewdemo_t"), "ERROR 'syntax error'"),
    (TE.replace("module ewdemo 1.0;", "module other 1.0;"), "declares module other, not ewdemo"),
    (TE.replace("module ewdemo 1.0;", ""), "no 'module NAME VERSION;' statement"),
])
def test_a_broken_te_module_fails_with_the_compilers_message(src, text, message):
    modules, report, errors = build([{"name": "ewdemo", "src": src("ewdemo.te", text)}])
    assert len(errors) == 1 and errors[0].startswith("module ewdemo: ")
    assert message in errors[0]


def test_every_broken_module_is_named_at_once(src):
    errors = build_errors([
        {"name": "one", "src": src("one.te", TE.replace("ewdemo", "one").replace("type one_t;", "type one_t"))},
        {"name": "two", "src": src("two.cil", CIL_BROKEN)},
        {"name": "ok", "src": src("ok.cil", CIL_SELF_CONTAINED)},
        {"name": "gone", "state": "absent"},
    ])
    assert [e.split(":", maxsplit=1)[0] for e in errors] == ["module one", "module two"]


def test_cil_sources(src):
    modules, report, errors = build([
        {"name": "selfcontained", "src": src("a.cil", CIL_SELF_CONTAINED)},
        {"name": "usesbase", "src": src("b.cil", "(type ewdemo_t)\n(allow ewdemo_t unconfined_t (file (read)))\n")},
    ])
    assert errors == []
    # without the device's base policy secilc cannot resolve names like unconfined_t (or
    # even object_r): it checked the syntax, and semodule -i resolves them on the device
    assert [r["validation"] for r in report] == ["syntax (names resolved by semodule on the device)"] * 2
    assert base64.b64decode(modules[0]["package"]).decode() == CIL_SELF_CONTAINED
    assert modules[0]["package_format"] == "cil"


def test_broken_cil_fails_with_secilc_message(src):
    errors = build_errors([{"name": "bad", "src": src("bad.cil", CIL_BROKEN)}])
    assert "secilc refused" in errors[0] and "Open parenthesis without matching close" in errors[0]


@pytest.mark.parametrize("rc, err, verdict", [
    (0, "", "ok"),
    (254, "Failed to resolve allow statement at b.cil:2\nFailed to resolve AST\nFailed to compile cildb: -2\n",
     "unresolved"),
    (255, "Open parenthesis without matching close at line 3 of bad.cil\nFailure adding bad.cil\n", "invalid"),
    (1, "Failed to build AST\n", "invalid"),
])
def test_classify_secilc(rc, err, verdict):
    assert action.classify_secilc(rc, "", err) == verdict


def test_missing_compilers_are_named_with_their_packages(src):
    errors = build_errors([{"name": "ewdemo", "src": src("ewdemo.te", TE)}], tools={})
    assert errors == ["the controller lacks checkmodule (Debian package checkpolicy), semodule_package "
                      "(Debian package semodule-utils) to build SELinux policy modules"]


def test_absent_modules_need_no_compiler():
    modules, report, errors = build([{"name": "old", "state": "absent"}], tools={})
    assert errors == [] and modules == [{"name": "old", "state": "absent"}] and report == []


def test_built_package_is_accepted_by_the_device_side_input_check(src):
    from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import selinux
    modules = build([{"name": "ewdemo", "src": src("ewdemo.te", TE)}])[0]
    assert selinux.check_input(None, {}, [], modules) == []
    assert os.path.basename(modules[0]["src"]) == "ewdemo.te"
