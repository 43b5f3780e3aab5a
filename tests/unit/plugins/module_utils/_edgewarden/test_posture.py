# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import stat
import sys

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.posture import (
    APPARMOR_ENABLED_PATH,
    LSM_PATH,
    NO_EFI_REASON,
    SECTIONS,
    SELINUX_ENFORCE_PATH,
    choose_package_manager,
    classify_virtualization,
    find_executables,
    gather_posture,
    gather_virt_evidence,
    interpret_apparmor,
    interpret_aslr,
    interpret_lsm,
    interpret_os_release,
    interpret_root_fs,
    interpret_secure_boot,
    interpret_selinux,
    kernel_config_source,
    read_apparmor,
    read_lsm,
    read_os,
    read_package_manager,
    read_secure_boot,
    read_selinux,
    root_mount,
    select_sections,
    summarize_listening,
)
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.procfs import parse_mounts

SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e98c0154bcac"


def build_tree(root, files=None, dirs=(), executables=()):
    """A tiny device root under tmp_path made of real files."""
    for path in dirs:
        os.makedirs(os.path.join(str(root), path.lstrip("/")), exist_ok=True)
    for path, content in (files or {}).items():
        host = os.path.join(str(root), path.lstrip("/"))
        os.makedirs(os.path.dirname(host), exist_ok=True)
        with open(host, "wb" if isinstance(content, bytes) else "w") as handle:
            handle.write(content)
        if path in executables:
            os.chmod(host, os.stat(host).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(root)


# --- LSM, AppArmor, SELinux ---------------------------------------------------------

@pytest.mark.parametrize("lsm_text, apparmor, selinux, expected", [
    ("lockdown,capability,landlock,yama,apparmor", None, False, (["lockdown", "capability", "landlock", "yama", "apparmor"], LSM_PATH)),
    ("capability,selinux\n", "N", True, (["capability", "selinux"], LSM_PATH)),
    ("", None, False, ([], LSM_PATH)),
    # No securityfs (namespace host): fall back to each LSM's own files.
    (None, "Y", False, (["apparmor"], APPARMOR_ENABLED_PATH)),
    (None, "N", False, ([], APPARMOR_ENABLED_PATH)),
    (None, "N", True, (["selinux"], APPARMOR_ENABLED_PATH + ", " + SELINUX_ENFORCE_PATH)),
    (None, None, True, (["selinux"], SELINUX_ENFORCE_PATH)),
    (None, None, False, (None, None)),
])
def test_interpret_lsm(lsm_text, apparmor, selinux, expected):
    assert interpret_lsm(lsm_text, apparmor, selinux) == expected


@pytest.mark.parametrize("files, expected", [
    ({LSM_PATH: "lockdown,capability,yama,apparmor"}, {"lsm": ["lockdown", "capability", "yama", "apparmor"], "lsm_source": LSM_PATH}),
    ({APPARMOR_ENABLED_PATH: "Y\n"}, {"lsm": ["apparmor"], "lsm_source": APPARMOR_ENABLED_PATH}),
    ({}, {"lsm": None, "lsm_source": None}),
])
def test_read_lsm(tmp_path, files, expected):
    assert read_lsm(build_tree(tmp_path, files)) == expected


@pytest.mark.parametrize("enabled, profiles, lsm, expected", [
    ("Y", "/usr/sbin/ntpd (enforce)\nnvidia_modprobe (enforce)\nlsb_release (enforce)\n", None, {"enabled": True, "profiles_loaded": 3}),
    ("Y", "", None, {"enabled": True, "profiles_loaded": 0}),
    ("N", None, ["apparmor"], {"enabled": False, "profiles_loaded": None}),
    (None, None, ["yama", "apparmor"], {"enabled": True, "profiles_loaded": None}),
    (None, None, None, {"enabled": False, "profiles_loaded": None}),
])
def test_interpret_apparmor(enabled, profiles, lsm, expected):
    assert interpret_apparmor(enabled, profiles, lsm) == expected


def test_read_apparmor(tmp_path):
    root = build_tree(tmp_path, {APPARMOR_ENABLED_PATH: "Y\n", "/sys/kernel/security/apparmor/profiles": "a (enforce)\nb (complain)\n"})
    assert read_apparmor(root) == {"apparmor": {"enabled": True, "profiles_loaded": 2}}


@pytest.mark.parametrize("text, present, mode", [
    ("1", True, "enforcing"),
    ("0\n", True, "permissive"),
    (None, False, "disabled"),
    (None, True, "unknown"),
])
def test_interpret_selinux(text, present, mode):
    assert interpret_selinux(text, present) == {"mode": mode}


@pytest.mark.parametrize("files, mode", [
    ({SELINUX_ENFORCE_PATH: "1"}, "enforcing"),
    ({SELINUX_ENFORCE_PATH: "0"}, "permissive"),
    ({}, "disabled"),
])
def test_read_selinux(tmp_path, files, mode):
    assert read_selinux(build_tree(tmp_path, files)) == {"selinux": {"mode": mode}}


# --- kernel, ASLR ---------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("0\n", {"value": 0, "meaning": "off"}),
    ("1", {"value": 1, "meaning": "conservative"}),
    ("2\n", {"value": 2, "meaning": "full"}),
    ("3", {"value": 3, "meaning": "unknown"}),
    ("", {"value": None, "meaning": "unknown"}),
    (None, {"value": None, "meaning": "unknown"}),
])
def test_interpret_aslr(text, expected):
    assert interpret_aslr(text) == expected


