# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib
import os
import socket

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import evidence
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.evidence import (
    UTMP_SIZE,
    Hasher,
    classify_socket,
    collect,
    collector_chain,
    decode_taint,
    find_tool,
    nft_listing_decision,
    parse_btime,
    parse_lockdown,
    parse_passwd,
    parse_proc_modules,
    parse_proc_net_all,
    parse_stat,
    parse_status_ids,
    parse_utmp,
    read_hashes,
    read_log_file,
    read_login_file,
    read_logins,
    read_processes,
    read_sockets,
    select_sections,
    summarize,
    tail_lines,
    validate_params,
)

SHA_EMPTY = hashlib.sha256(b"").hexdigest()


# --- utmp: records built byte by byte at glibc's offsets, not with the parser's format --------

def utmp_record(ut_type, pid=0, line="", ut_id="", user="", host="", addr=b"", tv_sec=0, tv_usec=0,
                session=0, term=0, exit_status=0, order="little"):
    rec = bytearray(UTMP_SIZE)

    def put_int(offset, size, value, signed=True):
        rec[offset:offset + size] = int(value).to_bytes(size, order, signed=signed)

    def put_str(offset, size, text):
        raw = text.encode()
        assert len(raw) <= size
        rec[offset:offset + len(raw)] = raw

    put_int(0, 2, ut_type)
    put_int(4, 4, pid)
    put_str(8, 32, line)
    put_str(40, 4, ut_id)
    put_str(44, 32, user)
    put_str(76, 256, host)
    put_int(332, 2, term)
    put_int(334, 2, exit_status)
    put_int(336, 4, session)
    put_int(340, 4, tv_sec)
    put_int(344, 4, tv_usec)
    rec[348:348 + len(addr)] = addr  # ut_addr_v6: network byte order whatever the host's
    return bytes(rec)


LOGIN = utmp_record(7, pid=4242, line="pts/0", ut_id="ts/0", user="root", host="192.168.77.1",
                    addr=socket.inet_pton(socket.AF_INET, "192.168.77.1"), tv_sec=1700000000, tv_usec=500000)
LOGOUT = utmp_record(8, pid=4242, line="pts/0", ut_id="ts/0", tv_sec=1700000100, term=0, exit_status=1)
BOOT = utmp_record(2, line="~", user="reboot", host="6.1.0-18-arm64", tv_sec=1699999000)
V6 = utmp_record(7, pid=77, line="pts/1", ut_id="abcd", user="ops", host="fd77::1",
                 addr=socket.inet_pton(socket.AF_INET6, "fd77::1"), tv_sec=1700000200)
EMPTY = utmp_record(0)


def test_utmp_record_is_384_bytes():
    assert len(LOGIN) == 384


@pytest.mark.parametrize("data, expected", [
    (LOGIN, [{"type": "USER_PROCESS", "pid": 4242, "line": "pts/0", "id": "ts/0", "user": "root",
              "host": "192.168.77.1", "address": "192.168.77.1", "exit": {"termination": 0, "status": 0},
              "session": 0, "time": "2023-11-14T22:13:20Z", "epoch": 1700000000}]),
    (V6, [{"type": "USER_PROCESS", "pid": 77, "line": "pts/1", "id": "abcd", "user": "ops", "host": "fd77::1",
           "address": "fd77::1", "exit": {"termination": 0, "status": 0}, "session": 0,
           "time": "2023-11-14T22:16:40Z", "epoch": 1700000200}]),
    (BOOT + EMPTY + LOGOUT, [
        {"type": "BOOT_TIME", "pid": 0, "line": "~", "id": "", "user": "reboot", "host": "6.1.0-18-arm64",
         "address": None, "exit": {"termination": 0, "status": 0}, "session": 0, "time": "2023-11-14T21:56:40Z",
         "epoch": 1699999000},
        {"type": "DEAD_PROCESS", "pid": 4242, "line": "pts/0", "id": "ts/0", "user": "", "host": "", "address": None,
         "exit": {"termination": 0, "status": 1}, "session": 0, "time": "2023-11-14T22:15:00Z", "epoch": 1700000100}]),
    # a record being appended (or another layout): the partial tail is ignored
    (LOGIN + b"\x07\x00\x00", None),
    (b"", []),
])
def test_parse_utmp(data, expected):
    records = parse_utmp(data, "little")
    if expected is None:
        assert [r["pid"] for r in records] == [4242]
    else:
        assert records == expected


