# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.procfs import (
    ancestors,
    decode_address,
    describe_listener,
    is_loopback,
    list_pids,
    listener_allowed,
    listening_sockets,
    listening_sockets_with_owners,
    parse_cgroup_unit,
    parse_cmdline,
    parse_meminfo,
    parse_mounts,
    parse_os_release,
    parse_proc_net,
    parse_stat_ppid,
    process_info,
    read_bytes,
    socket_owners,
    unescape_mount_field,
    unexpected_listeners_summary,
)

# Samples as printed by a little-endian (x86_64/arm64) kernel.
TCP = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 16213 1 0000000000000000 100 0 0 10 0\n"
    "   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   104        0 17420 1 0000000000000000 100 0 0 10 0\n"
    "   2: 0F02000A:0016 0202000A:D4C2 01 00000000:00000000 02:00097C4B 00000000     0        0 19311 4 0000000000000000 20 4 31 10 -1\n"
    "   3: 0100007F:0CEA 0100007F:B2A4 06 00000000:00000000 03:00001521 00000000     0        0 0 3 0000000000000000\n"
)

TCP6 = (
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
    "inode\n"
    "   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
    "16215 1 0000000000000000 100 0 0 10 0\n"
    "   1: 00000000000000000000000001000000:0277 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
    "18001 1 0000000000000000 100 0 0 10 0\n"
    "   2: 000080FE000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
    "18002 1 0000000000000000 100 0 0 10 0\n"
    "   3: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000    33        0 "
    "18003 1 0000000000000000 100 0 0 10 0\n"
    "   4: B80D0120000000000000000010000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
    "18004 1 0000000000000000 100 0 0 10 0\n"
    "   5: 0000000000000000FFFF00000F02000A:0016 0000000000000000FFFF00000202000A:D4C4 01 00000000:00000000 02:00097C4B 00000000     0        0 "
    "19312 4 0000000000000000 20 4 31 10 -1\n"
    "   6: 0000000000000000000000000000000000:0019 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        "
    "0 19313 1 0000000000000000 100 0 0 10 0\n"
    "   7: truncated line\n"
)

UDP = (
    "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
    "  411: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 17895 2 0000000000000000 0\n"
    "  500: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 16632 2 0000000000000000 0\n"
    "  812: 0F02000A:A1B2 08080808:0035 01 00000000:00000000 00:00000000 00000000  1000        0 25001 2 0000000000000000 0\n"
    "  813: 0F02000A:A1B3 08080808:0035 07 00000000:00000000 00:00000000 00000000  1000        0 25002 2 0000000000000000 0\n"
    "  900: 00000000:0000 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 25003 2 0000000000000000 0\n"
)

UDP6 = (
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
    "inode ref pointer drops\n"
    "  177: 00000000000000000000000000000000:0222 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 "
    "16870 2 0000000000000000 0\n"
    "  178: 00000000000000000000000001000000:14E9 00000000000000000000000001000000:8000 01 00000000:00000000 00:00000000 00000000     0        0 "
    "16871 2 0000000000000000 0\n"
)


@pytest.mark.parametrize("hexaddr, byteorder, expected", [
    ("0100007F", "little", "127.0.0.1"),
    ("00000000", "little", "0.0.0.0"),
    ("0F02000A", "little", "10.0.2.15"),
    ("0101A8C0", "little", "192.168.1.1"),
    ("7F000001", "big", "127.0.0.1"),
    ("C0A80101", "big", "192.168.1.1"),
    ("00000000000000000000000000000000", "little", "::"),
    ("00000000000000000000000001000000", "little", "::1"),
    ("000080FE000000000000000001000000", "little", "fe80::1"),
    ("0000000000000000FFFF00000100007F", "little", "::ffff:127.0.0.1"),
    ("B80D0120000000000000000010000000", "little", "2001:db8::10"),
    ("00000000000000000000000000000001", "big", "::1"),
    ("20010DB8000000000000000000000010", "big", "2001:db8::10"),
])
def test_decode_address(hexaddr, byteorder, expected):
    assert decode_address(hexaddr, byteorder) == expected


@pytest.mark.parametrize("bad", ["", "0100", "0100007F00"])
def test_decode_address_rejects_odd_lengths(bad):
    with pytest.raises(ValueError):
        decode_address(bad, "little")


