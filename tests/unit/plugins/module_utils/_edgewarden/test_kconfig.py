# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Kernel config / command line parsing and the recommendation audit."""

from __future__ import annotations

import gzip
import os

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import kconfig

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 5))

CONFIG = """#
# Automatically generated file; DO NOT EDIT.
# Linux/arm64 6.6.0 Kernel Configuration
#
CONFIG_ARM64=y
CONFIG_MODULES=y
CONFIG_MODULE_SIG=y
# CONFIG_MODULE_SIG_FORCE is not set
CONFIG_SECURITY_YAMA=y
CONFIG_CONFIGS=m
CONFIG_DEFAULT_MMAP_MIN_ADDR=32768
CONFIG_PANIC_TIMEOUT=-1
CONFIG_MODULE_SIG_HASH="sha512"
CONFIG_CMDLINE="console=ttyS0 \\"quoted\\""
CONFIG_ILLEGAL_POINTER_VALUE=0xdead000000000000
# CONFIG_DEVMEM is not set
# a comment CONFIG_X=y
"""


@pytest.mark.parametrize("option, value", [
    ("CONFIG_ARM64", "y"),
    ("CONFIG_CONFIGS", "m"),
    ("CONFIG_MODULE_SIG_FORCE", "n"),
    ("CONFIG_DEFAULT_MMAP_MIN_ADDR", "32768"),
    ("CONFIG_PANIC_TIMEOUT", "-1"),
    ("CONFIG_MODULE_SIG_HASH", "sha512"),
    ("CONFIG_CMDLINE", 'console=ttyS0 "quoted"'),
    ("CONFIG_ILLEGAL_POINTER_VALUE", "0xdead000000000000"),
    ("CONFIG_DEVMEM", "n"),
    ("CONFIG_X", None),
    ("CONFIG_NOT_THERE", None),
])
def test_parse_kconfig(option, value):
    assert kconfig.parse_kconfig(CONFIG).get(option) == value


@pytest.mark.parametrize("text, params", [
    ("quiet ro root=/dev/mmcblk0p2", [("quiet", None), ("ro", None), ("root", "/dev/mmcblk0p2")]),
    ('dyndbg="file x.c +p" init_on_alloc=1', [("dyndbg", "file x.c +p"), ("init_on_alloc", "1")]),
    ("slab_nomerge -- --init-arg nokaslr", [("slab_nomerge", None)]),
    ("  a=1   a=2  ", [("a", "1"), ("a", "2")]),
    ("", []),
])
def test_parse_cmdline(text, params):
    assert kconfig.parse_cmdline(text) == params


def test_cmdline_dict_last_wins_and_dash_equals_underscore():
    values = kconfig.cmdline_dict(kconfig.parse_cmdline("init-on-alloc=0 init_on_alloc=1 slab_nomerge"))
    assert values == {"init_on_alloc": "1", "slab_nomerge": None}


@pytest.mark.parametrize("expect, actual, ok", [
    ("y", "y", True),
    ("y", "m", False),
    ("y", None, False),
    ("m", "m", True),
    ("n", None, True),
    ("n", "n", True),
    ("is not set", None, True),
    ("is not set", "y", False),
    ("65536", "65536", True),
    ("65536", "4096", False),
    ("0x10", "16", True),
    ("-1", "-1", True),
    ('"sha512"', "sha512", True),
    ("!y", "m", True),
    ("!y", "y", False),
    ("value", None, False),
])
def test_kconfig_matches(expect, actual, ok):
    assert kconfig.kconfig_matches(expect, actual) is ok


@pytest.mark.parametrize("expect, present, value, ok", [
    (None, True, None, True),
    (None, False, None, False),
    ("absent", False, None, True),
    ("absent", True, None, False),
    ("!off", False, None, True),
    ("!off", True, "auto", True),
    ("!off", True, "off", False),
    ("1", True, "1", True),
    ("1", True, "on", True),
    ("1", True, "Y", True),
    ("1", True, "0", False),
    ("1", False, None, False),
    ("!0", True, "off", False),
    ("!0", True, "on", True),
    ("none", True, "none", True),
    ("none", True, "emulate", False),
])
def test_cmdline_matches(expect, present, value, ok):
    assert kconfig.cmdline_matches(expect, present, value) is ok


