# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Report-only check of a container's settings against the same per-app policy as
``confine``: pure functions over the JSON of ``podman inspect`` / ``docker inspect``
(balenaEngine prints Docker's format).

Docker reports what was asked (``CapAdd``, ``CapDrop``) on top of its default set; podman
also reports the result (``EffectiveCaps``), which is used when present.
"""

from __future__ import annotations

import json
import os

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.confine import (
    CAPABILITIES,
    normalize_capability,
    parse_port,
)

# moby's oci/caps/defaults.go and containers/common's default capabilities
DOCKER_DEFAULT_CAPS = frozenset((
    "chown", "dac_override", "fsetid", "fowner", "mknod", "net_raw", "setgid", "setuid", "setfcap", "setpcap",
    "net_bind_service", "sys_chroot", "kill", "audit_write",
))
PODMAN_DEFAULT_CAPS = frozenset((
    "chown", "dac_override", "fowner", "fsetid", "kill", "net_bind_service", "setfcap", "setgid", "setpcap", "setuid",
    "sys_chroot",
))
ENGINES = ("podman", "docker", "balena-engine")
ROOT_USERS = ("", "root", "0")
# Host paths that hand the host to a container that can write them (or talk to its engine).
SENSITIVE_SOURCES = ("/", "/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/var/run/docker.sock",
                     "/run/docker.sock", "/run/podman/podman.sock", "/var/run/balena-engine.sock", "/run/balena-engine.sock")


def parse_inspect(text):
    """``inspect`` stdout -> list of container dicts (an engine prints ``[]`` and an error for
    names it does not know, so a partial answer is still used)."""
    try:
        data = json.loads(text or "[]")
    except ValueError:
        return []
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def container_name(inspect):
    return str(inspect.get("Name") or "").lstrip("/")


def _caps(values):
    """Capability names from an engine's list; ``ALL`` stays ``all``."""
    out = set()
    for value in values or []:
        text = str(value).strip()
        if text.upper() in ("ALL", "CAP_ALL"):
            out.add("all")
            continue
        canonical = normalize_capability(text)
        if canonical:
            out.add(canonical)
    return out


def effective_caps(inspect, engine):
    """The capabilities the container's processes get."""
    host = inspect.get("HostConfig") or {}
    if host.get("Privileged"):
        return set(CAPABILITIES)
    if inspect.get("EffectiveCaps") is not None:
        return _caps(inspect.get("EffectiveCaps"))
    base = set(PODMAN_DEFAULT_CAPS if engine == "podman" else DOCKER_DEFAULT_CAPS)
    drops, adds = _caps(host.get("CapDrop")), _caps(host.get("CapAdd"))
    base = set() if "all" in drops else base - drops
    return set(CAPABILITIES) if "all" in adds else base | adds


def _is_root(user):
    name = str(user or "").split(":", 1)[0].strip()
    return name in ROOT_USERS


def _security_opts(host):
    opts = set()
    for opt in host.get("SecurityOpt") or []:
        opts.add(str(opt).replace(":", "=", 1).lower())
    return opts


def _ports(host):
    found = []
    for key in sorted((host.get("PortBindings") or {}).keys()):
        number, dummy, proto = str(key).partition("/")
        parsed = parse_port("%s/%s" % (proto or "tcp", number))
        if parsed:
            found.append("%s/%d" % parsed)
    return sorted(found)


def _finding(check, ok, expected, actual, detail=None):
    item = {"check": check, "ok": bool(ok), "expected": expected, "actual": actual}
    if detail:
        item["detail"] = detail
    return item


def _sorted_caps(caps):
    order = dict((name, i) for i, name in enumerate(CAPABILITIES))
    return sorted(caps, key=lambda c: order.get(c, 99))


def assess(inspect, policy, engine):
    """Findings for one container: one dict per check, ``ok`` false where it breaks the policy. Pure."""
    host = inspect.get("HostConfig") or {}
    config = inspect.get("Config") or {}
    allowed = set(c for c in (normalize_capability(x) for x in policy.get("capabilities") or []) if c)
    findings = []

    findings.append(_finding("privileged", not host.get("Privileged"), False, bool(host.get("Privileged")),
                             "every capability, every device, no seccomp or LSM confinement"))
    network = str(host.get("NetworkMode") or "")
    findings.append(_finding("host_network", network != "host" or policy.get("host_network"),
                             "host" if policy.get("host_network") else "not host", network or "default"))
    for check, key in (("host_pid", "PidMode"), ("host_ipc", "IpcMode")):
        mode = str(host.get(key) or "")
        findings.append(_finding(check, mode != "host", "not host", mode or "private"))

    added = _caps(host.get("CapAdd"))
    extra_added = sorted(c for c in added if c not in allowed)
    findings.append(_finding("added_capabilities", not extra_added, _sorted_caps(allowed), _sorted_caps(added),
                             "added beyond the policy: %s" % ", ".join(extra_added) if extra_added else None))
    effective = effective_caps(inspect, engine)
    extra = _sorted_caps(effective - allowed)
    findings.append(_finding("capabilities", not extra, _sorted_caps(allowed), _sorted_caps(effective),
                             "not needed but kept (drop them with --cap-drop): %s" % ", ".join(extra) if extra else None))

    want_ro = policy.get("read_only_rootfs", True)
    findings.append(_finding("read_only_rootfs", bool(host.get("ReadonlyRootfs")) or not want_ro, want_ro,
                             bool(host.get("ReadonlyRootfs"))))
    user = config.get("User") or ""
    if policy.get("user") in ROOT_USERS[1:]:
        user_ok = _is_root(user)
        expected_user = policy["user"]
    elif policy.get("user"):
        user_ok = str(user).split(":", 1)[0] == policy["user"]
        expected_user = policy["user"]
    else:
        user_ok = not _is_root(user)
        expected_user = "not root"
    findings.append(_finding("user", user_ok, expected_user, user or "root (image default)"))

    opts = _security_opts(host)
    nnp = any(opt in ("no-new-privileges", "no-new-privileges=true") for opt in opts)
    findings.append(_finding("no_new_privileges", nnp, True, nnp))
    findings.append(_finding("seccomp", "seccomp=unconfined" not in opts, "a profile", "unconfined" if "seccomp=unconfined" in opts else "default"))
    apparmor = str(inspect.get("AppArmorProfile") or "")
    unconfined_aa = "apparmor=unconfined" in opts or apparmor == "unconfined"
    findings.append(_finding("apparmor", not unconfined_aa, "a profile (where AppArmor runs)", "unconfined" if unconfined_aa else apparmor or "none reported"))

    devices = sorted(str(d.get("PathOnHost")) for d in host.get("Devices") or [] if isinstance(d, dict))
    allowed_devices = set(policy.get("devices") or [])
    extra_devices = [d for d in devices if d not in allowed_devices]
    findings.append(_finding("devices", not extra_devices, sorted(allowed_devices), devices))

    writable = [os.path.normpath(p) for p in policy.get("writable_paths") or []]
    rw_mounts, sensitive = [], []
    for mount in inspect.get("Mounts") or []:
        source = os.path.normpath(str(mount.get("Source") or "")) if mount.get("Source") else ""
        if mount.get("Type", "bind") == "bind" and source in SENSITIVE_SOURCES:
            sensitive.append("%s:%s" % (source, mount.get("Destination")))
        if mount.get("RW") and mount.get("Type", "bind") == "bind" and not any(
                source == w or source.startswith(w + "/") for w in writable):
            rw_mounts.append("%s:%s" % (source, mount.get("Destination")))
    findings.append(_finding("sensitive_mounts", not sensitive, [], sensitive,
                             "host paths that give the container the host" if sensitive else None))
    findings.append(_finding("writable_mounts", not rw_mounts, writable, rw_mounts))

    if policy.get("ports") is not None:
        wanted = ["%s/%d" % p for p in (parse_port(x) for x in policy.get("ports") or []) if p]
        published = _ports(host)
        extra_ports = [p for p in published if p not in wanted]
        findings.append(_finding("published_ports", not extra_ports, wanted, published))
    return findings


def report(containers_inspect, policies, engine):
    """One entry per policy: found, compliant, findings (failed ones first)."""
    by_name = dict((container_name(c), c) for c in containers_inspect)
    out = []
    for policy in policies:
        name = policy["name"]
        inspect = by_name.get(name)
        if inspect is None:
            out.append({"name": name, "found": False, "compliant": None, "findings": [], "failed": [],
                        "image": None, "effective_capabilities": None})
            continue
        findings = assess(inspect, policy, engine)
        failed = [f["check"] for f in findings if not f["ok"]]
        out.append({
            "name": name,
            "found": True,
            "compliant": not failed,
            "failed": failed,
            "findings": sorted(findings, key=lambda f: f["ok"]),
            "image": (inspect.get("Config") or {}).get("Image") or inspect.get("ImageName") or inspect.get("Image"),
            "effective_capabilities": _sorted_caps(effective_caps(inspect, engine)),
        })
    return out
