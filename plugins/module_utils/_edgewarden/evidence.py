# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Read-only incident evidence from a device, gathered in one module run.

Everything comes from /proc, /sys and files, plus three read-only commands where they
exist (``nft -j list ruleset``, BusyBox ``logread``, ``journalctl``), so it works on
devices without procps, iproute2, ss, lsof or last. Nothing here writes: files are
opened read-only (with O_NOATIME where the kernel allows it, so reading does not even
touch access times), FIFOs and devices are never opened, and hashing is bounded by a
size cap and a per-run cache keyed by (st_dev, st_ino), never a filesystem walk.

Parsers are pure (text or bytes in, data out); readers take ``root`` so tests run them
on trees built in a temporary directory.
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import hashlib
import json
import os
import socket
import stat
import struct
import sys
import time

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import read_text
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.procfs import (
    ancestors,
    decode_address,
    list_pids,
    listening_sockets,
    parse_cgroup_unit,
    parse_cmdline,
    parse_mounts,
    read_bytes,
    socket_inodes,
)

SCHEMA = 1
SECTIONS = ("host", "processes", "sockets", "logins", "modules", "mounts", "firewall", "logs", "hashes", "kernel")

DEFAULT_HASH_MAX_BYTES = 32 * 1024 * 1024
# A log tail never reads more than this from the end of a file, however long its lines.
LOG_TAIL_MAX_BYTES = 1024 * 1024
STANDARD_BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
UTMP_PATHS = ("/run/utmp", "/var/run/utmp")
# What an intruder changes to stay (accounts, keys, cron, preload, boot scripts) and the
# binaries they replace to hide; the evidence_snapshot module documents the same list.
DEFAULT_HASH_PATHS = (
    "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/sudoers", "/etc/sudoers.d/*",
    "/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/*", "/root/.ssh/authorized_keys",
    "/etc/dropbear/authorized_keys", "/etc/crontab", "/etc/cron.d/*", "/var/spool/cron/crontabs/*",
    "/etc/ld.so.preload", "/etc/inittab", "/etc/rc.local", "/etc/init.d/*", "/etc/profile", "/etc/hosts",
    "/bin/busybox", "/bin/sh", "/bin/login", "/bin/su", "/usr/bin/sudo", "/usr/sbin/sshd", "/usr/sbin/dropbear",
)
DEFAULT_LOG_FILES = ("/var/log/auth.log", "/var/log/secure", "/var/log/messages", "/var/log/syslog")
WTMP_PATH = "/var/log/wtmp"
BTMP_PATH = "/var/log/btmp"

_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_CHUNK = 1024 * 1024
# PF_KTHREAD in the flags field of /proc/<pid>/stat (include/linux/sched.h)
_PF_KTHREAD = 0x00200000
_GLOB_CHARS = ("*", "?", "[")


def _path(root, path):
    return os.path.join(root, path.lstrip("/"))


def iso_utc(epoch):
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def open_readonly(path):
    """A read-only fd for ``path``; O_NOATIME first (only the owner or CAP_FOWNER may use it)."""
    if _O_NOATIME:
        try:
            return os.open(path, _READ_FLAGS | _O_NOATIME)
        except OSError as err:
            if err.errno != errno.EPERM:
                raise
    return os.open(path, _READ_FLAGS)


def read_file_text(path, limit=16 * 1024 * 1024):
    """A disk file's text (invalid bytes replaced) read without touching its atime; None if unreadable.

    /proc and /sys files go through files.read_text: they have no meaningful atime.
    """
    if stat_regular(path) is None:
        return None
    data = read_range(path, 0, limit)
    return data.decode("utf-8", "replace") if data is not None else None


# --- hashing -------------------------------------------------------------------------------

