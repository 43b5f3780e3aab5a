# SPDX-License-Identifier: GPL-3.0-or-later
"""The access roles' effect, with real ssh clients: from the controller through the
generated client config, and from debian2 sideways to debian1."""

import os
import socket
import subprocess
import tempfile
import time

import pytest

LAB_DIR = os.environ["EW_LAB_DIR"]
LAB_CONFIG = os.path.join(LAB_DIR, "ssh_config")
CLIENT = os.path.join(LAB_DIR, "client")
JUMP_KEY = os.path.join(LAB_DIR, "jump_key")
USER_CA_KEY = os.path.join(LAB_DIR, "jumpca_key")  # with jumpca_key-cert.pub beside it
DEVICES = {"debian1": "192.168.77.11", "embedded1": "192.168.77.101"}
DEVICES6 = {"debian1": "fd77::11", "embedded1": "fd77::101"}
OPENSSH_DEVICE = "192.168.77.11"
OPENSSH_DEVICE6 = "fd77::11"
BASTION_LAN = ("192.168.77.1", "fd77::1")
testinfra_hosts = ["ansible://debian1"]


def lab_key():
    for line in open(LAB_CONFIG):
        if line.strip().startswith("IdentityFile"):
            return line.split()[1]
    raise AssertionError("no IdentityFile in the lab ssh_config")


@pytest.fixture(scope="module")
def operator_config():
    """The generated ssh_config as an operator uses it: jump key for the bastion, the
    device key for the devices, no connection sharing (every test is a new connection)."""
    fd, path = tempfile.mkstemp(prefix="ew-operator-", suffix=".conf")
    with os.fdopen(fd, "w") as handle:
        handle.write(client_config(JUMP_KEY))
    yield path
    os.unlink(path)


def client_config(bastion_key, bastion_user=None):
    # ssh keeps the first value it reads: another User goes before the generated config
    # (and the Include after a Host * line, or it would apply to that Host only)
    return ("%sHost *\nInclude %s/ssh_config\nHost bastion\n  IdentityFile %s\nHost 192.168.77.* fd77::*\n  IdentityFile %s\n"
            "Host *\n  IdentitiesOnly yes\n  BatchMode yes\n"
            "  ControlMaster no\n  ControlPath none\n  ConnectTimeout 15\n"
            % (("Host bastion\n  User %s\n" % bastion_user) if bastion_user else "", CLIENT, bastion_key, lab_key()))


def ssh(config, *args, stdin=subprocess.DEVNULL, timeout=60):
    return subprocess.run(["ssh", "-F", config] + list(args), stdin=stdin, capture_output=True, text=True, check=False,
                          timeout=timeout)


def test_key_login_through_bastion_as_jump_user(operator_config):
    for name, addr in DEVICES.items():
        res = ssh(operator_config, "root@" + addr, "echo reached-$(hostname)")
        assert res.returncode == 0, (name, res.stderr)
        assert "reached-" in res.stdout


@pytest.mark.parametrize("name", sorted(DEVICES6))
def test_key_login_through_bastion_over_ipv6(operator_config, name):
    """The device named by its IPv6 address: ProxyJump asks the bastion for [fd77::..]:22,
    PermitOpen allows it, and the device's AllowUsers root@fd77::1 lets the login in."""
    res = ssh(operator_config, "root@" + DEVICES6[name], "echo reached-$(hostname) from=${SSH_CLIENT%% *}")
    assert res.returncode == 0, (name, res.stderr)
    assert "reached-" in res.stdout and "from=fd77::1" in res.stdout, res.stdout


def test_jump_user_gets_no_shell_on_the_bastion(operator_config, host):
    res = ssh(operator_config, "bastion", "touch /tmp/ew-jump-shell")
    # authenticated (no "Permission denied"), then ForceCommand /bin/false ran instead
    assert res.returncode == 1, res.stderr
    res = ssh(operator_config, "-tt", "bastion")
    assert res.returncode != 0, res.stderr
    assert "PTY allocation request failed" in res.stderr, res.stderr
    bastion = host.get_host("ansible://bastion1", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])
    assert not bastion.file("/tmp/ew-jump-shell").exists


@pytest.mark.parametrize("target", ["192.168.77.11:80", "192.168.77.1:22", "127.0.0.1:22", "192.168.77.11:2222",
                                    "[fd77::11]:80", "[fd77::1]:22", "[::1]:22", "[fd77::13]:22"])