@pytest.mark.parametrize("text, proto, expected", [
    (TCP, "tcp", [
        {"proto": "tcp", "family": 4, "address": "0.0.0.0", "port": 22, "inode": 16213, "uid": 0},
        {"proto": "tcp", "family": 4, "address": "127.0.0.1", "port": 3306, "inode": 17420, "uid": 104},
    ]),
    (TCP6, "tcp6", [
        {"proto": "tcp6", "family": 6, "address": "::", "port": 22, "inode": 16215, "uid": 0},
        {"proto": "tcp6", "family": 6, "address": "::1", "port": 631, "inode": 18001, "uid": 0},
        {"proto": "tcp6", "family": 6, "address": "fe80::1", "port": 80, "inode": 18002, "uid": 0},
        {"proto": "tcp6", "family": 6, "address": "::ffff:127.0.0.1", "port": 8080, "inode": 18003, "uid": 33},
        {"proto": "tcp6", "family": 6, "address": "2001:db8::10", "port": 443, "inode": 18004, "uid": 0},
    ]),
    (UDP, "udp", [
        {"proto": "udp", "family": 4, "address": "0.0.0.0", "port": 68, "inode": 17895, "uid": 0},
        {"proto": "udp", "family": 4, "address": "127.0.0.53", "port": 53, "inode": 16632, "uid": 101},
    ]),
    (UDP6, "udp6", [
        {"proto": "udp6", "family": 6, "address": "::", "port": 546, "inode": 16870, "uid": 0},
    ]),
    ("", "tcp", []),
    (None, "udp6", []),
    (TCP.splitlines()[0] + "\n", "tcp", []),
])
def test_parse_proc_net_keeps_only_listeners(text, proto, expected):
    # TCP: LISTEN only; ESTABLISHED, TIME_WAIT and malformed lines (34 hex digits, truncated) drop out.
    # UDP: bound, unconnected sockets only (connected, remote set, or port 0 drop out).
    assert parse_proc_net(text, proto, byteorder="little") == expected


def test_parse_proc_net_big_endian_host():
    text = TCP.splitlines()[0] + "\n   0: 7F000001:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7 1 0 100 0 0 10 0\n"
    assert parse_proc_net(text, "tcp", byteorder="big")[0]["address"] == "127.0.0.1"


def test_parse_proc_net_rejects_unknown_proto():
    with pytest.raises(ValueError):
        parse_proc_net(TCP, "sctp")


@pytest.mark.skipif(sys.byteorder != "little", reason="the samples are as a little-endian kernel prints them")
@pytest.mark.parametrize("files, expected", [
    ({"tcp": TCP, "tcp6": TCP6, "udp": UDP, "udp6": UDP6}, [
        ("tcp", 22), ("tcp", 3306), ("tcp6", 22), ("tcp6", 80), ("tcp6", 443), ("tcp6", 631), ("tcp6", 8080),
        ("udp", 53), ("udp", 68), ("udp6", 546),
    ]),
    # A kernel without IPv6 has no tcp6/udp6 files: that is no sockets, not an error.
    ({"tcp": TCP}, [("tcp", 22), ("tcp", 3306)]),
    ({}, []),
])
def test_listening_sockets_reads_a_proc_tree(tmp_path, files, expected):
    net = tmp_path / "net"
    net.mkdir()
    for name, text in files.items():
        (net / name).write_text(text)
    found = listening_sockets(str(tmp_path))
    assert [(s["proto"], s["port"]) for s in found] == expected


def test_listening_sockets_missing_proc_root(tmp_path):
    assert listening_sockets(str(tmp_path / "nope")) == []


MEMINFO = """\
MemTotal:         503872 kB
MemFree:          211340 kB
MemAvailable:     402116 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
Bogus line
Weird:      notanumber kB
"""


@pytest.mark.parametrize("text, expected", [
    (MEMINFO, {"MemTotal": 503872, "MemFree": 211340, "MemAvailable": 402116, "HugePages_Total": 0, "Hugepagesize": 2048}),
    ("", {}),
    (None, {}),
])
def test_parse_meminfo(text, expected):
    assert parse_meminfo(text) == expected


@pytest.mark.parametrize("value, expected", [
    ("/mnt/usb\\040stick", "/mnt/usb stick"),
    ("/a\\011tab\\012nl", "/a\ttab\nnl"),
    ("C:\\134share", "C:\\share"),
    ("/plain", "/plain"),
    ("/not\\08escape", "/not\\08escape"),
])
def test_unescape_mount_field(value, expected):
    assert unescape_mount_field(value) == expected


MOUNTS = """\
rootfs / rootfs rw 0 0
/dev/root /rom squashfs ro,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,noatime 0 0
overlayfs:/overlay / overlay rw,noatime,lowerdir=/,upperdir=/overlay/upper,workdir=/overlay/work 0 0
/dev/sda1 /media/My\\040Disk vfat rw,relatime,fmask=0022 0 0
"""


