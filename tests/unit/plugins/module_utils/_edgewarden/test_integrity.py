# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import integrity, mounts

SB_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e98c0154bcac"


def tree(root, files):
    for path, content in files.items():
        host = os.path.join(str(root), path.lstrip("/"))
        os.makedirs(os.path.dirname(host), exist_ok=True)
        with open(host, "wb" if isinstance(content, bytes) else "w") as handle:
            handle.write(content)
    return str(root)


def efi_string(text):
    return b"\x06\x00\x00\x00" + text.encode("utf-16-le") + b"\x00\x00"


@pytest.mark.parametrize("text, expected", [
    ("root=/dev/vda rw quiet", {"root": "/dev/vda", "rw": True, "quiet": True}),
    ('dm-mod.create="vroot,,,ro,0 1638400 verity 1 /dev/sda1 /dev/sda2 4096" root=/dev/dm-0',
     {"dm-mod.create": "vroot,,,ro,0 1638400 verity 1 /dev/sda1 /dev/sda2 4096", "root": "/dev/dm-0"}),
    ("lockdown=none lockdown=integrity", {"lockdown": "integrity"}),
    ("", {}),
])
def test_parse_cmdline(text, expected):
    assert integrity.parse_cmdline(text) == expected


@pytest.mark.parametrize("text, securityfs, cmdline, mode", [
    ("[none] integrity confidentiality", True, {}, "none"),
    ("none [integrity] confidentiality", True, {}, "integrity"),
    (None, True, {}, "none"),                       # securityfs without the lockdown LSM
    (None, False, {"lockdown": "integrity"}, "integrity"),
    (None, False, {}, "unknown"),                   # namespace or container
])
def test_interpret_lockdown(text, securityfs, cmdline, mode):
    assert integrity.interpret_lockdown(text, securityfs, cmdline)["mode"] == mode


@pytest.mark.parametrize("sig, disabled, supported, lockdown, enforced, reason", [
    ("Y", "0", True, "none", True, "is Y"),
    ("N", "0", True, "none", False, "is N"),
    ("N", "1", True, "none", True, "modules_disabled=1"),
    ("N", "0", True, "integrity", True, "lockdown=integrity"),
    (None, "0", True, "integrity", False, "without module signing"),
    (None, None, False, "unknown", True, "without loadable module support"),
])
def test_interpret_module_sig(sig, disabled, supported, lockdown, enforced, reason):
    info = integrity.interpret_module_sig(sig, disabled, supported, {}, lockdown)
    assert info["enforced"] is enforced
    assert reason in info["reason"]


VERITY_MOUNTS = mounts.parse_mountinfo("20 1 253:0 / / ro,relatime - squashfs /dev/mapper/vroot ro\n")
PLAIN_MOUNTS = mounts.parse_mountinfo("20 1 8:2 / / rw,relatime - ext4 /dev/sda2 rw\n")
OVERLAY_MOUNTS = mounts.parse_mountinfo(
    "20 1 253:0 / /ro ro - squashfs /dev/dm-0 ro\n"
    "21 1 0:30 / / rw - overlay overlay rw,lowerdir=/ro,upperdir=/data/u,workdir=/data/w\n")


@pytest.mark.parametrize("devices, cmdline, mountinfo, on_verity", [
    ([{"kernel_name": "dm-0", "name": "vroot", "uuid": "CRYPT-VERITY-abc-vroot", "dev": "253:0"}], {}, VERITY_MOUNTS, True),
    ([{"kernel_name": "dm-0", "name": "vroot", "uuid": None, "dev": "253:0"}],
     {"dm-mod.create": "vroot,,,ro,0 8 verity 1 /dev/a /dev/b 4096 4096 1 1 sha256 aa bb"}, VERITY_MOUNTS, True),
    ([{"kernel_name": "dm-0", "name": "vroot", "uuid": "LVM-xyz", "dev": "253:0"}], {}, VERITY_MOUNTS, False),
    ([], {}, PLAIN_MOUNTS, False),
    ([{"kernel_name": "dm-0", "name": "root", "uuid": "CRYPT-VERITY-1-root", "dev": "253:0"}], {}, OVERLAY_MOUNTS, True),
    ([], {}, [], None),
])
def test_interpret_verity(devices, cmdline, mountinfo, on_verity):
    assert integrity.interpret_verity(devices, cmdline, mountinfo)["root_on_verity"] is on_verity


