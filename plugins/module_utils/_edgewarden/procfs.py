# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Pure parsers for /proc text, and the few readers that feed them.

Devices may have no procps, iproute2 or ``ss``, so listening sockets, memory and
mounts come straight from /proc. Parsers take text and never touch the filesystem,
so they can be tested from sample text.
"""

from __future__ import annotations

import os
import re
import socket
import sys

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import read_text

NET_PROTOCOLS = ("tcp", "tcp6", "udp", "udp6")

TCP_LISTEN = "0A"
# An unconnected UDP socket sits in TCP_CLOSE (07); with a zero remote it accepts
# datagrams from anyone, which is what "listening" means for UDP.
UDP_UNCONNECTED = "07"

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
_OS_RELEASE_ESCAPE = re.compile(r'\\([\\$"`])')


def read_bytes(path, default=None):
    """The file's raw bytes, or ``default`` when it does not exist or cannot be read.

    For NUL-separated /proc files and binary EFI variables, which text reads mangle.
    """
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return default


def decode_address(hexaddr, byteorder=None):
    """Decode a /proc/net address column (``0100007F`` -> ``127.0.0.1``).

    The kernel prints each 32-bit word of the network-order address as a host-order
    integer, so the bytes are reversed per word on little-endian hosts only; big-endian
    MIPS routers print them in network order.
    """
    if byteorder is None:
        byteorder = sys.byteorder
    raw = bytes.fromhex(hexaddr)
    if len(raw) not in (4, 16):
        raise ValueError("unexpected address length in %r" % hexaddr)
    if byteorder == "little":
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if len(raw) == 4:
        return ".".join(str(octet) for octet in bytearray(raw))
    return socket.inet_ntop(socket.AF_INET6, raw)


def _split_endpoint(column):
    address, port = column.split(":")
    return address, int(port, 16)


def parse_proc_net(text, proto, byteorder=None):
    """Listening sockets from the text of /proc/net/<proto>.

    TCP keeps LISTEN entries; UDP keeps bound, unconnected sockets (remote all zeros).
    Lines that do not parse are skipped: a listing must not fail on one odd line.
    """
    if proto not in NET_PROTOCOLS:
        raise ValueError("unknown /proc/net protocol %r" % proto)
    family = 6 if proto.endswith("6") else 4
    sockets = []
    for line in (text or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            local_hex, port = _split_endpoint(fields[1])
            remote_hex, remote_port = _split_endpoint(fields[2])
            state = fields[3].upper()
            if proto.startswith("tcp"):
                if state != TCP_LISTEN:
                    continue
            elif state != UDP_UNCONNECTED or remote_port != 0 or int(remote_hex, 16) != 0 or port == 0:
                continue
            sockets.append({
                "proto": proto,
                "family": family,
                "address": decode_address(local_hex, byteorder),
                "port": port,
                "inode": int(fields[9]),
                "uid": int(fields[7]),
            })
        except ValueError:
            continue
    return sockets


def listening_sockets(proc_root="/proc"):
    """All listening TCP/UDP sockets of this network namespace, sorted for stable output.

    A missing file (no IPv6, no UDP support built in) means no sockets of that kind.
    """
    sockets = []
    for proto in NET_PROTOCOLS:
        text = read_text(os.path.join(proc_root, "net", proto))
        if text:
            sockets.extend(parse_proc_net(text, proto))
    sockets.sort(key=lambda s: (NET_PROTOCOLS.index(s["proto"]), s["port"], s["address"], s["inode"]))
    return sockets


def parse_meminfo(text):
    """/proc/meminfo as ``{name: int}``; values are kB except the unitless HugePages counts."""
    info = {}
    for line in (text or "").splitlines():
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts:
            continue
        try:
            info[name.strip()] = int(parts[0])
        except ValueError:
            continue
    return info


def unescape_mount_field(value):
    """Undo the octal escapes /proc/mounts uses for space, tab, newline and backslash."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), value)


def parse_mounts(text):
    """/proc/mounts (or /etc/mtab, /etc/fstab) lines as dicts, in file order."""
    mounts = []
    for line in (text or "").splitlines():
        if line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 4:
            continue
        mounts.append({
            "device": unescape_mount_field(fields[0]),
            "mountpoint": unescape_mount_field(fields[1]),
            "fstype": fields[2],
            "options": [unescape_mount_field(opt) for opt in fields[3].split(",")],
        })
    return mounts