def test_parse_utmp_big_endian():
    rec = utmp_record(7, pid=513, line="ttyS0", user="admin", tv_sec=1700000000, order="big")
    [parsed] = parse_utmp(rec, "big")
    assert (parsed["type"], parsed["pid"], parsed["line"], parsed["user"], parsed["epoch"]) == (
        "USER_PROCESS", 513, "ttyS0", "admin", 1700000000)


def test_read_login_file_reads_only_the_last_records(tmp_path):
    wtmp = tmp_path / "wtmp"
    wtmp.write_bytes(b"".join(utmp_record(7, pid=pid, user="u%d" % pid, tv_sec=1700000000 + pid) for pid in range(1, 6)))
    entry = read_login_file(str(wtmp), "/var/log/wtmp", 2)
    assert entry["present"] and entry["size"] == 5 * 384 and entry["note"] is None
    assert [r["pid"] for r in entry["records"]] == [4, 5]


def test_read_login_file_notes_a_foreign_size(tmp_path):
    wtmp = tmp_path / "wtmp"
    wtmp.write_bytes(LOGIN + LOGOUT + b"\0" * 10)
    entry = read_login_file(str(wtmp), "/var/log/wtmp", 10)
    assert [r["type"] for r in entry["records"]] == ["USER_PROCESS", "DEAD_PROCESS"]
    assert "not a multiple of 384" in entry["note"]
    assert read_login_file(str(tmp_path / "absent"), "/x", 10)["present"] is False


def test_read_logins_marks_live_sessions(tmp_path):
    (tmp_path / "var/run").mkdir(parents=True)
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "proc/4242").mkdir(parents=True)
    stale = utmp_record(7, pid=999, line="pts/3", user="ghost", tv_sec=1690000000)
    (tmp_path / "var/run/utmp").write_bytes(BOOT + LOGIN + stale)
    (tmp_path / "var/log/wtmp").write_bytes(BOOT + LOGIN + LOGOUT)
    logins = read_logins(str(tmp_path), last=50)
    assert logins["utmp"]["path"] == "/var/run/utmp"
    assert [(r["user"], r["alive"]) for r in logins["logged_in"]] == [("root", True), ("ghost", False)]
    assert [r["type"] for r in logins["wtmp"]["records"]] == ["BOOT_TIME", "USER_PROCESS", "DEAD_PROCESS"]
    assert logins["btmp"]["present"] is False


def test_read_logins_without_any_file(tmp_path):
    logins = read_logins(str(tmp_path))
    assert logins["logged_in"] == [] and "does not record sessions" in logins["utmp"]["note"]


# --- /proc parsers -------------------------------------------------------------------------

STAT_FIELDS = "S 1 27 27 0 -1 4194560 110 0 0 0 0 0 0 0 20 0 1 0 312 2453504 204 18446744073709551615"


@pytest.mark.parametrize("text, expected", [
    ("27 (dropbear) " + STAT_FIELDS, {"state": "S", "ppid": 1, "flags": 4194560, "starttime": 312}),
    # comm may hold spaces and parentheses
    ("99 (a) b (c)) R 42 1 1 0 -1 2097216 0 0 0 0 0 0 0 0 20 0 1 0 7 0 0", {
        "state": "R", "ppid": 42, "flags": 2097216, "starttime": 7}),
    ("12 (short) S 1", None),
    ("", None),
    (None, None),
])
def test_parse_stat(text, expected):
    assert parse_stat(text) == expected


def test_parse_status_ids():
    text = "Name:\tsshd\nUid:\t1000\t0\t0\t0\nGid:\t100\t100\t100\t100\n"
    assert parse_status_ids(text) == {"uid": 1000, "euid": 0, "gid": 100, "egid": 100}
    assert parse_status_ids("") == {"uid": None, "euid": None, "gid": None, "egid": None}


@pytest.mark.parametrize("text, expected", [
    ("cpu  1 2 3\nbtime 1699990000\nprocesses 5\n", 1699990000),
    ("cpu 1\n", None),
    ("btime x\n", None),
])
def test_parse_btime(text, expected):
    assert parse_btime(text) == expected