@pytest.mark.parametrize("machine, arch", [
    ("x86_64", "x86_64"), ("i686", "x86"), ("aarch64", "arm64"), ("armv7l", "arm"), ("armv5tejl", "arm"),
    ("riscv64", "riscv"), ("mips", "mips"), ("ppc64le", "powerpc"), ("s390x", "s390x"),
])
def test_machine_arch(machine, arch):
    assert kconfig.machine_arch(machine) == arch


RECS = [
    {"option": "CONFIG_SECURITY_YAMA", "expect": "y", "why": "ptrace"},
    {"option": "CONFIG_DEVMEM", "expect": "is not set", "why": "no /dev/mem"},
    {"option": "CONFIG_PROC_KCORE", "expect": "is not set", "why": "absent counts as not set"},
    {"option": "CONFIG_HARDENED_USERCOPY", "expect": "y", "why": "absent counts as missing"},
    {"option": "CONFIG_MODULE_SIG_FORCE", "expect": "y", "only_if": "CONFIG_MODULES", "why": "signed"},
    {"option": "CONFIG_DEFAULT_MMAP_MIN_ADDR", "expect": "65536", "arch": ["x86_64", "arm64"], "why": "x"},
    {"option": "CONFIG_DEFAULT_MMAP_MIN_ADDR", "expect": "32768", "arch": ["arm"], "why": "arm"},
    {"option": "CONFIG_LEGACY_VSYSCALL_NONE", "expect": "y", "arch": ["x86_64"], "why": "skipped on arm64"},
]


def _names(items):
    return sorted("%s=%s" % (i["option"], i["expect"]) for i in items)


def test_evaluate_kconfig_with_arch_only_if_and_absent_options():
    ok, missing, unknown = kconfig.evaluate_kconfig(kconfig.parse_kconfig(CONFIG), RECS, "arm64")
    assert _names(ok) == ["CONFIG_DEVMEM=is not set", "CONFIG_PROC_KCORE=is not set", "CONFIG_SECURITY_YAMA=y"]
    assert _names(missing) == ["CONFIG_DEFAULT_MMAP_MIN_ADDR=65536", "CONFIG_HARDENED_USERCOPY=y",
                               "CONFIG_MODULE_SIG_FORCE=y"]
    assert unknown == []
    absent = [i for i in missing if i["option"] == "CONFIG_HARDENED_USERCOPY"][0]
    assert absent["actual"] is None and "not in this kernel's config" in absent["detail"]
    assert [i["actual"] for i in missing if i["option"] == "CONFIG_MODULE_SIG_FORCE"] == ["n"]


def test_only_if_guard_not_met_is_ok_with_a_reason():
    ok, missing, _unknown = kconfig.evaluate_kconfig({"CONFIG_MODULES": "n"}, RECS[4:5], "arm64")
    assert missing == [] and ok[0]["detail"] == "not applicable: CONFIG_MODULES is not set"


def test_unreadable_config_makes_everything_unknown():
    ok, missing, unknown = kconfig.evaluate_kconfig(None, RECS, "arm64")
    assert ok == [] and missing == [] and len(unknown) == 6


CMD_RECS = [
    {"param": "nokaslr", "expect": "absent", "why": "kaslr"},
    {"param": "slab_nomerge", "satisfied_by": "CONFIG_SLAB_MERGE_DEFAULT=n", "why": "merge"},
    {"param": "init_on_alloc", "expect": "1", "satisfied_by": "CONFIG_INIT_ON_ALLOC_DEFAULT_ON=y", "why": "init"},
    {"param": "mitigations", "expect": "!off", "why": "cpu"},
    {"param": "vsyscall", "expect": "none", "arch": ["x86_64"], "why": "x86 only"},
    {"param": "page_alloc.shuffle", "expect": "1", "why": "shuffle"},
]