@pytest.mark.parametrize("evidence, kind", [
    ({"loader_info": "systemd-boot 252.22", "files": ["/boot/grub/grub.cfg"]}, "systemd-boot"),
    ({"loader_info": "GRUB 2.06"}, "grub"),
    ({"dt_uboot": "U-Boot 2023.04"}, "u-boot"),
    ({"files": ["/boot/extlinux/extlinux.conf", "/etc/fw_env.config"]}, "u-boot"),
    ({"files": ["/boot/extlinux/extlinux.conf"]}, "extlinux"),
    ({"files": ["/boot/grub/grub.cfg"]}, "grub"),
    ({"files": ["/boot/firmware/config.txt"]}, "rpi-firmware"),
    ({"efi": True, "files": []}, "efi-unknown"),
    ({}, "unknown"),
])
def test_classify_bootloader(evidence, kind):
    assert integrity.classify_bootloader(evidence)["type"] == kind


def test_read_posture_on_a_tree(tmp_path):
    root = tree(tmp_path, {
        SB_VAR: b"\x06\x00\x00\x00\x01",
        integrity.LOADER_INFO: efi_string("systemd-boot 254"),
        "/sys/kernel/security/lsm": "lockdown,capability,apparmor",
        "/sys/kernel/security/lockdown": "none [integrity] confidentiality\n",
        "/sys/module/module/parameters/sig_enforce": "N\n",
        "/proc/sys/kernel/modules_disabled": "0\n",
        "/proc/modules": "",
        "/proc/cmdline": "root=/dev/mapper/vroot roothash=abc lockdown=integrity\n",
        "/proc/self/mountinfo": "20 1 253:0 / / ro - erofs /dev/mapper/vroot ro\n",
        "/proc/mounts": "/dev/mapper/vroot / erofs ro 0 0\n",
        "/sys/block/dm-0/dm/name": "vroot\n",
        "/sys/block/dm-0/dm/uuid": "CRYPT-VERITY-0123-vroot\n",
        "/sys/block/dm-0/dev": "253:0\n",
    })
    posture = integrity.read_posture(root)
    assert posture["secure_boot"]["state"] == "enabled"
    assert posture["lockdown"]["mode"] == "integrity"
    assert posture["module_signatures"]["enforced"] is True
    assert posture["verity"]["root_on_verity"] is True and posture["verity"]["root_device"] == "vroot"
    assert posture["bootloader"]["type"] == "systemd-boot"
    assert integrity.evaluate(posture, {"secure_boot": True, "lockdown": "integrity", "module_sig_enforce": True,
                                        "verity_root": True, "bootloader": ["systemd-boot"]}) == []


def posture(**changes):
    base = {
        "secure_boot": {"state": "disabled", "reason": "SecureBoot EFI variable is 0"},
        "lockdown": {"mode": "none", "available": ["none", "integrity", "confidentiality"],
                     "source": integrity.LOCKDOWN_PATH, "reason": None},
        "module_signatures": {"sig_enforce": False, "enforced": False, "cmdline": None,
                              "reason": "sig_enforce is N"},
        "verity": {"root_on_verity": False, "reason": "root is on /dev/sda2"},
        "bootloader": {"type": "grub", "reason": "/boot/grub/grub.cfg exists",
                       "cmdline_hint": integrity.CMDLINE_HINTS["grub"]},
        "root_fs": {"readonly": False},
        "cmdline": {},
    }
    base.update(changes)
    return base


def test_evaluate_names_every_violation():
    violations = integrity.evaluate(posture(), {
        "secure_boot": True, "lockdown": "integrity", "module_sig_enforce": True,
        "verity_root": True, "readonly_root": True, "bootloader": ["u-boot"]})
    assert len(violations) == 6
    assert violations[0] == "Secure Boot is required but is disabled (SecureBoot EFI variable is 0)"


