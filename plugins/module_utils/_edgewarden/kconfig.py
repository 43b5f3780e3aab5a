# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Kernel build configuration and command line, compared with recommendations.

Pure parsing and evaluation, plus two small readers (/proc/config.gz or
/boot/config-<release>, and /proc/cmdline). Report-only: nothing here changes
the system.

A kconfig recommendation is ``{option, expect, why, arch, only_if}``: ``expect`` is
``y``, ``m``, ``n`` / ``is not set`` or a value; ``arch`` limits it to some
architectures (x86_64, x86, arm64, arm, riscv, ...); ``only_if`` names an option
that must be enabled for it to apply (MODULE_SIG only matters with MODULES).
A command-line recommendation is ``{param, expect, why, arch, satisfied_by}``:
``expect`` omitted means the bare flag must be present, ``absent`` that it must not
be, ``!value`` anything but that value, else that value; ``satisfied_by`` is a
``CONFIG_X=y|n`` build default that makes the parameter unnecessary when absent.
"""

from __future__ import annotations

import fnmatch
import gzip
import os
import re
import zlib

CONFIG_SOURCES = ("/proc/config.gz", "/boot/config-{release}", "/lib/modules/{release}/config")
CMDLINE_PATH = "/proc/cmdline"
NOT_SET = ("n", "is not set")
_TRUE = ("1", "on", "y", "yes", "true")
_FALSE = ("0", "off", "n", "no", "false")

# KSPP (kernsec.org Recommended Settings) as checked by kernel-hardening-checker, trimmed
# to what matters on edge devices. The role's kernel_kconfig_recommendations repeats it
# (a unit test keeps the two equal).
KSPP_KCONFIG = [
    {"option": "CONFIG_BUG", "expect": "y", "why": "Kill the offending task on BUG() instead of running on with corrupted state."},
    {"option": "CONFIG_STRICT_KERNEL_RWX", "expect": "y", "why": "Kernel text read-only and data non-executable."},
    {"option": "CONFIG_STRICT_MODULE_RWX", "expect": "y", "only_if": "CONFIG_MODULES",
     "why": "Same W^X protection for loadable modules."},
    {"option": "CONFIG_STACKPROTECTOR_STRONG", "expect": "y", "why": "Stack canaries on every function with local buffers."},
    {"option": "CONFIG_VMAP_STACK", "expect": "y", "arch": ["x86_64", "arm64", "arm"],
     "why": "Guard pages around kernel stacks turn overflows into clean faults."},
    {"option": "CONFIG_RANDOMIZE_BASE", "expect": "y", "arch": ["x86_64", "arm64", "x86"],
     "why": "KASLR; on arm64 the bootloader must pass a kaslr-seed or an RNG must exist."},
    {"option": "CONFIG_RANDOMIZE_KSTACK_OFFSET_DEFAULT", "expect": "y", "arch": ["x86_64", "arm64", "x86"],
     "why": "Randomise the kernel stack offset on each syscall (5.13+)."},
    {"option": "CONFIG_HARDENED_USERCOPY", "expect": "y", "why": "Bounds-check copies between kernel and user memory."},
    {"option": "CONFIG_FORTIFY_SOURCE", "expect": "y", "why": "Compile- and run-time checks on str*/mem* buffer sizes."},
    {"option": "CONFIG_SLAB_FREELIST_RANDOM", "expect": "y", "why": "Randomise slab freelists against heap grooming."},
    {"option": "CONFIG_SLAB_FREELIST_HARDENED", "expect": "y", "why": "Harden slab freelist metadata."},
    {"option": "CONFIG_SHUFFLE_PAGE_ALLOCATOR", "expect": "y", "why": "Allow page allocator randomisation (page_alloc.shuffle=1)."},
    {"option": "CONFIG_SLAB_MERGE_DEFAULT", "expect": "is not set", "why": "Do not merge slab caches: keeps exploits from reaching other caches."},
    {"option": "CONFIG_INIT_ON_ALLOC_DEFAULT_ON", "expect": "y", "why": "Zero memory on allocation: no stale data leaks."},
    {"option": "CONFIG_INIT_STACK_ALL_ZERO", "expect": "y", "why": "Zero-initialise stack variables (needs GCC 12+ or Clang)."},
    {"option": "CONFIG_BUG_ON_DATA_CORRUPTION", "expect": "y", "why": "Stop on detected list/data corruption instead of continuing."},
    {"option": "CONFIG_SCHED_STACK_END_CHECK", "expect": "y", "why": "Detect kernel stack overruns at schedule time."},
    {"option": "CONFIG_SECCOMP", "expect": "y", "why": "Syscall filtering for services (systemd SystemCallFilter=, containers)."},
    {"option": "CONFIG_SECCOMP_FILTER", "expect": "y", "why": "BPF-based seccomp filters."},
    {"option": "CONFIG_SECURITY", "expect": "y", "why": "LSM framework, needed by Yama, lockdown, AppArmor/SELinux."},
    {"option": "CONFIG_SECURITY_YAMA", "expect": "y", "why": "ptrace scope restrictions (kernel.yama.ptrace_scope)."},
    {"option": "CONFIG_SECURITY_DMESG_RESTRICT", "expect": "y", "why": "dmesg readable by root only from boot, before sysctl runs."},
    {"option": "CONFIG_SECURITY_LOCKDOWN_LSM", "expect": "y", "why": "Lockdown: stop root from modifying the running kernel."},
    {"option": "CONFIG_MODULE_SIG", "expect": "y", "only_if": "CONFIG_MODULES", "why": "Sign modules at build time."},
    {"option": "CONFIG_MODULE_SIG_FORCE", "expect": "y", "only_if": "CONFIG_MODULES",
     "why": "Refuse unsigned modules: root cannot load arbitrary kernel code."},
    {"option": "CONFIG_DEVMEM", "expect": "is not set",
     "why": "No /dev/mem; if a BSP tool needs it, at least STRICT_DEVMEM and IO_STRICT_DEVMEM."},
    {"option": "CONFIG_DEVKMEM", "expect": "is not set", "why": "No /dev/kmem (direct kernel memory writes; gone since 5.13)."},
    {"option": "CONFIG_PROC_KCORE", "expect": "is not set", "why": "No /proc/kcore: exposes the kernel memory layout."},
    {"option": "CONFIG_COMPAT_BRK", "expect": "is not set", "why": "Keeps brk randomised (ASLR)."},
    {"option": "CONFIG_KEXEC", "expect": "is not set", "why": "Cannot replace the running kernel (unless your update scheme uses kexec)."},
    {"option": "CONFIG_HIBERNATION", "expect": "is not set", "why": "Hibernation images can replace kernel memory."},
    {"option": "CONFIG_BINFMT_MISC", "expect": "is not set", "why": "Easily confused by misconfigured userspace."},
    {"option": "CONFIG_LEGACY_PTYS", "expect": "is not set", "why": "Only the modern devpts PTY interface."},
    {"option": "CONFIG_LEGACY_TIOCSTI", "expect": "is not set", "why": "No TIOCSTI keystroke injection by default (6.2+)."},
    {"option": "CONFIG_LDISC_AUTOLOAD", "expect": "is not set", "why": "Unprivileged users cannot autoload TTY line disciplines."},
    {"option": "CONFIG_DEBUG_FS", "expect": "is not set", "why": "debugfs is a large, unaudited interface often left in BSP kernels."},
    {"option": "CONFIG_PANIC_ON_OOPS", "expect": "y", "why": "An oops leaves the kernel in an unknown state; stop instead."},
    {"option": "CONFIG_PANIC_TIMEOUT", "expect": "-1", "why": "Reboot immediately after a panic: unattended devices recover on their own."},
    {"option": "CONFIG_SYN_COOKIES", "expect": "y", "why": "SYN flood protection (net.ipv4.tcp_syncookies)."},
    {"option": "CONFIG_DEFAULT_MMAP_MIN_ADDR", "expect": "65536", "arch": ["x86_64", "x86", "arm64"],
     "why": "Keep the low 64 KiB unmappable: NULL-dereference bugs stay unexploitable."},
    {"option": "CONFIG_DEFAULT_MMAP_MIN_ADDR", "expect": "32768", "arch": ["arm"],
     "why": "32-bit ARM cannot go above 32768; KSPP recommends exactly that."},
    {"option": "CONFIG_ARM64_SW_TTBR0_PAN", "expect": "y", "arch": ["arm64"], "why": "Emulated PAN: kernel cannot touch user memory by accident."},
    {"option": "CONFIG_UNMAP_KERNEL_AT_EL0", "expect": "y", "arch": ["arm64"], "why": "Kernel page table isolation (Meltdown-class)."},
    {"option": "CONFIG_ARM64_PTR_AUTH", "expect": "y", "arch": ["arm64"], "why": "Pointer authentication where the CPU has it."},
    {"option": "CONFIG_ARM64_BTI", "expect": "y", "arch": ["arm64"], "why": "Branch target identification where the CPU has it."},
    {"option": "CONFIG_CPU_SW_DOMAIN_PAN", "expect": "y", "arch": ["arm"], "why": "PAN emulation on 32-bit ARM."},
    {"option": "CONFIG_HARDEN_BRANCH_PREDICTOR", "expect": "y", "arch": ["arm"], "why": "Spectre v2 mitigation on 32-bit ARM."},
    {"option": "CONFIG_VMSPLIT_3G", "expect": "y", "arch": ["arm", "x86"], "why": "Largest user address space: more ASLR entropy."},
    {"option": "CONFIG_LEGACY_VSYSCALL_NONE", "expect": "y", "arch": ["x86_64"], "why": "No fixed-address vsyscall page (ASLR bypass)."},
]

KSPP_CMDLINE = [
    {"param": "nokaslr", "expect": "absent", "why": "Keeps kernel address randomisation on."},
    {"param": "norandmaps", "expect": "absent", "why": "Keeps user-space ASLR on."},
    {"param": "mitigations", "expect": "!off", "why": "CPU vulnerability mitigations stay on."},
    {"param": "nopti", "expect": "absent", "arch": ["x86_64", "x86"], "why": "Keeps page table isolation on."},
    {"param": "kpti", "expect": "!0", "arch": ["arm64"], "why": "Keeps kernel page table isolation on."},
    {"param": "sysrq_always_enabled", "expect": "absent", "why": "Lets kernel.sysrq restrict the magic SysRq key."},
    {"param": "slab_nomerge", "satisfied_by": "CONFIG_SLAB_MERGE_DEFAULT=n", "why": "Do not merge slab caches."},
    {"param": "init_on_alloc", "expect": "1", "satisfied_by": "CONFIG_INIT_ON_ALLOC_DEFAULT_ON=y",
     "why": "Zero memory on allocation."},
    {"param": "init_on_free", "expect": "1", "satisfied_by": "CONFIG_INIT_ON_FREE_DEFAULT_ON=y",
     "why": "Zero memory on free (shortest stale-data lifetime; costs a few percent on small CPUs)."},
    {"param": "page_alloc.shuffle", "expect": "1", "why": "Randomise the page allocator freelists."},
    {"param": "randomize_kstack_offset", "expect": "1", "arch": ["x86_64", "arm64", "x86"],
     "satisfied_by": "CONFIG_RANDOMIZE_KSTACK_OFFSET_DEFAULT=y", "why": "Random kernel stack offset per syscall."},
    {"param": "iommu.strict", "expect": "1", "arch": ["x86_64", "arm64", "x86"],
     "satisfied_by": "CONFIG_IOMMU_DEFAULT_DMA_STRICT=y", "why": "Synchronous IOMMU invalidation against DMA attacks."},
    {"param": "iommu.passthrough", "expect": "0", "arch": ["x86_64", "arm64", "x86"],
     "satisfied_by": "CONFIG_IOMMU_DEFAULT_PASSTHROUGH=n", "why": "DMA goes through the IOMMU."},
    {"param": "debugfs", "expect": "off", "satisfied_by": "CONFIG_DEBUG_FS=n", "why": "No debugfs at run time."},
    {"param": "vsyscall", "expect": "none", "arch": ["x86_64"], "satisfied_by": "CONFIG_LEGACY_VSYSCALL_NONE=y",
     "why": "No fixed-address vsyscall page."},
]


# --- parsing (pure) ---------------------------------------------------------------


def _unquote(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def parse_kconfig(text):
    """``{CONFIG_X: value}``; ``# CONFIG_X is not set`` becomes ``n``, strings are unquoted."""
    config = {}
    for line in (text or "").splitlines():
        line = line.strip()
        match = re.match(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$", line)
        if match:
            config[match.group(1)] = "n"
            continue
        match = re.match(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$", line)
        if match:
            config[match.group(1)] = _unquote(match.group(2))
    return config


def parse_cmdline(text):
    """``[(name, value or None)]`` in order; stops at ``--`` (the rest is for init).
    Double quotes group a value with spaces, as the kernel's parser does."""
    params = []
    for token in re.findall(r'(?:[^\s"]+|"[^"]*")+', text or ""):
        if token == "--":
            break
        if "=" in token:
            name, value = token.split("=", 1)
            params.append((name.replace('"', ""), value.replace('"', "")))
        else:
            params.append((token.replace('"', ""), None))
    return params


def param_name(name):
    # The kernel treats '-' and '_' in parameter names alike.
    return name.replace("-", "_")


def cmdline_dict(params):
    """Last occurrence wins, as for most kernel parameters."""
    return dict((param_name(name), value) for name, value in params)


def machine_arch(machine):
    machine = (machine or "").lower()
    for pattern, arch in (("x86_64", "x86_64"), ("amd64", "x86_64"), ("i?86", "x86"), ("aarch64*", "arm64"),
                          ("arm64*", "arm64"), ("arm*", "arm"), ("riscv*", "riscv"), ("mips*", "mips"),
                          ("ppc*", "powerpc"), ("powerpc*", "powerpc")):
        if fnmatch.fnmatchcase(machine, pattern):
            return arch
    return machine


def config_arch(config):
    """The architecture a config was built for (it may not be this machine's)."""
    for option, arch in (("CONFIG_X86_64", "x86_64"), ("CONFIG_ARM64", "arm64"), ("CONFIG_X86_32", "x86"),
                         ("CONFIG_ARM", "arm"), ("CONFIG_RISCV", "riscv"), ("CONFIG_MIPS", "mips"),
                         ("CONFIG_PPC", "powerpc")):
        if config.get(option) == "y":
            return arch
    return None


# --- evaluation (pure) ------------------------------------------------------------


def _number(value):
    try:
        return int(value, 0)
    except (TypeError, ValueError):
        return None


def _same_value(expect, actual):
    a, b = _unquote(expect), _unquote(actual)
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return na == nb
    return a == b


def kconfig_matches(expect, actual):
    """Whether ``actual`` (None when the option is absent) satisfies ``expect``."""
    expect = (expect or "").strip()
    if expect.startswith("!"):
        return not kconfig_matches(expect[1:], actual)
    if expect in NOT_SET:
        return actual in (None, "n")
    if actual is None:
        return False
    return _same_value(expect, actual)


def _bool(value):
    low = (value or "").lower()
    if low in _TRUE:
        return "1"
    if low in _FALSE:
        return "0"
    return value


def cmdline_matches(expect, present, value):
    """``expect`` against one parameter: None means flag present; ``absent``; ``!x``; ``x``."""
    if expect in (None, ""):
        return present
    if expect == "absent":
        return not present
    negate = expect.startswith("!")
    wanted = expect[1:] if negate else expect
    actual = value
    if wanted in ("0", "1"):
        # Boolean parameters take on/off/y/n too (kstrtobool).
        actual = _bool(value if value is not None else "1")
    if negate:
        return not present or actual != wanted
    return present and actual == wanted


def _applies(rec, arch):
    wanted = rec.get("arch")
    return not wanted or arch is None or arch in wanted


def _item(kind, name, expect, actual, why, detail=None):
    item = {"kind": kind, "option": name, "expect": expect, "actual": actual, "why": why or ""}
    if detail:
        item["detail"] = detail
    return item


def evaluate_kconfig(config, recommendations, arch):
    """``(ok, missing, unknown)`` for kconfig recommendations; ``config`` None = unreadable."""
    ok, missing, unknown = [], [], []
    for rec in recommendations:
        if not _applies(rec, arch):
            continue
        option, expect, why = rec["option"], str(rec["expect"]), rec.get("why")
        if config is None:
            unknown.append(_item("kconfig", option, expect, None, why, "kernel config not readable"))
            continue
        guard = rec.get("only_if")
        if guard and config.get(guard) not in ("y", "m"):
            ok.append(_item("kconfig", option, expect, config.get(option), why, "not applicable: %s is not set" % guard))
            continue
        actual = config.get(option)
        if kconfig_matches(expect, actual):
            ok.append(_item("kconfig", option, expect, actual, why))
        else:
            detail = None if actual is not None else "not in this kernel's config (not available here, or a dependency is off)"
            missing.append(_item("kconfig", option, expect, actual, why, detail))
    return ok, missing, unknown


def _satisfied_by(spec, config):
    """True/False for a ``CONFIG_X=value`` build default, None when it cannot be known."""
    if not spec:
        return False
    if config is None:
        return None
    option, _sep, expect = spec.partition("=")
    return kconfig_matches(expect or "y", config.get(option.strip()))


def evaluate_cmdline(params, config, recommendations, arch):
    """``(ok, missing, unknown)`` for command-line recommendations; ``params`` None = unreadable."""
    ok, missing, unknown = [], [], []
    values = cmdline_dict(params) if params is not None else None
    for rec in recommendations:
        if not _applies(rec, arch):
            continue
        name, expect, why = rec["param"], rec.get("expect"), rec.get("why")
        shown = expect if expect not in (None, "") else "present"
        if values is None:
            unknown.append(_item("cmdline", name, shown, None, why, "/proc/cmdline not readable"))
            continue
        key = param_name(name)
        present = key in values
        value = values.get(key)
        actual = None if not present else (value if value is not None else "present")
        if cmdline_matches(expect, present, value):
            ok.append(_item("cmdline", name, shown, actual, why))
            continue
        if not present and rec.get("satisfied_by"):
            default = _satisfied_by(rec["satisfied_by"], config)
            if default:
                ok.append(_item("cmdline", name, shown, None, why, "build default %s" % rec["satisfied_by"]))
                continue
            if default is None:
                unknown.append(_item("cmdline", name, shown, None, why,
                                     "absent; %s decides but the kernel config is not readable" % rec["satisfied_by"]))
                continue
        missing.append(_item("cmdline", name, shown, actual, why))
    return ok, missing, unknown


def audit(config_text, cmdline_text, recommendations=None, cmdline_recommendations=None, machine=None, source=None):
    """The report: ``{source, arch, ok, missing, unknown}``; texts None mean unreadable."""
    config = parse_kconfig(config_text) if config_text is not None else None
    arch = (config_arch(config) if config else None) or (machine_arch(machine) if machine else None)
    params = parse_cmdline(cmdline_text) if cmdline_text is not None else None
    k_ok, k_missing, k_unknown = evaluate_kconfig(config, KSPP_KCONFIG if recommendations is None else recommendations, arch)
    c_ok, c_missing, c_unknown = evaluate_cmdline(
        params, config, KSPP_CMDLINE if cmdline_recommendations is None else cmdline_recommendations, arch)
    return {"source": source if config is not None else None, "arch": arch,
            "ok": k_ok + c_ok, "missing": k_missing + c_missing, "unknown": k_unknown + c_unknown}


def missing_summary(report):
    """One line for people: how many recommendations are missing, from which config, which."""
    return "%d recommendation(s) missing (config: %s): %s" % (
        len(report["missing"]), report["source"] or "not readable",
        ", ".join(item["option"] for item in report["missing"]))


# --- readers ----------------------------------------------------------------------


def read_config(release=None, sources=CONFIG_SOURCES):
    """``(path, text)`` of the first readable kernel config, or ``(None, None)``.
    /proc/config.gz only exists with CONFIG_IKCONFIG_PROC (or the ``configs`` module loaded:
    we do not load it)."""
    release = release or os.uname()[2]
    for template in sources:
        path = template.format(release=release)
        try:
            if path.endswith(".gz"):
                with gzip.open(path, "rb") as handle:
                    return path, handle.read().decode("utf-8", "replace")
            with open(path, "rb") as handle:
                return path, handle.read().decode("utf-8", "replace")
        except (IOError, OSError, EOFError, zlib.error):
            continue
    return None, None


def read_cmdline(path=CMDLINE_PATH):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace").strip()
    except (IOError, OSError):
        return None
