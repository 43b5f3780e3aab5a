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
DEVICES = {"debian1": "192.168.77.11", "embedded1": "192.168.77.101"}
OPENSSH_DEVICE = "192.168.77.11"
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
        handle.write("Include %s/ssh_config\nHost bastion\n  IdentityFile %s\nHost 192.168.77.*\n  IdentityFile %s\n"
                     "Host *\n  IdentitiesOnly yes\n  BatchMode yes\n"
                     "  ControlMaster no\n  ControlPath none\n  ConnectTimeout 15\n" % (CLIENT, JUMP_KEY, lab_key()))
    yield path
    os.unlink(path)


def ssh(config, *args, stdin=subprocess.DEVNULL, timeout=60):
    return subprocess.run(["ssh", "-F", config] + list(args), stdin=stdin, capture_output=True, text=True, check=False,
                          timeout=timeout)


def test_key_login_through_bastion_as_jump_user(operator_config):
    for name, addr in DEVICES.items():
        res = ssh(operator_config, "root@" + addr, "echo reached-$(hostname)")
        assert res.returncode == 0, (name, res.stderr)
        assert "reached-" in res.stdout


def test_jump_user_gets_no_shell_on_the_bastion(operator_config, host):
    res = ssh(operator_config, "bastion", "touch /tmp/ew-jump-shell")
    # authenticated (no "Permission denied"), then ForceCommand /bin/false ran instead
    assert res.returncode == 1, res.stderr
    res = ssh(operator_config, "-tt", "bastion")
    assert res.returncode != 0, res.stderr
    assert "PTY allocation request failed" in res.stderr, res.stderr
    bastion = host.get_host("ansible://bastion1", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])
    assert not bastion.file("/tmp/ew-jump-shell").exists


@pytest.mark.parametrize("target", ["192.168.77.11:80", "192.168.77.1:22", "127.0.0.1:22", "192.168.77.11:2222"])
def test_jump_user_cannot_forward_elsewhere(operator_config, target):
    # -W opens the same direct-tcpip channel as -L and ProxyJump do
    res = ssh(operator_config, "-W", target, "bastion")
    assert res.returncode != 0
    assert "administratively prohibited" in res.stderr, res.stderr


def test_jump_user_cannot_forward_with_L(operator_config):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(["ssh", "-F", operator_config, "-N", "-L", "127.0.0.1:%d:192.168.77.11:80" % port,
                             "bastion"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        for _attempt in range(50):
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        conn.settimeout(5)
        assert conn.recv(100) == b""  # the bastion refused the channel: the local end closes
        conn.close()
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=10)
    assert "administratively prohibited" in err, err


def test_password_auth_refused(operator_config):
    for target in ["root@" + OPENSSH_DEVICE, "root@bastion"]:
        res = ssh(operator_config, "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive",
                  target, "true")
        assert res.returncode == 255
        # the methods the server still offers, as it lists them
        assert "Permission denied (publickey)" in res.stderr, res.stderr


def test_lateral_login_refused(host):
    """The device key that logs in through the bastion is refused from debian2."""
    key = open(lab_key()).read()
    peer = host.get_host("ansible://debian2", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])
    peer.run("umask 077; cat > /root/.ssh/ew_lab_key <<'EOF'\n%sEOF" % key)
    try:
        # a throwaway client on a lab host: its login must be refused, so the host key is not what is tested
        # testinfra's ssh backend takes exit code 255 for its own failure: report it as text
        res = peer.run("ssh -i /root/.ssh/ew_lab_key -o BatchMode=yes -o StrictHostKeyChecking=no "
                       "-o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 root@%s true 2>&1; echo rc=$?" % OPENSSH_DEVICE)
    finally:
        peer.run("rm -f /root/.ssh/ew_lab_key")
    assert "rc=255" in res.stdout, res.stdout
    assert "Permission denied" in res.stdout, res.stdout


def test_ssh_audit_no_failures():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(["ssh", "-F", LAB_CONFIG, "-o", "ControlMaster=no", "-o", "ControlPath=none", "-N",
                             "-L", "127.0.0.1:%d:%s:22" % (port, OPENSSH_DEVICE), "ew-bastion"],
                            stdin=subprocess.DEVNULL)
    try:
        for _attempt in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        res = subprocess.run(["ssh-audit", "--no-colors", "-p", str(port), "127.0.0.1"], capture_output=True,
                             text=True, timeout=120, check=False)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    with open(os.path.join(LAB_DIR, "ssh-audit-debian1.txt"), "w") as handle:
        handle.write(res.stdout)
    print(res.stdout)
    fails = [line for line in res.stdout.splitlines() if "(fail)" in line or "[fail]" in line]
    assert not fails, "\n".join(fails)


def test_broken_input_refused_and_lockout_rolled_back():
    """negative.yml: a setting sshd -t refuses changes nothing; a config that passes
    sshd -t but locks the controller out is rolled back by the device itself."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
                          "-e", "ansible_ssh_common_args='-F %s'" % LAB_CONFIG, os.path.join(here, "negative.yml")],
                         capture_output=True, text=True, check=False, timeout=300)
    print(res.stdout[-4000:])
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
