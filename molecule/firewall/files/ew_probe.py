# SPDX-License-Identifier: GPL-3.0-or-later
"""Real-packet probes for the firewall scenario, run on the lab hosts (stdlib only).

  python3 ew_probe.py connect ADDR PORT [TIMEOUT]  exit 0 connected, 1 timed out (dropped), 2 refused
  python3 ew_probe.py connect-many ADDR PORT N     N parallel short connects; prints how many got through
  python3 ew_probe.py listen-tcp PORT              accept and close connections forever (IPv4 and IPv6)
  python3 ew_probe.py listen-udp PORT FILE         append every datagram received to FILE
  python3 ew_probe.py send-udp ADDR PORT TEXT      one datagram
  python3 ew_probe.py ping ADDR COUNT              COUNT echo requests at once; prints the replies seen
"""

import os
import socket
import struct
import sys
import threading
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def connect(addr, port, timeout=3.0):
    sock = socket.socket(family(addr), socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((addr, int(port)))
        return 0
    except socket.timeout:
        return 1
    except ConnectionRefusedError:
        return 2
    except OSError:
        return 1
    finally:
        sock.close()


def connect_many(addr, port, count):
    results = []

    def one():
        results.append(connect(addr, port, 1.0))
    threads = [threading.Thread(target=one) for dummy in range(int(count))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(len([r for r in results if r == 0]))
    return 0


def dual_stack(kind):
    sock = socket.socket(socket.AF_INET6, kind)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def listen_tcp(port):
    sock = dual_stack(socket.SOCK_STREAM)
    sock.bind(("::", int(port)))
    sock.listen(64)
    while True:
        conn, _peer = sock.accept()
        conn.close()


def listen_udp(port, path):
    sock = dual_stack(socket.SOCK_DGRAM)
    sock.bind(("::", int(port)))
    while True:
        data, _peer = sock.recvfrom(2048)
        with open(path, "ab") as handle:
            handle.write(data + b"\n")


def send_udp(addr, port, text):
    sock = socket.socket(family(addr), socket.SOCK_DGRAM)
    sock.sendto(text.encode(), (addr, int(port)))
    return 0


def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(addr, count):
    v6 = ":" in addr
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW, proto)
    ident = os.getpid() & 0xFFFF
    request, reply = (128, 129) if v6 else (8, 0)
    for seq in range(int(count)):
        header = struct.pack("!BBHHH", request, 0, 0, ident, seq)
        payload = b"edgewarden"
        csum = 0 if v6 else _checksum(header + payload)  # the kernel fills ICMPv6 checksums
        sock.sendto(struct.pack("!BBHHH", request, 0, csum, ident, seq) + payload, (addr, 0))
    seen = set()
    deadline = time.time() + 1.5
    sock.settimeout(0.2)
    while time.time() < deadline:
        try:
            data = sock.recv(2048)
        except socket.timeout:
            continue
        icmp = data if v6 else data[(data[0] & 0x0F) * 4:]
        kind, _code, _csum, rid, seq = struct.unpack("!BBHHH", icmp[:8])
        if kind == reply and rid == ident:
            seen.add(seq)
    print(len(seen))
    return 0


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "connect":
        return connect(args[0], args[1], float(args[2]) if len(args) > 2 else 3.0)
    if cmd == "connect-many":
        return connect_many(*args)
    if cmd == "listen-tcp":
        return listen_tcp(*args)
    if cmd == "listen-udp":
        return listen_udp(*args)
    if cmd == "send-udp":
        return send_udp(*args)
    if cmd == "ping":
        return ping(*args)
    sys.stderr.write(__doc__)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
