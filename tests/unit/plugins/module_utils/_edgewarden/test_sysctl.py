# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""sysctl planner, readers and appliers. Readers and appliers run against fake /proc/sys
trees in tmp_path; nothing here touches this machine's /proc/sys."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import sysctl

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 5))

TREE = {
    "kernel/randomize_va_space": "1\n",
    "kernel/kptr_restrict": "0\n",
    "kernel/hostname": "1234\n",
    "kernel/core_pattern": "core\n",
    "kernel/kexec_load_disabled": "1\n",
    "vm/mmap_rnd_bits": "28\n",
    "vm/mmap_min_addr": "4096\n",
    "net/ipv4/tcp_rmem": "4096\t131072\t6291456\n",
    "net/ipv4/ip_forward": "0\n",
    "net/ipv4/conf/all/rp_filter": "0\n",
    "net/ipv4/conf/eth0/rp_filter": "0\n",
    "net/ipv4/conf/eth0.1/rp_filter": "1\n",
}


def make_tree(base, files=None):
    for rel, content in (TREE if files is None else files).items():
        path = os.path.join(str(base), rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(content)
    return str(base)


def read(path):
    with open(path) as handle:
        return handle.read()


@pytest.fixture
def env(tmp_path):
    """A fake /proc/sys plus empty sysctl.d dirs and sysctl.conf location."""
    proc = make_tree(tmp_path / "proc_sys")
    etc = tmp_path / "etc"
    (etc / "sysctl.d").mkdir(parents=True)
    usr = tmp_path / "usr_lib_sysctl.d"
    usr.mkdir()
    return {
        "proc_sys": proc,
        "persist_path": str(etc / "sysctl.d" / "90-edgewarden.conf"),
        "sysctl_dirs": (str(etc / "sysctl.d"), str(usr)),
        "sysctl_conf": str(etc / "sysctl.conf"),
        "etc": str(etc),
        "usr": str(usr),
    }


def run(env, settings, **kwargs):
    options = dict(proc_sys=env["proc_sys"], persist_path=env["persist_path"],
                   sysctl_dirs=env["sysctl_dirs"], sysctl_conf=env["sysctl_conf"])
    options.update(kwargs)
    return sysctl.run(settings, **options)


def by_id(records, where):
    return dict((r["id"][len(sysctl.ID_PREFIX):], r) for r in records if r["where"] == where)


# --- keys -------------------------------------------------------------------------


@pytest.mark.parametrize("key, segments, canonical", [
    ("kernel.randomize_va_space", ["kernel", "randomize_va_space"], "kernel.randomize_va_space"),
    ("kernel/randomize_va_space", ["kernel", "randomize_va_space"], "kernel.randomize_va_space"),
    ("net.ipv4.conf.eth0/1.rp_filter", ["net", "ipv4", "conf", "eth0.1", "rp_filter"], "net.ipv4.conf.eth0/1.rp_filter"),
    ("net/ipv4/conf/eth0.1/rp_filter", ["net", "ipv4", "conf", "eth0.1", "rp_filter"], "net.ipv4.conf.eth0/1.rp_filter"),
    ("net.ipv4.conf.eth0.1.rp_filter", ["net", "ipv4", "conf", "eth0", "1", "rp_filter"], "net.ipv4.conf.eth0.1.rp_filter"),
    ("fs", ["fs"], "fs"),
])
def test_split_and_canonical_follow_sysctl_d(key, segments, canonical):
    assert sysctl.split_key(key) == segments
    assert sysctl.canonical_key(segments) == canonical


@pytest.mark.parametrize("key, ok", [
    ("kernel.sysrq", True),
    ("net/ipv4/conf/eth0.1/rp_filter", True),
    ("", False),
    ("kernel..sysrq", False),
    ("net/ipv4/../../../etc/passwd", False),
    ("/kernel/sysrq", False),
    ("kernel.sysrq.", False),
    ("kernel. sysrq", False),
    ("kernel.sysrq=1", False),
    ("kernel.\x00", False),
])
def test_key_error_refuses_paths_that_leave_proc_sys(key, ok):
    assert (sysctl.key_error(key) is None) == ok


@pytest.mark.parametrize("key, rel, canonical", [
    ("kernel.kptr_restrict", "kernel/kptr_restrict", "kernel.kptr_restrict"),
    ("kernel/kptr_restrict", "kernel/kptr_restrict", "kernel.kptr_restrict"),
    # VLAN interface eth0.1 written unescaped: found by walking the tree.
    ("net.ipv4.conf.eth0.1.rp_filter", "net/ipv4/conf/eth0.1/rp_filter", "net.ipv4.conf.eth0/1.rp_filter"),
    ("net.ipv4.conf.eth0/1.rp_filter", "net/ipv4/conf/eth0.1/rp_filter", "net.ipv4.conf.eth0/1.rp_filter"),
    ("net/ipv4/conf/eth0.1/rp_filter", "net/ipv4/conf/eth0.1/rp_filter", "net.ipv4.conf.eth0/1.rp_filter"),
    ("net.ipv4.conf.eth0.rp_filter", "net/ipv4/conf/eth0/rp_filter", "net.ipv4.conf.eth0.rp_filter"),
    ("kernel.nope", None, "kernel.nope"),
    # Slash form keeps dots literal, so this does not fall back to a search.
    ("net/ipv4/conf/eth0/1/rp_filter", None, "net.ipv4.conf.eth0.1.rp_filter"),
])
def test_resolve_key_on_a_fake_tree(tmp_path, key, rel, canonical):
    proc = make_tree(tmp_path)
    segments, path = sysctl.resolve_key(key, proc)
    assert sysctl.canonical_key(segments) == canonical
    assert path == (os.path.join(proc, rel) if rel else None)


# --- values -----------------------------------------------------------------------


@pytest.mark.parametrize("value, text, error", [
    (2, "2", None),
    (-1, "-1", None),
    (True, "1", None),
    (False, "0", None),
    ("  4096\t131072   6291456\n", "4096 131072 6291456", None),
    ([4096, "131072", 6291456], "4096 131072 6291456", None),
    ("|/bin/false", "|/bin/false", None),
    (1.5, None, "floats"),
    ("", None, "empty"),
    ("   ", None, "empty"),
    ("a\nb", None, "line break"),
    ("a\x01b", None, "control"),
    ({"a": 1}, None, "mapping"),
    ([1, [2]], None, "list elements"),
    ([1, None], None, "list elements"),
])
def test_to_text(value, text, error):
    got, problem = sysctl.to_text(value)
    assert got == text
    assert (problem is None) if error is None else (error in problem)


@pytest.mark.parametrize("a, b, equal", [
    ("4096\t131072\t6291456", "4096 131072 6291456", True),
    ("1", "01", True),
    ("16", "0x10", True),
    ("8", "010", True),
    ("-1", "-1", True),
    ("1", "2", False),
    ("1 2", "1", False),
    ("core", "core", True),
    ("core", "Core", False),
    (None, None, True),
    (None, "1", False),
])
def test_same_normalises_whitespace_and_integers(a, b, equal):
    assert sysctl.same(a, b) is equal


@pytest.mark.parametrize("key, live, kind", [
    ("kernel.kptr_restrict", "0", "int"),
    ("net.ipv4.tcp_rmem", "4096 131072 6291456", "int"),
    ("kernel.hostname", "1234", "text"),
    ("net.ipv6.conf.eth0.stable_secret", "1", "text"),
    ("kernel.core_pattern", "core", "text"),
    ("net.ipv4.ip_local_reserved_ports", "", "text"),
    ("kernel.kptr_restrict", None, "text"),
])
def test_value_kind_inferred_from_live_value(key, live, kind):
    assert sysctl.value_kind(key, live) == kind


@pytest.mark.parametrize("text, kind, value, error", [
    ("0x10", "int", "16", None),
    ("010", "int", "8", None),
    ("1  2", "int", "1 2", None),
    ("yes", "int", None, "expects integers"),
    ("08", "int", None, "expects integers"),
    ("010", "text", "010", None),
])
def test_normalise(text, kind, value, error):
    got, problem = sysctl.normalise(text, kind)
    assert got == value
    assert (problem is None) if error is None else (error in problem)


# --- reading ----------------------------------------------------------------------


def test_read_live_collapses_whitespace_and_flags_directories_and_absence(tmp_path):
    proc = make_tree(tmp_path)
    live = sysctl.read_live(["net.ipv4.tcp_rmem", "net.ipv4.conf.all", "kernel.nope", "../etc"], proc)
    assert live["net.ipv4.tcp_rmem"]["value"] == "4096 131072 6291456"
    assert live["net.ipv4.tcp_rmem"]["writable"] is True
    assert live["net.ipv4.conf.all"]["is_dir"] is True
    assert live["kernel.nope"]["exists"] is False
    assert live["../etc"] is None


# --- planning: validation ---------------------------------------------------------


def test_invalid_input_fails_listing_every_bad_key_and_writes_nothing(env):
    before = dict((rel, read(os.path.join(env["proc_sys"], rel))) for rel in TREE)
    result = run(env, {
        "kernel.kptr_restrikt": 2,             # typo: unknown key
        "kernel.randomize_va_space": 7,        # outside 0..2
        "net.ipv4.tcp_rmem": "4096 131072",    # wrong number of integers
        "kernel.kptr_restrict": "yes please",  # not an integer
        "vm.mmap_min_addr": 1.5,               # float
        "net.ipv4.conf.all": 1,                # a directory
        "net/ipv4/ip_forward": 1,              # duplicate of the next key
        "net.ipv4.ip_forward": 1,
        "bad..key": 1,                         # malformed
        "kernel.hostname": "edge-1",           # valid: must not be written either
    })
    assert result["failed"] is True
    assert result["changed"] is False
    errors = "\n".join(result["errors"])
    for needle in ("kernel.kptr_restrikt: no such key", "kernel.randomize_va_space: 7 is outside 0..2",
                   "net.ipv4.tcp_rmem: expects 3 integer(s)", "kernel.kptr_restrict: expects integers",
                   "vm.mmap_min_addr: floats", "net.ipv4.conf.all: is a directory",
                   "same key as", "bad..key: key has an empty"):
        assert needle in errors
    assert len(result["errors"]) == 8
    assert result["msg"].startswith("invalid sysctl settings, nothing was changed")
    assert before == dict((rel, read(os.path.join(env["proc_sys"], rel))) for rel in TREE)
    assert not os.path.exists(env["persist_path"])


@pytest.mark.parametrize("missing, optional, failed, absent_status", [
    ("fail", None, True, None),
    ("skip", None, False, "absent"),
    ("warn", None, False, "absent"),
    ("skip", ["kernel.io_uring_disabled"], False, "absent"),
    ("skip", ["kernel.other"], True, None),
    ("warn", [], True, None),
])
def test_missing_policy_and_optional_keys(env, missing, optional, failed, absent_status):
    result = run(env, {"kernel.io_uring_disabled": 2, "kernel.kptr_restrict": 2},
                 missing=missing, optional_keys=optional, check_mode=True)
    assert bool(result.get("failed")) is failed
    if failed:
        assert "kernel.io_uring_disabled: no such key" in result["msg"]
        return
    live = by_id(result["records"], "live")
    persisted = by_id(result["records"], "persisted")
    assert live["kernel.io_uring_disabled"]["status"] == absent_status
    assert persisted["kernel.io_uring_disabled"]["status"] == "absent"
    assert live["kernel.kptr_restrict"]["status"] == "changed"
    assert bool(result["warnings"]) is (missing == "warn")


# --- planning: limits, ranges, one-way switches ------------------------------------


@pytest.mark.parametrize("machine, limited", [
    ("armv7l", True), ("armv6l", True), ("aarch64", False), ("x86_64", False), ("riscv64", False),
])
def test_arch_limits_mmap_min_addr_only_on_32bit_arm(machine, limited):
    assert ("vm.mmap_min_addr" in sysctl.arch_limits(machine)) is limited


def test_kconfig_limits_from_parsed_config():
    config = {"CONFIG_ARCH_MMAP_RND_BITS_MIN": "18", "CONFIG_ARCH_MMAP_RND_BITS_MAX": "24"}
    limits = sysctl.kconfig_limits(config, "/proc/config.gz")
    assert limits["vm.mmap_rnd_bits"]["max"] == 24
    assert limits["vm.mmap_rnd_bits"]["min"] == 18
    assert "CONFIG_ARCH_MMAP_RND_BITS_MAX in /proc/config.gz" in limits["vm.mmap_rnd_bits"]["source"]
    assert "vm.mmap_rnd_compat_bits" not in limits


@pytest.mark.parametrize("settings, user_limits, wanted", [
    ({"vm.mmap_rnd_bits": 32}, None, True),
    ({"vm.mmap_rnd_bits": 32}, {"vm.mmap_rnd_bits": 30}, False),
    ({"vm.mmap_rnd_bits": None}, None, False),
    ({"kernel.sysrq": 0}, None, False),
])
def test_kernel_config_read_only_when_needed(settings, user_limits, wanted):
    assert sysctl.wants_kconfig_limits(settings, user_limits) is wanted


@pytest.mark.parametrize("user, error", [
    ({"vm.mmap_rnd_bits": "x"}, "expected an integer maximum"),
    ({"vm.mmap_rnd_bits": {"max": "lots"}}, "not an integer"),
    ({"vm.mmap_rnd_bits": {"max": 1, "min": 2}}, "min 2 is above max 1"),
    ({"vm.mmap_rnd_bits": {"max": 1, "action": "explode"}}, "must be clamp or reject"),
    ({"vm.mmap_rnd_bits": {"maximum": 1}}, "unknown field"),
])
def test_merge_limits_errors(user, error):
    limits, errors = sysctl.merge_limits({}, user)
    assert any(error in e for e in errors)


@pytest.mark.parametrize("value, limits, live_after, status, detail, error", [
    # kconfig max 24: clamp 32 -> 24 and say so.
    (32, {"vm.mmap_rnd_bits": {"max": 24, "min": 18}}, "24", "changed", "clamped 32 to 24", None),
    # Clamp lands on the current value: nothing to do, still reported.
    (32, {"vm.mmap_rnd_bits": 28}, "28", "unchanged", "clamped 32 to 28", None),
    (20, {"vm.mmap_rnd_bits": {"max": 24}}, "20", "changed", None, None),
    (32, {"vm.mmap_rnd_bits": {"max": 24, "action": "reject"}}, None, None, None, "outside this kernel's range"),
    (10, {"vm.mmap_rnd_bits": {"min": 18}}, "18", "changed", "clamped 10 to 18", None),
])
def test_limits_clamp_or_reject(env, value, limits, live_after, status, detail, error):
    result = run(env, {"vm.mmap_rnd_bits": value}, limits=limits, check_mode=True)
    if error:
        assert result["failed"] and error in result["msg"]
        return
    rec = by_id(result["records"], "live")["vm.mmap_rnd_bits"]
    assert (rec["after"], rec["status"]) == (live_after, status)
    assert (detail is None and "detail" not in rec) or detail in rec["detail"]
    assert by_id(result["records"], "persisted")["vm.mmap_rnd_bits"]["after"] == live_after


def test_builtin_arm_limit_clamps_mmap_min_addr(env):
    result = run(env, {"vm.mmap_min_addr": 65536}, builtin_limits=sysctl.arch_limits("armv7l"), check_mode=True)
    rec = by_id(result["records"], "live")["vm.mmap_min_addr"]
    assert rec["after"] == "32768"
    assert "32-bit ARM" in rec["detail"]


def test_one_way_switch_already_locked_is_unsupported_not_written(env):
    result = run(env, {"kernel.kexec_load_disabled": 0})
    rec = by_id(result["records"], "live")["kernel.kexec_load_disabled"]
    assert rec["status"] == "unsupported" and "one-way" in rec["detail"]
    assert read(os.path.join(env["proc_sys"], "kernel/kexec_load_disabled")) == "1\n"
    assert "failed" not in result
    assert run(env, {"kernel.kexec_load_disabled": 0}, strict=True, check_mode=True)["failed"] is True


def test_unwritable_key_is_planned_unsupported_but_still_persisted():
    live = {"kernel.kptr_restrict": {"key": "kernel.kptr_restrict", "path": "/x", "exists": True, "is_dir": False,
                                     "value": "0", "read_error": None, "writable": False,
                                     "unwritable": "not writable here: /proc/sys is mounted read-only (container?)"}}
    the_plan = sysctl.plan({"kernel.kptr_restrict": 2}, live)
    item = the_plan["items"][0]
    assert item["write"] is False
    assert item["live"]["status"] == "unsupported" and "read-only" in item["live"]["detail"]
    persisted = {"path": "/etc/sysctl.d/90-edgewarden.conf", "exists": False, "text": None, "readonly": False}
    records = sysctl.plan_persist(the_plan["items"], the_plan["unmanaged"], persisted)["records"]
    assert records[0]["status"] == "changed" and records[0]["after"] == "2"


# --- applying on fake trees --------------------------------------------------------


def test_real_run_writes_reads_back_persists_and_is_idempotent(env):
    settings = {"kernel.randomize_va_space": 2, "net.ipv4.tcp_rmem": "4096 131072 6291456",
                "net.ipv4.conf.eth0.1.rp_filter": 2, "kernel.core_pattern": "|/bin/false",
                "kernel.kptr_restrict": "0x2"}
    first = run(env, settings)
    assert "failed" not in first, first.get("msg")
    live = by_id(first["records"], "live")
    assert live["kernel.randomize_va_space"]["status"] == "changed"
    assert live["net.ipv4.tcp_rmem"]["status"] == "unchanged"
    assert live["net.ipv4.conf.eth0/1.rp_filter"]["after"] == "2"
    assert live["kernel.kptr_restrict"]["after"] == "2"
    assert read(os.path.join(env["proc_sys"], "net/ipv4/conf/eth0.1/rp_filter")) == "2"
    assert read(os.path.join(env["proc_sys"], "kernel/core_pattern")) == "|/bin/false"
    assert first["persisted_to"] == env["persist_path"]
    text = read(env["persist_path"])
    assert text.startswith(sysctl.MANAGED_MARK)
    assert sysctl.conf_values(text) == {
        "kernel.core_pattern": "|/bin/false", "kernel.kptr_restrict": "2", "kernel.randomize_va_space": "2",
        "net.ipv4.conf.eth0/1.rp_filter": "2", "net.ipv4.tcp_rmem": "4096 131072 6291456"}
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == sorted(lines)
    assert first["summary"]["changed"] == 9 and first["summary"]["unchanged"] == 1
    second = run(env, settings)
    assert second["changed"] is False
    assert second["summary"]["unchanged"] == 10


def test_check_mode_returns_the_records_of_a_real_run_and_writes_nothing(env):
    settings = {"kernel.randomize_va_space": 2, "vm.mmap_rnd_bits": 32, "kernel.kexec_load_disabled": 0,
                "kernel.io_uring_disabled": 2, "net.ipv4.ip_forward": "0"}
    with open(env["persist_path"], "w") as handle:
        handle.write(sysctl.render_owned({"kernel.sysrq": "0", "net.ipv4.ip_forward": "1"}))
    snapshot = dict((rel, read(os.path.join(env["proc_sys"], rel))) for rel in TREE)
    file_before = read(env["persist_path"])
    options = dict(limits={"vm.mmap_rnd_bits": 30}, missing="skip", optional_keys=["kernel.io_uring_disabled"])
    checked = run(env, settings, check_mode=True, **options)
    assert snapshot == dict((rel, read(os.path.join(env["proc_sys"], rel))) for rel in TREE)
    assert read(env["persist_path"]) == file_before
    real = run(env, settings, **options)
    assert checked["records"] == real["records"]
    assert checked["summary"] == real["summary"]
    assert checked["changed"] is real["changed"] is True
    assert by_id(real["records"], "persisted")["kernel.sysrq"]["detail"].startswith("removed")


@pytest.fixture
def immutable(tmp_path):
    """chattr +i makes a file unwritable even for root (unlike chmod 0444); removed after."""
    made = []

    def make(path):
        if not shutil.which("chattr"):
            pytest.skip("chattr not available")
        if subprocess.call(["chattr", "+i", path], stderr=subprocess.DEVNULL) != 0:
            pytest.skip("filesystem or privileges do not support the immutable flag")
        made.append(path)

    yield make
    for path in made:
        subprocess.call(["chattr", "-i", path])


def test_key_becoming_immutable_after_planning_is_reported_not_writable(env, immutable):
    # A key that turns read-only between read and write (as in a container whose
    # /proc/sys is remounted): the write raises EPERM and the applier reports it.
    live = sysctl.read_live(["kernel.kptr_restrict", "kernel.randomize_va_space"], env["proc_sys"])
    the_plan = sysctl.plan({"kernel.kptr_restrict": 2, "kernel.randomize_va_space": 2}, live)
    immutable(os.path.join(env["proc_sys"], "kernel/kptr_restrict"))
    sysctl.apply_live(the_plan["items"])
    items = dict((i["key"], i) for i in the_plan["items"])
    rec = items["kernel.kptr_restrict"]["live"]
    assert rec["status"] == "unsupported" and "not writable here (EPERM" in rec["detail"]
    assert items["kernel.kptr_restrict"]["persist"] is True
    assert items["kernel.randomize_va_space"]["live"]["status"] == "changed"


def test_immutable_key_is_seen_as_unwritable_by_the_reader(env, immutable):
    immutable(os.path.join(env["proc_sys"], "kernel/kptr_restrict"))
    result = run(env, {"kernel.kptr_restrict": 2}, persist=False)
    rec = by_id(result["records"], "live")["kernel.kptr_restrict"]
    assert rec["status"] == "unsupported" and "not writable" in rec["detail"]
    assert "failed" not in result
    assert run(env, {"kernel.kptr_restrict": 2}, persist=False, strict=True)["failed"] is True


def test_write_failure_of_any_kind_is_reported_per_key(env):
    # The key's path is replaced by a directory after planning: open() for writing
    # raises EISDIR, the other key is still applied.
    live = sysctl.read_live(["kernel.kptr_restrict", "kernel.randomize_va_space"], env["proc_sys"])
    the_plan = sysctl.plan({"kernel.kptr_restrict": 2, "kernel.randomize_va_space": 2}, live)
    path = os.path.join(env["proc_sys"], "kernel/kptr_restrict")
    os.unlink(path)
    os.mkdir(path)
    sysctl.apply_live(the_plan["items"])
    items = dict((i["key"], i) for i in the_plan["items"])
    assert items["kernel.kptr_restrict"]["live"]["status"] == "unsupported"
    assert "EISDIR" in items["kernel.kptr_restrict"]["live"]["detail"]
    assert items["kernel.randomize_va_space"]["live"]["status"] == "changed"


def test_key_that_vanished_before_the_write_is_not_created(env):
    # An interface removed between read and write: no O_CREAT, so ENOENT, not a new file.
    live = sysctl.read_live(["net.ipv4.conf.eth0.rp_filter"], env["proc_sys"])
    the_plan = sysctl.plan({"net.ipv4.conf.eth0.rp_filter": 1}, live)
    shutil.rmtree(os.path.join(env["proc_sys"], "net/ipv4/conf/eth0"))
    sysctl.apply_live(the_plan["items"])
    rec = the_plan["items"][0]["live"]
    assert rec["status"] == "unsupported" and "ENOENT" in rec["detail"]
    assert not os.path.exists(os.path.join(env["proc_sys"], "net/ipv4/conf/eth0"))


@pytest.mark.parametrize("code, persist, words", [
    (22, False, "rejected by the kernel (EINVAL"),
    (34, False, "rejected by the kernel (ERANGE"),
    (1, True, "not writable here (EPERM"),
    (13, True, "not writable here (EACCES"),
    (30, True, "not writable here (EROFS"),
    (5, True, "write failed (EIO"),
])
def test_classify_write_error(code, persist, words):
    reason, keep = sysctl.classify_write_error(OSError(code, os.strerror(code)))
    assert keep is persist and reason.startswith(words)


@pytest.fixture
def child():
    """A throwaway process whose /proc/<pid> files give real kernel EINVAL refusals
    (oom_score_adj accepts -1000..1000) without touching /proc/sys or this process."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    path = "/proc/%d/oom_score_adj" % proc.pid
    if not os.access(path, os.W_OK):
        proc.kill()
        pytest.skip("cannot write another process's oom_score_adj here")
    yield proc.pid
    proc.kill()
    proc.wait()


def _item(path, before, value, probe=True, key="vm.mmap_rnd_bits"):
    return {"key": key, "given": key, "path": path, "value": value, "kind": "int", "write": True,
            "persist": True, "probe": probe,
            "live": sysctl.record(sysctl.control_id(key), before, value, "live", "changed")}


def test_einval_on_probe_key_clamps_to_highest_accepted_value(child):
    path = "/proc/%d/oom_score_adj" % child
    item = _item(path, "0", "1005")
    sysctl.apply_live([item])
    assert item["value"] == "1000"
    assert item["live"]["status"] == "changed" and item["live"]["after"] == "1000"
    assert "clamped: the kernel refused 1005 (EINVAL)" in item["live"]["detail"]
    assert read(path).strip() == "1000"


def test_einval_on_probe_key_with_nothing_higher_accepted_is_rejected(child):
    path = "/proc/%d/oom_score_adj" % child
    with open(path, "w") as handle:
        handle.write("1000")
    item = _item(path, "1000", "1005")
    sysctl.apply_live([item])
    assert item["live"]["status"] == "unsupported" and item["live"]["detail"].startswith("rejected")
    assert item["persist"] is False
    assert read(path).strip() == "1000"


def test_einval_on_other_key_is_rejected_and_not_persisted(child):
    path = "/proc/%d/oom_score_adj" % child
    item = _item(path, "0", "5000", probe=False, key="kernel.sysrq")
    sysctl.apply_live([item])
    assert item["live"]["status"] == "unsupported" and "EINVAL" in item["live"]["detail"]
    persisted = {"path": "/p.conf", "exists": False, "text": None, "readonly": False}
    rec = sysctl.plan_persist([item], [], persisted)["records"][0]
    assert rec["status"] == "unsupported" and "rejected" in rec["detail"]


def test_kernel_storing_something_else_is_reported():
    # A helper thread of this process: the kernel truncates a thread's comm to 15
    # bytes, so the read-back differs from what was written (and only that thread's
    # name changes; other processes' comm files refuse writes).
    ready, done, tid = threading.Event(), threading.Event(), []

    def helper():
        tid.append(threading.get_native_id())
        ready.set()
        done.wait(30)

    thread = threading.Thread(target=helper)
    thread.start()
    try:
        ready.wait(5)
        path = "/proc/self/task/%d/comm" % tid[0]
        before = read(path).strip()
        item = _item(path, before, "edgewarden-probe-name", probe=False, key="kernel.hostname")
        item["kind"] = "text"
        sysctl.apply_live([item])
    finally:
        done.set()
        thread.join()
    assert item["live"]["after"] == "edgewarden-prob"
    assert item["live"]["status"] == "changed"
    assert "the kernel stored edgewarden-prob when asked for edgewarden-probe-name" in item["live"]["detail"]


# --- a key another write moves (net.ipv4.ip_forward -> conf.all.accept_redirects) ----

FORWARD_TREE = {"net/ipv4/ip_forward": "1\n", "net/ipv4/conf/all/accept_redirects": "0\n"}


@pytest.mark.parametrize("moved_to, detail", [
    (None, None),  # nothing moved: nothing written again
    ("1", "writing other keys moved it to 1; written again"),
])
def test_key_moved_by_another_write_is_set_back_and_stays_unchanged(tmp_path, moved_to, detail):
    proc = make_tree(tmp_path, FORWARD_TREE)
    settings = {"net.ipv4.ip_forward": 0, "net.ipv4.conf.all.accept_redirects": 0}
    predicted = sysctl.plan(settings, sysctl.read_live(list(settings), proc))["items"]
    the_plan = sysctl.plan(settings, sysctl.read_live(list(settings), proc))
    sysctl.apply_live(the_plan["items"])
    redirects = os.path.join(proc, "net/ipv4/conf/all/accept_redirects")
    if moved_to is not None:
        # what the real kernel does on that ip_forward write (devinet.c, inet_forward_change)
        with open(redirects, "w") as handle:
            handle.write(moved_to + "\n")
    sysctl.settle_live(the_plan["items"])
    assert read(redirects).strip() == "0"
    live = dict((i["key"], i["live"]) for i in the_plan["items"])
    assert live["net.ipv4.conf.all.accept_redirects"]["status"] == "unchanged"
    assert live["net.ipv4.conf.all.accept_redirects"].get("detail") == detail
    # check mode predicted the same statuses: the net effect is what counts
    assert [i["live"]["status"] for i in predicted] == [i["live"]["status"] for i in the_plan["items"]]


def test_key_moved_and_refused_when_set_back_is_an_error(child):
    path = "/proc/%d/oom_score_adj" % child
    item = _item(path, "7", "7", probe=False, key="kernel.sysrq")
    item["live"] = sysctl.record(item["live"]["id"], "7", "2000", "live", "changed")
    sysctl.settle_live([item])
    assert item["live"]["status"] == "error" and item["live"]["after"] == "0"
    assert item["live"]["detail"] == "writing other keys moved it to 0; could not set it back to 2000"


def test_nothing_is_read_back_when_nothing_was_written(tmp_path):
    proc = make_tree(tmp_path, FORWARD_TREE)
    the_plan = sysctl.plan({"net.ipv4.conf.all.accept_redirects": 0},
                           sysctl.read_live(["net.ipv4.conf.all.accept_redirects"], proc))
    with open(os.path.join(proc, "net/ipv4/conf/all/accept_redirects"), "w") as handle:
        handle.write("1\n")
    sysctl.settle_live(the_plan["items"])
    assert the_plan["items"][0]["live"]["status"] == "unchanged"
    assert read(os.path.join(proc, "net/ipv4/conf/all/accept_redirects")).strip() == "1"


# --- persisted file ----------------------------------------------------------------


@pytest.mark.parametrize("values", [
    {},
    {"kernel.kptr_restrict": "2"},
    {"net.ipv4.tcp_rmem": "4096 131072 6291456", "kernel.core_pattern": "|/bin/false",
     "net.ipv4.conf.eth0/1.rp_filter": "2"},
])
def test_render_parse_round_trip(values):
    assert sysctl.conf_values(sysctl.render_owned(values)) == values
    text, error = sysctl.render_block("", values)
    assert error is None
    assert sysctl.conf_values(text) == values


@pytest.mark.parametrize("line, parsed", [
    ("kernel.sysrq=1", ("kernel.sysrq", "1")),
    ("  kernel.sysrq   =   1  ", ("kernel.sysrq", "1")),
    ("-kernel.sysrq = 1", ("kernel.sysrq", "1")),
    ("net/ipv4/conf/eth0.1/rp_filter = 2", ("net.ipv4.conf.eth0/1.rp_filter", "2")),
    ("net.ipv4.tcp_rmem = 4096\t131072  6291456", ("net.ipv4.tcp_rmem", "4096 131072 6291456")),
    ("kernel.core_pattern = |/usr/lib/x %p = %e", ("kernel.core_pattern", "|/usr/lib/x %p = %e")),
    ("# kernel.sysrq = 1", None),
    ("; kernel.sysrq = 1", None),
    ("not an assignment", None),
])
def test_parse_conf_lines(line, parsed):
    entries = sysctl.parse_conf(line)
    assert (entries[0][1:] if entries else None) == parsed


FOREIGN = """# local settings
vm.swappiness = 10
# BEGIN edgewarden
# old note
kernel.sysrq = 1
net.ipv4.ip_forward = 1
# END edgewarden
net.core.somaxconn = 1024
"""


def test_managed_block_replaced_in_place_keeping_foreign_lines():
    text, error = sysctl.render_block(FOREIGN, {"kernel.sysrq": "0", "kernel.kptr_restrict": "2"})
    assert error is None
    lines = text.splitlines()
    assert lines[:2] == ["# local settings", "vm.swappiness = 10"]
    assert lines[-1] == "net.core.somaxconn = 1024"
    _before, block, _after, _error = sysctl.split_block(text)
    assert block == [sysctl.BLOCK_BEGIN, sysctl.BLOCK_NOTE, "kernel.kptr_restrict = 2", "kernel.sysrq = 0", sysctl.BLOCK_END]


@pytest.mark.parametrize("text, expected", [
    ("vm.swappiness = 10\n", "vm.swappiness = 10\n\n# BEGIN edgewarden\n"),
    ("vm.swappiness = 10\n\n", "vm.swappiness = 10\n\n# BEGIN edgewarden\n"),
    ("", "# BEGIN edgewarden\n"),
    (None, "# BEGIN edgewarden\n"),
])
def test_managed_block_appended_after_foreign_lines(text, expected):
    new, error = sysctl.render_block(text, {"kernel.sysrq": "0"})
    assert error is None and new.startswith(expected)
    assert new.endswith("kernel.sysrq = 0\n# END edgewarden\n")


def test_managed_block_removed_when_empty_and_unterminated_block_is_an_error():
    text, error = sysctl.render_block(FOREIGN, {})
    assert error is None and "edgewarden" not in text and "vm.swappiness = 10" in text
    text, error = sysctl.render_block("# BEGIN edgewarden\nkernel.sysrq = 1\nvm.x = 1\n", {"kernel.sysrq": "0"})
    assert text is None and "no matching # END edgewarden" in error


@pytest.mark.parametrize("path, text, mode", [
    ("/etc/sysctl.d/90-edgewarden.conf", None, "owned"),
    ("/etc/sysctl.d/90-edgewarden.conf", sysctl.render_owned({"a": "1"}), "owned"),
    ("/etc/sysctl.d/90-edgewarden.conf", "vm.swappiness = 10\n", "block"),
    ("/etc/sysctl.conf", None, "block"),
    ("/etc/sysctl.conf", "", "block"),
])
def test_persist_mode(path, text, mode):
    assert sysctl.persist_mode(path, text) == mode


def test_busybox_sysctl_conf_block_end_to_end(env):
    conf = env["sysctl_conf"]
    with open(conf, "w") as handle:
        handle.write(FOREIGN)
    os.chmod(conf, 0o600)
    result = run(env, {"kernel.randomize_va_space": 2, "kernel.sysrq": None}, persist_path=conf)
    assert "failed" not in result, result.get("msg")
    text = read(conf)
    assert text.startswith("# local settings\nvm.swappiness = 10\n# BEGIN edgewarden\n")
    assert text.endswith("# END edgewarden\nnet.core.somaxconn = 1024\n")
    _before, block, _after, _error = sysctl.split_block(text)
    assert sysctl.conf_values("\n".join(block)) == {"kernel.randomize_va_space": "2"}
    assert os.stat(conf).st_mode & 0o777 == 0o600
    persisted = by_id(result["records"], "persisted")
    assert persisted["kernel.sysrq"]["detail"] == "removed: no longer managed"
    assert persisted["net.ipv4.ip_forward"]["status"] == "changed"
    assert persisted["kernel.randomize_va_space"]["status"] == "changed"
    assert run(env, {"kernel.randomize_va_space": 2}, persist_path=conf)["changed"] is False


def test_foreign_lines_and_later_files_that_override_are_warned(env):
    conf = env["sysctl_conf"]
    with open(conf, "w") as handle:
        handle.write("kernel.randomize_va_space = 0\n")
    with open(os.path.join(env["usr"], "99-protect-links.conf"), "w") as handle:
        handle.write("fs.protected_fifos = 1\nkernel.randomize_va_space = 2\n")
    with open(os.path.join(env["usr"], "10-early.conf"), "w") as handle:
        handle.write("kernel.randomize_va_space = 0\n")
    result = run(env, {"kernel.randomize_va_space": 2}, check_mode=True)
    assert len(result["warnings"]) == 1 and "sysctl.conf line 1 sets kernel.randomize_va_space = 0" in result["warnings"][0]
    block = run(env, {"kernel.randomize_va_space": 2}, persist_path=conf, check_mode=True)
    assert "outside the managed block" in block["warnings"][0]


def test_symlinked_persist_path_keeps_the_link(env):
    # Debian: /etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf. The target is not ours,
    # so only a block is managed, written through the link.
    with open(env["sysctl_conf"], "w") as handle:
        handle.write("vm.swappiness = 10\n")
    link = os.path.join(env["etc"], "sysctl.d", "99-sysctl.conf")
    os.symlink("../sysctl.conf", link)
    result = run(env, {"kernel.randomize_va_space": 2}, persist_path=link)
    assert "failed" not in result
    assert os.path.islink(link)
    assert read(env["sysctl_conf"]).startswith("vm.swappiness = 10\n\n# BEGIN edgewarden")


def test_read_only_filesystem_is_reported_and_nothing_is_written():
    items = [{"key": "kernel.sysrq", "value": "0", "kind": "int", "persist": True},
             {"key": "kernel.kptr_restrict", "value": "2", "kind": "int", "persist": True}]
    persisted = {"path": "/etc/sysctl.d/90-edgewarden.conf", "exists": True, "readonly": True,
                 "text": sysctl.render_owned({"kernel.kptr_restrict": "2"})}
    result = sysctl.plan_persist(items, [], persisted)
    records = dict((r["id"], r) for r in result["records"])
    assert records["kernel.sysctl/kernel.sysrq"]["status"] == "unsupported"
    assert records["kernel.sysctl/kernel.sysrq"]["detail"] == "read-only filesystem"
    assert records["kernel.sysctl/kernel.kptr_restrict"]["status"] == "unchanged"
    assert result["text"] is None and result["persisted_to"] is None
    assert "read-only filesystem" in result["warnings"][0]
    # Already as wanted: nothing to write, so the file is where it is persisted.
    same = sysctl.plan_persist(items[1:], [], persisted)
    assert same["persisted_to"] == persisted["path"] and not same["warnings"]


def test_owned_file_drops_keys_not_in_settings(env):
    with open(env["persist_path"], "w") as handle:
        handle.write(sysctl.render_owned({"kernel.randomize_va_space": "2", "vm.swappiness": "10"}))
    result = run(env, {"kernel.randomize_va_space": 2}, check_mode=True)
    rec = by_id(result["records"], "persisted")["vm.swappiness"]
    assert (rec["before"], rec["after"], rec["status"]) == ("10", None, "changed")
    assert rec["detail"] == "removed: not in settings (file is managed)"


def test_persist_false_and_parent_directory_created(env, tmp_path):
    no_persist = run(env, {"kernel.randomize_va_space": 2}, persist=False, check_mode=True)
    assert no_persist["persisted_to"] is None
    assert all(r["where"] == "live" for r in no_persist["records"])
    target = str(tmp_path / "fresh" / "sysctl.d" / "90-edgewarden.conf")
    created = run(env, {"kernel.randomize_va_space": 2}, persist_path=target)
    assert created["persisted_to"] == target and os.path.isfile(target)


def test_persist_error_fails_with_error_records(env, tmp_path):
    # A file where the directory should be: makedirs fails, records become errors.
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    result = run(env, {"kernel.randomize_va_space": 2}, persist_path=str(blocker / "x.conf"))
    assert result["failed"] is True
    assert by_id(result["records"], "persisted")["kernel.randomize_va_space"]["status"] == "error"
    assert result["persisted_to"] is None
    assert result["summary"]["error"] == 1


def test_relative_persist_path_is_a_validation_error(env):
    result = run(env, {"kernel.randomize_va_space": 2}, persist_path="sysctl.conf")
    assert result["failed"] and "absolute" in result["msg"]


def test_diff_shows_live_and_persisted_per_key(env):
    from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import diff_from_records
    result = run(env, {"kernel.randomize_va_space": 2}, check_mode=True)
    diff = diff_from_records(result["records"], header="kernel_sysctl")
    assert "kernel.sysctl/kernel.randomize_va_space [live] = 1" in diff["before"]
    assert "kernel.sysctl/kernel.randomize_va_space [persisted] = <absent>" in diff["before"]
    assert "kernel.sysctl/kernel.randomize_va_space [persisted] = 2" in diff["after"]


# --- the role's declarations stay consistent ---------------------------------------


def _role(path):
    # PyYAML is a controller-side dependency: the Python 3.8 device-floor run has only pytest.
    yaml = pytest.importorskip("yaml")
    with open(os.path.join(ROOT, "roles", "kernel", path)) as handle:
        return yaml.safe_load(handle)


def test_role_defaults_are_valid_module_input():
    defaults = _role("defaults/main.yml")
    settings = defaults["kernel_sysctl_defaults"]
    for key, value in settings.items():
        assert sysctl.key_error(key) is None, key
        assert sysctl.to_text(value)[1] is None, key
    optional = set(defaults["kernel_sysctl_optional_keys"])
    for key in settings:
        if key.startswith("net.ipv6."):
            assert key in optional, key


@pytest.mark.parametrize("requested, init_name, expected", [
    ("auto", "busybox", "/etc/sysctl.conf"),
    ("auto", "systemd", "/etc/sysctl.d/99-zz-edgewarden.conf"),
    ("auto", "procd", "/etc/sysctl.d/99-zz-edgewarden.conf"),
    ("auto", "unknown", "/etc/sysctl.d/99-zz-edgewarden.conf"),
    ("/etc/sysctl.d/50-site.conf", "busybox", "/etc/sysctl.d/50-site.conf"),
])
def test_choose_persist_path(requested, init_name, expected):
    assert sysctl.choose_persist_path(requested, init_name) == expected
