# SPDX-License-Identifier: GPL-3.0-or-later
"""Reboot kernel1 while the kernel role is writing a changed set of sysctls (issue #10).

Runs after test_restart.py (pytest takes files in name order), on the converged camera
state. reboot_converge.yml is started in the background with overrides that change keys
live and persisted (and drop one key from the persisted file); the moment its sysctl task
starts, `tests/lab/lab restart kernel1` reboots the real guest (systemd stops the SSH
session and the module with it). Then: the device is back through the bastion, the
persisted file is exactly the old or exactly the new one, the boot applied it, the run
reported what really happened, and a re-run converges and is idempotent.
"""

import json
import os
import re
import subprocess
import threading
import time

import pytest

from test_kernel import LAB, SYSCTL_D

testinfra_hosts = ["ansible://kernel1"]

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLAYBOOK = os.path.join(SCENARIO, "reboot_converge.yml")
LOGS = os.path.join(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp"), "reboot")
SYSCTL_TASK = "TASK [edgewarden.hardening.kernel : Kernel | Apply and persist sysctl settings, audit the kernel build configuration]"
# Changes against the camera state converge.yml left, kernel-wide and per namespace;
# None stops managing a key, so it must leave the persisted file.
CHANGES = {
    "kernel.kptr_restrict": "1",
    "net.ipv4.ip_forward": "1",
    "net.ipv4.conf.all.rp_filter": "2",
    "net.ipv4.conf.default.rp_filter": "2",
    "kernel.sysrq": None,
}
# one command, plain SSH: the persisted file, then every key in it with its live value
READ_STATE = (
    "cat /proc/sys/kernel/random/boot_id; echo '@@'; cat %s; echo '@@'; "
    "sed -n 's/^\\([a-z][^ =]*\\) *=.*/\\1/p' %s | while read -r k; do "
    "printf '%%s = %%s\\n' \"$k\" \"$(cat /proc/sys/$(echo \"$k\" | tr . /))\"; done; echo '@@'; "
    "ls -A /etc/sysctl.d" % (SYSCTL_D, SYSCTL_D)
)


def playbook_argv(changes=None):
    changes = CHANGES if changes is None else changes
    overrides = {"kernel_sysctl_overrides": dict((k, v if v is None else int(v)) for k, v in changes.items())}
    return ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "-e", json.dumps(overrides), PLAYBOOK]


def env():
    environment = dict(os.environ)
    environment["PYTHONUNBUFFERED"] = "1"  # the output is read as it comes
    environment["ANSIBLE_NOCOLOR"] = "1"
    environment["ANSIBLE_FORCE_COLOR"] = "0"  # Molecule forces colour, which would hide the lines
    environment["ANSIBLE_STDOUT_CALLBACK"] = "default"
    return environment


def keep(name, text):
    with open(os.path.join(LOGS, name), "w") as handle:
        handle.write(text)


def conf(text):
    """Key -> value of a sysctl.d file, whitespace inside values collapsed."""
    values = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith(("#", ";")):
            key, _sep, value = line.partition("=")
            values[key.strip()] = " ".join(value.split())
    return values


def render_expected(old_text):
    """The new file predicted from the old one: same header and order, changed values,
    unmanaged keys gone (the module writes keys sorted, and CHANGES adds no new key)."""
    lines = []
    for line in old_text.splitlines():
        key = line.partition("=")[0].strip()
        if key in CHANGES and not line.startswith("#"):
            if CHANGES[key] is None:
                continue
            line = "%s = %s" % (key, CHANGES[key])
        lines.append(line)
    return "\n".join(lines) + "\n"


def read_state(host):
    out = host.check_output(READ_STATE)
    boot_id, text, live, listing = out.split("@@\n")
    return {"boot_id": boot_id.strip(), "text": text, "live": conf(live), "listing": listing.split()}


def recap(output):
    match = re.search(r"^kernel1\s+:\s+(.*)$", output, re.M)
    assert match, output[-3000:]
    return dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1)))


def sysctl_task_outcome(output):
    """What the interrupted run said about the sysctl task on kernel1: changed, ok,
    unreachable, failed, or none (the run ended without a word about it)."""
    section = output.split(SYSCTL_TASK, 1)[1] if SYSCTL_TASK in output else ""
    section = re.split(r"^(?:TASK|PLAY RECAP) ", section, maxsplit=1, flags=re.M)[0]
    for pattern, outcome in ((r"^changed: \[kernel1\]", "changed"), (r"^ok: \[kernel1\]", "ok"),
                             (r"^fatal: \[kernel1\]: UNREACHABLE!", "unreachable"),
                             (r"^fatal: \[kernel1\]: FAILED!", "failed")):
        if re.search(pattern, section, re.M):
            return outcome
    return "none"