@pytest.mark.parametrize("cmdline, config, ok, missing, unknown", [
    # Build defaults satisfy absent parameters.
    ("quiet", {"CONFIG_SLAB_MERGE_DEFAULT": "n", "CONFIG_INIT_ON_ALLOC_DEFAULT_ON": "y"},
     ["init_on_alloc", "mitigations", "nokaslr", "slab_nomerge"], ["page_alloc.shuffle"], []),
    # Absent and the build default says otherwise.
    ("quiet", {"CONFIG_SLAB_MERGE_DEFAULT": "y"},
     ["mitigations", "nokaslr"], ["init_on_alloc", "page_alloc.shuffle", "slab_nomerge"], []),
    # A parameter overrides a good build default.
    ("init_on_alloc=0 nokaslr mitigations=off page_alloc.shuffle=y slab_nomerge",
     {"CONFIG_INIT_ON_ALLOC_DEFAULT_ON": "y"},
     ["page_alloc.shuffle", "slab_nomerge"], ["init_on_alloc", "mitigations", "nokaslr"], []),
    # Config unreadable: build defaults cannot be judged.
    ("quiet", None, ["mitigations", "nokaslr"], ["page_alloc.shuffle"], ["init_on_alloc", "slab_nomerge"]),
])
def test_evaluate_cmdline(cmdline, config, ok, missing, unknown):
    got = kconfig.evaluate_cmdline(kconfig.parse_cmdline(cmdline), config, CMD_RECS, "arm64")
    assert [sorted(i["option"] for i in group) for group in got] == [ok, missing, unknown]


def test_audit_takes_arch_from_the_config_and_reports_source():
    report = kconfig.audit(CONFIG, "quiet", RECS, [], machine="x86_64", source="/boot/config-6.6.0")
    assert report["arch"] == "arm64"
    assert report["source"] == "/boot/config-6.6.0"
    assert "CONFIG_LEGACY_VSYSCALL_NONE" not in [i["option"] for i in report["missing"] + report["ok"]]


def test_missing_summary_names_count_source_and_options():
    report = kconfig.audit(CONFIG, "quiet", RECS, [], machine="x86_64", source="/boot/config-6.6.0")
    summary = kconfig.missing_summary(report)
    names = [i["option"] for i in report["missing"]]
    assert names and summary == "%d recommendation(s) missing (config: /boot/config-6.6.0): %s" % (
        len(names), ", ".join(names))
    assert "(config: not readable)" in kconfig.missing_summary(dict(report, source=None))


def test_audit_without_config_or_cmdline_is_all_unknown_and_uses_builtin_lists():
    report = kconfig.audit(None, None, machine="aarch64", source=None)
    assert report["source"] is None and report["arch"] == "arm64"
    assert report["ok"] == [] and report["missing"] == []
    assert {i["kind"] for i in report["unknown"]} == {"kconfig", "cmdline"}


def test_read_config_prefers_first_readable_source_and_handles_gzip(tmp_path):
    gz = tmp_path / "config.gz"
    with gzip.open(str(gz), "wb") as handle:
        handle.write(CONFIG.encode())
    plain = tmp_path / "config-{release}"
    (tmp_path / "config-6.6.0").write_text("CONFIG_X=y\n")
    missing = str(tmp_path / "nope.gz")
    assert kconfig.read_config("6.6.0", (missing, str(gz), str(plain))) == (str(gz), CONFIG)
    assert kconfig.read_config("6.6.0", (missing, str(plain))) == (str(tmp_path / "config-6.6.0"), "CONFIG_X=y\n")
    assert kconfig.read_config("6.6.0", (missing,)) == (None, None)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(b"not gzip")
    assert kconfig.read_config("6.6.0", (str(broken),)) == (None, None)


def test_read_cmdline(tmp_path):
    path = tmp_path / "cmdline"
    path.write_text("quiet ro\n")
    assert kconfig.read_cmdline(str(path)) == "quiet ro"
    assert kconfig.read_cmdline(str(tmp_path / "nope")) is None


def test_builtin_recommendations_are_well_formed():
    for rec in kconfig.KSPP_KCONFIG:
        assert rec["option"].startswith("CONFIG_") and rec["expect"] and rec["why"]
        assert set(rec) <= {"option", "expect", "why", "arch", "only_if"}
    for rec in kconfig.KSPP_CMDLINE:
        assert rec["param"] and rec["why"]
        assert set(rec) <= {"param", "expect", "why", "arch", "satisfied_by"}


def test_role_recommendation_lists_equal_the_module_defaults():
    # PyYAML is a controller-side dependency: the Python 3.8 device-floor run has only pytest.
    yaml = pytest.importorskip("yaml")
    with open(os.path.join(ROOT, "roles", "kernel", "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    assert defaults["kernel_kconfig_recommendations"] == kconfig.KSPP_KCONFIG
    assert defaults["kernel_kconfig_cmdline_recommendations"] == kconfig.KSPP_CMDLINE