def test_evaluate_unknown_state_is_a_violation_and_false_is_no_requirement():
    unknown = posture(secure_boot={"state": "unknown", "reason": "no EFI firmware"})
    assert integrity.evaluate(unknown, {"secure_boot": True}) == [
        "Secure Boot is required but is unknown (no EFI firmware)"]
    assert integrity.evaluate(unknown, {"secure_boot": False, "lockdown": "none"}) == []


@pytest.mark.parametrize("require, message", [
    ({"secure_boot": "yes"}, "require.secure_boot must be true or false"),
    ({"lockdown": "full"}, "require.lockdown must be one of"),
    ({"bootloader": "grub"}, "require.bootloader must be a list"),
    ({"tpm": True}, "unknown key tpm"),
])
def test_validate_require(require, message):
    assert any(message in e for e in integrity.validate_require(require))


def writable(path):
    return None


def test_plan_enforcement_raises_live_and_says_where_to_persist():
    items = integrity.plan_enforcement(posture(), "integrity", True, writable)
    records = dict(((i["live"]["id"], "live"), i["live"]) for i in items)
    records.update(dict(((i["persisted"]["id"], "persisted"), i["persisted"]) for i in items))
    assert records[("integrity.boot/lockdown", "live")]["status"] == "changed"
    assert records[("integrity.boot/module_sig_enforce", "live")]["status"] == "changed"
    persisted = records[("integrity.boot/lockdown", "persisted")]
    assert persisted["status"] == "unsupported"
    assert "lockdown=integrity" in persisted["detail"] and "GRUB_CMDLINE_LINUX" in persisted["detail"]


def test_plan_enforcement_already_in_place():
    done = posture(lockdown={"mode": "confidentiality", "available": [], "source": integrity.LOCKDOWN_PATH},
                   module_signatures={"sig_enforce": True, "enforced": True, "cmdline": "1", "reason": "is Y"},
                   cmdline={"lockdown": "confidentiality"})
    items = integrity.plan_enforcement(done, "integrity", True, writable)
    assert [(i["live"]["status"], i["persisted"]["status"]) for i in items] == [("unchanged", "unchanged")] * 2


def test_plan_enforcement_refuses_a_read_only_sysfs():
    items = integrity.plan_enforcement(posture(), "none", True, lambda path: "read-only filesystem")
    assert items[0]["live"]["status"] == "unsupported" and not items[0]["write"]


def test_apply_enforcement_writes_and_reads_back(tmp_path):
    root = tree(tmp_path, {integrity.SIG_ENFORCE_PATH: "N\n"})
    items = integrity.plan_enforcement(posture(), "none", True, integrity.writable_here(root))
    integrity.apply_enforcement(items, root)
    assert (tmp_path / integrity.SIG_ENFORCE_PATH.lstrip("/")).read_text() == "1"
    assert items[0]["live"]["status"] == "changed"


def test_apply_enforcement_reports_a_value_that_did_not_stick(tmp_path):
    # the kernel's file shows [integrity] after the write; a plain file shows the bare word
    root = tree(tmp_path, {integrity.LOCKDOWN_PATH: "[none] integrity\n"})
    items = integrity.plan_enforcement(posture(), "integrity", False, integrity.writable_here(root))
    integrity.apply_enforcement(items, root)
    assert items[0]["live"]["status"] == "error" and "reads unknown" in items[0]["live"]["detail"]


def test_run_fails_with_the_policy_and_still_reports(tmp_path):
    root = tree(tmp_path, {"/proc/cmdline": "root=/dev/sda2\n", "/proc/self/mountinfo": "", "/proc/mounts": ""})
    result = integrity.run(require={"secure_boot": True}, root=root)
    assert result["failed"] and "Secure Boot is required" in result["msg"]
    assert result["violations"] and result["bootloader"]["type"] == "unknown"