def _unquote_os_release(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        inner = value[1:-1]
        if value[0] == '"':
            inner = _OS_RELEASE_ESCAPE.sub(r"\1", inner)
        return inner
    return value


def parse_os_release(text):
    """os-release(5) text as a dict: shell-style ``KEY=value``, quotes removed."""
    release = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            continue
        release[key] = _unquote_os_release(value)
    return release


# --- processes and socket owners -------------------------------------------------------
#
# Who owns a listening socket, without ss, netstat or lsof: every /proc/<pid>/fd/* link
# that reads ``socket:[INODE]`` names the inode a /proc/net line carries. Reading another
# user's fd directory needs root (or CAP_SYS_PTRACE); a socket whose owner cannot be read
# keeps an empty process list instead of failing. In a PID namespace only that namespace's
# processes are visible, which is also the set that can hold its sockets.

_SOCKET_LINK = re.compile(r"^socket:\[(\d+)\]$")
# systemd names the cgroup of a unit after the unit; scopes hold sessions and containers.
_UNIT_SUFFIXES = (".service", ".scope", ".socket", ".mount", ".swap")


def list_pids(proc_root="/proc"):
    """Numeric /proc entries, ascending; an unreadable /proc is no processes."""
    try:
        names = os.listdir(proc_root)
    except OSError:
        return []
    return sorted(int(name) for name in names if name.isdigit())


def parse_cmdline(raw):
    """/proc/<pid>/cmdline bytes as a list of strings (NUL-separated, trailing NUL dropped)."""
    if not raw:
        return []
    return [arg.decode("utf-8", "replace") for arg in raw.rstrip(b"\0").split(b"\0")]


def parse_stat_ppid(text):
    """The parent pid from /proc/<pid>/stat text; comm may hold spaces and parentheses."""
    if not text:
        return None
    rest = text[text.rfind(")") + 1:].split()
    try:
        return int(rest[1])
    except (IndexError, ValueError):
        return None


def parse_cgroup_unit(text):
    """The systemd unit a process runs in, from /proc/<pid>/cgroup text, or None.

    Takes the unified (``0::``) line or the ``name=systemd`` hierarchy, and returns the
    innermost path component that is a unit (``ssh.service``, ``session-3.scope``).
    """
    paths = []
    for line in (text or "").splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        hierarchy, controllers, path = fields
        if (hierarchy == "0" and controllers == "") or controllers == "name=systemd":
            paths.append(path)
    for path in paths:
        for part in reversed(path.strip("/").split("/")):
            if part.endswith(_UNIT_SUFFIXES):
                return part
    return None


def process_info(pid, proc_root="/proc"):
    """One process as plain data: pid, ppid, comm, exe (None when unreadable), cmdline, unit."""
    base = os.path.join(proc_root, str(pid))
    try:
        exe = os.readlink(os.path.join(base, "exe"))
    except OSError:
        exe = None
    if exe and exe.endswith(" (deleted)"):
        exe = exe[:-len(" (deleted)")]
    comm = read_text(os.path.join(base, "comm"))
    return {
        "pid": pid,
        "ppid": parse_stat_ppid(read_text(os.path.join(base, "stat"))),
        "comm": comm.strip() if comm is not None else None,
        "exe": exe,
        "cmdline": parse_cmdline(read_bytes(os.path.join(base, "cmdline"), b"")),
        "unit": parse_cgroup_unit(read_text(os.path.join(base, "cgroup"))),
    }


def socket_inodes(pid, proc_root="/proc"):
    """Inodes of the sockets a process holds open (its fd links); empty when unreadable."""
    fd_dir = os.path.join(proc_root, str(pid), "fd")
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return set()
    inodes = set()
    for name in names:
        try:
            match = _SOCKET_LINK.match(os.readlink(os.path.join(fd_dir, name)))
        except OSError:
            continue  # the fd closed between listdir and readlink
        if match:
            inodes.add(int(match.group(1)))
    return inodes


def socket_owners(proc_root="/proc", inodes=None):
    """``{inode: [pid, ...]}`` for every socket held by a visible process.

    With ``inodes``, only those sockets are kept (the listening ones), so the map stays small.
    A socket shared by a pre-forked server and its workers lists every holder.
    """
    owners = {}
    for pid in list_pids(proc_root):
        for inode in socket_inodes(pid, proc_root):
            if inodes is None or inode in inodes:
                owners.setdefault(inode, []).append(pid)
    return owners


def listening_sockets_with_owners(proc_root="/proc"):
    """``listening_sockets`` plus ``processes``: the holders of each socket as ``process_info`` dicts."""
    sockets = listening_sockets(proc_root)
    owners = socket_owners(proc_root, set(s["inode"] for s in sockets))
    infos = {}
    for sock in sockets:
        procs = []
        for pid in owners.get(sock["inode"], []):
            if pid not in infos:
                infos[pid] = process_info(pid, proc_root)
            procs.append(infos[pid])
        sock["processes"] = procs
    return sockets


def ancestors(pid, proc_root="/proc", limit=64):
    """``pid`` and its parents up to PID 1 (or as far as they can be read)."""
    chain = []
    current = pid
    while current and current not in chain and len(chain) < limit:
        chain.append(current)
        current = parse_stat_ppid(read_text(os.path.join(proc_root, str(current), "stat")))
    return chain


# --- listener allowlist (pure) -----------------------------------------------------------

LISTENER_PROTOS = ("tcp", "udp", "tcp4", "udp4", "tcp6", "udp6")
_ANY_ADDRESS = (None, "", "any", "*")


def _unmapped(address):
    """``::ffff:10.0.0.1`` -> ``10.0.0.1``: a v4-mapped bind is the IPv4 address."""
    if address and address.lower().startswith("::ffff:") and "." in address:
        return address[7:]
    return address


def is_loopback(address):
    address = _unmapped(address) or ""
    return address.startswith("127.") or address == "::1"


def _proto_matches(wanted, proto):
    wanted = (wanted or "").lower()
    if wanted in ("tcp", "udp"):
        return proto.rstrip("6") == wanted
    if wanted in ("tcp4", "udp4"):
        return proto == wanted[:3]
    return proto == wanted


def _address_matches(wanted, address):
    if wanted in _ANY_ADDRESS:
        return True
    if wanted == "loopback":
        return is_loopback(address)
    return _unmapped(str(wanted)).lower() == (_unmapped(address) or "").lower()


def _process_matches(wanted, processes):
    if not wanted:
        return True
    for proc in processes or []:
        names = [proc.get("comm"), os.path.basename(proc.get("exe") or "")]
        if proc.get("cmdline"):
            names.append(os.path.basename(proc["cmdline"][0]))
        if wanted in names:
            return True
    return False


def listener_allowed(sock, allowed, ignore_loopback=False):
    """Why a listening socket is allowed (a short reason), or None when nothing allows it.

    An entry matches on ``proto`` (tcp/udp: both families; tcp4/tcp6...: one), ``port``,
    optional ``address`` (any, loopback, or one address; a v4-mapped bind equals its IPv4
    address) and optional ``process`` (comm, exe or argv[0] basename of a holder).
    """
    if ignore_loopback and is_loopback(sock["address"]):
        return "loopback"
    for index, entry in enumerate(allowed or []):
        if int(entry.get("port", -1)) != sock["port"]:
            continue
        if not _proto_matches(entry.get("proto"), sock["proto"]):
            continue
        if not _address_matches(entry.get("address"), sock["address"]):
            continue
        if not _process_matches(entry.get("process"), sock.get("processes")):
            continue
        return "allowlist entry %d (%s/%s%s)" % (
            index, entry.get("proto"), entry.get("port"),
            "" if entry.get("address") in _ANY_ADDRESS else " on %s" % entry.get("address"))
    return None


def describe_listener(sock):
    """``tcp 0.0.0.0:8081 pid 412 python3 (python3 -m http.server 8081)`` for reports."""
    address = sock["address"]
    shown = "[%s]:%d" % (address, sock["port"]) if ":" in address else "%s:%d" % (address, sock["port"])
    owners = []
    for proc in sock.get("processes") or []:
        text = "pid %d %s" % (proc["pid"], proc.get("comm") or "?")
        if proc.get("unit"):
            text += " [%s]" % proc["unit"]
        if proc.get("cmdline"):
            # one line: scripts passed with -c carry newlines
            text += " (%s)" % " ".join(" ".join(proc["cmdline"]).split())[:120]
        owners.append(text)
    return "%s %s %s" % (sock["proto"], shown, "; ".join(owners) if owners else "owner unknown")


def unexpected_listeners_summary(unexpected):
    """One line for people: how many listeners are outside the allowlist, each described."""
    return "%d listener(s) outside the allowlist: %s" % (
        len(unexpected), "; ".join(sock["description"] for sock in unexpected))
