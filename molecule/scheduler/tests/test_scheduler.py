# SPDX-License-Identifier: GPL-3.0-or-later
"""The scheduled runner: timer or cron, lock, policy, retention, log."""

import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")

RUNNER = "/usr/local/sbin/edgewarden-drift"
HISTORY = "/var/lib/edgewarden/reports"


def systemd(host):
    return host.backend.get_hostname() == "kernel1"


def test_schedule_installed(host):
    if systemd(host):
        assert host.check_output("systemctl is-enabled edgewarden-drift.timer") == "enabled"
        assert host.check_output("systemctl is-active edgewarden-drift.timer") == "active"
        assert "edgewarden-drift.timer" in host.check_output("systemctl list-timers --all --no-pager")
        verify = host.run("systemd-analyze verify /etc/systemd/system/edgewarden-drift.service "
                          "/etc/systemd/system/edgewarden-drift.timer")
        assert verify.rc == 0, verify.stderr
        assert "OnCalendar=*-*-* 00/4:00:00" in host.file("/etc/systemd/system/edgewarden-drift.timer").content_string
    else:
        cron = host.file("/etc/cron.d/edgewarden-drift").content_string
        assert "0 */4 * * * root %s" % RUNNER in cron


def run(host, verdict):
    host.run("echo %d > /srv/stub/verdict" % verdict)
    return host.run(RUNNER)


def test_policy_retention_and_log(host):
    host.run("rm -rf %s /srv/stub/calls /var/log/edgewarden/drift.log" % HISTORY)
    assert run(host, 0).rc == 0
    assert run(host, 4).rc == 4
    drift = run(host, 3)
    assert drift.rc == 3
    runs = sorted(host.check_output("ls -1 %s" % HISTORY).split())
    # drift found with policy remediate: the remediation playbook ran in the same run
    assert host.file("%s/%s/remediate/exit_code" % (HISTORY, runs[-1])).exists
    calls = host.file("/srv/stub/calls").content_string.splitlines()
    assert "playbooks/drift.yml --check --diff" in calls[0]
    assert calls[-1].endswith("playbooks/remediate.yml")
    for _run in range(2):
        host.run("sleep 1")
        run(host, 0)
    assert len(host.check_output("ls -1 %s" % HISTORY).split()) == 3
    log = host.file("/var/log/edgewarden/drift.log").content_string
    assert "drift=3 remediate=" in log and "policy=remediate" in log


def test_runs_never_overlap(host):
    host.run("echo 8 > /srv/stub/hold; echo 0 > /srv/stub/verdict")
    try:
        host.run("setsid %s > /dev/null 2>&1 < /dev/null &" % RUNNER)
        host.run("sleep 2")
        second = host.run(RUNNER)
        assert second.rc == 5
        assert "skipped: a previous run still holds" in second.stdout
    finally:
        host.run("rm -f /srv/stub/hold; sleep 7")