class Hasher:
    """SHA-256 of regular files, at most ``max_bytes`` each, cached by (st_dev, st_ino).

    Forty processes of one BusyBox binary cost one read. Only regular files are opened:
    opening a FIFO would block and opening a device node can have side effects.
    """

    def __init__(self, max_bytes=DEFAULT_HASH_MAX_BYTES):
        self.max_bytes = max_bytes
        self.cache = {}
        self.stats = {"hashed": 0, "cached": 0, "skipped": 0, "bytes": 0}

    def hash(self, path):
        """``{"sha256", "size", "note"}`` for the file ``path`` resolves to (symlinks followed)."""
        try:
            info = os.stat(path)
        except OSError as err:
            return {"sha256": None, "size": None, "note": "cannot stat: %s" % (err.strerror or err)}
        if not stat.S_ISREG(info.st_mode):
            return {"sha256": None, "size": None, "note": "not a regular file"}
        key = (info.st_dev, info.st_ino)
        if key in self.cache:
            self.stats["cached"] += 1
            return dict(self.cache[key])
        if info.st_size > self.max_bytes:
            self.stats["skipped"] += 1
            result = {"sha256": None, "size": info.st_size,
                      "note": "not hashed: larger than hash_max_bytes (%d)" % self.max_bytes}
        else:
            result = self._digest(path, key, info.st_size)
        self.cache[key] = result
        return dict(result)

    def _digest(self, path, key, size):
        try:
            fd = open_readonly(path)
        except OSError as err:
            return {"sha256": None, "size": size, "note": "cannot open: %s" % (err.strerror or err)}
        try:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != key:
                return {"sha256": None, "size": size, "note": "file replaced while reading"}
            digest = hashlib.sha256()
            total = 0
            while total <= self.max_bytes:
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                total += len(chunk)
        except OSError as err:
            return {"sha256": None, "size": size, "note": "read failed: %s" % (err.strerror or err)}
        finally:
            os.close(fd)
        if total > self.max_bytes:
            self.stats["skipped"] += 1
            return {"sha256": None, "size": total, "note": "not hashed: grew past hash_max_bytes while reading"}
        self.stats["hashed"] += 1
        self.stats["bytes"] += total
        return {"sha256": digest.hexdigest(), "size": total, "note": None}


# --- users ---------------------------------------------------------------------------------

def parse_passwd(text):
    """``{uid: name}`` from /etc/passwd text; the first name of a shared uid wins."""
    users = {}
    for line in (text or "").splitlines():
        fields = line.split(":")
        if len(fields) < 3 or line.startswith("#"):
            continue
        try:
            uid = int(fields[2])
        except ValueError:
            continue
        users.setdefault(uid, fields[0])
    return users


def read_users(root="/"):
    return parse_passwd(read_file_text(_path(root, "/etc/passwd")))


# --- processes -----------------------------------------------------------------------------

def parse_stat(text):
    """state, ppid, flags and starttime (clock ticks after boot) from /proc/<pid>/stat text.

    comm (field 2) may hold spaces and parentheses, so fields are counted from the last ')'.
    """
    if not text or ")" not in text:
        return None
    rest = text[text.rfind(")") + 1:].split()
    try:
        return {"state": rest[0], "ppid": int(rest[1]), "flags": int(rest[6]), "starttime": int(rest[19])}
    except (IndexError, ValueError):
        return None


def parse_status_ids(text):
    """Real and effective uid and gid from /proc/<pid>/status text (None when missing)."""
    ids = {"uid": None, "euid": None, "gid": None, "egid": None}
    for line in (text or "").splitlines():
        name, _sep, rest = line.partition(":")
        values = rest.split()
        if name in ("Uid", "Gid") and len(values) >= 2:
            try:
                real, effective = int(values[0]), int(values[1])
            except ValueError:
                continue
            prefix = name[0].lower()
            ids[prefix + "id"] = real
            ids["e" + prefix + "id"] = effective
    return ids


def parse_btime(text):
    """Boot time (seconds since the epoch) from /proc/stat text, or None."""
    for line in (text or "").splitlines():
        if line.startswith("btime "):
            try:
                return int(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


def _clock_ticks():
    try:
        return os.sysconf("SC_CLK_TCK") or 100
    except (ValueError, OSError, AttributeError):
        return 100


def read_process(pid, proc_root, users, hasher=None, btime=None, clk_tck=100):
    """One process as plain data, or None when it exited while being read."""
    base = os.path.join(proc_root, str(pid))
    fields = parse_stat(read_text(os.path.join(base, "stat")))
    if fields is None:
        return None
    ids = parse_status_ids(read_text(os.path.join(base, "status")))
    kernel_thread = bool(fields["flags"] & _PF_KTHREAD)
    exe = None
    deleted = False
    try:
        exe = os.readlink(os.path.join(base, "exe"))
    except OSError:
        pass
    if exe and exe.endswith(" (deleted)"):
        # a running program whose file is gone: a classic sign of a dropped payload
        exe = exe[:-len(" (deleted)")]
        deleted = True
    comm = read_text(os.path.join(base, "comm"))
    since_boot = round(float(fields["starttime"]) / clk_tck, 2)
    proc = {
        "pid": pid,
        "ppid": fields["ppid"],
        "state": fields["state"],
        "uid": ids["uid"],
        "euid": ids["euid"],
        "gid": ids["gid"],
        "user": users.get(ids["uid"]) if ids["uid"] is not None else None,
        "comm": comm.strip() if comm is not None else None,
        "exe": exe,
        "exe_deleted": deleted,
        "cmdline": parse_cmdline(read_bytes(os.path.join(base, "cmdline"), b"")),
        "unit": parse_cgroup_unit(read_text(os.path.join(base, "cgroup"))),
        "kernel_thread": kernel_thread,
        "started_after_boot": since_boot,
        "started": iso_utc(btime + since_boot) if btime is not None else None,
        "exe_sha256": None,
        "exe_size": None,
        "exe_note": None,
    }
    if hasher is not None and not kernel_thread and exe is not None:
        # /proc/<pid>/exe opens the very file the process runs, even when it was deleted
        # or replaced on disk since
        digest = hasher.hash(os.path.join(base, "exe"))
        proc["exe_sha256"], proc["exe_size"], proc["exe_note"] = digest["sha256"], digest["size"], digest["note"]
    return proc


def read_processes(root="/", hasher=None, users=None):
    """Every visible process, plus ``{socket inode: [pid, ...]}`` from their fd links.

    Socket owners come from the same pass (procfs.socket_inodes), so /proc is walked once.
    """
    proc_root = _path(root, "/proc")
    if users is None:
        users = read_users(root)
    btime = parse_btime(read_text(os.path.join(proc_root, "stat")))
    clk_tck = _clock_ticks()
    processes = []
    owners = {}
    for pid in list_pids(proc_root):
        proc = read_process(pid, proc_root, users, hasher, btime, clk_tck)
        if proc is None:
            continue
        processes.append(proc)
        for inode in sorted(socket_inodes(pid, proc_root)):
            owners.setdefault(inode, []).append(pid)
    return processes, owners


# --- sockets -------------------------------------------------------------------------------

TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
    "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
    "0B": "CLOSING", "0C": "NEW_SYN_RECV",
}
SOCKET_PROTOCOLS = ("tcp", "tcp6", "udp", "udp6", "raw", "raw6")