def test_parse_passwd():
    text = "root:x:0:0:root:/root:/bin/sh\n#comment:x:5:5\ntoor:x:0:0::/:/bin/sh\nbad:x:y:0\nnobody:x:65534:65534::/:/bin/false\n"
    assert parse_passwd(text) == {0: "root", 65534: "nobody"}


TCP = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 16213 1\n"
    "   1: 0B4DA8C0:0016 014DA8C0:9CA0 01 00000000:00000000 02:00097C4B 00000000     0        0 19311 4\n"
    "   2: 0B4DA8C0:B2A4 0A0A0A0A:01BB 02 00000000:00000000 01:00000000 00000000  1000        0 19400 2\n"
    "   3: 0100007F:0CEA 0100007F:B2A4 06 00000000:00000000 03:00001521 00000000     0        0 0 3\n"
    "   4: garbage\n"
)
UDP = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
    "   0: 00000000:162B 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 20001 2 0 0\n"
    "   1: 0B4DA8C0:A000 08080808:0035 01 00000000:00000000 00:00000000 00000000     0        0 20002 2 0 0\n"
    "   2: 00000000:0000 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 20003 2 0 0\n"
)
RAW = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
    "   1: 00000000:0001 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 30001 2 0 0\n"
)


def test_parse_proc_net_all_keeps_every_state():
    sockets = parse_proc_net_all(TCP, "tcp", "little")
    assert [(s["state_code"], s["local_address"], s["local_port"], s["remote_address"], s["remote_port"], s["inode"])
            for s in sockets] == [
        ("0A", "0.0.0.0", 22, "0.0.0.0", 0, 16213),
        ("01", "192.168.77.11", 22, "192.168.77.1", 40096, 19311),
        ("02", "192.168.77.11", 45732, "10.10.10.10", 443, 19400),
        ("06", "127.0.0.1", 3306, "127.0.0.1", 45732, 0),
    ]
    with pytest.raises(ValueError):
        parse_proc_net_all(TCP, "sctp")


@pytest.mark.parametrize("proto, text, expected", [
    ("tcp", TCP, ["listening", "established", "connecting", None]),
    ("udp", UDP, ["listening", "established", None]),
    ("raw", RAW, ["listening"]),
])
def test_classify_socket(proto, text, expected):
    assert [classify_socket(s) for s in parse_proc_net_all(text, proto, "little")] == expected