def test_jump_user_cannot_forward_elsewhere(operator_config, target):
    # -W opens the same direct-tcpip channel as -L and ProxyJump do
    res = ssh(operator_config, "-W", target, "bastion")
    assert res.returncode != 0
    assert "administratively prohibited" in res.stderr, res.stderr


def stop(proc, grace=5):
    """ssh's stderr once it is gone: SIGTERM, then SIGKILL after ``grace`` seconds. Debian 12's
    ssh calls poll() without a signal mask: a SIGTERM landing between its quit check and poll()
    waits for the next event, forever without ServerAliveInterval. The forward test sends it
    just as ssh handles the refused channel, and CI hit that window twice in one run."""
    proc.terminate()
    try:
        return proc.communicate(timeout=grace)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate(timeout=grace)[1]


def wait_for_forward(port, proc, seconds=60):
    """A connection to ssh's local forward once it listens (after the login, which takes a
    while on a loaded machine); fails naming ssh's own error if ssh exits first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            if proc.poll() is not None:
                raise AssertionError("ssh -L exited with %s before listening: %s"
                                     % (proc.returncode, proc.stderr.read() if proc.stderr else ""))
            if time.monotonic() > deadline:
                raise AssertionError("ssh -L was not listening on port %d after %d s" % (port, seconds))
            time.sleep(0.2)


def test_jump_user_cannot_forward_with_L(operator_config):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(["ssh", "-F", operator_config, "-N", "-L", "127.0.0.1:%d:192.168.77.11:80" % port,
                             "bastion"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        conn = wait_for_forward(port, proc)
        conn.settimeout(5)
        closed = conn.recv(100) == b""  # the bastion refused the channel: the local end closes
        conn.close()
    finally:
        err = stop(proc)
    assert closed and "administratively prohibited" in err, err


def test_password_auth_refused(operator_config):
    for target in ["root@" + OPENSSH_DEVICE, "root@bastion"]:
        res = ssh(operator_config, "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive",
                  target, "true")
        assert res.returncode == 255
        # the methods the server still offers, as it lists them
        assert "Permission denied (publickey)" in res.stderr, res.stderr


def lab_host(name):
    import testinfra
    return testinfra.get_host("ansible://" + name, ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


# a throwaway client on a lab host: what is tested is the server's answer, not host keys
PEER_SSH = ("ssh -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            "-o ConnectTimeout=10")


@pytest.fixture(scope="module")
def debian2_with_keys():
    """debian2 holding the device key and the jump key, as a stolen laptop would."""
    peer = lab_host("debian2")
    for path, name in ((lab_key(), "ew_lab_key"), (JUMP_KEY, "ew_jump_key")):
        peer.run("umask 077; mkdir -p /root/.ssh; cat > /root/.ssh/%s <<'EOF'\n%sEOF" % (name, open(path).read()))
    yield peer
    peer.run("rm -f /root/.ssh/ew_lab_key /root/.ssh/ew_jump_key")


@pytest.mark.parametrize("device", [OPENSSH_DEVICE, OPENSSH_DEVICE6])
def test_lateral_login_refused(debian2_with_keys, device):
    """The device key that logs in through the bastion is refused from debian2, over IPv4 and IPv6."""
    # testinfra's ssh backend takes exit code 255 for its own failure: report it as text
    res = debian2_with_keys.run("%s -i /root/.ssh/ew_lab_key root@%s true 2>&1; echo rc=$?" % (PEER_SSH, device))
    assert "rc=255" in res.stdout, res.stdout
    assert "Permission denied" in res.stdout, res.stdout


def test_certificate_login_through_bastion(tmp_path):
    """jumpca has no authorized_keys: its key gets in with the CA's certificate, and the
    same key without the certificate is refused."""
    assert os.path.exists(USER_CA_KEY + "-cert.pub")
    with_cert = tmp_path / "cert.conf"
    with_cert.write_text(client_config(USER_CA_KEY, "jumpca"))
    res = ssh(str(with_cert), "root@" + OPENSSH_DEVICE, "echo reached-$(hostname)")
    assert res.returncode == 0, res.stderr
    assert "reached-" in res.stdout
    bare = tmp_path / "bare_key"  # the same private key, no certificate beside it
    bare.write_text(open(USER_CA_KEY).read())
    bare.chmod(0o600)
    without_cert = tmp_path / "bare.conf"
    without_cert.write_text(client_config(str(bare), "jumpca"))
    res = ssh(str(without_cert), "bastion", "true")
    assert res.returncode == 255
    assert "Permission denied (publickey)" in res.stderr, res.stderr


BURST = r"""
import socket, sys, time
address, count = sys.argv[1], int(sys.argv[2])
accepted = dropped = refused = 0
start = time.time()
for _ in range(count):
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    sock.settimeout(1.5)
    try:
        sock.connect((address, 22))
        accepted += 1
    except socket.timeout:
        dropped += 1  # no SYN-ACK: the packet was dropped
    except OSError:
        refused += 1
    finally:
        sock.close()
