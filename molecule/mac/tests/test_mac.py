# SPDX-License-Identifier: GPL-3.0-or-later
"""The mac role's effect on the real kernel, read independently of the module: real
denials by the kernel, the files and links the boot loader reads, nothing else touched."""

import os

testinfra_hosts = ["ansible://kernel1"]

LAB = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "tests", "lab", "lab")
PROFILES = "/sys/kernel/security/apparmor/profiles"
# after side_effect: ew-demo enforce (explicit), ew-clean enforced by the staged rollout,
# ew-probe held in complain mode because it logged would-be denials
MODES = {"ew-demo": "enforce", "ew-clean": "enforce", "ew-probe": "complain"}
MARKER = "# Managed by edgewarden.hardening (apparmor_profile)."


def name(host):
    return host.backend.get_hostname()


def loaded_modes(host):
    modes = {}
    for line in host.file(PROFILES).content_string.splitlines():
        profile, mode = line.rsplit(" (", 1)
        modes[profile] = mode.rstrip(")")
    return modes


def test_modes_read_from_the_kernel(host):
    modes = loaded_modes(host)
    for profile, mode in MODES.items():
        assert modes.get(profile) == mode, profile


def test_enforced_profile_really_denies_what_it_does_not_allow(host):
    allowed = host.run("/usr/local/bin/ew-demo /etc/hostname")
    assert allowed.rc == 0 and allowed.stdout.strip() == "kernel1"
    denied = host.run("/usr/local/bin/ew-demo /srv/ew-secret")
    assert denied.rc != 0
    assert "Permission denied" in denied.stderr
    # the same file is readable outside the profile: the denial is AppArmor's
    assert host.run("cat /srv/ew-secret").stdout.strip() == "secret"
    log = host.run("journalctl -k --no-pager -g 'apparmor=\"DENIED\".*profile=\"ew-demo\".*name=\"/srv/ew-secret\"'")
    assert log.rc == 0 and "DENIED" in log.stdout


def test_complain_mode_logs_instead_of_denying(host):
    result = host.run("/usr/local/bin/ew-probe /srv/ew-secret")
    assert result.rc == 0 and result.stdout.strip() == "secret"
    log = host.run("journalctl -k --no-pager -g 'apparmor=\"ALLOWED\".*profile=\"ew-probe\".*name=\"/srv/ew-secret\"'")
    assert log.rc == 0 and "ALLOWED" in log.stdout


def test_files_and_boot_mode_links(host):
    for profile in MODES:
        text = host.file("/etc/apparmor.d/" + profile).content_string
        assert text.startswith(MARKER), profile
    # the broken ew-demo offered in side_effect was refused: the file is the good one
    assert "not_a_capability" not in host.file("/etc/apparmor.d/ew-demo").content_string
    assert host.file("/etc/apparmor.d/force-complain/ew-probe").linked_to == "/etc/apparmor.d/ew-probe"
    assert not host.file("/etc/apparmor.d/force-complain/ew-clean").exists
    assert not host.file("/etc/apparmor.d/force-complain/ew-demo").exists
    assert not host.file("/etc/apparmor.d/disable/ew-demo").exists


def test_distribution_profiles_left_alone(host):
    modes = loaded_modes(host)
    assert modes.get("lsb_release") == "enforce"
    assert modes.get("nvidia_modprobe") == "enforce"
    for directory in ("force-complain", "disable"):
        listing = host.run("ls -A /etc/apparmor.d/%s" % directory).stdout.split()
        assert sorted(listing) == (["ew-probe"] if directory == "force-complain" else []), directory
    assert not host.file("/etc/apparmor.d/lsb_release").content_string.startswith(MARKER)