@pytest.mark.parametrize("files, release, expected", [
    ({"/proc/config.gz": b"\x1f\x8b", "/boot/config-6.1.0": ""}, "6.1.0", "/proc/config.gz"),
    ({"/boot/config-6.1.0": "CONFIG_X=y\n"}, "6.1.0", "/boot/config-6.1.0"),
    ({"/boot/config-5.15.0": ""}, "6.1.0", None),
    ({}, "6.1.0", None),
])
def test_kernel_config_source(tmp_path, files, release, expected):
    assert kernel_config_source(release, build_tree(tmp_path, files)) == expected


# --- root filesystem ------------------------------------------------------------------

OPENWRT_MOUNTS = """\
/dev/root /rom squashfs ro,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,noatime 0 0
tmpfs /tmp tmpfs rw,nosuid,nodev,noatime 0 0
/dev/mtdblock6 /overlay jffs2 rw,noatime 0 0
overlayfs:/overlay / overlay rw,noatime,lowerdir=/,upperdir=/overlay/upper,workdir=/overlay/work 0 0
"""
YOCTO_RO_MOUNTS = """\
rootfs / rootfs rw 0 0
/dev/mmcblk0p2 / ext4 ro,relatime 0 0
devtmpfs /dev devtmpfs rw,relatime 0 0
"""


@pytest.mark.parametrize("text, readonly, expected", [
    (OPENWRT_MOUNTS, False, {"readonly": False, "fstype": "overlay", "overlay": True, "device": "overlayfs:/overlay"}),
    (YOCTO_RO_MOUNTS, True, {"readonly": True, "fstype": "ext4", "overlay": False, "device": "/dev/mmcblk0p2"}),
    ("", False, {"readonly": False, "fstype": None, "overlay": False, "device": None}),
])
def test_interpret_root_fs(text, readonly, expected):
    assert interpret_root_fs(parse_mounts(text), readonly) == expected


def test_root_mount_takes_the_last_entry():
    assert root_mount(parse_mounts(YOCTO_RO_MOUNTS))["device"] == "/dev/mmcblk0p2"
    assert root_mount([]) is None


# --- Secure Boot ----------------------------------------------------------------------

@pytest.mark.parametrize("efi, efivars, data, state, reason_part", [
    (True, True, b"\x06\x00\x00\x00\x01", "enabled", "is 1"),
    (True, True, b"\x06\x00\x00\x00\x00", "disabled", "is 0"),
    (True, True, b"\x06\x00\x00\x00\x02", "unknown", "unexpected value 2"),
    (True, True, b"\x06\x00\x00", "unknown", "too short (3 bytes)"),
    (True, True, None, "unknown", "missing or unreadable"),
    (True, False, None, "unknown", "efivarfs is not mounted"),
    (False, False, None, "unknown", NO_EFI_REASON),
])
def test_interpret_secure_boot(efi, efivars, data, state, reason_part):
    result = interpret_secure_boot(efi, efivars, data)
    assert result["state"] == state
    assert reason_part in result["reason"]


def test_secure_boot_without_efi_says_why():
    assert interpret_secure_boot(False, False, None) == {"state": "unknown", "reason": "no EFI firmware (BIOS/legacy boot or not exposed)"}


@pytest.mark.parametrize("files, dirs, state", [
    ({SECURE_BOOT_VAR: b"\x06\x00\x00\x00\x01"}, [], "enabled"),
    ({SECURE_BOOT_VAR: b"\x16\x00\x00\x00\x00"}, [], "disabled"),
    ({}, ["/sys/firmware/efi/efivars"], "unknown"),
    ({}, [], "unknown"),
])
def test_read_secure_boot(tmp_path, files, dirs, state):
    assert read_secure_boot(build_tree(tmp_path, files, dirs))["secure_boot"]["state"] == state


