# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Read-only security posture of a device, gathered in one module run.

Each section is a tiny reader taking ``root`` (the real ``/`` by default, a fake tree
in tests) plus, where there is any logic, a pure ``interpret_*``/``classify_*``
function that works on the text it read. Every read tolerates a missing or unreadable
file: namespace hosts have a read-only /sys without securityfs, embedded targets have
no /boot and no DMI. Nothing here writes.
"""

from __future__ import annotations

import os
import sys

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import is_readonly_fs, read_first_line, read_text
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.initsys import classify_init, gather_init_evidence
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.procfs import (
    listening_sockets,
    parse_meminfo,
    parse_mounts,
    parse_os_release,
    read_bytes,
)

SECTIONS = (
    "init",
    "lsm",
    "apparmor",
    "selinux",
    "aslr",
    "kernel",
    "root_fs",
    "secure_boot",
    "listening",
    "python",
    "package_manager",
    "os",
    "hostname",
    "virtualization",
    "memory_total_kb",
    "cpus",
)

LSM_PATH = "/sys/kernel/security/lsm"
APPARMOR_ENABLED_PATH = "/sys/module/apparmor/parameters/enabled"
APPARMOR_PROFILES_PATH = "/sys/kernel/security/apparmor/profiles"
SELINUX_ENFORCE_PATH = "/sys/fs/selinux/enforce"
ASLR_PATH = "/proc/sys/kernel/randomize_va_space"
EFI_PATH = "/sys/firmware/efi"
EFIVARS_PATH = "/sys/firmware/efi/efivars"
SECURE_BOOT_VAR = EFIVARS_PATH + "/SecureBoot-8be4df61-93ca-11d2-aa0d-e98c0154bcac"
OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")

ASLR_MEANINGS = {0: "off", 1: "conservative", 2: "full"}
OVERLAY_FSTYPES = ("overlay", "overlayfs", "aufs")
NO_EFI_REASON = "no EFI firmware (BIOS/legacy boot or not exposed)"

# (reported name, executable). apt-get rather than apt: minimal images drop apt.
PACKAGE_MANAGERS = (
    ("apt", "apt-get"),
    ("opkg", "opkg"),
    ("apk", "apk"),
    ("dnf", "dnf"),
    ("yum", "yum"),
    ("rpm", "rpm"),
)
# A non-login SSH session's PATH often lacks the sbin directories (Alpine's apk is /sbin/apk).
STANDARD_BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

VM_VENDOR_WORDS = (
    "qemu", "kvm", "vmware", "virtualbox", "innotek", "xen", "bochs", "parallels",
    "bhyve", "amazon ec2", "google compute engine", "openstack", "virtual machine", "cloud hypervisor",
)


def _path(root, path):
    return os.path.join(root, path.lstrip("/"))


# --- LSM, AppArmor, SELinux ---------------------------------------------------------

def interpret_lsm(lsm_text, apparmor_enabled, selinux_enforce_present):
    """``(lsm list, source)``. securityfs lists every active LSM; without it (no
    securityfs in a namespace) only AppArmor and SELinux can be seen, from their own
    files. ``(None, None)`` when nothing could be read."""
    if lsm_text is not None:
        return [name for name in lsm_text.strip().split(",") if name], LSM_PATH
    found = []
    sources = []
    if apparmor_enabled is not None:
        sources.append(APPARMOR_ENABLED_PATH)
        if apparmor_enabled.strip() == "Y":
            found.append("apparmor")
    if selinux_enforce_present:
        sources.append(SELINUX_ENFORCE_PATH)
        found.append("selinux")
    if not sources:
        return None, None
    return found, ", ".join(sources)


def read_lsm(root="/"):
    lsm, source = interpret_lsm(
        read_text(_path(root, LSM_PATH)),
        read_first_line(_path(root, APPARMOR_ENABLED_PATH)),
        os.path.exists(_path(root, SELINUX_ENFORCE_PATH)),
    )
    return {"lsm": lsm, "lsm_source": source}


def interpret_apparmor(enabled_text, profiles_text, lsm=None):
    """``enabled`` from the module parameter, else from the LSM list; ``profiles_loaded``
    counts the profiles file's lines (root-only, so None when unreadable)."""
    if enabled_text is not None:
        enabled = enabled_text.strip() == "Y"
    else:
        enabled = "apparmor" in (lsm or [])
    profiles = None
    if profiles_text is not None:
        profiles = len([line for line in profiles_text.splitlines() if line.strip()])
    return {"enabled": enabled, "profiles_loaded": profiles}