def parse_proc_net_all(text, proto, byteorder=None):
    """Every socket line of /proc/net/<proto>, whatever its state; odd lines are skipped."""
    if proto not in SOCKET_PROTOCOLS:
        raise ValueError("unknown /proc/net protocol %r" % proto)
    sockets = []
    for line in (text or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            local_hex, local_port = fields[1].split(":")
            remote_hex, remote_port = fields[2].split(":")
            sockets.append({
                "proto": proto,
                "state_code": fields[3].upper(),
                "local_address": decode_address(local_hex, byteorder),
                "local_port": int(local_port, 16),
                "remote_address": decode_address(remote_hex, byteorder),
                "remote_port": int(remote_port, 16),
                "uid": int(fields[7]),
                "inode": int(fields[9]),
            })
        except ValueError:
            continue
    return sockets


def _unspecified(address):
    return address in ("0.0.0.0", "::")


def classify_socket(sock):
    """``listening``, ``established``, ``connecting`` or None (not kept) for one socket.

    TCP: LISTEN, ESTABLISHED, SYN_SENT (an outgoing attempt: a beacon to a dead server
    shows only here). UDP: bound and unconnected is listening, connected is established.
    Raw sockets receive every packet of their protocol: listening (the port column is the
    IP protocol number).
    """
    proto = sock["proto"]
    state = sock["state_code"]
    if proto.startswith("tcp"):
        return {"0A": "listening", "01": "established", "02": "connecting"}.get(state)
    if proto.startswith("udp"):
        if sock["local_port"] == 0:
            return None
        if sock["remote_port"] == 0 and _unspecified(sock["remote_address"]):
            return "listening"
        return "established"
    return "listening"


def socket_view(sock, owners, processes_by_pid, users):
    """The socket as reported: addresses, state name, owning user and processes."""
    proto = sock["proto"]
    if proto.startswith("tcp"):
        state = TCP_STATES.get(sock["state_code"], sock["state_code"])
    elif proto.startswith("udp"):
        state = "UNCONN" if sock["remote_port"] == 0 and _unspecified(sock["remote_address"]) else "CONNECTED"
    else:
        state = "RAW"
    pids = owners.get(sock["inode"], [])
    holders = []
    for pid in pids:
        proc = processes_by_pid.get(pid)
        if proc is not None:
            holders.append({"pid": pid, "comm": proc["comm"], "exe": proc["exe"], "user": proc["user"]})
    return {
        "proto": proto,
        "state": state,
        "local_address": sock["local_address"],
        "local_port": sock["local_port"],
        "remote_address": sock["remote_address"],
        "remote_port": sock["remote_port"],
        "uid": sock["uid"],
        "user": users.get(sock["uid"]),
        "inode": sock["inode"],
        "pids": pids,
        "processes": holders,
    }


def read_sockets(root="/", owners=None, processes=None, users=None):
    """Listening, established and connecting sockets of this network namespace, with owners."""
    proc_root = _path(root, "/proc")
    owners = owners or {}
    users = users or {}
    by_pid = dict((proc["pid"], proc) for proc in processes or [])
    result = {"listening": [], "established": [], "connecting": [], "other_tcp_states": {}}
    for proto in SOCKET_PROTOCOLS:
        for sock in parse_proc_net_all(read_text(os.path.join(proc_root, "net", proto)), proto):
            kind = classify_socket(sock)
            if kind is None:
                if proto.startswith("tcp"):
                    name = TCP_STATES.get(sock["state_code"], sock["state_code"])
                    result["other_tcp_states"][name] = result["other_tcp_states"].get(name, 0) + 1
                continue
            result[kind].append(socket_view(sock, owners, by_pid, users))
    for kind in ("listening", "established", "connecting"):
        result[kind].sort(key=lambda s: (SOCKET_PROTOCOLS.index(s["proto"]), s["local_port"], s["local_address"],
                                         s["remote_address"], s["remote_port"], s["inode"]))
    return result


# --- logins (utmp/wtmp/btmp) -----------------------------------------------------------------
#
# struct utmp as glibc lays it out on x86_64, arm64 and 32-bit ARM (384 bytes; 64-bit glibc
# keeps 32-bit time fields for compatibility with 32-bit programs):
#   0 short ut_type, 2 pad, 4 int ut_pid, 8 char ut_line[32], 40 char ut_id[4],
#   44 char ut_user[32], 76 char ut_host[256], 332 short e_termination, 334 short e_exit,
#   336 int32 ut_session, 340 int32 tv_sec, 344 int32 tv_usec, 348 int32 ut_addr_v6[4],
#   364 char reserved[20]
# musl keeps no utmp at all (its utmp functions are stubs).

UTMP_SIZE = 384
_UTMP_FORMAT = "h2xi32s4s32s256shhiii16s20x"
UTMP_TYPES = {
    0: "EMPTY", 1: "RUN_LVL", 2: "BOOT_TIME", 3: "NEW_TIME", 4: "OLD_TIME", 5: "INIT_PROCESS",
    6: "LOGIN_PROCESS", 7: "USER_PROCESS", 8: "DEAD_PROCESS", 9: "ACCOUNTING",
}


def _cstring(raw):
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _utmp_address(raw):
    if not raw.strip(b"\0"):
        return None
    if not raw[4:].strip(b"\0"):
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    return socket.inet_ntop(socket.AF_INET6, raw)


def parse_utmp(data, byteorder="little"):
    """utmp/wtmp/btmp bytes as a list of records, in file order; EMPTY slots are dropped.

    A trailing partial record (a file being written, or not glibc's layout) is ignored;
    callers compare the size with UTMP_SIZE to say so.
    """
    layout = struct.Struct(("<" if byteorder == "little" else ">") + _UTMP_FORMAT)
    records = []
    for offset in range(0, len(data) - UTMP_SIZE + 1, UTMP_SIZE):
        (ut_type, pid, line, ut_id, user, host, e_term, e_exit, session, tv_sec, tv_usec,
         addr) = layout.unpack_from(data, offset)
        if ut_type == 0:
            continue
        records.append({
            "type": UTMP_TYPES.get(ut_type, str(ut_type)),
            "pid": pid,
            "line": _cstring(line),
            "id": _cstring(ut_id),
            "user": _cstring(user),
            "host": _cstring(host),
            "address": _utmp_address(addr),
            "exit": {"termination": e_term, "status": e_exit},
            "session": session,
            "time": iso_utc(tv_sec + tv_usec / 1000000.0) if tv_sec > 0 else None,
            "epoch": tv_sec,
        })
    return records


def read_range(path, start, end):
    """Bytes ``start`` to ``end`` of a regular file, or None when it cannot be read."""
    try:
        fd = open_readonly(path)
    except OSError:
        return None
    try:
        os.lseek(fd, start, os.SEEK_SET)
        chunks = []
        remaining = end - start
        while remaining > 0:
            chunk = os.read(fd, min(_CHUNK, remaining))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def stat_regular(path):
    """os.stat of ``path`` when it is a regular file, else None."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info if stat.S_ISREG(info.st_mode) else None


def read_tail_bytes(path, limit):
    """The last ``limit`` bytes of a regular file and its size; (None, None) when absent."""
    info = stat_regular(path)
    if info is None:
        return None, None
    return read_range(path, max(0, info.st_size - limit), info.st_size), info.st_size


def read_login_file(path, shown, last):
    """The last ``last`` records of one utmp-format file, read from its end."""
    entry = {"path": shown, "present": False, "size": None, "records": [], "note": None}
    info = stat_regular(path)
    if info is None:
        return entry
    entry.update(present=True, size=info.st_size)
    whole = info.st_size - info.st_size % UTMP_SIZE
    if info.st_size % UTMP_SIZE:
        entry["note"] = "size is not a multiple of %d bytes: truncated, or not glibc's utmp layout" % UTMP_SIZE
    data = read_range(path, max(0, whole - last * UTMP_SIZE), whole)
    if data is None:
        entry["note"] = "not readable"
        return entry
    entry["records"] = parse_utmp(data, sys.byteorder)
    return entry


def read_logins(root="/", last=50):
    """Who is logged in (utmp USER_PROCESS), and the last ``last`` wtmp and btmp records.

    A utmp record outlives a session that crashed: ``alive`` says whether its pid still runs.
    """
    utmp = None
    for candidate in UTMP_PATHS:
        # utmp holds one slot per terminal line: a few hundred slots is already a big system
        utmp = read_login_file(_path(root, candidate), candidate, 1024)
        if utmp["present"]:
            break
    if not utmp["present"]:
        utmp = {"path": None, "present": False, "size": None, "records": [],
                "note": "no utmp file (%s): this system does not record sessions" % ", ".join(UTMP_PATHS)}
    logged_in = []
    for rec in utmp["records"]:
        if rec["type"] == "USER_PROCESS":
            logged_in.append(dict(rec, alive=os.path.isdir(_path(root, "/proc/%d" % rec["pid"]))))
    return {
        "logged_in": logged_in,
        "utmp": utmp,
        "wtmp": read_login_file(_path(root, WTMP_PATH), WTMP_PATH, last),
        "btmp": read_login_file(_path(root, BTMP_PATH), BTMP_PATH, last),
    }


# --- kernel modules, taint, lockdown ---------------------------------------------------------

def parse_proc_modules(text):
    """/proc/modules lines as dicts; ``taint`` holds the flags in parentheses (e.g. ``OE``)."""
    modules = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) < 6:
            continue
        try:
            size, refs = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        used_by = [name for name in fields[3].strip(",").split(",") if name and name != "-"]
        taint = ""
        if len(fields) > 6 and fields[6].startswith("("):
            taint = fields[6].strip("()")
        modules.append({"name": fields[0], "size": size, "refcount": refs, "used_by": used_by,
                        "state": fields[4], "taint": taint})
    return modules


def read_modules(root="/"):
    text = read_text(_path(root, "/proc/modules"))
    if text is None:
        return {"available": False, "modules": [],
                "reason": "no /proc/modules: the kernel has no loadable module support (or hides it here)"}
    return {"available": True, "modules": parse_proc_modules(text), "reason": None}


# Documentation/admin-guide/tainted-kernels.rst
TAINT_FLAGS = (
    ("P", "proprietary module loaded"), ("F", "module force-loaded"), ("S", "out-of-spec system"),
    ("R", "module force-unloaded"), ("M", "machine check exception"), ("B", "bad page"),
    ("U", "taint requested by user space"), ("D", "kernel died (oops or BUG)"), ("A", "ACPI table overridden"),
    ("W", "kernel warning"), ("C", "staging driver loaded"), ("I", "firmware bug workaround"),
    ("O", "out-of-tree module loaded"), ("E", "unsigned module loaded"), ("L", "soft lockup"),
    ("K", "kernel live-patched"), ("X", "auxiliary taint"), ("T", "built with struct randomization plugin"),
    ("N", "in-kernel test run"), ("J", "fwctl write used"),
)


def decode_taint(value):
    """The flags set in a /proc/sys/kernel/tainted value, as ``{bit, flag, meaning}``."""
    flags = []
    bit = 0
    while value >> bit:
        if value >> bit & 1:
            if bit < len(TAINT_FLAGS):
                letter, meaning = TAINT_FLAGS[bit]
            else:
                letter, meaning = "?", "unknown taint bit"
            flags.append({"bit": bit, "flag": letter, "meaning": meaning})
        bit += 1
    return flags


def parse_lockdown(text):
    """``none [integrity] confidentiality`` -> ``{"mode": "integrity", "modes": [...]}``."""
    if text is None:
        return None
    modes = []
    mode = None
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            word = word[1:-1]
            mode = word
        modes.append(word)
    return {"mode": mode, "modes": modes}


def _read_int(path):
    text = read_text(path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def read_kernel(root="/"):
    tainted = _read_int(_path(root, "/proc/sys/kernel/tainted"))
    lockdown_text = read_text(_path(root, "/sys/kernel/security/lockdown"))
    lockdown = parse_lockdown(lockdown_text)
    cmdline = read_text(_path(root, "/proc/cmdline"))
    return {
        "tainted": tainted,
        "taint_flags": decode_taint(tainted) if tainted is not None else None,
        "lockdown": lockdown,
        "lockdown_note": None if lockdown is not None else
        "no /sys/kernel/security/lockdown: securityfs not mounted here, or a kernel without the lockdown LSM",
        "modules_disabled": _read_int(_path(root, "/proc/sys/kernel/modules_disabled")),
        "kexec_load_disabled": _read_int(_path(root, "/proc/sys/kernel/kexec_load_disabled")),
        "cmdline": cmdline.strip() if cmdline is not None else None,
        "version": (read_text(_path(root, "/proc/version")) or "").strip() or None,
    }


# --- host ----------------------------------------------------------------------------------

def read_host(root="/"):
    proc_root = _path(root, "/proc")
    now = time.time()
    uptime_text = read_text(os.path.join(proc_root, "uptime"))
    try:
        uptime = float(uptime_text.split()[0]) if uptime_text else None
    except (IndexError, ValueError):
        uptime = None
    btime = parse_btime(read_text(os.path.join(proc_root, "stat")))
    namespaces = {}
    for kind in ("net", "pid", "mnt", "uts"):
        try:
            namespaces[kind] = os.readlink(os.path.join(proc_root, "self", "ns", kind))
        except OSError:
            namespaces[kind] = None
    uname = os.uname()
    boot_id = read_text(os.path.join(proc_root, "sys", "kernel", "random", "boot_id"))
    return {
        # the device's own clock: compare with the controller's to spot skew or tampering
        "clock_utc": iso_utc(now),
        "clock_epoch": round(now, 3),
        "hostname": uname[1],
        "kernel_release": uname[2],
        "machine": uname[4],
        "boot_id": boot_id.strip() if boot_id else None,
        "uptime_seconds": uptime,
        "booted": iso_utc(btime) if btime is not None else None,
        "python": "%d.%d.%d" % sys.version_info[:3],
        # the collector's own process chain; collect() trims it to the SSH session
        "collector_pids": ancestors(os.getpid(), proc_root),
        "namespaces": namespaces,
    }


def collector_chain(chain, listener_pids):
    """The collector's own processes: ``chain`` (itself, then its ancestors) up to the SSH session.

    The chain stops before the first process holding a listening socket (the SSH daemon
    that accepted the session) and never includes PID 1: those are part of the device,
    and a comparison must not skip them.
    """
    own = []
    for pid in chain:
        if pid == 1 or pid in listener_pids:
            break
        own.append(pid)
    return own


def read_mounts(root="/"):
    proc_root = _path(root, "/proc")
    text = read_text(os.path.join(proc_root, "self", "mounts"))
    if text is None:
        text = read_text(os.path.join(proc_root, "mounts"))
    return parse_mounts(text)


# --- hashes of chosen files -------------------------------------------------------------------

def has_glob(pattern):
    return any(char in pattern for char in _GLOB_CHARS)


def file_entry(path, shown, hasher):
    """One file's metadata and hash; ``shown`` is the path as the device sees it."""
    entry = {"path": shown, "exists": False}
    try:
        info = os.lstat(path)
    except OSError as err:
        if err.errno not in (errno.ENOENT, errno.ENOTDIR):
            entry.update(exists=None, note="cannot stat: %s" % (err.strerror or err))
        return entry
    kind = ("file" if stat.S_ISREG(info.st_mode) else "dir" if stat.S_ISDIR(info.st_mode)
            else "link" if stat.S_ISLNK(info.st_mode) else "other")
    entry.update(exists=True, type=kind, size=info.st_size, mode="%04o" % stat.S_IMODE(info.st_mode),
                 uid=info.st_uid, gid=info.st_gid, mtime=iso_utc(info.st_mtime), ctime=iso_utc(info.st_ctime),
                 sha256=None, note=None)
    if kind == "link":
        try:
            entry["link_target"] = os.readlink(path)
        except OSError:
            entry["link_target"] = None
    if kind in ("file", "link"):
        digest = hasher.hash(path)
        entry["sha256"], entry["note"] = digest["sha256"], digest["note"]
    elif kind == "dir":
        entry["note"] = "directory: not hashed (list its files with a pattern such as DIR/*)"
    return entry


def list_dir_noatime(path):
    """Names in a directory, read through an O_NOATIME descriptor where allowed (its atime stays)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = None
    if _O_NOATIME:
        try:
            fd = os.open(path, flags | _O_NOATIME)
        except OSError as err:
            if err.errno != errno.EPERM:
                raise
    if fd is None:
        fd = os.open(path, flags)
    try:
        return os.listdir(fd)
    finally:
        os.close(fd)


def expand_pattern(real_pattern):
    """Matches of a glob pattern, sorted; one directory level without touching its atime.

    Like the shell, ``*`` does not match names starting with a dot.
    """
    directory, name = os.path.split(real_pattern)
    if has_glob(directory):
        return sorted(glob.glob(real_pattern))
    try:
        names = list_dir_noatime(directory)
    except OSError:
        return []
    if not name.startswith("."):
        names = [entry for entry in names if not entry.startswith(".")]
    return sorted(os.path.join(directory, entry) for entry in fnmatch.filter(names, name))


def read_hashes(patterns, hasher, root="/"):
    """Entries for each path or glob pattern, in the given order; no recursion, no walk."""
    entries = []
    seen = set()
    for pattern in patterns:
        if has_glob(pattern):
            prefix = _path(root, "/")
            matches = expand_pattern(_path(root, pattern))
            shown = ["/" + match[len(prefix):].lstrip("/") for match in matches]
            if not matches:
                entries.append({"path": pattern, "exists": False, "note": "pattern matched nothing"})
                continue
            pairs = zip(matches, shown)
        else:
            pairs = [(_path(root, pattern), pattern)]
        for real, shown_path in pairs:
            if shown_path in seen:
                continue
            seen.add(shown_path)
            entries.append(file_entry(real, shown_path, hasher))
    return entries


# --- logs ----------------------------------------------------------------------------------

def tail_lines(data, count):
    """The last ``count`` complete lines of ``data`` (bytes), decoded; a cut first line is dropped."""
    if not data or count <= 0:
        return []
    text = data.decode("utf-8", "replace")
    lines = text.splitlines()
    return lines[-count:]


def read_log_file(path, count, root="/"):
    real = _path(root, path)
    data, size = read_tail_bytes(real, LOG_TAIL_MAX_BYTES)
    if size is None:
        return {"path": path, "present": False, "lines": []}
    entry = {"path": path, "present": True, "size": size, "lines": [], "note": None}
    try:
        entry["mtime"] = iso_utc(os.stat(real).st_mtime)
    except OSError:
        entry["mtime"] = None
    if data is None:
        entry["note"] = "not readable"
        return entry
    if size > len(data):
        # the read started mid-file: its first line is probably cut
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    entry["lines"] = tail_lines(data, count)
    return entry


def find_tool(name, root="/", path_dirs=None):
    """The absolute path of an executable ``name`` (BusyBox applet links included), or None."""
    if path_dirs is None:
        path_dirs = list(os.get_exec_path())
        path_dirs.extend(d for d in STANDARD_BIN_DIRS if d not in path_dirs)
    for directory in path_dirs:
        if not os.path.isabs(directory):
            continue
        candidate = _path(root, os.path.join(directory, name))
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.join(directory, name)
    return None


def run_tool(run, argv, count=None):
    """Run a read-only command; its output as lines (the last ``count``) with rc and stderr."""
    rc, out, err = run(argv)
    lines = (out or "").splitlines()
    if count is not None:
        lines = lines[-count:] if count > 0 else []
    return {"command": " ".join(argv), "rc": rc, "lines": lines, "stderr": (err or "").strip()[-2000:] or None}


def read_logs(files, count, root="/", run=None):
    result = {"files": [read_log_file(path, count, root) for path in files], "logread": None, "journal": None}
    logread = find_tool("logread", root)
    if logread is None:
        result["logread"] = {"available": False, "reason": "no logread (BusyBox syslogd ring buffer reader)"}
    elif run is not None:
        result["logread"] = dict(available=True, **run_tool(run, [logread], count))
    journalctl = find_tool("journalctl", root)
    if journalctl is None:
        result["journal"] = {"available": False, "reason": "no journalctl"}
    elif run is not None:
        result["journal"] = dict(available=True, **run_tool(
            run, [journalctl, "--no-pager", "--quiet", "--utc", "-o", "short-iso", "-n", str(count)], count))
    return result


# --- firewall ------------------------------------------------------------------------------

def nft_listing_decision(proc_modules_text, builtin_text, sys_module_present):
    """Whether ``nft list ruleset`` may run without changing the kernel, and why.

    Asking nf_tables over netlink makes the kernel auto-load the module when it is not
    loaded: a change on the device under investigation. When the module is demonstrably
    absent, no nftables ruleset can be active, which is the answer without asking.
    """
    if sys_module_present:
        return True, "nf_tables is loaded"
    if proc_modules_text is None:
        return True, "kernel without loadable modules: listing cannot load anything"
    if "nf_tables" in set(m["name"] for m in parse_proc_modules(proc_modules_text)):
        return True, "nf_tables is loaded"
    for line in (builtin_text or "").splitlines():
        if line.strip().endswith("/nf_tables.ko"):
            return True, "nf_tables is built into the kernel"
    return False, ("nf_tables is not loaded, so no nftables ruleset is active; not listing it because nft would "
                   "make the kernel load the module")


def read_firewall(root="/", run=None):
    nft = find_tool("nft", root)
    if nft is None:
        return {"tool": "nft", "available": False, "ruleset": None,
                "reason": "nft is not installed: the nftables ruleset cannot be read without it (the kernel "
                          "offers no /proc or /sys view of it)"}
    release = os.uname()[2]
    builtin = read_file_text(_path(root, "/lib/modules/%s/modules.builtin" % release))
    allowed, why = nft_listing_decision(read_text(_path(root, "/proc/modules")), builtin,
                                        os.path.isdir(_path(root, "/sys/module/nf_tables")))
    entry = {"tool": "nft", "path": nft, "available": True, "ruleset": None, "reason": why}
    if not allowed or run is None:
        entry["command"] = None
        return entry
    argv = [nft, "-j", "list", "ruleset"]
    rc, out, err = run(argv)
    entry.update(command=" ".join(argv), rc=rc, stderr=(err or "").strip() or None,
                 sha256=hashlib.sha256((out or "").encode("utf-8")).hexdigest())
    if rc == 0:
        try:
            entry["ruleset"] = json.loads(out).get("nftables", [])
        except ValueError as err_json:
            entry["reason"] = "nft output is not JSON: %s" % err_json
    return entry


# --- the whole snapshot ----------------------------------------------------------------------

def validate_params(params):
    """Every problem with the module's parameters, as one list of messages."""
    problems = []
    for key in ("hash_max_bytes", "log_lines", "login_records"):
        if params.get(key) is not None and params[key] < 0:
            problems.append("%s must be 0 or more, got %d" % (key, params[key]))
    for key in ("hash_paths", "log_files"):
        for path in params.get(key) or []:
            if not path or not path.startswith("/"):
                problems.append("%s entries must be absolute paths, got %r" % (key, path))
    return problems


def select_sections(sections):
    if not sections or "all" in sections:
        return list(SECTIONS)
    return [name for name in SECTIONS if name in sections]


def collect(sections, params, run=None, root="/"):
    """The snapshot (one dict per section) and ``{section: error}`` for sections that failed.

    A section that fails does not cost the others; processes are read first because
    sockets take their owners from the same pass.
    """
    wanted = select_sections(sections)
    hasher = Hasher(params.get("hash_max_bytes", DEFAULT_HASH_MAX_BYTES))
    users = read_users(root)
    snapshot = {"schema": SCHEMA, "sections": wanted}
    errors = {}
    processes, owners = [], {}
    need_procs = "processes" in wanted or "sockets" in wanted

    def guarded(name, reader):
        try:
            snapshot[name] = reader()
        except Exception as exc:  # pylint: disable=broad-except
            snapshot[name] = None
            errors[name] = "%s: %s" % (type(exc).__name__, exc)

    if need_procs:
        try:
            processes, owners = read_processes(
                root, hasher if params.get("hash_executables", True) else None, users)
        except Exception as exc:  # pylint: disable=broad-except
            errors["processes"] = "%s: %s" % (type(exc).__name__, exc)
    readers = {
        "host": lambda: read_host(root),
        "processes": lambda: processes,
        "sockets": lambda: read_sockets(root, owners, processes, users),
        "logins": lambda: read_logins(root, params.get("login_records", 50)),
        "modules": lambda: read_modules(root),
        "mounts": lambda: read_mounts(root),
        "firewall": lambda: read_firewall(root, run),
        "logs": lambda: read_logs(params.get("log_files") or [], params.get("log_lines", 200), root, run),
        "hashes": lambda: read_hashes(params.get("hash_paths") or [], hasher, root),
        "kernel": lambda: read_kernel(root),
    }
    for name in wanted:
        if name == "processes" and "processes" in errors:
            snapshot[name] = None
            continue
        guarded(name, readers[name])
    if snapshot.get("host"):
        if snapshot.get("sockets"):
            holders = set(pid for sock in snapshot["sockets"]["listening"] for pid in sock["pids"])
        else:
            if not need_procs:
                _procs, owners = read_processes(root, None, users)
            inodes = set(sock["inode"] for sock in listening_sockets(_path(root, "/proc")))
            holders = set(pid for inode in inodes for pid in owners.get(inode, []))
        snapshot["host"]["collector_pids"] = collector_chain(snapshot["host"]["collector_pids"], holders)
    snapshot["hash_stats"] = dict(hasher.stats, max_bytes=hasher.max_bytes)
    return snapshot, errors


def summarize(snapshot):
    """Counts for the task output; the full data is in the snapshot."""
    summary = {}
    if snapshot.get("processes") is not None:
        procs = snapshot["processes"]
        summary["processes"] = len(procs)
        summary["deleted_executables"] = len([p for p in procs if p.get("exe_deleted")])
    if snapshot.get("sockets") is not None:
        for kind in ("listening", "established", "connecting"):
            summary[kind] = len(snapshot["sockets"][kind])
    if snapshot.get("logins") is not None:
        summary["logged_in"] = len(snapshot["logins"]["logged_in"])
    if snapshot.get("modules") is not None:
        summary["modules"] = len(snapshot["modules"]["modules"]) if snapshot["modules"]["available"] else None
    if snapshot.get("hashes") is not None:
        summary["files_hashed"] = len([e for e in snapshot["hashes"] if e.get("sha256")])
    if snapshot.get("kernel") is not None:
        summary["tainted"] = snapshot["kernel"]["tainted"]
    if snapshot.get("firewall") is not None:
        summary["firewall"] = ("%d objects" % len(snapshot["firewall"]["ruleset"])
                               if snapshot["firewall"].get("ruleset") is not None else "not read")
    return summary