def test_parse_mounts():
    mounts = parse_mounts(MOUNTS)
    assert [m["mountpoint"] for m in mounts] == ["/", "/rom", "/proc", "/", "/media/My Disk"]
    assert mounts[3] == {
        "device": "overlayfs:/overlay",
        "mountpoint": "/",
        "fstype": "overlay",
        "options": ["rw", "noatime", "lowerdir=/", "upperdir=/overlay/upper", "workdir=/overlay/work"],
    }
    assert mounts[4]["options"] == ["rw", "relatime", "fmask=0022"]


@pytest.mark.parametrize("text, expected", [
    ("", []),
    (None, []),
    ("# fstab comment\n\nshort line\n", []),
])
def test_parse_mounts_skips_junk(text, expected):
    assert parse_mounts(text) == expected


OS_RELEASE = """\
# generated by the build
NAME="OpenWrt"
VERSION="23.05.3"
ID=openwrt
ID_LIKE="lede openwrt"
PRETTY_NAME="OpenWrt 23.05.3"
VERSION_ID='23.05.3'
BUILD_ID="r23809-234f1a2efa"
QUOTED="say \\"hi\\" for \\$5"
EMPTY=
  SPACED = "padded"
not a key line
1BAD=x
"""


@pytest.mark.parametrize("key, expected", [
    ("NAME", "OpenWrt"),
    ("ID", "openwrt"),
    ("ID_LIKE", "lede openwrt"),
    ("PRETTY_NAME", "OpenWrt 23.05.3"),
    ("VERSION_ID", "23.05.3"),
    ("QUOTED", 'say "hi" for $5'),
    ("EMPTY", ""),
    ("SPACED", "padded"),
])
def test_parse_os_release_values(key, expected):
    assert parse_os_release(OS_RELEASE)[key] == expected


def test_parse_os_release_skips_comments_and_junk():
    parsed = parse_os_release(OS_RELEASE)
    assert "1BAD" not in parsed
    assert not [k for k in parsed if " " in k or k.startswith("#")]
    assert parse_os_release(None) == {}


def test_read_bytes(tmp_path):
    path = tmp_path / "cmdline"
    path.write_bytes(b"/sbin/init\0splash\0")
    assert read_bytes(str(path)) == b"/sbin/init\0splash\0"
    assert read_bytes(str(tmp_path / "missing"), b"") == b""


# --- processes and socket owners ---------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    (b"python3\0-m\0http.server\08081\0", ["python3", "-m", "http.server", "8081"]),
    (b"sshd: root@notty", ["sshd: root@notty"]),
    (b"", []),
    (None, []),
])
def test_parse_cmdline(raw, expected):
    assert parse_cmdline(raw) == expected


@pytest.mark.parametrize("text, expected", [
    ("412 (python3) S 1 412 412 0 -1 4194560 1011", 1),
    ("77 (a) b (c) d) R 12 77 77 0", 12),
    ("1 (init) S 0 1 1 0", 0),
    ("garbage", None),
    (None, None),
])
def test_parse_stat_ppid(text, expected):
    assert parse_stat_ppid(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("0::/system.slice/ssh.service\n", "ssh.service"),
    ("0::/system.slice/system-getty.slice/getty@tty1.service\n", "getty@tty1.service"),
    ("0::/user.slice/user-0.slice/session-3.scope\n", "session-3.scope"),
    ("12:cpu,cpuacct:/system.slice/cron.service\n1:name=systemd:/system.slice/cron.service\n0::/\n", "cron.service"),
    ("0::/\n", None),
    ("0::/openrc.sshd\n", None),
    ("", None),
    (None, None),
])
def test_parse_cgroup_unit(text, expected):
    assert parse_cgroup_unit(text) == expected


def fake_proc_tree(tmp_path):
    """Two processes holding listening sockets, one holding a connected one, pid 1 without fds."""
    net = tmp_path / "net"
    net.mkdir()
    (net / "tcp").write_text(TCP)
    (net / "udp").write_text(UDP)
    procs = {
        1: ("init", b"/sbin/init\0", "0::/init.scope\n", 0, {}),
        412: ("python3", b"python3\0-m\0http.server\0", "0::/\n", 1, {"3": "socket:[16213]", "4": "/dev/null"}),
        413: ("python3", b"python3\0worker\0", "0::/\n", 412, {"3": "socket:[16213]"}),
        500: ("dhclient", b"dhclient\0eth0\0", "0::/system.slice/ifup@eth0.service\n", 1,
              {"5": "socket:[17895]", "6": "socket:[99999]", "7": "pipe:[1234]"}),
    }
    for pid, (comm, cmdline, cgroup, ppid, fds) in procs.items():
        base = tmp_path / str(pid)
        (base / "fd").mkdir(parents=True)
        (base / "comm").write_text(comm + "\n")
        (base / "cmdline").write_bytes(cmdline)
        (base / "cgroup").write_text(cgroup)
        (base / "stat").write_text("%d (%s) S %d 1 1 0" % (pid, comm, ppid))
        for fd, target in fds.items():
            os.symlink(target, str(base / "fd" / fd))
    return str(tmp_path)


