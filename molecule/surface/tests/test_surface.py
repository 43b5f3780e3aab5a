# SPDX-License-Identifier: GPL-3.0-or-later
"""The surface role after converge and a restart of every target (side_effect.yml).

State is read from the devices directly (/proc, links, files), never through the
role's modules, so a bug in a module cannot hide itself here.
"""

import json
import os

import pytest
import testinfra
import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("all")

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RECORDS = os.path.join(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"), "surface")
BLOCKLIST = "/etc/modprobe.d/edgewarden-blocklist.conf"


def name(host):
    return host.backend.get_hostname()


@pytest.fixture(scope="module")
def debian1():
    return testinfra.get_host("ansible://debian1", ansible_inventory=INVENTORY)


@pytest.fixture(scope="module")
def embedded1():
    return testinfra.get_host("ansible://embedded1", ansible_inventory=INVENTORY)


@pytest.fixture(scope="module")
def openrc1():
    return testinfra.get_host("ansible://openrc1", ansible_inventory=INVENTORY)


@pytest.fixture(scope="module")
def kernel1():
    return testinfra.get_host("ansible://kernel1", ansible_inventory=INVENTORY)


def listening(host):
    """(proto, port) of every listening socket, read from /proc/net like the module, but independently."""
    found = set()
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        text = host.file("/proc/net/" + proto).content_string
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10:
                continue
            port = int(fields[1].split(":")[1], 16)
            state = fields[3]
            if proto.startswith("tcp") and state == "0A":
                found.add((proto.rstrip("6"), port))
            elif proto.startswith("udp") and state == "07" and fields[2].split(":")[1] == "0000":
                found.add((proto.rstrip("6"), port))
    return found


def processes(host):
    """argv of every process, from /proc (no ps on the embedded target)."""
    script = ("import os\n"
              "for p in os.listdir('/proc'):\n"
              "    if p.isdigit():\n"
              "        try: print(open('/proc/%s/cmdline' % p, 'rb').read().replace(b'\\0', b' ').decode())\n"
              "        except OSError: pass\n")
    return host.check_output("python3 -c \"%s\"" % script.replace('"', '\\"')).splitlines()


def load(host, kind):
    with open(os.path.join(RECORDS, "%s-%s.json" % (name(host), kind))) as handle:
        return json.load(handle)


def test_check_mode_predicted_exactly_what_converge_did(host):
    check, converge = load(host, "check"), load(host, "converge")
    assert check["services"] == converge["services"]
    assert check["kmod"] == converge["kmod"]
    assert check["packages"] == converge["packages"]
    assert [r for r in converge["services"] if r["status"] == "changed"], "converge changed no service"


def test_blocklist_file_blocks_and_keeps_embedded_filesystems(host):
    conf = host.file(BLOCKLIST)
    assert conf.exists and conf.mode == 0o644
    text = conf.content_string
    lines = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    installed = set(words[1] for words in lines if words[0] == "install" and words[2:] == ["/bin/false"])
    blacklisted = set(words[1] for words in lines if words[0] == "blacklist")
    # camera profile: USB storage and Bluetooth blocked too
    for module in ("dccp", "sctp", "tipc", "hfsplus", "usb_storage", "uas", "bluetooth"):
        assert module in installed and module in blacklisted
    assert installed == blacklisted
    for module in ("squashfs", "vfat", "jffs2", "ubifs", "cramfs", "erofs", "can", "usbserial", "usb_serial", "uvcvideo"):
        assert module not in installed


def test_unexpected_listeners_are_named_in_the_report(host):
    report = load(host, "converge")["unexpected"]
    if name(host) == "debian1":
        assert [line for line in report if line.startswith("tcp 0.0.0.0:8081 pid ") and "python3" in line]
        assert [line for line in report if line.startswith("udp 0.0.0.0:5683 pid ") and "python3" in line]
        assert len(report) == 2, report
    else:
        assert report == []


def test_listeners_after_restart(host):
    ports = listening(host)
    assert ("tcp", 22) in ports
    assert ("tcp", 23) not in ports  # telnetd (SysV script on debian1, inittab on embedded1, OpenRC on openrc1)
    assert ("udp", 1900) not in ports  # miniupnpd
    assert ("udp", 5353) not in ports  # avahi-daemon
    if name(host) == "debian1":
        # not services: nothing stops them, the report names them
        assert {("tcp", 8081), ("udp", 5683)} <= ports


# ---------------------------------------------------------------- openrc1: OpenRC runlevels

def test_openrc_target_was_power_cycled(openrc1):
    prepared = int(openrc1.file("/root/surface-prepared-at").content_string)
    assert openrc1.file("/proc/1").mtime.timestamp() > prepared


@pytest.mark.parametrize("service", ["telnetd", "miniupnpd"])
def test_openrc_services_unlinked_and_not_started_after_boot(openrc1, service):
    levels = openrc1.check_output("ls /etc/runlevels").split()
    assert "default" in levels and "boot" in levels
    for level in levels:
        assert not openrc1.file("/etc/runlevels/%s/%s" % (level, service)).exists
    # the runlevels did come up again, just without these two
    assert openrc1.file("/run/openrc/softlevel").exists
    assert not openrc1.file("/run/openrc/started/%s" % service).exists
    assert not [argv for argv in processes(openrc1) if "ew-listener" in argv]
    assert openrc1.file("/etc/init.d/%s" % service).exists  # disabled, not deleted


# ---------------------------------------------------------------- debian1: tini as PID 1, systemd on disk

def test_debian_sysv_script_disabled(debian1):
    for level in "2345":
        assert not debian1.file("/etc/rc%s.d/S01telnetd" % level).exists
        assert debian1.file("/etc/rc%s.d/K01telnetd" % level).linked_to == "/etc/init.d/telnetd"
    for level in "016":
        assert debian1.file("/etc/rc%s.d/K01telnetd" % level).linked_to == "/etc/init.d/telnetd"


def test_debian_telnetd_package_removed(debian1):
    assert debian1.run("dpkg-query -W -f '${db:Status-Abbrev}' telnetd").stdout.strip() in ("", "un", "rc")
    records = dict((r["id"], r) for r in load(debian1, "converge")["packages"])
    assert (records["package/telnetd"]["before"], records["package/telnetd"]["status"]) == ("0.17-99lab", "changed")


def test_debian_units_disabled_and_masked_for_the_next_boot(debian1):
    for unit in ("avahi-daemon.service", "avahi-daemon.socket", "telnetd.service"):
        assert debian1.file("/etc/systemd/system/" + unit).linked_to == "/dev/null"
    assert not debian1.file("/etc/systemd/system/multi-user.target.wants/avahi-daemon.service").exists
    assert not debian1.file("/etc/systemd/system/sockets.target.wants/avahi-daemon.socket").exists
    assert not [p for p in processes(debian1) if "socket.AF_INET6" in p]  # the telnetd listener


# ---------------------------------------------------------------- embedded1: BusyBox init, OpenWrt-style rc.d

def test_embedded_init_restarted_and_services_stayed_off(embedded1):
    assert embedded1.file("/run/ew-boots").content_string.count("boot") == 2, "init did not restart"
    inittab = embedded1.file("/etc/inittab").content_string
    assert "#edgewarden-off# ::respawn:/usr/bin/telnetd -F -p 23\n" in inittab
    assert "\n::respawn:/usr/sbin/dropbear" in inittab
    assert not embedded1.file("/etc/rc.d/S94miniupnpd").exists
    assert not embedded1.file("/etc/rc.d/K15miniupnpd").exists
    assert embedded1.file("/etc/init.d/miniupnpd").mode == 0o644
    argvs = processes(embedded1)
    assert not [p for p in argvs if p.startswith("/usr/bin/telnetd")]
    assert not [p for p in argvs if '1900' in p]
    assert [p for p in argvs if p.startswith("/usr/sbin/dropbear")]


# ---------------------------------------------------------------- kernel1: systemd, real modules, rebooted

def test_kernel_target_rebooted(kernel1):
    assert kernel1.file("/proc/sys/kernel/random/boot_id").content_string != kernel1.file("/root/boot_id.prepare").content_string


@pytest.mark.parametrize("unit", ["avahi-daemon.service", "avahi-daemon.socket"])
def test_kernel_units_masked_and_inactive_after_reboot(kernel1, unit):
    assert kernel1.run("systemctl is-enabled %s" % unit).stdout.strip() == "masked"
    assert kernel1.run("systemctl is-active %s" % unit).stdout.strip() == "inactive"


@pytest.mark.parametrize("module", ["dccp", "dccp_ipv4", "sctp", "tipc", "hfsplus"])
def test_kernel_blocked_modules_refuse_to_load(kernel1, module):
    def loaded():
        return [line.split()[0] for line in kernel1.file("/proc/modules").content_string.splitlines()]

    assert module not in loaded()
    attempt = kernel1.run("modprobe %s" % module)
    assert attempt.rc != 0, "modprobe %s succeeded" % module
    assert module not in loaded()


def test_kernel_modules_unloaded_or_reported_in_use(kernel1):
    records = dict((r["id"], r) for r in load(kernel1, "converge")["kmod"])
    # loaded and unused: unloaded by converge
    assert (records["kernel.module/hfsplus"]["status"], records["kernel.module/hfsplus"]["after"]) == ("changed", "not loaded")
    # dccp_ipv4 (not on the list) holds dccp; sctp holds references of its own: reported, loaded until the reboot
    assert records["kernel.module/dccp"]["status"] == "unsupported"
    assert "used by dccp_ipv4" in records["kernel.module/dccp"]["detail"]
    assert records["kernel.module/sctp"]["status"] == "unsupported"
    assert "other reference" in records["kernel.module/sctp"]["detail"]