def read_apparmor(root="/"):
    return {"apparmor": interpret_apparmor(
        read_first_line(_path(root, APPARMOR_ENABLED_PATH)),
        read_text(_path(root, APPARMOR_PROFILES_PATH)),
        read_lsm(root)["lsm"],
    )}


def interpret_selinux(enforce_text, enforce_present):
    """selinuxfs is only mounted while SELinux is active, so no enforce file = disabled."""
    if not enforce_present:
        return {"mode": "disabled"}
    value = (enforce_text or "").strip()
    if value == "1":
        return {"mode": "enforcing"}
    if value == "0":
        return {"mode": "permissive"}
    return {"mode": "unknown"}


def read_selinux(root="/"):
    path = _path(root, SELINUX_ENFORCE_PATH)
    return {"selinux": interpret_selinux(read_first_line(path), os.path.exists(path))}


# --- kernel -------------------------------------------------------------------------

def interpret_aslr(text):
    try:
        value = int((text or "").strip())
    except ValueError:
        return {"value": None, "meaning": "unknown"}
    return {"value": value, "meaning": ASLR_MEANINGS.get(value, "unknown")}


def read_aslr(root="/"):
    return {"aslr": interpret_aslr(read_first_line(_path(root, ASLR_PATH)))}


def kernel_config_source(release, root="/"):
    """Where the running kernel's config can be read: /proc/config.gz (CONFIG_IKCONFIG_PROC)
    first because it cannot be stale, then /boot (absent on most embedded targets)."""
    if os.path.exists(_path(root, "/proc/config.gz")):
        return "/proc/config.gz"
    candidate = "/boot/config-%s" % release
    if release and os.path.exists(_path(root, candidate)):
        return candidate
    return None


def read_kernel(root="/"):
    uname = os.uname()
    return {"kernel": {
        "release": uname.release,
        "version": uname.version,
        "arch": uname.machine,
        "config_source": kernel_config_source(uname.release, root),
        "cmdline": read_first_line(_path(root, "/proc/cmdline")),
    }}


# --- root filesystem ----------------------------------------------------------------

def root_mount(mounts):
    """The entry mounted on / last: later mounts stack on earlier ones (initramfs rootfs)."""
    found = None
    for mount in mounts:
        if mount["mountpoint"] == "/":
            found = mount
    return found


def interpret_root_fs(mounts, readonly):
    mount = root_mount(mounts) or {}
    fstype = mount.get("fstype")
    return {
        "readonly": bool(readonly),
        "fstype": fstype,
        "overlay": fstype in OVERLAY_FSTYPES,
        "device": mount.get("device"),
    }


def read_root_fs(root="/"):
    # statvfs, not the "ro" mount option: a bind or overlay can differ from its entry.
    mounts = parse_mounts(read_text(_path(root, "/proc/mounts"), ""))
    return {"root_fs": interpret_root_fs(mounts, is_readonly_fs(root))}


# --- secure boot --------------------------------------------------------------------