# --- listening, packages, os ----------------------------------------------------------

def test_summarize_listening():
    sockets = [
        {"proto": "tcp", "family": 4, "address": "0.0.0.0", "port": 22, "inode": 1, "uid": 0},
        {"proto": "tcp6", "family": 6, "address": "::", "port": 22, "inode": 2, "uid": 0},
        {"proto": "udp6", "family": 6, "address": "::", "port": 546, "inode": 3, "uid": 0},
    ]
    assert summarize_listening(sockets) == {"total": 3, "tcp": 2, "udp": 1, "sockets": sockets}
    assert summarize_listening([]) == {"total": 0, "tcp": 0, "udp": 0, "sockets": []}


@pytest.mark.parametrize("executables, dpkg_status, expected", [
    ({"apt-get", "rpm"}, True, "apt"),
    ({"apt-get", "opkg"}, False, "opkg"),
    ({"apt-get"}, False, None),
    ({"opkg"}, False, "opkg"),
    ({"apk"}, False, "apk"),
    ({"dnf", "yum", "rpm"}, False, "dnf"),
    ({"yum", "rpm"}, False, "yum"),
    ({"rpm"}, False, "rpm"),
    (set(), True, None),
])
def test_choose_package_manager(executables, dpkg_status, expected):
    assert choose_package_manager(executables, dpkg_status) == expected


def test_find_executables_needs_the_execute_bit(tmp_path):
    root = build_tree(tmp_path, {"/bin/opkg": "#!/bin/sh\n", "/usr/bin/apk": "not executable"}, executables=["/bin/opkg"])
    assert find_executables(["opkg", "apk", "rpm"], ["/usr/bin", "/bin", "relative/bin"], root) == {"opkg"}


def test_find_executables_ignores_busybox_applets(tmp_path):
    # BusyBox's rpm applet (as on the lab's embedded target) is no package manager
    root = build_tree(tmp_path, {"/bin/busybox": "\x7fELF", "/bin/opkg": "#!/bin/sh\n"}, executables=["/bin/busybox", "/bin/opkg"])
    os.symlink("busybox", os.path.join(root, "bin", "rpm"))
    assert find_executables(["opkg", "rpm"], ["/bin"], root) == {"opkg"}


@pytest.mark.parametrize("files, executables, path_dirs, expected", [
    ({"/usr/bin/apt-get": "", "/var/lib/dpkg/status": ""}, ["/usr/bin/apt-get"], ["/usr/bin"], "apt"),
    ({"/usr/bin/apt-get": "", "/bin/opkg": ""}, ["/usr/bin/apt-get", "/bin/opkg"], ["/usr/bin", "/bin"], "opkg"),
    ({"/sbin/apk": ""}, ["/sbin/apk"], ["/usr/bin", "/bin"], None),
    ({"/sbin/apk": ""}, ["/sbin/apk"], ["/sbin"], "apk"),
    ({}, [], ["/usr/bin"], None),
])
def test_read_package_manager(tmp_path, files, executables, path_dirs, expected):
    root = build_tree(tmp_path, files, executables=executables)
    assert read_package_manager(root, path_dirs) == {"package_manager": expected}


def test_interpret_os_release():
    text = 'NAME="Poky"\nID=poky\nVERSION_ID="4.0.17"\nPRETTY_NAME="Poky (Yocto Project Reference Distro) 4.0.17 (kirkstone)"\n'
    assert interpret_os_release(text, "/etc/os-release") == {
        "id": "poky", "version_id": "4.0.17", "pretty_name": "Poky (Yocto Project Reference Distro) 4.0.17 (kirkstone)", "source": "/etc/os-release"}
    assert interpret_os_release(None, None) == {"id": None, "version_id": None, "pretty_name": None, "source": None}


@pytest.mark.parametrize("files, expected_id, source", [
    ({"/etc/os-release": "ID=openwrt\n", "/usr/lib/os-release": "ID=other\n"}, "openwrt", "/etc/os-release"),
    ({"/usr/lib/os-release": "ID=alpine\nVERSION_ID=3.19.1\n"}, "alpine", "/usr/lib/os-release"),
    ({}, None, None),
])
def test_read_os(tmp_path, files, expected_id, source):
    result = read_os(build_tree(tmp_path, files))["os"]
    assert (result["id"], result["source"]) == (expected_id, source)