def test_socket_owners_and_process_info(tmp_path):
    proc = fake_proc_tree(tmp_path)
    assert list_pids(proc) == [1, 412, 413, 500]
    assert socket_owners(proc) == {16213: [412, 413], 17895: [500], 99999: [500]}
    assert socket_owners(proc, {17895}) == {17895: [500]}
    info = process_info(500, proc)
    assert info == {"pid": 500, "ppid": 1, "comm": "dhclient", "exe": None, "cmdline": ["dhclient", "eth0"],
                    "unit": "ifup@eth0.service"}
    assert ancestors(413, proc) == [413, 412, 1]
    assert list_pids(str(tmp_path / "missing")) == []


@pytest.mark.skipif(sys.byteorder != "little", reason="the samples are as a little-endian kernel prints them")
def test_listening_sockets_with_owners(tmp_path):
    proc = fake_proc_tree(tmp_path)
    found = dict(((s["proto"], s["port"]), s) for s in listening_sockets_with_owners(proc))
    assert [p["pid"] for p in found[("tcp", 22)]["processes"]] == [412, 413]
    assert found[("udp", 68)]["processes"][0]["unit"] == "ifup@eth0.service"
    # owned by nothing visible (another namespace, or not readable without root)
    assert found[("tcp", 3306)]["processes"] == []
    assert describe_listener(found[("tcp", 22)]) == (
        "tcp 0.0.0.0:22 pid 412 python3 (python3 -m http.server); pid 413 python3 (python3 worker)")
    assert describe_listener(found[("tcp", 3306)]) == "tcp 127.0.0.1:3306 owner unknown"


# --- listener allowlist --------------------------------------------------------------------

def sock(proto, address, port, comm=None):
    procs = [{"pid": 9, "comm": comm, "exe": "/usr/sbin/" + comm, "cmdline": [comm]}] if comm else []
    return {"proto": proto, "address": address, "port": port, "processes": procs}


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1", True), ("127.0.0.53", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.1", False),
])
def test_is_loopback(address, expected):
    assert is_loopback(address) is expected


@pytest.mark.parametrize("listener, allowed, ignore_loopback, expected", [
    (sock("tcp", "0.0.0.0", 22), [{"proto": "tcp", "port": 22}], False, True),
    (sock("tcp6", "::", 22), [{"proto": "tcp", "port": 22}], False, True),
    (sock("tcp6", "::", 22), [{"proto": "tcp4", "port": 22}], False, False),
    (sock("udp", "0.0.0.0", 22), [{"proto": "tcp", "port": 22}], False, False),
    (sock("tcp", "0.0.0.0", 8081), [{"proto": "tcp", "port": 22}], False, False),
    (sock("tcp", "10.0.0.5", 80), [{"proto": "tcp", "port": 80, "address": "10.0.0.5"}], False, True),
    (sock("tcp", "0.0.0.0", 80), [{"proto": "tcp", "port": 80, "address": "10.0.0.5"}], False, False),
    (sock("tcp6", "::ffff:10.0.0.5", 80), [{"proto": "tcp", "port": 80, "address": "10.0.0.5"}], False, True),
    (sock("tcp", "127.0.0.1", 631), [{"proto": "tcp", "port": 631, "address": "loopback"}], False, True),
    (sock("tcp", "0.0.0.0", 631), [{"proto": "tcp", "port": 631, "address": "loopback"}], False, False),
    (sock("tcp", "127.0.0.1", 3306), [], True, True),
    (sock("tcp", "127.0.0.1", 3306), [], False, False),
    (sock("tcp", "0.0.0.0", 22, "dropbear"), [{"proto": "tcp", "port": 22, "process": "dropbear"}], False, True),
    (sock("tcp", "0.0.0.0", 22, "telnetd"), [{"proto": "tcp", "port": 22, "process": "dropbear"}], False, False),
    (sock("tcp", "0.0.0.0", 22), [{"proto": "tcp", "port": 22, "process": "dropbear"}], False, False),
])
def test_listener_allowed(listener, allowed, ignore_loopback, expected):
    assert bool(listener_allowed(listener, allowed, ignore_loopback)) is expected


def test_unexpected_listeners_summary_counts_and_describes_each():
    socks = [{"description": "tcp 0.0.0.0:8081 pid 412 python3"}, {"description": "udp [::]:5353 owner unknown"}]
    assert unexpected_listeners_summary(socks) == (
        "2 listener(s) outside the allowlist: tcp 0.0.0.0:8081 pid 412 python3; udp [::]:5353 owner unknown")