def interpret_secure_boot(efi_present, efivars_present, data):
    """Decode the SecureBoot EFI variable: 4 attribute bytes, then 1 value byte."""
    if not efi_present:
        return {"state": "unknown", "reason": NO_EFI_REASON}
    if not efivars_present:
        return {"state": "unknown", "reason": "EFI firmware present but efivarfs is not mounted at %s" % EFIVARS_PATH}
    if data is None:
        return {"state": "unknown", "reason": "SecureBoot EFI variable missing or unreadable"}
    data = bytearray(data)
    if len(data) < 5:
        return {"state": "unknown", "reason": "SecureBoot EFI variable too short (%d bytes)" % len(data)}
    if data[4] == 1:
        return {"state": "enabled", "reason": "SecureBoot EFI variable is 1"}
    if data[4] == 0:
        return {"state": "disabled", "reason": "SecureBoot EFI variable is 0"}
    return {"state": "unknown", "reason": "SecureBoot EFI variable has unexpected value %d" % data[4]}


def read_secure_boot(root="/"):
    return {"secure_boot": interpret_secure_boot(
        os.path.isdir(_path(root, EFI_PATH)),
        os.path.isdir(_path(root, EFIVARS_PATH)),
        read_bytes(_path(root, SECURE_BOOT_VAR)),
    )}


# --- network, runtime, packages -----------------------------------------------------

def summarize_listening(sockets):
    return {
        "total": len(sockets),
        "tcp": len([s for s in sockets if s["proto"] in ("tcp", "tcp6")]),
        "udp": len([s for s in sockets if s["proto"] in ("udp", "udp6")]),
        "sockets": sockets,
    }


def read_listening(root="/"):
    return {"listening": summarize_listening(listening_sockets(_path(root, "/proc")))}


def read_python(root="/"):
    return {"python": {"version": "%d.%d.%d" % tuple(sys.version_info[:3]), "executable": sys.executable}}


def choose_package_manager(executables, dpkg_status_present):
    """First of apt, opkg, apk, dnf, yum, rpm present. apt also needs the dpkg database:
    an apt-get binary copied into a non-Debian image does not make it a Debian system."""
    for name, executable in PACKAGE_MANAGERS:
        if executable not in executables:
            continue
        if name == "apt" and not dpkg_status_present:
            continue
        return name
    return None


def find_executables(names, path_dirs, root="/"):
    """The subset of ``names`` that are executable files in ``path_dirs`` (no shell lookup)."""
    found = set()
    for name in names:
        for directory in path_dirs:
            if not os.path.isabs(directory):
                continue  # a relative PATH entry depends on the module's cwd
            candidate = _path(root, os.path.join(directory, name))
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                # BusyBox's rpm/dpkg applets only unpack archives: they keep no package database
                if not os.path.basename(os.path.realpath(candidate)).startswith("busybox"):
                    found.add(name)
                break
    return found


def read_package_manager(root="/", path_dirs=None):
    if path_dirs is None:
        path_dirs = list(os.get_exec_path())
        path_dirs.extend(d for d in STANDARD_BIN_DIRS if d not in path_dirs)
    executables = find_executables([exe for _name, exe in PACKAGE_MANAGERS], path_dirs, root)
    return {"package_manager": choose_package_manager(executables, os.path.isfile(_path(root, "/var/lib/dpkg/status")))}


def interpret_os_release(text, source):
    release = parse_os_release(text)
    return {
        "id": release.get("ID"),
        "version_id": release.get("VERSION_ID"),
        "pretty_name": release.get("PRETTY_NAME"),
        "source": source if text is not None else None,
    }


def read_os(root="/"):
    for path in OS_RELEASE_PATHS:
        text = read_text(_path(root, path))
        if text is not None:
            return {"os": interpret_os_release(text, path)}
    return {"os": interpret_os_release(None, None)}


def read_hostname(root="/"):
    return {"hostname": read_first_line(_path(root, "/proc/sys/kernel/hostname")) or os.uname().nodename}


# --- virtualization -----------------------------------------------------------------

def _container_env(environ):
    for entry in (environ or b"").split(b"\0"):
        if entry.startswith(b"container="):
            return entry[len(b"container="):].decode("utf-8", "replace") or None
    return None