print("accepted=%d dropped=%d refused=%d seconds=%.1f" % (accepted, dropped, refused, time.time() - start))
"""


def burst(peer, address, count):
    res = peer.run("python3 -c '%s' %s %d" % (BURST.replace("'", "'\\''"), address, count))
    assert res.rc == 0, res.stderr
    return dict((k, float(v)) for k, v in (field.split("=") for field in res.stdout.split()))


def jump_login(peer, bastion, device):
    """A normal login from debian2 through the bastion (jump key), to a device (device key)."""
    proxy = "%s -i /root/.ssh/ew_jump_key -W [%%h]:%%p jump@%s" % (PEER_SSH, bastion)
    return peer.run("%s -i /root/.ssh/ew_lab_key -o ProxyCommand='%s' root@%s echo reached-$(hostname) 2>&1; echo rc=$?"
                    % (PEER_SSH, proxy, device))


@pytest.mark.parametrize("bastion,device", [(BASTION_LAN[0], OPENSSH_DEVICE), (BASTION_LAN[1], OPENSSH_DEVICE6)])
def test_connection_burst_is_dropped_then_a_login_works(debian2_with_keys, bastion, device):
    """Bastion rate limit (12/minute, burst 5 in this scenario): 12 new connections at once
    from debian2 -> the burst gets in, the rest are dropped (no SYN-ACK); another source
    is not affected; once a token is back, a normal login from debian2 works."""
    counts = burst(debian2_with_keys, bastion, 12)
    assert counts["accepted"] >= 5, counts
    assert counts["dropped"] >= 3, counts
    assert counts["refused"] == 0, counts
    other = burst(lab_host("debian1"), bastion, 1)  # another source, at once
    assert other["accepted"] == 1, other
    time.sleep(6)  # one token per 5 s
    res = jump_login(debian2_with_keys, bastion, device)
    assert "rc=0" in res.stdout and "reached-" in res.stdout, res.stdout


def test_rate_limit_state_on_the_bastion():
    listing = lab_host("bastion1").check_output("nft list table inet edgewarden_ratelimit")
    assert "192.168.77.12 " in listing and "fd77::12 " in listing, listing  # metered sources
    assert "192.168.77.11 " in listing  # debian1's one connection, metered too
    dropped = [line for line in listing.splitlines() if "ssh rate limit" in line]
    assert len(dropped) == 2 and all("packets 0 " not in line for line in dropped), listing


def test_ssh_audit_no_failures():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(["ssh", "-F", LAB_CONFIG, "-o", "ControlMaster=no", "-o", "ControlPath=none", "-N",
                             "-L", "127.0.0.1:%d:%s:22" % (port, OPENSSH_DEVICE), "ew-bastion"],
                            stdin=subprocess.DEVNULL)
    try:
        wait_for_forward(port, proc).close()
        res = subprocess.run(["ssh-audit", "--no-colors", "-p", str(port), "127.0.0.1"], capture_output=True,
                             text=True, timeout=120, check=False)
    finally:
        stop(proc)
    with open(os.path.join(LAB_DIR, "ssh-audit-debian1.txt"), "w") as handle:
        handle.write(res.stdout)
    print(res.stdout)
    fails = [line for line in res.stdout.splitlines() if "(fail)" in line or "[fail]" in line]
    assert not fails, "\n".join(fails)


def test_broken_input_refused_and_lockout_rolled_back():
    """negative.yml: a setting sshd -t refuses changes nothing; a config that passes
    sshd -t but locks the controller out is rolled back by the device itself; the
    bastion's rate limit on a host without nft says so and fails nothing; after the
    bursts above, the bastion's metered sets do not make the rate limit table "changed"."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
                          "-e", "ansible_ssh_common_args='-F %s'" % LAB_CONFIG, os.path.join(here, "negative.yml")],
                         capture_output=True, text=True, check=False, timeout=300)
    print(res.stdout[-4000:])
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
