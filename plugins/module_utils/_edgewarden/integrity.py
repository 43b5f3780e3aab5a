# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Boot integrity posture: Secure Boot, kernel lockdown, module signature enforcement,
dm-verity, the bootloader and the root filesystem; a policy check; and the two controls
the running kernel lets us raise (lockdown and ``sig_enforce``, both one-way until reboot).

Each reader takes ``root`` and returns plain data; ``interpret_*``/``classify_*`` are
pure. Secure Boot and the root filesystem come from ``posture.py`` (device_facts), so
both modules report them the same way. Nothing here writes except ``apply_enforcement``.
"""

from __future__ import annotations

import glob
import os

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import (
    CHANGED,
    ERROR,
    UNCHANGED,
    UNSUPPORTED,
    STATUSES,
    any_changed,
    record,
)
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import (
    is_readonly_fs,
    read_first_line,
    read_text,
)
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.mounts import (
    MOUNTINFO,
    containing_mount,
    mount_at,
    parse_mountinfo,
)
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.posture import (
    EFI_PATH,
    EFIVARS_PATH,
    read_root_fs,
    read_secure_boot,
)
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.procfs import read_bytes

ID_PREFIX = "integrity.boot/"
LOCKDOWN_PATH = "/sys/kernel/security/lockdown"
SECURITYFS_MARKER = "/sys/kernel/security/lsm"
SIG_ENFORCE_PATH = "/sys/module/module/parameters/sig_enforce"
MODULES_DISABLED_PATH = "/proc/sys/kernel/modules_disabled"
PROC_MODULES = "/proc/modules"
CMDLINE_PATH = "/proc/cmdline"
LOCKDOWN_LEVELS = ("none", "integrity", "confidentiality")
# systemd's Boot Loader Interface: the loader names itself here (systemd-boot, some GRUBs)
LOADER_INFO = EFIVARS_PATH + "/LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
DT_UBOOT = "/proc/device-tree/chosen/u-boot,version"
# cryptsetup/veritysetup and systemd-veritysetup name verity targets' UUIDs this way
VERITY_UUID_PREFIX = "CRYPT-VERITY-"
BOOTLOADER_FILES = (
    ("grub", "/boot/grub/grub.cfg"),
    ("grub", "/boot/grub2/grub.cfg"),
    ("systemd-boot", "/boot/loader/loader.conf"),
    ("systemd-boot", "/boot/efi/loader/loader.conf"),
    ("systemd-boot", "/efi/loader/loader.conf"),
    ("extlinux", "/boot/extlinux/extlinux.conf"),
    ("extlinux", "/boot/syslinux/syslinux.cfg"),
    ("u-boot", "/etc/fw_env.config"),
    ("u-boot", "/boot/boot.scr"),
    ("u-boot", "/boot/uboot.env"),
    ("rpi-firmware", "/boot/firmware/config.txt"),
    ("rpi-firmware", "/boot/config.txt"),
)
# where a kernel command-line parameter persists, per bootloader (for the report)
CMDLINE_HINTS = {
    "grub": "GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub (or the image's grub.cfg)",
    "systemd-boot": "/etc/kernel/cmdline, then kernel-install (or the entry's options line)",
    "extlinux": "the APPEND line of /boot/extlinux/extlinux.conf",
    "u-boot": "bootargs in the U-Boot environment (fw_setenv) or boot script",
    "rpi-firmware": "/boot/firmware/cmdline.txt (or /boot/cmdline.txt)",
}
REQUIRE_KEYS = ("secure_boot", "lockdown", "module_sig_enforce", "verity_root", "readonly_root", "bootloader")


def _under(root, path):
    return os.path.join(root, path.lstrip("/"))


def parse_cmdline(text):
    """Kernel command line as ``{key: value}``; bare flags map to True; the last one wins.
    Quoted values (``dm-mod.create="..."``) keep their spaces."""
    params = {}
    text = (text or "").strip()
    i = 0
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        start = i
        quoted = False
        while i < len(text) and (quoted or not text[i].isspace()):
            if text[i] == '"':
                quoted = not quoted
            i += 1
        token = text[start:i]
        if not token:
            continue
        key, sep, value = token.partition("=")
        params[key] = value.replace('"', "") if sep else True
    return params


# --- lockdown ------------------------------------------------------------------------


def interpret_lockdown(text, securityfs_mounted, cmdline):
    """``{mode, available, source, reason}``. The securityfs file shows ``[current]``."""
    if text is not None:
        words = text.split()
        current = None
        available = []
        for word in words:
            name = word.strip("[]")
            available.append(name)
            if word.startswith("["):
                current = name
        return {"mode": current or "unknown", "available": available, "source": LOCKDOWN_PATH, "reason": None}
    requested = cmdline.get("lockdown")
    if securityfs_mounted:
        return {"mode": "none", "available": [], "source": SECURITYFS_MARKER,
                "reason": "kernel built without the lockdown LSM (CONFIG_SECURITY_LOCKDOWN_LSM)"}
    if requested in LOCKDOWN_LEVELS:
        return {"mode": requested, "available": [], "source": CMDLINE_PATH,
                "reason": "securityfs is not mounted; lockdown=%s on the kernel command line" % requested}
    return {"mode": "unknown", "available": [], "source": None,
            "reason": "securityfs is not mounted at /sys/kernel/security (container or namespace?)"}


def read_lockdown(root="/", cmdline=None):
    if cmdline is None:
        cmdline = parse_cmdline(read_first_line(_under(root, CMDLINE_PATH), ""))
    return interpret_lockdown(read_first_line(_under(root, LOCKDOWN_PATH)),
                              os.path.exists(_under(root, SECURITYFS_MARKER)), cmdline)


def lockdown_rank(mode):
    return LOCKDOWN_LEVELS.index(mode) if mode in LOCKDOWN_LEVELS else -1


# --- module signatures ------------------------------------------------------------------


def interpret_module_sig(sig_enforce, modules_disabled, modules_supported, cmdline, lockdown_mode):
    """Whether the kernel refuses unsigned modules now, and why. Pure."""
    info = {
        "sig_enforce": None if sig_enforce is None else sig_enforce.strip() in ("Y", "1"),
        "modules_disabled": None if modules_disabled is None else modules_disabled.strip() == "1",
        "cmdline": cmdline.get("module.sig_enforce"),
        "enforced": None,
        "reason": None,
    }
    if not modules_supported:
        info.update(enforced=True, reason="kernel built without loadable module support")
    elif info["modules_disabled"]:
        info.update(enforced=True, reason="module loading is disabled (kernel.modules_disabled=1)")
    elif info["sig_enforce"]:
        info.update(enforced=True, reason="%s is Y" % SIG_ENFORCE_PATH)
    elif sig_enforce is not None and lockdown_rank(lockdown_mode) >= 1:
        info.update(enforced=True, reason="lockdown=%s refuses unsigned modules" % lockdown_mode)
    elif sig_enforce is not None:
        info.update(enforced=False, reason="%s is N: unsigned modules load (tainting the kernel)" % SIG_ENFORCE_PATH)
    else:
        # without CONFIG_MODULE_SIG nothing checks signatures, lockdown included
        info.update(enforced=False, reason="no %s: kernel built without module signing (CONFIG_MODULE_SIG)" % SIG_ENFORCE_PATH)
    return info


def read_module_sig(root="/", cmdline=None, lockdown_mode=None):
    if cmdline is None:
        cmdline = parse_cmdline(read_first_line(_under(root, CMDLINE_PATH), ""))
    return interpret_module_sig(
        read_first_line(_under(root, SIG_ENFORCE_PATH)),
        read_first_line(_under(root, MODULES_DISABLED_PATH)),
        os.path.exists(_under(root, PROC_MODULES)),
        cmdline,
        lockdown_mode,
    )


# --- dm-verity ---------------------------------------------------------------------------


def gather_dm_devices(root="/"):
    devices = []
    for block in sorted(glob.glob(_under(root, "/sys/block/dm-*"))):
        devices.append({
            "kernel_name": os.path.basename(block),
            "name": read_first_line(os.path.join(block, "dm", "name")),
            "uuid": read_first_line(os.path.join(block, "dm", "uuid")),
            "dev": read_first_line(os.path.join(block, "dev")),
        })
    return devices


def _created_verity_names(cmdline):
    """Device names whose dm-mod.create= table uses the verity target (kernel 5.1+)."""
    names = set()
    spec = cmdline.get("dm-mod.create")
    if not isinstance(spec, str):
        return names
    for device in spec.split(";"):
        fields = device.split(",", 4)
        if len(fields) == 5 and " verity " in " %s " % fields[4]:
            names.add(fields[0].strip())
    return names


def _root_backing(mounts):
    """(source, dev) of the block device behind /; for an overlay root, behind its lower layer."""
    root = mount_at(mounts, "/")
    if root is None:
        return None, None
    if root["fstype"] != "overlay":
        return root["source"], root["dev"]
    for option in root["super_options"]:
        if option.startswith("lowerdir="):
            lower = option[len("lowerdir="):].split(":")[0]
            holder = containing_mount([m for m in mounts if m is not root], lower)
            if holder is not None:
                return holder["source"], holder["dev"]
    return None, None


def interpret_verity(devices, cmdline, mounts):
    """``{devices, root_device, root_on_verity, hints, reason}``. Pure."""
    created = _created_verity_names(cmdline)
    for device in devices:
        device["verity"] = bool((device.get("uuid") or "").startswith(VERITY_UUID_PREFIX) or device.get("name") in created)
    hints = dict((key, cmdline[key]) for key in ("roothash", "usrhash", "systemd.verity", "dm-mod.create", "dm", "root")
                 if key in cmdline)
    source, dev = _root_backing(mounts)
    root_device = None
    for device in devices:
        names = ("/dev/%s" % device["kernel_name"], "/dev/mapper/%s" % device.get("name"))
        if (source and source in names) or (dev and dev == device.get("dev")):
            root_device = device
    if root_device is not None:
        on_verity = root_device["verity"]
        kind = ", a dm-verity target" if on_verity else ", not a verity target"
        reason = "root is on %s (%s)%s" % (root_device["kernel_name"], root_device.get("name"), kind)
    elif source is None:
        on_verity = None
        reason = "the device behind / is not visible here"
    else:
        on_verity = False
        reason = "root is on %s, not a device-mapper device" % source
    return {"devices": devices, "root_device": root_device["name"] if root_device else None,
            "root_on_verity": on_verity, "hints": hints, "reason": reason}


def read_verity(root="/", cmdline=None):
    if cmdline is None:
        cmdline = parse_cmdline(read_first_line(_under(root, CMDLINE_PATH), ""))
    mounts = parse_mountinfo(read_text(_under(root, MOUNTINFO), ""))
    return interpret_verity(gather_dm_devices(root), cmdline, mounts)


# --- bootloader ----------------------------------------------------------------------------


def decode_efi_string(data):
    """An EFI variable holding a UTF-16LE string: 4 attribute bytes, then the text."""
    if not data or len(data) < 6:
        return None
    return data[4:].decode("utf-16-le", "replace").rstrip("\0").strip() or None


def gather_boot_evidence(root="/"):
    dt = read_bytes(_under(root, DT_UBOOT))
    return {
        "efi": os.path.isdir(_under(root, EFI_PATH)),
        "loader_info": decode_efi_string(read_bytes(_under(root, LOADER_INFO))),
        "dt_uboot": dt.rstrip(b"\0").decode("utf-8", "replace") if dt else None,
        "files": [path for _kind, path in BOOTLOADER_FILES if os.path.exists(_under(root, path))],
    }


def classify_bootloader(evidence):
    """``{type, reason, cmdline_hint}`` from gathered evidence. Pure.

    The loader's own word (EFI LoaderInfo, U-Boot's device-tree property) beats files,
    which can outlive a bootloader change.
    """
    info = evidence.get("loader_info")
    if info:
        lowered = info.lower()
        kind = "systemd-boot" if "systemd-boot" in lowered else "grub" if "grub" in lowered else lowered.split()[0]
        return _boot(kind, "EFI LoaderInfo says %r" % info)
    if evidence.get("dt_uboot"):
        return _boot("u-boot", "device tree /chosen/u-boot,version is %r" % evidence["dt_uboot"])
    files = evidence.get("files") or []
    kinds = dict((path, kind) for kind, path in BOOTLOADER_FILES)
    for path in files:
        kind = kinds.get(path)
        if kind == "extlinux" and any(kinds.get(other) == "u-boot" for other in files):
            return _boot("u-boot", "%s (U-Boot distro boot) and U-Boot files exist" % path)
        return _boot(kind, "%s exists" % path)
    if evidence.get("efi"):
        return _boot("efi-unknown", "EFI firmware, but no loader identified itself or left files")
    return _boot("unknown", "no bootloader evidence (no EFI, no U-Boot device-tree property, no loader files)")


def _boot(kind, reason):
    return {"type": kind, "reason": reason, "cmdline_hint": CMDLINE_HINTS.get(kind)}


def read_bootloader(root="/"):
    evidence = gather_boot_evidence(root)
    result = classify_bootloader(evidence)
    result["evidence"] = evidence
    return result


# --- everything ------------------------------------------------------------------------------


def read_posture(root="/"):
    cmdline = parse_cmdline(read_first_line(_under(root, CMDLINE_PATH), ""))
    lockdown = read_lockdown(root, cmdline)
    return {
        "secure_boot": read_secure_boot(root)["secure_boot"],
        "lockdown": lockdown,
        "module_signatures": read_module_sig(root, cmdline, lockdown["mode"]),
        "verity": read_verity(root, cmdline),
        "bootloader": read_bootloader(root),
        "root_fs": read_root_fs(root)["root_fs"],
        "cmdline": cmdline,
    }


def validate_require(require):
    errors = []
    for key, value in (require or {}).items():
        if key not in REQUIRE_KEYS:
            errors.append("require: unknown key %s (known: %s)" % (key, ", ".join(REQUIRE_KEYS)))
        elif key == "lockdown":
            if value not in LOCKDOWN_LEVELS:
                errors.append("require.lockdown must be one of %s" % ", ".join(LOCKDOWN_LEVELS))
        elif key == "bootloader":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                errors.append("require.bootloader must be a list of bootloader types")
        elif not isinstance(value, bool):
            errors.append("require.%s must be true or false" % key)
    return errors


def evaluate(posture, require):
    """Violations of ``require`` by ``posture``, one sentence each. Pure.

    A requirement that cannot be proven (a state read as unknown) is a violation too:
    a policy that says "Secure Boot required" must not pass on a device that hides it.
    """
    require = require or {}
    violations = []
    if require.get("secure_boot") and posture["secure_boot"]["state"] != "enabled":
        violations.append("Secure Boot is required but is %s (%s)"
                          % (posture["secure_boot"]["state"], posture["secure_boot"].get("reason")))
    wanted = require.get("lockdown")
    if wanted and wanted != "none":
        mode = posture["lockdown"]["mode"]
        if lockdown_rank(mode) < lockdown_rank(wanted):
            violations.append("kernel lockdown %s is required but it is %s%s" % (
                wanted, mode, " (%s)" % posture["lockdown"]["reason"] if posture["lockdown"].get("reason") else ""))
    if require.get("module_sig_enforce") and posture["module_signatures"]["enforced"] is not True:
        violations.append("module signature enforcement is required but %s" % posture["module_signatures"]["reason"])
    if require.get("verity_root") and posture["verity"]["root_on_verity"] is not True:
        violations.append("a dm-verity root is required but %s" % posture["verity"]["reason"])
    if require.get("readonly_root") and not posture["root_fs"]["readonly"]:
        violations.append("a read-only root filesystem is required but / is writable")
    allowed = require.get("bootloader")
    if allowed and posture["bootloader"]["type"] not in allowed:
        violations.append("bootloader must be one of %s but is %s (%s)" % (
            ", ".join(allowed), posture["bootloader"]["type"], posture["bootloader"]["reason"]))
    return violations


# --- enforcement (lockdown, sig_enforce) -------------------------------------------------


def _persist_hint(posture, param):
    hint = posture["bootloader"].get("cmdline_hint")
    where = hint or "the bootloader configuration of the image (bootloader %s)" % posture["bootloader"]["type"]
    return "not persisted: add %s to the kernel command line: %s" % (param, where)


def plan_enforcement(posture, lockdown, module_sig_enforce, writable):
    """Records (and write actions) for the controls asked for. Pure apart from ``writable(path)``,
    which says whether a sysfs/securityfs file can be written here (None: yes, else why not)."""
    items = []
    if lockdown and lockdown != "none":
        cid = ID_PREFIX + "lockdown"
        state = posture["lockdown"]
        current = state["mode"]
        item = {"path": LOCKDOWN_PATH, "value": lockdown, "write": False}
        if lockdown_rank(current) >= lockdown_rank(lockdown):
            item["live"] = record(cid, current, current, "live", UNCHANGED)
        elif state["source"] != LOCKDOWN_PATH:
            item["live"] = record(cid, current, lockdown, "live", UNSUPPORTED, state.get("reason"))
        elif lockdown not in state["available"]:
            item["live"] = record(cid, current, lockdown, "live", UNSUPPORTED,
                                  "this kernel offers only %s" % ", ".join(state["available"]))
        else:
            why = writable(LOCKDOWN_PATH)
            if why:
                item["live"] = record(cid, current, lockdown, "live", UNSUPPORTED, why)
            else:
                item["write"] = True
                item["live"] = record(cid, current, lockdown, "live", CHANGED, "one-way: stays until reboot")
        on_cmdline = posture["cmdline"].get("lockdown")
        if lockdown_rank(on_cmdline) >= lockdown_rank(lockdown):
            item["persisted"] = record(cid, on_cmdline, lockdown, "persisted", UNCHANGED, "lockdown=%s on the kernel command line" % on_cmdline)
        else:
            item["persisted"] = record(cid, on_cmdline if isinstance(on_cmdline, str) else None, lockdown, "persisted",
                                       UNSUPPORTED, _persist_hint(posture, "lockdown=%s" % lockdown))
        items.append(item)
    if module_sig_enforce:
        cid = ID_PREFIX + "module_sig_enforce"
        sig = posture["module_signatures"]
        current = {True: "Y", False: "N", None: None}[sig["sig_enforce"]]
        item = {"path": SIG_ENFORCE_PATH, "value": "1", "write": False}
        if sig["sig_enforce"]:
            item["live"] = record(cid, current, "Y", "live", UNCHANGED)
        elif sig["sig_enforce"] is None:
            status = UNCHANGED if sig["enforced"] else UNSUPPORTED
            item["live"] = record(cid, None, "Y", "live", status, sig["reason"])
        else:
            why = writable(SIG_ENFORCE_PATH)
            if why:
                item["live"] = record(cid, current, "Y", "live", UNSUPPORTED, why)
            else:
                item["write"] = True
                item["live"] = record(cid, current, "Y", "live", CHANGED, "one-way: stays until reboot")
        on_cmdline = sig["cmdline"]
        if on_cmdline in ("1", "Y", "y", True) or (sig["sig_enforce"] is None and sig["enforced"]):
            item["persisted"] = record(cid, on_cmdline if isinstance(on_cmdline, str) else None, "1", "persisted", UNCHANGED,
                                       sig["reason"] if sig["sig_enforce"] is None else "module.sig_enforce=1 on the kernel command line")
        else:
            item["persisted"] = record(cid, on_cmdline if isinstance(on_cmdline, str) else None, "1", "persisted",
                                       UNSUPPORTED, _persist_hint(posture, "module.sig_enforce=1"))
        items.append(item)
    return items


def writable_here(root="/"):
    def check(path):
        host = _under(root, path)
        if not os.path.exists(host):
            return "%s does not exist here" % path
        if is_readonly_fs(host):
            return "not writable here: %s is on a read-only filesystem (container or namespace)" % path
        return None
    return check


def apply_enforcement(items, root="/"):
    """Write each planned value; the kernel's refusal (EPERM in a container) is reported."""
    for item in items:
        if not item["write"]:
            continue
        rec = item["live"]
        host = _under(root, item["path"])
        try:
            with open(host, "w") as handle:
                handle.write(item["value"])
        except (IOError, OSError) as exc:
            item["live"] = record(rec["id"], rec["before"], rec["after"], "live", UNSUPPORTED,
                                  "the kernel refused the write: %s" % (exc.strerror or exc))
            continue
        if item["path"] == LOCKDOWN_PATH:
            now = interpret_lockdown(read_first_line(host), True, {})["mode"]
            ok = lockdown_rank(now) >= lockdown_rank(item["value"])
        else:
            now = read_first_line(host)
            ok = now in ("Y", "1")
        if not ok:
            item["live"] = record(rec["id"], rec["before"], now, "live", ERROR, "reads %s after the write" % now)


