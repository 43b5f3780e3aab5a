# SPDX-License-Identifier: GPL-3.0-or-later
"""The confine role's effect, read from each device's kernel and service, not from the module.

Runs after side_effect.yml, so it also proves that the broken policy's rollback left the
working confinement in place.
"""

import os
import re

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")

CAP_NET_BIND_SERVICE = 1 << 10
DROPIN = "/etc/systemd/system/ew-demo.service.d/99-edgewarden-confine.conf"
HELPER_DIR = "/usr/lib/edgewarden/confine/ew-demo"
CONFD = "/etc/conf.d/ew-demo"
# the demo's main process: a child of PID 1 (systemd, BusyBox init, or the tini an OpenRC
# host runs, which adopts start-stop-daemon's daemons) running the script
FIND_PID = r"""for d in /proc/[0-9]*; do
  [ "$(cut -d' ' -f4 $d/stat 2>/dev/null)" = 1 ] || continue
  case "$(tr '\0' ' ' < $d/cmdline 2>/dev/null)" in "/usr/bin/python3 -IS /usr/local/bin/ew-demo PORT ") echo ${d#/proc/};; esac
done"""
# python3-minimal has no http.client: speak HTTP over a socket
FETCH = """import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10)
s.sendall(("GET %s HTTP/1.0\\r\\n\\r\\n" % sys.argv[1]).encode())
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.split(b"\\r\\n\\r\\n", 1)[1].decode().strip())
"""


def name(host):
    return host.backend.get_hostname()


def port(host):
    # Debian's OpenRC cannot give the demo CAP_NET_BIND_SERVICE: it listens on 8080 there
    return 8080 if name(host).startswith("openrc") else 80


def status(host):
    pids = host.check_output(FIND_PID.replace("PORT", str(port(host)))).split()
    assert len(pids) == 1, "expected one ew-demo process, found %s" % pids
    fields = {}
    for line in host.file("/proc/%s/status" % pids[0]).content_string.splitlines():
        key, dummy, value = line.partition(":")
        fields[key] = value.split()
    return fields


def fetch(host, path):
    return host.check_output("python3 -c %s %s %d" % (_quote(FETCH), _quote(path), port(host)))


def _quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


def uid_of(host, user):
    for line in host.file("/etc/passwd").content_string.splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return fields[2]
    raise AssertionError("no account %s" % user)


def test_runs_as_its_own_user_with_only_the_listed_capability(host):
    fields = status(host)
    assert fields["Uid"] == [uid_of(host, "ew-demo")] * 4
    if name(host).startswith("openrc"):
        # the policy lists no capability there: the service has none at all; Debian's OpenRC
        # cannot set NoNewPrivs or shrink the bounding set (documented, named in the result)
        for key in ("CapEff", "CapPrm", "CapAmb", "CapInh"):
            assert int(fields[key][0], 16) == 0, key
        assert fields["NoNewPrivs"] == ["0"]
        assert fields["Seccomp"] == ["0"]
        return
    assert int(fields["CapEff"][0], 16) == CAP_NET_BIND_SERVICE
    assert int(fields["CapPrm"][0], 16) == CAP_NET_BIND_SERVICE
    assert int(fields["CapAmb"][0], 16) == CAP_NET_BIND_SERVICE
    assert fields["NoNewPrivs"] == ["1"]
    if name(host) == "kernel1":
        assert int(fields["CapBnd"][0], 16) == CAP_NET_BIND_SERVICE
        assert fields["Seccomp"] == ["2"]
    else:
        # documented limit without systemd: BusyBox setpriv cannot shrink the bounding set
        # (NoNewPrivs above keeps any exec from using it), and there is no seccomp
        assert int(fields["CapBnd"][0], 16) != CAP_NET_BIND_SERVICE
        assert fields["Seccomp"] == ["0"]


def test_still_works_and_writes_its_state(host):
    assert fetch(host, "/") == "ok"
    assert fetch(host, "/write?/var/lib/ew-demo/probe") == "written"
    probe = host.file("/var/lib/ew-demo/probe")
    assert probe.exists and probe.user == "ew-demo"


def test_a_forbidden_write_really_fails(host):
    host.run("rm -f /etc/ew-demo-forbidden")
    answer = fetch(host, "/write?/etc/ew-demo-forbidden")
    # kernel1: ProtectSystem=strict mounts /etc read-only; embedded1, openrc1: /etc is root's
    assert answer == ("denied EROFS" if name(host) == "kernel1" else "denied EACCES")
    assert not host.file("/etc/ew-demo-forbidden").exists


def test_the_exposure_dropped(host):
    if name(host) != "kernel1":
        return
    before = float(re.search(r": ([0-9.]+) ", host.file("/root/ew-demo.exposure-before").content_string).group(1))
    line = host.check_output("systemd-analyze security ew-demo.service | tail -1")
    after = float(re.search(r": ([0-9.]+) ", line).group(1))
    print("ew-demo.service exposure: before %.1f, after %.1f" % (before, after))
    assert before >= 9.0 and after <= 3.0


def test_the_rollback_left_the_working_policy(host):
    if name(host) == "kernel1":
        dropin = host.file(DROPIN).content_string
        assert "StateDirectory=ew-demo" in dropin
        assert host.service("ew-demo").is_running
        # the broken policy did run, and failed on the read-only state directory
        journal = host.check_output("journalctl -u ew-demo.service --no-pager -o cat")
        assert "Read-only file system: '/var/lib/ew-demo/started'" in journal
    elif name(host).startswith("openrc"):
        confd = host.file(CONFD).content_string
        assert 'command_user="ew-demo:ew-demo"' in confd and "nobody" not in confd
        assert "capabilities=" not in confd and "no_new_privs=" not in confd
        assert host.run("rc-service ew-demo status").rc == 0
    else:
        lines = [line for line in host.file("/etc/inittab").content_string.splitlines() if "ew-demo" in line]
        assert len(lines) == 1 and "--caps net_bind_service" in lines[0]
        assert lines[0].startswith("::respawn:/usr/lib/edgewarden/confine/confine-exec --user ew-demo ")


def test_the_capability_copy_is_only_for_the_service(host):
    if name(host) != "embedded1":
        return
    copies = host.check_output("ls %s" % HELPER_DIR).split()
    assert len(copies) == 1 and copies[0].startswith("setpriv-")
    helper = host.file("%s/%s" % (HELPER_DIR, copies[0]))
    assert helper.user == "root" and helper.group == "ew-demo" and helper.mode == 0o750
    # the file capability itself (security.capability, revision 2, net_bind_service permitted)
    xattr = host.check_output("python3 -c 'import os, sys; print(os.getxattr(sys.argv[1], \"security.capability\").hex())' %s"
                              % helper.path)
    assert xattr == "000000020004000000000000" + "0" * 16
