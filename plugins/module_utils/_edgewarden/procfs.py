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