def summarise(records):
    counts = dict((status, 0) for status in STATUSES)
    for rec in records:
        counts[rec["status"]] += 1
    return counts


def run(require=None, lockdown="none", module_sig_enforce=False, strict=False, check_mode=False, root="/"):
    errors = validate_require(require)
    if lockdown not in LOCKDOWN_LEVELS:
        errors.append("lockdown must be one of %s" % ", ".join(LOCKDOWN_LEVELS))
    if errors:
        return {"failed": True, "changed": False, "records": [], "errors": errors,
                "msg": "invalid boot integrity options, nothing was changed: " + "; ".join(errors)}
    posture = read_posture(root)
    items = plan_enforcement(posture, lockdown, module_sig_enforce, writable_here(root))
    if not check_mode:
        apply_enforcement(items, root)
    records = []
    for item in items:
        records.extend([item["live"], item["persisted"]])
    # the policy is judged on the state after enforcement (the prediction in check mode)
    after = dict(posture)
    for item in items:
        if item["live"]["status"] == CHANGED and item["path"] == LOCKDOWN_PATH:
            after["lockdown"] = dict(posture["lockdown"], mode=item["value"])
        if item["live"]["status"] == CHANGED and item["path"] == SIG_ENFORCE_PATH:
            after["module_signatures"] = dict(posture["module_signatures"], sig_enforce=True, enforced=True,
                                              reason="%s is Y" % SIG_ENFORCE_PATH)
    violations = evaluate(after, require)
    result = dict(after, records=records, changed=any_changed(records), summary=summarise(records),
                  violations=violations, requirements=dict(require or {}))
    failed = [r for r in records if r["status"] == ERROR]
    if strict:
        failed += [r for r in records if r["status"] == UNSUPPORTED]
    messages = ["%s [%s] %s: %s" % (r["id"], r["where"], r["status"], r.get("detail")) for r in failed]
    if violations:
        messages = ["boot integrity policy violated: " + "; ".join(violations)] + messages
    if messages:
        result["failed"] = True
        result["msg"] = "; ".join(messages)
    return result
