# SPDX-License-Identifier: GPL-3.0-or-later
"""The integrity role's and ota_artifact's effects, read on each host independently of the modules.

Runs after side_effect.yml: fresh devices, a read-only boot, a read-write converge and
two artifact deliveries.
"""

import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")

ARTIFACTS = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "integrity")
FLAGS = ("nodev", "nosuid", "noexec")


def name(host):
    return host.backend.get_hostname()


def per_mount_options(host, path):
    for line in host.file("/proc/self/mountinfo").content_string.splitlines():
        fields = line.split()
        if fields[4] == path:
            found = fields[5].split(",")
    return found


def hardened_paths(host):
    # the BusyBox image has no /var/tmp: the role reports it absent and creates nothing
    return ("/tmp", "/dev/shm", "/var/tmp") if name(host) == "debian1" else ("/tmp", "/dev/shm")


def test_flags_in_effect(host):
    for path in hardened_paths(host):
        options = per_mount_options(host, path)
        for flag in FLAGS:
            assert flag in options, (path, options)
    if name(host) == "embedded1":
        assert not host.file("/var/tmp").exists


def test_noexec_refuses_to_run_a_program(host):
    for path in hardened_paths(host):
        script = path + "/ew-noexec-probe"
        host.run_test("printf '#!/bin/sh\\necho ran\\n' > %s && chmod 755 %s", script, script)
        run = host.run(script)
        host.run("rm -f %s", script)
        assert run.rc == 126 and "ran" not in run.stdout, (path, run.rc, run.stdout, run.stderr)
        assert "Permission denied" in run.stderr


def test_nodev_refuses_to_open_a_device_node(host):
    node = "/dev/shm/ew-nodev-probe"
    host.run_test("mknod %s c 1 3", node)  # the null device, made where nodev applies
    opened = host.run("head -c 1 %s", node)
    host.run("rm -f %s", node)
    assert opened.rc != 0 and "Permission denied" in opened.stderr


def test_fstab_persisted_where_it_is_read(host):
    fstab = host.file("/etc/fstab").content_string
    assert "# BEGIN edgewarden mount_options" in fstab
    assert "tmpfs /tmp tmpfs nodev,nosuid,noexec 0 0" in fstab
    assert "tmpfs /dev/shm tmpfs nodev,nosuid,noexec 0 0" in fstab
    if name(host) == "debian1":
        assert "/var/tmp /var/tmp none bind,nodev,nosuid,noexec 0 0" in fstab
        assert host.run("findmnt --verify").rc == 0
        # util-linux applies the persisted line by itself: mount /var/tmp from fstab alone
        host.run_test("umount /var/tmp")
        host.run_test("mount /var/tmp")
        for flag in FLAGS:
            assert flag in per_mount_options(host, "/var/tmp")
    else:
        assert "/var/tmp" not in fstab


def test_suid_bits(host):
    assert host.file("/usr/local/bin/ew-probe-unlisted").mode == 0o755
    assert host.file("/usr/local/sbin/ew-probe-sgid").mode == 0o755
    assert host.file("/usr/local/bin/ew-probe-allowed").mode == 0o4755
    # on the read-only root the role reported it and changed nothing; later runs do not scan it
    assert host.file("/opt/ew-ro/ew-probe-ro").mode == 0o4755
    # world-writable files are reported, never changed
    assert host.file("/etc/ew-probe-world-writable.conf").mode == 0o666


def test_artifact_installed_and_verified(host):
    with open(os.path.join(ARTIFACTS, "manifest.json")) as handle:
        manifest = json.load(handle)
    installed = host.file("/var/lib/ew-ota/firmware.img")
    assert installed.sha256sum == manifest["firmware-2.img"]
    assert installed.mode == 0o644
    assert host.run("ls -A /var/lib/ew-ota").stdout.split() == ["firmware.img"]
