# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Container settings against a least-privilege policy, from sample inspect JSON. Pure."""

from __future__ import annotations

import json

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import container_policy as cp

# `docker inspect` of a hardened container (trimmed to the keys that matter, real shapes)
DOCKER_HARDENED = {
    "Id": "5b1f0c6ad2c3",
    "Name": "/mqtt-broker",
    "AppArmorProfile": "docker-default",
    "Config": {"User": "1883:1883", "Image": "eclipse-mosquitto:2.0"},
    "HostConfig": {
        "Privileged": False, "NetworkMode": "bridge", "PidMode": "", "IpcMode": "private",
        "CapAdd": ["NET_BIND_SERVICE"], "CapDrop": ["ALL"], "ReadonlyRootfs": True,
        "SecurityOpt": ["no-new-privileges:true"], "Devices": [],
        "PortBindings": {"1883/tcp": [{"HostIp": "", "HostPort": "1883"}]},
    },
    "Mounts": [{"Type": "bind", "Source": "/var/lib/mosquitto", "Destination": "/mosquitto/data", "RW": True},
               {"Type": "bind", "Source": "/etc/mosquitto", "Destination": "/mosquitto/config", "RW": False}],
}

# `docker inspect` of everything the policy forbids
DOCKER_LOOSE = {
    "Id": "9e8d7c6b5a4f",
    "Name": "/legacy-ui",
    "AppArmorProfile": "unconfined",
    "Config": {"User": "", "Image": "vendor/legacy-ui:latest"},
    "HostConfig": {
        "Privileged": False, "NetworkMode": "host", "PidMode": "host", "IpcMode": "shareable",
        "CapAdd": ["SYS_ADMIN", "NET_ADMIN"], "CapDrop": None, "ReadonlyRootfs": False,
        "SecurityOpt": ["seccomp=unconfined", "apparmor=unconfined"],
        "Devices": [{"PathOnHost": "/dev/ttyUSB0", "PathInContainer": "/dev/ttyUSB0", "CgroupPermissions": "rwm"},
                    {"PathOnHost": "/dev/mem", "PathInContainer": "/dev/mem", "CgroupPermissions": "rwm"}],
        "PortBindings": {"8080/tcp": [{"HostPort": "80"}], "5353/udp": [{"HostPort": "5353"}]},
    },
    "Mounts": [{"Type": "bind", "Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock", "RW": True},
               {"Type": "bind", "Source": "/srv/ui", "Destination": "/data", "RW": True},
               {"Type": "volume", "Name": "cache", "Source": "/var/lib/docker/volumes/cache/_data", "Destination": "/cache", "RW": True}],
}

# `podman inspect` (it reports the effective and bounding sets itself)
PODMAN = {
    "Id": "1c2d3e4f5a6b",
    "Name": "gateway",
    "ImageName": "localhost/gateway:1.4",
    "EffectiveCaps": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_NET_BIND_SERVICE",
                      "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT"],
    "BoundingCaps": ["CAP_CHOWN", "CAP_DAC_OVERRIDE"],
    "AppArmorProfile": "containers-default-0.50.1",
    "Config": {"User": "gateway", "Image": "localhost/gateway:1.4"},
    "HostConfig": {"Privileged": False, "NetworkMode": "slirp4netns", "PidMode": "private", "IpcMode": "shareable",
                   "CapAdd": [], "CapDrop": [], "ReadonlyRootfs": True, "SecurityOpt": [], "Devices": []},
    "Mounts": [],
}

POLICY = {"name": "mqtt-broker", "capabilities": ["CAP_NET_BIND_SERVICE"], "writable_paths": ["/var/lib/mosquitto"],
          "ports": [1883]}


def failed(findings):
    return sorted(f["check"] for f in findings if not f["ok"])


def test_a_hardened_docker_container_is_compliant():
    findings = cp.assess(DOCKER_HARDENED, POLICY, "docker")
    assert failed(findings) == []
    assert cp.effective_caps(DOCKER_HARDENED, "docker") == {"net_bind_service"}