@pytest.fixture(scope="module")
def fault(host):
    """Run the fault once: converge in the background, reboot at the sysctl task."""
    if not os.path.isdir(LOGS):
        os.makedirs(LOGS)
    before = read_state(host)
    started = time.time()
    run = subprocess.Popen(playbook_argv(), cwd=SCENARIO, env=env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, bufsize=1)
    # a connection that hangs instead of breaking must fail the test, not block it
    watchdog = threading.Timer(300, run.kill)
    watchdog.start()
    lines, reboot, reboot_at = [], None, None
    try:
        for line in run.stdout:
            lines.append(line)
            if reboot is None and line.startswith(SYSCTL_TASK):
                reboot_at = time.time()
                reboot = subprocess.Popen([LAB, "restart", "kernel1"], stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, universal_newlines=True)
        rc = run.wait()
    finally:
        watchdog.cancel()
    run_done = time.time()
    output = "".join(lines)
    keep("interrupted.log", output)
    assert reboot is not None, "the sysctl task never started:\n" + output[-3000:]
    lab_out = reboot.communicate(timeout=400)[0]
    keep("restart.log", lab_out)
    assert reboot.returncode == 0, lab_out
    back = time.time()
    after = read_state(host)
    print("timings: task start %.1fs after launch, run ended %.1fs after the reboot command, "
          "device back %.1fs after it" % (reboot_at - started, run_done - reboot_at, back - reboot_at))
    return {"before": before, "after": after, "rc": rc, "output": output,
            "outcome": sysctl_task_outcome(output), "expected": render_expected(before["text"])}


def test_the_device_rebooted_and_is_back_through_the_bastion(fault):
    # read_state went through the bastion with a new SSH connection after the reboot
    assert fault["after"]["boot_id"] and fault["after"]["boot_id"] != fault["before"]["boot_id"]


def test_the_change_is_a_real_change(fault):
    # otherwise the old/new checks below could not tell anything apart
    old = conf(fault["before"]["text"])
    assert fault["expected"] != fault["before"]["text"]
    assert all(old.get(k) != v for k, v in CHANGES.items()), old


def test_persisted_file_is_exactly_old_or_new(fault):
    text = fault["after"]["text"]
    which = "old" if text == fault["before"]["text"] else "new" if text == fault["expected"] else "MIXED"
    print("persisted after the reboot: %s version; sysctl task said: %s; rc %s"
          % (which, fault["outcome"], fault["rc"]))
    assert which != "MIXED", "persisted file is neither the old nor the new version:\n" + text
    leftovers = [n for n in fault["after"]["listing"] if n.startswith(".edgewarden-")]
    print("temporary files left by the interrupted write: %s" % (leftovers or "none"))
    # a leftover temp file is harmless only because systemd-sysctl reads *.conf alone
    assert not [n for n in leftovers if n.endswith(".conf")]


def test_the_boot_applied_the_persisted_file(fault):
    persisted, live = conf(fault["after"]["text"]), fault["after"]["live"]
    assert persisted, "empty persisted file"
    wrong = dict((k, (v, live.get(k))) for k, v in persisted.items() if live.get(k) != v)
    assert not wrong, "key: (persisted, live after boot): %s" % wrong


def test_the_interrupted_run_reported_what_happened(fault):
    outcome, rc, text = fault["outcome"], fault["rc"], fault["after"]["text"]
    counts = recap(fault["output"]) if "PLAY RECAP" in fault["output"] else {}
    if outcome == "changed":
        # the module finished before systemd stopped it: it said changed, so it must be true
        assert text == fault["expected"], "reported changed, but the persisted file is the old one"
        assert rc == 0 and counts.get("changed") == 1, fault["output"][-3000:]
    else:
        # cut off: the run must fail and say so for kernel1, never end green
        assert outcome in ("unreachable", "failed"), fault["output"][-3000:]
        assert rc != 0, fault["output"][-3000:]
        assert counts.get("unreachable", 0) + counts.get("failed", 0) == 1, counts
        assert counts.get("changed", 0) == 0, counts


@pytest.fixture(scope="module")
def reruns(fault):
    runs = []
    for name in ("rerun", "again"):
        res = subprocess.run(playbook_argv(), cwd=SCENARIO, env=env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True, timeout=300, check=False)
        keep(name + ".log", res.stdout)
        runs.append(res)
    return runs


def test_a_rerun_converges_and_the_next_changes_nothing(host, fault, reruns):
    rerun, again = reruns
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    # the boot applied whichever file it found: only an old one leaves work for the re-run
    changed = 0 if fault["after"]["text"] == fault["expected"] else 1
    assert recap(rerun.stdout)["changed"] == changed, rerun.stdout[-3000:]
    assert again.returncode == 0, again.stdout[-3000:]
    assert recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    state = read_state(host)
    assert state["text"] == fault["expected"]
    for key, value in CHANGES.items():
        if value is not None:
            assert state["live"][key] == value, key


def test_back_to_the_converged_state_every_live_value_is_the_persisted_one(host, reruns):
    # the scenario's camera state again (ip_forward 1 -> 0 makes the kernel turn
    # conf.all.accept_redirects back on: the module must set it back off)
    res = subprocess.run(playbook_argv({}), cwd=SCENARIO, env=env(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, timeout=300, check=False)
    keep("restore.log", res.stdout)
    assert res.returncode == 0 and recap(res.stdout)["changed"] == 1, res.stdout[-3000:]
    state = read_state(host)
    wrong = dict((k, (v, state["live"].get(k))) for k, v in conf(state["text"]).items() if state["live"].get(k) != v)
    assert not wrong, "key: (persisted, live): %s" % wrong