# --- virtualization -------------------------------------------------------------------

def virt(**kwargs):
    evidence = {"containerenv": False, "dockerenv": False, "systemd_container": None, "pid1_container": None, "sys_vendor": None,
                "product_name": None, "hypervisor_type": None, "cpu_hypervisor_flag": None, "dt_compatible": []}
    evidence.update(kwargs)
    return evidence


@pytest.mark.parametrize("evidence, expected", [
    (virt(containerenv=True), "container"),
    (virt(dockerenv=True, sys_vendor="QEMU"), "container"),
    (virt(pid1_container="lxc"), "container"),
    (virt(systemd_container="systemd-nspawn"), "container"),
    (virt(sys_vendor="QEMU", product_name="Standard PC (Q35 + ICH9, 2009)"), "vm"),
    (virt(sys_vendor="VMware, Inc.", product_name="VMware Virtual Platform"), "vm"),
    (virt(sys_vendor="Microsoft Corporation", product_name="Virtual Machine"), "vm"),
    (virt(sys_vendor="innotek GmbH", product_name="VirtualBox"), "vm"),
    (virt(hypervisor_type="xen"), "vm"),
    (virt(cpu_hypervisor_flag=True), "vm"),
    (virt(dt_compatible=["linux,dummy-virt"]), "vm"),
    (virt(sys_vendor="Dell Inc.", product_name="OptiPlex 7090", cpu_hypervisor_flag=False), "none"),
    (virt(cpu_hypervisor_flag=False), "none"),
    (virt(dt_compatible=["raspberrypi,4-model-b", "brcm,bcm2711"]), "none"),
    (virt(), "unknown"),
])
def test_classify_virtualization(evidence, expected):
    assert classify_virtualization(evidence) == expected


CPUINFO_VM = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse tsc msr hypervisor lahf_lm\n\n"
CPUINFO_METAL = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse tsc msr lahf_lm\n\n"
CPUINFO_ARM = "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n"


@pytest.mark.parametrize("files, expected", [
    ({"/proc/cpuinfo": CPUINFO_VM}, "vm"),
    ({"/proc/cpuinfo": CPUINFO_METAL}, "none"),
    ({"/proc/cpuinfo": CPUINFO_ARM}, "unknown"),
    ({"/proc/cpuinfo": CPUINFO_ARM, "/proc/device-tree/compatible": b"linux,dummy-virt\0"}, "vm"),
    ({"/proc/cpuinfo": CPUINFO_ARM, "/proc/device-tree/compatible": b"raspberrypi,4-model-b\0brcm,bcm2711\0"}, "none"),
    ({"/proc/1/environ": b"HOME=/\0container=podman\0TERM=xterm\0", "/proc/cpuinfo": CPUINFO_VM}, "container"),
    ({"/run/.containerenv": ""}, "container"),
    ({"/.dockerenv": ""}, "container"),
    ({"/sys/class/dmi/id/sys_vendor": "QEMU\n"}, "vm"),
    ({}, "unknown"),
])
def test_virtualization_from_fake_roots(tmp_path, files, expected):
    assert classify_virtualization(gather_virt_evidence(build_tree(tmp_path, files))) == expected


# --- gather_posture -------------------------------------------------------------------

SECTION_KEYS = set(SECTIONS) | {"lsm_source", "gather_errors"}


def openwrt_root(tmp_path):
    return build_tree(tmp_path, {
        "/proc/1/comm": "procd\n",
        "/proc/1/cmdline": b"/sbin/procd\0",
        "/proc/sys/kernel/randomize_va_space": "2\n",
        "/proc/sys/kernel/hostname": "gateway-01\n",
        "/proc/cmdline": "console=ttyS0,115200 rootfstype=squashfs\n",
        "/proc/mounts": OPENWRT_MOUNTS,
        "/proc/meminfo": "MemTotal:         124568 kB\nMemFree:           61232 kB\n",
        "/proc/cpuinfo": "system type\t\t: MediaTek MT7621 ver:1 eco:3\nprocessor\t\t: 0\n",
        "/proc/net/tcp": ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
                          "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 901 1 00000000 100 0 0 10 0\n"),
        "/proc/net/udp": ("   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
                          "    1: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 902 2 00000000 0\n"),
        "/proc/device-tree/compatible": b"xiaomi,mi-router-4a-gigabit\0mediatek,mt7621-soc\0",
        "/sbin/procd": "",
        "/bin/opkg": "",
        "/etc/os-release": 'ID="openwrt"\nVERSION_ID="23.05.3"\nPRETTY_NAME="OpenWrt 23.05.3"\n',
    }, executables=["/bin/opkg"])