def _cpu_hypervisor_flag(cpuinfo):
    """True/False from x86 ``flags`` lines; None where cpuinfo has none (ARM, MIPS)."""
    flags_seen = False
    for line in (cpuinfo or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            flags_seen = True
            if "hypervisor" in value.split():
                return True
    return False if flags_seen else None


def gather_virt_evidence(root="/"):
    compatible = read_bytes(_path(root, "/proc/device-tree/compatible"))
    return {
        "containerenv": os.path.exists(_path(root, "/run/.containerenv")),
        "dockerenv": os.path.exists(_path(root, "/.dockerenv")),
        "systemd_container": read_first_line(_path(root, "/run/systemd/container")),
        "pid1_container": _container_env(read_bytes(_path(root, "/proc/1/environ"))),
        "sys_vendor": read_first_line(_path(root, "/sys/class/dmi/id/sys_vendor")),
        "product_name": read_first_line(_path(root, "/sys/class/dmi/id/product_name")),
        "hypervisor_type": read_first_line(_path(root, "/sys/hypervisor/type")),
        "cpu_hypervisor_flag": _cpu_hypervisor_flag(read_text(_path(root, "/proc/cpuinfo"))),
        "dt_compatible": [c.decode("utf-8", "replace") for c in (compatible or b"").split(b"\0") if c],
    }


def classify_virtualization(evidence):
    """"container", "vm", "none" (hardware evidence says bare metal) or "unknown". Pure."""
    if evidence.get("containerenv") or evidence.get("dockerenv") or evidence.get("systemd_container") or evidence.get("pid1_container"):
        return "container"
    dmi = " ".join(v for v in (evidence.get("sys_vendor"), evidence.get("product_name")) if v).lower()
    if any(word in dmi for word in VM_VENDOR_WORDS):
        return "vm"
    if evidence.get("hypervisor_type") or evidence.get("cpu_hypervisor_flag"):
        return "vm"
    compatible = evidence.get("dt_compatible") or []
    if "linux,dummy-virt" in compatible:
        return "vm"
    if dmi or evidence.get("cpu_hypervisor_flag") is False or compatible:
        return "none"
    return "unknown"


def read_virtualization(root="/"):
    return {"virtualization": classify_virtualization(gather_virt_evidence(root))}


def read_memory_total_kb(root="/"):
    return {"memory_total_kb": parse_meminfo(read_text(_path(root, "/proc/meminfo"))).get("MemTotal")}


def read_cpus(root="/"):
    return {"cpus": os.cpu_count()}


def read_init(root="/"):
    return {"init": classify_init(gather_init_evidence(root))}


_READERS = {
    "init": read_init,
    "lsm": read_lsm,
    "apparmor": read_apparmor,
    "selinux": read_selinux,
    "aslr": read_aslr,
    "kernel": read_kernel,
    "root_fs": read_root_fs,
    "secure_boot": read_secure_boot,
    "listening": read_listening,
    "python": read_python,
    "package_manager": read_package_manager,
    "os": read_os,
    "hostname": read_hostname,
    "virtualization": read_virtualization,
    "memory_total_kb": read_memory_total_kb,
    "cpus": read_cpus,
}


def select_sections(sections):
    """Section names to gather, in SECTIONS order; None or "all" means every section."""
    if not sections or "all" in sections:
        return list(SECTIONS)
    unknown = [name for name in sections if name not in SECTIONS]
    if unknown:
        raise ValueError("unknown posture sections: %s" % ", ".join(unknown))
    return [name for name in SECTIONS if name in sections]


def gather_posture(sections=None, root="/"):
    """One dict of posture facts for the requested sections (all by default).

    A section that fails is reported as None with its error in ``gather_errors``:
    one odd corner of a device must not cost the other facts.
    """
    facts = {}
    errors = {}
    for name in select_sections(sections):
        try:
            facts.update(_READERS[name](root))
        except Exception as exc:  # pylint: disable=broad-except
            facts.setdefault(name, None)
            errors[name] = "%s: %s" % (type(exc).__name__, exc)
    facts["gather_errors"] = errors
    return facts