def proc_tree(tmp_path, processes, net=None):
    """A /proc and /etc/passwd under tmp_path: {pid: dict(comm, ppid, uid, exe, cmdline, fds, flags, deleted)}."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text("cpu 1 2 3\nbtime 1700000000\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nops:x:1000:1000::/home/ops:/bin/sh\n")
    for pid, spec in processes.items():
        base = proc / str(pid)
        (base / "fd").mkdir(parents=True)
        (base / "stat").write_text("%d (%s) S %d %d 0 0 -1 %d 0 0 0 0 0 0 0 0 20 0 1 0 250 0 0\n" % (
            pid, spec["comm"], spec.get("ppid", 1), pid, spec.get("flags", 4194560)))
        (base / "status").write_text("Name:\t%s\nUid:\t%d\t%d\t%d\t%d\nGid:\t0\t0\t0\t0\n" % ((spec["comm"],) + (spec.get("uid", 0),) * 4))
        (base / "comm").write_text(spec["comm"] + "\n")
        (base / "cmdline").write_bytes(b"\0".join(a.encode() for a in spec.get("cmdline", [])) + b"\0" if spec.get("cmdline") else b"")
        if spec.get("exe"):
            target = spec["exe"] + (" (deleted)" if spec.get("deleted") else "")
            os.symlink(target, str(base / "exe"))
        for number, inode in enumerate(spec.get("fds", []), 3):
            os.symlink("socket:[%d]" % inode, str(base / "fd" / str(number)))
        os.symlink("/dev/null", str(base / "fd" / "0"))
    if net:
        (proc / "net").mkdir()
        for proto, text in net.items():
            (proc / "net" / proto).write_text(text)
    return str(tmp_path)


def test_read_processes_hashes_each_binary_once_and_maps_sockets(tmp_path):
    binary = tmp_path / "busybox"
    binary.write_bytes(b"\x7fELF busybox")
    other = tmp_path / "payload"
    other.write_bytes(b"\x7fELF payload")
    root = proc_tree(tmp_path, {
        1: {"comm": "init", "ppid": 0, "exe": str(binary), "cmdline": ["init"]},
        27: {"comm": "dropbear", "exe": str(binary), "cmdline": ["/usr/sbin/dropbear", "-F"], "fds": [16213]},
        30: {"comm": "x y (z)", "uid": 1000, "exe": str(other), "cmdline": ["./x y", "-c", "a\nb"], "fds": [19311, 16213]},
        31: {"comm": "ghost", "exe": str(tmp_path / "gone"), "deleted": True, "cmdline": ["/tmp/.x"]},
        2: {"comm": "kthreadd", "ppid": 0, "flags": 0x00208040},
    })
    hasher = Hasher(1024)
    processes, owners = read_processes(root, hasher)
    by_pid = dict((p["pid"], p) for p in processes)
    assert sorted(by_pid) == [1, 2, 27, 30, 31]
    assert by_pid[1]["exe_sha256"] == by_pid[27]["exe_sha256"] == hashlib.sha256(b"\x7fELF busybox").hexdigest()
    assert by_pid[30]["exe_sha256"] == hashlib.sha256(b"\x7fELF payload").hexdigest()
    assert hasher.stats["hashed"] == 2 and hasher.stats["cached"] == 1
    assert (by_pid[30]["comm"], by_pid[30]["uid"], by_pid[30]["user"], by_pid[30]["cmdline"]) == (
        "x y (z)", 1000, "ops", ["./x y", "-c", "a\nb"])
    assert by_pid[31]["exe_deleted"] and by_pid[31]["exe"] == str(tmp_path / "gone")
    assert by_pid[31]["exe_sha256"] is None and by_pid[31]["exe_note"].startswith("cannot stat")
    assert by_pid[2]["kernel_thread"] and by_pid[2]["exe"] is None and by_pid[2]["exe_sha256"] is None
    assert by_pid[27]["started"] == "2023-11-14T22:13:22Z" and by_pid[27]["started_after_boot"] == 2.5
    assert owners == {16213: [27, 30], 19311: [30]}


def test_read_processes_without_hashing(tmp_path):
    binary = tmp_path / "bin"
    binary.write_bytes(b"x")
    root = proc_tree(tmp_path, {5: {"comm": "a", "exe": str(binary)}})
    processes, _owners = read_processes(root, None)
    assert processes[0]["exe_sha256"] is None and processes[0]["exe_note"] is None


def test_read_sockets_names_owners(tmp_path):
    binary = tmp_path / "sshd"
    binary.write_bytes(b"sshd")
    root = proc_tree(tmp_path, {
        2: {"comm": "sshd", "exe": str(binary), "fds": [16213]},
        59: {"comm": "sshd", "exe": str(binary), "ppid": 2, "fds": [19311]},
    }, net={"tcp": TCP, "udp": UDP, "raw": RAW})
    processes, owners = read_processes(root, None)
    sockets = read_sockets(root, owners, processes, {0: "root", 1000: "ops"})
    listen = [(s["proto"], s["local_port"], s["state"], s["pids"]) for s in sockets["listening"]]
    assert listen == [("tcp", 22, "LISTEN", [2]), ("udp", 5675, "UNCONN", []), ("raw", 1, "RAW", [])]
    [est_tcp, est_udp] = sockets["established"]
    assert (est_tcp["remote_address"], est_tcp["remote_port"], est_tcp["user"]) == ("192.168.77.1", 40096, "root")
    assert est_tcp["processes"] == [{"pid": 59, "comm": "sshd", "exe": str(binary), "user": "root"}]
    assert (est_udp["state"], est_udp["remote_port"]) == ("CONNECTED", 53)
    assert [(s["remote_address"], s["user"]) for s in sockets["connecting"]] == [("10.10.10.10", "ops")]
    assert sockets["other_tcp_states"] == {"TIME_WAIT": 1}


# --- hashing -------------------------------------------------------------------------------

def test_hasher_caps_caches_and_never_opens_fifos(tmp_path):
    small = tmp_path / "small"
    small.write_bytes(b"a" * 100)
    big = tmp_path / "big"
    big.write_bytes(b"b" * 101)
    link = tmp_path / "link"
    os.symlink(str(small), str(link))
    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    hasher = Hasher(100)
    assert hasher.hash(str(small)) == {"sha256": hashlib.sha256(b"a" * 100).hexdigest(), "size": 100, "note": None}
    assert hasher.hash(str(link))["sha256"] == hashlib.sha256(b"a" * 100).hexdigest()
    assert hasher.hash(str(big)) == {"sha256": None, "size": 101, "note": "not hashed: larger than hash_max_bytes (100)"}
    assert hasher.hash(str(fifo)) == {"sha256": None, "size": None, "note": "not a regular file"}
    assert hasher.hash(str(empty))["sha256"] == SHA_EMPTY
    assert hasher.hash(str(tmp_path / "nope"))["note"].startswith("cannot stat")
    assert hasher.stats == {"hashed": 2, "cached": 1, "skipped": 1, "bytes": 100}


def test_read_hashes_patterns_links_and_dirs(tmp_path):
    etc = tmp_path / "etc"
    (etc / "cron.d").mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (etc / "cron.d" / "b").write_text("b\n")
    (etc / "cron.d" / "a").write_text("a\n")
    os.symlink("passwd", str(etc / "passwd-link"))
    entries = read_hashes(["/etc/passwd", "/etc/cron.d/*", "/etc/cron.d", "/etc/passwd-link", "/etc/nope",
                           "/etc/none.d/*", "/etc/passwd"], Hasher(), str(tmp_path))
    assert [(e["path"], e["exists"], e.get("type")) for e in entries] == [
        ("/etc/passwd", True, "file"), ("/etc/cron.d/a", True, "file"), ("/etc/cron.d/b", True, "file"),
        ("/etc/cron.d", True, "dir"), ("/etc/passwd-link", True, "link"), ("/etc/nope", False, None),
        ("/etc/none.d/*", False, None)]
    assert entries[1]["sha256"] == hashlib.sha256(b"a\n").hexdigest()
    assert entries[4]["link_target"] == "passwd" and entries[4]["sha256"] == entries[0]["sha256"]
    assert entries[3]["sha256"] is None and "not hashed" in entries[3]["note"]
    assert entries[0]["mode"] == "%04o" % (os.stat(str(etc / "passwd")).st_mode & 0o7777)


def test_patterns_skip_dot_files_unless_asked(tmp_path):
    (tmp_path / "root/.ssh").mkdir(parents=True)
    (tmp_path / "root/.ssh/authorized_keys").write_text("k\n")
    (tmp_path / "root/.hidden").write_text("h\n")
    (tmp_path / "root/visible").write_text("v\n")
    paths = [e["path"] for e in read_hashes(["/root/*", "/root/.h*", "/root/.*/*"], Hasher(), str(tmp_path))]
    assert paths == ["/root/visible", "/root/.hidden", "/root/.ssh/authorized_keys"]


# --- logs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("data, count, expected", [
    (b"a\nb\nc\n", 2, ["b", "c"]),
    (b"a\nb\nc", 5, ["a", "b", "c"]),
    (b"a\n\xff\n", 1, ["\ufffd"]),
    (b"", 3, []),
    (b"a\n", 0, []),
])
def test_tail_lines(data, count, expected):
    assert tail_lines(data, count) == expected


def test_read_log_file_drops_a_cut_first_line(tmp_path):
    log = tmp_path / "var/log/messages"
    log.parent.mkdir(parents=True)
    line = b"x" * 99 + b"\n"
    log.write_bytes(b"first\n" + line * (evidence.LOG_TAIL_MAX_BYTES // 100 + 5) + b"last line\n")
    entry = read_log_file("/var/log/messages", 3, str(tmp_path))
    assert entry["present"] and entry["lines"] == ["x" * 99, "x" * 99, "last line"]
    entry = read_log_file("/var/log/messages", 10 ** 6, str(tmp_path))
    assert "first" not in entry["lines"] and all(len(text) == 99 for text in entry["lines"][:-1])
    assert read_log_file("/var/log/auth.log", 3, str(tmp_path)) == {"path": "/var/log/auth.log", "present": False, "lines": []}


def test_find_tool_takes_busybox_applets(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/busybox").write_text("")
    os.chmod(str(tmp_path / "bin/busybox"), 0o755)
    os.symlink("busybox", str(tmp_path / "bin/logread"))
    (tmp_path / "bin/nft").write_text("")  # not executable
    assert find_tool("logread", str(tmp_path), ["relative", "/bin"]) == "/bin/logread"
    assert find_tool("nft", str(tmp_path), ["/bin"]) is None


# --- modules, kernel, firewall decision ---------------------------------------------------------

MODULES = (
    "nf_tables 356352 3 nft_chain_nat,nft_ct, Live 0x0000000000000000\n"
    "evil 16384 0 - Live 0xffffffffc0a00000 (OE)\n"
    "dccp 110592 1 dccp_ipv4, Loading 0x0000000000000000\n"
    "short line\n"
)


def test_parse_proc_modules():
    assert parse_proc_modules(MODULES) == [
        {"name": "nf_tables", "size": 356352, "refcount": 3, "used_by": ["nft_chain_nat", "nft_ct"], "state": "Live", "taint": ""},
        {"name": "evil", "size": 16384, "refcount": 0, "used_by": [], "state": "Live", "taint": "OE"},
        {"name": "dccp", "size": 110592, "refcount": 1, "used_by": ["dccp_ipv4"], "state": "Loading", "taint": ""},
    ]


@pytest.mark.parametrize("value, flags", [
    (0, []),
    (1, ["P"]),
    (4096 + 8192, ["O", "E"]),
    (1 << 9 | 1 << 30, ["W", "?"]),
])
def test_decode_taint(value, flags):
    assert [f["flag"] for f in decode_taint(value)] == flags


@pytest.mark.parametrize("text, expected", [
    ("none [integrity] confidentiality\n", {"mode": "integrity", "modes": ["none", "integrity", "confidentiality"]}),
    ("[none] integrity confidentiality", {"mode": "none", "modes": ["none", "integrity", "confidentiality"]}),
    (None, None),
])
def test_parse_lockdown(text, expected):
    assert parse_lockdown(text) == expected


@pytest.mark.parametrize("modules, builtin, sys_module, allowed, why", [
    (None, None, False, True, "without loadable modules"),
    ("", None, True, True, "loaded"),
    (MODULES, None, False, True, "loaded"),
    ("dccp 1 0 - Live 0x0\n", "kernel/net/netfilter/nf_tables.ko\n", False, True, "built into"),
    ("dccp 1 0 - Live 0x0\n", "kernel/net/netfilter/nf_tables_set.ko\n", False, False, "not loaded"),
    ("", "", False, False, "would make the kernel load"),
])
def test_nft_listing_decision(modules, builtin, sys_module, allowed, why):
    ok, reason = nft_listing_decision(modules, builtin, sys_module)
    assert ok is allowed and why in reason


# --- whole snapshot ------------------------------------------------------------------------

@pytest.mark.parametrize("params, problems", [
    ({"hash_max_bytes": 1, "log_lines": 0, "login_records": 5, "hash_paths": ["/etc/*"], "log_files": []}, []),
    ({"hash_max_bytes": -1, "log_lines": -2, "login_records": 5, "hash_paths": ["etc/passwd", ""],
      "log_files": ["var/log/x"]},
     ["hash_max_bytes must be 0 or more, got -1", "log_lines must be 0 or more, got -2",
      "hash_paths entries must be absolute paths, got 'etc/passwd'", "hash_paths entries must be absolute paths, got ''",
      "log_files entries must be absolute paths, got 'var/log/x'"]),
])
def test_validate_params_lists_every_problem(params, problems):
    assert validate_params(params) == problems


@pytest.mark.parametrize("sections, expected", [
    (["all"], list(evidence.SECTIONS)),
    (["kernel", "host"], ["host", "kernel"]),
    ([], list(evidence.SECTIONS)),
])
def test_select_sections(sections, expected):
    assert select_sections(sections) == expected


@pytest.mark.parametrize("chain, listeners, expected", [
    ([70, 69, 59, 2, 1], {2}, [70, 69, 59]),
    ([40, 31, 30, 27, 1], {27}, [40, 31, 30]),
    ([40, 1], set(), [40]),
    ([40, 31, 8], set(), [40, 31, 8]),
])
def test_collector_chain(chain, listeners, expected):
    assert collector_chain(chain, listeners) == expected


def tree_state(root):
    """(path, size, mtime_ns, atime_ns) of every entry: reading must change none of them.

    Access times of the fake /proc are left out: listing a real /proc changes nothing on disk.
    """
    state = []
    pending = [root]
    while pending:
        directory = pending.pop()
        # list through O_NOATIME so that taking the picture does not change it
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOATIME)
        try:
            names = os.listdir(fd)
        finally:
            os.close(fd)
        for name in names:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            atime = None if path.startswith(os.path.join(root, "proc")) else info.st_atime_ns
            state.append((path, info.st_size, info.st_mtime_ns, atime))
            if os.path.isdir(path) and not os.path.islink(path):
                pending.append(path)
    return sorted(state)


def test_collect_on_a_tree_reads_everything_and_writes_nothing(tmp_path):
    binary = tmp_path / "usr/sbin/dropbear"
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"dropbear")
    root = proc_tree(tmp_path, {
        1: {"comm": "init", "ppid": 0, "exe": str(binary)},
        27: {"comm": "dropbear", "exe": str(binary), "cmdline": ["/usr/sbin/dropbear", "-F"], "fds": [16213]},
    }, net={"tcp": TCP})
    (tmp_path / "proc/modules").write_text(MODULES)
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/tainted").write_text("12288\n")
    (tmp_path / "proc/mounts").write_text("/dev/root / squashfs ro,relatime 0 0\n")
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "var/log/messages").write_text("one\ntwo\n")
    (tmp_path / "var/log/wtmp").write_bytes(BOOT + LOGIN)
    (tmp_path / "usr/sbin/control").write_bytes(b"read normally")
    # old access times: with relatime, any ordinary read would update them
    for path in (binary, tmp_path / "var/log/messages", tmp_path / "etc/passwd", tmp_path / "usr/sbin",
                 tmp_path / "usr/sbin/control"):
        os.utime(str(path), ns=(10 ** 18, 10 ** 18))
    with open(str(tmp_path / "usr/sbin/control"), "rb") as handle:
        handle.read()
    control_read = os.stat(str(tmp_path / "usr/sbin/control")).st_atime_ns != 10 ** 18
    os.utime(str(tmp_path / "usr/sbin/control"), ns=(10 ** 18, 10 ** 18))
    before = tree_state(root)
    params = {"hash_paths": ["/etc/passwd", "/usr/sbin/*"], "hash_max_bytes": 1024, "hash_executables": True,
              "log_files": ["/var/log/messages", "/var/log/auth.log"], "log_lines": 10, "login_records": 5}
    snapshot, errors = collect(["all"], params, run=None, root=root)
    assert errors == {}
    assert tree_state(root) == before
    # the check above proves something only where reads do update access times (not noatime)
    assert control_read or os.statvfs(root).f_flag & getattr(os, "ST_NOATIME", 1024)
    assert snapshot["schema"] == 1 and snapshot["sections"] == list(evidence.SECTIONS)
    assert [p["pid"] for p in snapshot["processes"]] == [1, 27]
    assert snapshot["sockets"]["listening"][0]["processes"][0]["comm"] == "dropbear"
    assert [m["name"] for m in snapshot["modules"]["modules"]] == ["nf_tables", "evil", "dccp"]
    assert [f["flag"] for f in snapshot["kernel"]["taint_flags"]] == ["O", "E"]
    assert snapshot["mounts"][0]["fstype"] == "squashfs"
    assert snapshot["logs"]["files"][0]["lines"] == ["one", "two"]
    assert [r["type"] for r in snapshot["logins"]["wtmp"]["records"]] == ["BOOT_TIME", "USER_PROCESS"]
    assert [e["path"] for e in snapshot["hashes"] if e.get("sha256")] == [
        "/etc/passwd", "/usr/sbin/control", "/usr/sbin/dropbear"]
    assert snapshot["hash_stats"]["hashed"] == 3 and snapshot["hash_stats"]["cached"] == 2
    assert summarize(snapshot)["processes"] == 2 and summarize(snapshot)["listening"] == 1
    assert snapshot["host"]["collector_pids"] == [os.getpid()]


def test_collect_reports_a_failing_section_and_keeps_the_others(tmp_path):
    root = proc_tree(tmp_path, {})
    snapshot, errors = collect(["hashes", "kernel"], {"hash_paths": [None]}, root=root)
    assert list(errors) == ["hashes"] and snapshot["hashes"] is None
    assert snapshot["kernel"]["tainted"] is None and "securityfs" in snapshot["kernel"]["lockdown_note"]
    assert "processes" not in snapshot