def test_gather_posture_on_a_fake_openwrt(tmp_path):
    facts = gather_posture(root=openwrt_root(tmp_path))
    assert set(facts) == SECTION_KEYS
    assert facts["gather_errors"] == {}
    assert facts["init"]["name"] == "procd"
    assert (facts["lsm"], facts["lsm_source"]) == (None, None)
    assert facts["apparmor"] == {"enabled": False, "profiles_loaded": None}
    assert facts["selinux"] == {"mode": "disabled"}
    assert facts["aslr"] == {"value": 2, "meaning": "full"}
    assert facts["kernel"]["config_source"] is None
    assert facts["kernel"]["cmdline"] == "console=ttyS0,115200 rootfstype=squashfs"
    assert {k: facts["root_fs"][k] for k in ("fstype", "overlay", "device")} == {"fstype": "overlay", "overlay": True, "device": "overlayfs:/overlay"}
    assert facts["secure_boot"] == {"state": "unknown", "reason": NO_EFI_REASON}
    if sys.byteorder == "little":
        assert [(s["proto"], s["address"], s["port"]) for s in facts["listening"]["sockets"]] == [("tcp", "0.0.0.0", 22), ("udp", "0.0.0.0", 53)]
    assert (facts["listening"]["total"], facts["listening"]["tcp"], facts["listening"]["udp"]) == (2, 1, 1)
    assert facts["os"]["id"] == "openwrt"
    assert facts["hostname"] == "gateway-01"
    assert facts["virtualization"] == "none"
    assert facts["memory_total_kb"] == 124568
    assert facts["python"]["version"] == "%d.%d.%d" % sys.version_info[:3]
    json.dumps(facts)  # must survive exit_json


@pytest.mark.parametrize("sections, keys", [
    (["aslr"], {"aslr", "gather_errors"}),
    (["lsm", "cpus"], {"lsm", "lsm_source", "cpus", "gather_errors"}),
    (["all"], SECTION_KEYS),
    (None, SECTION_KEYS),
])
def test_gather_posture_sections(tmp_path, sections, keys):
    assert set(gather_posture(sections, root=openwrt_root(tmp_path))) == keys


def test_gather_posture_empty_root_tolerates_everything_missing(tmp_path):
    facts = gather_posture(root=str(tmp_path))
    assert facts["gather_errors"] == {}
    assert facts["init"]["name"] == "unknown"
    assert facts["aslr"] == {"value": None, "meaning": "unknown"}
    assert facts["listening"]["total"] == 0
    assert facts["package_manager"] is None or isinstance(facts["package_manager"], str)
    assert facts["memory_total_kb"] is None


def test_gather_posture_survives_undecodable_bytes(tmp_path):
    # Device files are not always UTF-8: the section is read with replacement characters
    root = build_tree(tmp_path, {"/etc/os-release": b"ID=\xff\xfe\n", "/proc/sys/kernel/randomize_va_space": "1\n"})
    facts = gather_posture(["os", "aslr"], root=root)
    assert facts["aslr"]["meaning"] == "conservative"
    assert facts["gather_errors"] == {}
    assert facts["os"]["id"] == "\ufffd\ufffd"


@pytest.mark.parametrize("sections, expected", [
    (None, list(SECTIONS)),
    ([], list(SECTIONS)),
    (["all", "aslr"], list(SECTIONS)),
    (["cpus", "init"], ["init", "cpus"]),
])
def test_select_sections(sections, expected):
    assert select_sections(sections) == expected


def test_select_sections_rejects_unknown():
    with pytest.raises(ValueError):
        select_sections(["init", "bogus"])


def test_gather_posture_on_this_machine():
    facts = gather_posture()
    assert facts["gather_errors"] == {}
    assert set(facts) == SECTION_KEYS
    json.dumps(facts)


def test_module_documentation_matches_sections():
    pytest.importorskip("ansible")
    yaml = pytest.importorskip("yaml")
    from ansible_collections.edgewarden.hardening.plugins.modules import device_facts

    option = yaml.safe_load(device_facts.DOCUMENTATION)["options"]["gather"]
    assert option["choices"] == ["all"] + list(SECTIONS)
    assert option["default"] == ["all"]
    returned = yaml.safe_load(device_facts.RETURN)["ansible_facts"]["contains"]["edgewarden_device"]["contains"]
    assert set(returned) == SECTION_KEYS