def test_a_loose_docker_container_fails_every_check_that_matters():
    policy = {"name": "legacy-ui", "capabilities": ["NET_BIND_SERVICE"], "devices": ["/dev/ttyUSB0"], "ports": [80],
              "writable_paths": []}
    findings = dict((f["check"], f) for f in cp.assess(DOCKER_LOOSE, policy, "docker"))
    assert failed(findings.values()) == [
        "added_capabilities", "apparmor", "capabilities", "devices", "host_network", "host_pid",
        "no_new_privileges", "published_ports", "read_only_rootfs", "seccomp", "sensitive_mounts", "user",
        "writable_mounts"]
    assert findings["added_capabilities"]["detail"] == "added beyond the policy: net_admin, sys_admin"
    # Docker's default set plus the added ones, minus what the policy allows
    assert "net_raw" in findings["capabilities"]["actual"] and "sys_admin" in findings["capabilities"]["actual"]
    assert findings["devices"]["actual"] == ["/dev/mem", "/dev/ttyUSB0"]
    assert findings["sensitive_mounts"]["actual"] == ["/var/run/docker.sock:/var/run/docker.sock"]
    # a named volume is the engine's storage, not a host bind
    assert findings["writable_mounts"]["actual"] == ["/var/run/docker.sock:/var/run/docker.sock", "/srv/ui:/data"]
    assert findings["published_ports"]["actual"] == ["tcp/8080", "udp/5353"]
    assert findings["user"]["actual"] == "root (image default)"


@pytest.mark.parametrize("host, expected", [
    ({"Privileged": True}, "all"),
    ({"CapDrop": ["ALL"], "CapAdd": ["CAP_NET_RAW"]}, ["net_raw"]),
    ({"CapDrop": ["NET_RAW", "MKNOD"]}, sorted(cp.DOCKER_DEFAULT_CAPS - {"net_raw", "mknod"})),
    ({"CapAdd": ["ALL"]}, "all"),
    ({}, sorted(cp.DOCKER_DEFAULT_CAPS)),
])
def test_docker_effective_caps(host, expected):
    caps = cp.effective_caps({"HostConfig": host}, "docker")
    if expected == "all":
        assert len(caps) == 41
    else:
        assert sorted(caps) == expected


def test_podman_reports_its_effective_set():
    findings = dict((f["check"], f) for f in cp.assess(PODMAN, {"name": "gateway", "capabilities": ["NET_BIND_SERVICE"]}, "podman"))
    assert failed(findings.values()) == ["capabilities", "no_new_privileges"]
    assert "chown" in findings["capabilities"]["detail"]
    # the privileged flag wins over what podman lists
    privileged = dict(PODMAN, HostConfig=dict(PODMAN["HostConfig"], Privileged=True))
    assert len(cp.effective_caps(privileged, "podman")) == 41


@pytest.mark.parametrize("policy, check, ok", [
    ({"host_network": True}, "host_network", True),
    ({"read_only_rootfs": False}, "read_only_rootfs", True),
    ({"user": "root"}, "user", True),
    ({"user": "gateway"}, "user", False),
])
def test_policy_knobs(policy, check, ok):
    base = {"name": "legacy-ui", "capabilities": []}
    base.update(policy)
    findings = dict((f["check"], f) for f in cp.assess(DOCKER_LOOSE, base, "docker"))
    assert findings[check]["ok"] is ok


def test_report_marks_missing_containers_and_parses_partial_answers():
    text = json.dumps([DOCKER_HARDENED])
    inspected = cp.parse_inspect(text)
    report = cp.report(inspected, [POLICY, {"name": "ghost"}], "docker")
    assert report[0]["found"] and report[0]["compliant"] is True and report[0]["image"] == "eclipse-mosquitto:2.0"
    assert report[1] == {"name": "ghost", "found": False, "compliant": None, "findings": [], "failed": [], "image": None,
                         "effective_capabilities": None}
    assert cp.parse_inspect("Error: no such object") == []
    assert cp.parse_inspect("") == []


def test_failed_findings_come_first():
    report = cp.report([DOCKER_LOOSE], [{"name": "legacy-ui"}], "docker")[0]
    oks = [f["ok"] for f in report["findings"]]
    assert oks == sorted(oks) and report["compliant"] is False
