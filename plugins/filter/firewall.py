# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller-side firewall model: validate all of it, then render one nftables table.

``firewall_validate`` returns every problem of a model as a list of strings, so a role
can fail with one message before the device is touched. ``firewall_render`` turns a
valid model into the text of ``table inet edgewarden { ... }``: our own table only,
never ``flush ruleset``, so other tables (a container engine's, OpenWrt's fw4) are left
alone. netaddr lives here, on the controller; the device needs nothing but ``nft``.

Both are pure functions of the model (a dict whose keys are the ``firewall_*`` role
variables without their prefix); the shape is documented in the role README and in
docs/firewall.md.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

try:
    import netaddr
    HAS_NETADDR = True
except ImportError:  # pragma: no cover - reported when a filter is used
    HAS_NETADDR = False

TABLE_FAMILY = "inet"
DEFAULT_TABLE = "edgewarden"
SELF = "self"
ANY = "any"
RESERVED_ZONES = (SELF, ANY)

ZONE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# Linux interface names: at most 15 characters, no '/', ':' or whitespace; the quote and
# backslash are refused too because the name ends up in an nft string. A trailing '*' is
# nft's prefix wildcard ("eth*").
IFNAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,15}\*?$")
RATE = re.compile(r"^[1-9][0-9]{0,8}/(second|minute|hour|day)$")
SAFE_TEXT = re.compile(r"[^A-Za-z0-9 _.,:;/>=+()\[\]#@-]")

ZONE_KEYS = ("interfaces", "vlans", "vlan_parent", "cidrs", "description")
SERVICE_KEYS = ("ports", "protocol", "description")
POLICY_KEYS = ("from", "to", "services", "action", "name", "description")
COLLECTOR_KEYS = ("addresses", "services", "description")
PROTOCOLS = ("tcp", "udp", "icmp")
ACTIONS = ("allow", "deny")
OUTPUT_POLICIES = ("accept", "drop")
NFT_COMMENT_MAX = 120
LOG_PREFIX_MAX = 60

DEFAULTS = {
    "table": DEFAULT_TABLE,
    "zones": {},
    "services": {},
    "policies": [],
    "bastion_addresses": [],
    "ssh_ports": [22],
    "ssh_bastion_only": True,
    "collectors": {},
    "icmp_echo": True,
    "icmp_rate": "10/second",
    "icmp_burst": 20,
    "log_drops": True,
    "log_rate": "5/minute",
    "log_burst": 10,
    "log_prefix": "edgewarden drop: ",
    "output_policy": "accept",
    "forward_passthrough_interfaces": [],
    "vlan_interface_format": "{parent}.{id}",
    "dhcpv6_client": True,
}

# ICMPv6 that is not connection-tracked and without which IPv6 stops working: neighbour
# discovery (RFC 4890 4.4.1: hop limit 255 proves it was not routed) and multicast
# listener discovery (link-local sources only).
ND_TYPES_IN = ("nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-solicit", "nd-router-advert")
ND_TYPES_OUT = ("nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-solicit")
MLD_TYPES = ("mld-listener-query", "mld-listener-report", "mld-listener-done", "mld2-listener-report")


def _require_netaddr():
    if not HAS_NETADDR:
        raise AnsibleFilterError("the edgewarden.hardening firewall filters need the netaddr Python library on the controller")


# ----------------------------------------------------------------------------- model


class Zone(object):
    def __init__(self, name, interfaces, v4, v6):
        self.name = name
        self.interfaces = interfaces  # rendered names, VLAN sub-interfaces included
        self.v4 = v4  # merged netaddr.IPNetwork lists
        self.v6 = v6

    @property
    def has_cidrs(self):
        return bool(self.v4 or self.v6)

    def families(self):
        """Address families this zone can match: both when it names no addresses."""
        if not self.has_cidrs:
            return (4, 6)
        return tuple(f for f, nets in ((4, self.v4), (6, self.v6)) if nets)


class Service(object):
    def __init__(self, name, protocols, ports):
        self.name = name
        self.protocols = protocols  # subset of PROTOCOLS, or ("any",)
        self.ports = ports  # merged [(low, high)], empty for icmp/any

    def pairs(self):
        """(protocol, low, high) triples; icmp and any have no ports."""
        out = []
        for proto in self.protocols:
            if proto in ("tcp", "udp"):
                out.extend((proto, low, high) for low, high in self.ports)
            else:
                out.append((proto, None, None))
        return out


ANY_SERVICE = Service(ANY, (ANY,), [])


class Policy(object):
    def __init__(self, index, source, dest, services, action, label):
        self.index = index
        self.source = source
        self.dest = dest
        self.services = services  # list of Service
        self.action = action
        self.label = label

    @property
    def chain(self):
        if self.dest == SELF:
            return "input"
        if self.source == SELF:
            return "output"
        return "forward"

    def describe(self, action=True):
        names = ",".join(s.name for s in self.services)
        text = "%s from %s to %s" % (names, self.source, self.dest)
        return "%s %s" % (self.action, text) if action else text


class Model(object):
    """A normalized model plus every problem found while normalizing it."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.problems = []
        self.table = DEFAULT_TABLE
        self.zones = {}
        self.services = {}
        self.policies = []
        self.bastion_v4 = []
        self.bastion_v6 = []
        self.ssh_ports = []
        self.ssh_bastion_only = True
        self.collectors = []  # (name, v4, v6, [Service])
        self.settings = {}

    def problem(self, where, text):
        self.problems.append("%s%s: %s" % (self.prefix, where, text))


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _safe(text, limit):
    return SAFE_TEXT.sub("_", str(text))[:limit]


def _parse_network(model, where, value):
    """One address or CIDR as a netaddr.IPNetwork, or None after recording a problem."""
    if not isinstance(value, str) or not value.strip():
        model.problem(where, "%r is not an IP address or CIDR" % (value,))
        return None
    text = value.strip()
    try:
        net = netaddr.IPNetwork(text)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        model.problem(where, "%r is not a valid IP address or CIDR" % text)
        return None
    if net.ip != net.network:
        model.problem(where, "%r has host bits set; did you mean %s?" % (text, net.cidr))
        return None
    return net.cidr


def _networks(model, where, values):
    v4, v6 = [], []
    if values is not None and not isinstance(values, (list, tuple)):
        model.problem(where, "must be a list of addresses or CIDRs")
        return v4, v6
    for i, value in enumerate(values or []):
        net = _parse_network(model, "%s[%d]" % (where, i), value)
        if net is not None:
            (v4 if net.version == 4 else v6).append(net)
    return netaddr.cidr_merge(v4), netaddr.cidr_merge(v6)


def _unknown_keys(model, where, spec, allowed):
    for key in sorted(set(spec) - set(allowed), key=str):
        model.problem(where, "unknown key %r (known: %s)" % (key, ", ".join(allowed)))


def _check_ifname(model, where, name):
    if not isinstance(name, str) or not IFNAME.match(name):
        model.problem(where, "%r is not a valid interface name (1-15 characters, optional trailing *)" % (name,))
        return False
    return True


def _normalize_zones(model, zones, vlan_format):
    where = "zones"
    if not isinstance(zones, dict):
        model.problem(where, "must be a mapping of zone name to {interfaces, vlans, vlan_parent, cidrs}")
        return
    for name in sorted(zones, key=str):
        spec = zones[name]
        zwhere = "%s.%s" % (where, name)
        reported = len(model.problems)
        if not isinstance(name, str) or not ZONE_NAME.match(name):
            model.problem(zwhere, "zone names are 1-16 characters: a lowercase letter, then lowercase letters, digits or _")
            continue
        if name in RESERVED_ZONES:
            model.problem(zwhere, "%r is reserved (self is the device, any is every zone)" % name)
            continue
        if not isinstance(spec, dict):
            model.problem(zwhere, "must be a mapping with interfaces, vlans (+ vlan_parent) and/or cidrs")
            continue
        _unknown_keys(model, zwhere, spec, ZONE_KEYS)
        interfaces = []
        raw_ifaces = spec.get("interfaces")
        if raw_ifaces is not None and not isinstance(raw_ifaces, (list, tuple)):
            model.problem(zwhere + ".interfaces", "must be a list of interface names")
            raw_ifaces = []
        for i, iface in enumerate(raw_ifaces or []):
            if _check_ifname(model, "%s.interfaces[%d]" % (zwhere, i), iface):
                interfaces.append(iface)
        vlans = spec.get("vlans")
        if vlans is not None and not isinstance(vlans, (list, tuple)):
            model.problem(zwhere + ".vlans", "must be a list of VLAN ids (1-4094)")
            vlans = []
        parent = spec.get("vlan_parent")
        for i, vid in enumerate(vlans or []):
            vwhere = "%s.vlans[%d]" % (zwhere, i)
            if isinstance(vid, str) and vid.isdigit():
                vid = int(vid)
            if not _is_int(vid) or not 1 <= vid <= 4094:
                model.problem(vwhere, "%r is not a VLAN id (1-4094)" % (vid,))
                continue
            if "{parent}" in vlan_format and not parent:
                model.problem(vwhere, "VLAN %d needs vlan_parent (the interface carrying the tagged traffic, e.g. eth0)" % vid)
                continue
            if parent and not _check_ifname(model, zwhere + ".vlan_parent", parent):
                continue
            try:
                vname = vlan_format.format(parent=parent or "", id=vid)
            except (KeyError, IndexError, ValueError):
                continue  # reported once with vlan_interface_format
            if _check_ifname(model, vwhere, vname):
                interfaces.append(vname)
        v4, v6 = _networks(model, zwhere + ".cidrs", spec.get("cidrs"))
        if len(model.problems) > reported:
            continue  # a half-understood zone would only add confusing overlap reports
        if not interfaces and not (v4 or v6):
            model.problem(zwhere, "matches nothing: give interfaces, vlans or cidrs")
            continue
        seen = []
        for iface in interfaces:
            if iface in seen:
                model.problem(zwhere, "interface %s is listed twice" % iface)
            else:
                seen.append(iface)
        model.zones[name] = Zone(name, seen, v4, v6)


def _parse_ports(model, where, ports):
    ranges = []
    if not isinstance(ports, (list, tuple)):
        ports = [ports]
    for i, port in enumerate(ports):
        pwhere = "%s[%d]" % (where, i)
        low = high = None
        if _is_int(port):
            low = high = port
        elif isinstance(port, str):
            text = port.strip()
            match = re.match(r"^(\d+)(?:\s*-\s*(\d+))?$", text)
            if match:
                low = int(match.group(1))
                high = int(match.group(2)) if match.group(2) else low
        if low is None:
            model.problem(pwhere, "%r is not a port or a port range like 8000-8080" % (port,))
            continue
        bad = [p for p in (low, high) if not 1 <= p <= 65535]
        if bad:
            model.problem(pwhere, "port %d is out of range (1-65535)" % bad[0])
            continue
        if low > high:
            model.problem(pwhere, "range %d-%d is reversed" % (low, high))
            continue
        ranges.append((low, high))
    return merge_ranges(ranges)


def merge_ranges(ranges):
    """Sorted, non-overlapping, non-adjacent (low, high) ranges: nft refuses overlapping
    intervals in one set ("conflicting intervals")."""
    merged = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _normalize_services(model, services):
    where = "services"
    if not isinstance(services, dict):
        model.problem(where, "must be a mapping of service name to {ports, protocol}")
        return
    for name in sorted(services, key=str):
        spec = services[name]
        swhere = "%s.%s" % (where, name)
        if spec is None:
            continue  # removed from the catalog by an override
        if not isinstance(name, str) or not SERVICE_NAME.match(name) or name == ANY:
            model.problem(swhere, "service names are a lowercase letter then up to 31 of [a-z0-9_-], and not 'any'")
            continue
        if not isinstance(spec, dict):
            model.problem(swhere, "must be a mapping with ports and protocol")
            continue
        _unknown_keys(model, swhere, spec, SERVICE_KEYS)
        protocols = _as_list(spec.get("protocol", "tcp"))
        bad = [p for p in protocols if p not in PROTOCOLS]
        if bad or not protocols:
            model.problem(swhere + ".protocol", "%r is not one of tcp, udp, icmp (or a list of tcp and udp)" % (spec.get("protocol"),))
            continue
        if "icmp" in protocols and len(protocols) > 1:
            model.problem(swhere + ".protocol", "icmp (echo request) cannot be combined with tcp or udp in one service")
            continue
        if protocols == ["icmp"]:
            if spec.get("ports"):
                model.problem(swhere + ".ports", "icmp services have no ports")
                continue
            model.services[name] = Service(name, ("icmp",), [])
            continue
        if not spec.get("ports"):
            model.problem(swhere + ".ports", "tcp and udp services need ports")
            continue
        count = len(model.problems)
        ports = _parse_ports(model, swhere + ".ports", spec["ports"])
        if len(model.problems) == count:
            model.services[name] = Service(name, tuple(sorted(set(protocols))), ports)


def _resolve_services(model, where, names, known_hint=True):
    if names == ANY or names == [ANY]:
        return [ANY_SERVICE]
    if not isinstance(names, (list, tuple)) or not names:
        model.problem(where, "must be a non-empty list of service names, or any")
        return None
    resolved = []
    for i, name in enumerate(names):
        if name == ANY:
            model.problem("%s[%d]" % (where, i), "any stands alone (it means every protocol and port)")
            return None
        service = model.services.get(name) if isinstance(name, str) else None
        if service is None:
            hint = " (known: %s)" % ", ".join(sorted(model.services)) if known_hint and model.services else ""
            model.problem("%s[%d]" % (where, i), "unknown service %r%s" % (name, hint))
            continue
        resolved.append(service)
    return resolved if len(resolved) == len(names) else None


def _zone_ref(model, where, value, allow_self=True):
    if value in (SELF, ANY) and (allow_self or value == ANY):
        return value
    if isinstance(value, str) and value in model.zones:
        return value
    known = sorted(model.zones) + [SELF, ANY]
    model.problem(where, "unknown zone %r (known: %s)" % (value, ", ".join(known)))
    return None


def _normalize_policies(model, policies, zone_names_raw):
    where = "policies"
    if not isinstance(policies, (list, tuple)):
        model.problem(where, "must be a list of {from, to, services, action}")
        return
    for index, spec in enumerate(policies):
        pwhere = "%s[%d]" % (where, index)
        if not isinstance(spec, dict):
            model.problem(pwhere, "must be a mapping with from, to, services and action")
            continue
        _unknown_keys(model, pwhere, spec, POLICY_KEYS)
        ends = []
        for key in ("from", "to"):
            value = spec.get(key)
            if value is None:
                model.problem(pwhere, "%s is required (a zone, self or any)" % key)
                ends.append(None)
            elif value in zone_names_raw and value not in model.zones:
                ends.append(None)  # the zone itself is invalid and already reported
            else:
                ends.append(_zone_ref(model, "%s.%s" % (pwhere, key), value))
        action = spec.get("action", "allow")
        if action not in ACTIONS:
            model.problem(pwhere + ".action", "%r is not allow or deny" % (action,))
            action = None
        services = _resolve_services(model, pwhere + ".services", spec.get("services"))
        source, dest = ends
        if source == SELF and dest == SELF:
            model.problem(pwhere, "from self to self: loopback traffic is always accepted")
            continue
        if None in (source, dest) or action is None or services is None:
            continue
        label = _safe(spec.get("name") or "", 40)
        model.policies.append(Policy(index, source, dest, services, action, label))


def _normalize_collectors(model, collectors):
    where = "collectors"
    if not isinstance(collectors, dict):
        model.problem(where, "must be a mapping of collector name to {addresses, services}")
        return
    for name in sorted(collectors, key=str):
        spec = collectors[name]
        cwhere = "%s.%s" % (where, name)
        if not isinstance(name, str) or not ZONE_NAME.match(name):
            model.problem(cwhere, "collector names are 1-16 characters: a lowercase letter, then lowercase letters, digits or _")
            continue
        if not isinstance(spec, dict):
            model.problem(cwhere, "must be a mapping with addresses and services")
            continue
        _unknown_keys(model, cwhere, spec, COLLECTOR_KEYS)
        if not spec.get("addresses"):
            model.problem(cwhere + ".addresses", "a collector needs at least one address")
            continue
        reported = len(model.problems)
        v4, v6 = _networks(model, cwhere + ".addresses", spec.get("addresses"))
        services = _resolve_services(model, cwhere + ".services", spec.get("services"))
        if services is None or len(model.problems) > reported:
            continue
        if any(s is ANY_SERVICE or "icmp" in s.protocols for s in services):
            model.problem(cwhere + ".services", "telemetry goes to named tcp or udp ports, not any or icmp")
            continue
        if v4 or v6:
            model.collectors.append((name, v4, v6, services))


def _check_settings(model, raw):
    settings = dict(DEFAULTS)
    settings.update(dict((k, v) for k, v in raw.items() if k in DEFAULTS and v is not None))
    table = settings["table"]
    if not isinstance(table, str) or not ZONE_NAME.match(table):
        model.problem("table", "%r is not a valid table name" % (table,))
    else:
        model.table = table
    for key in ("icmp_rate", "log_rate"):
        if not isinstance(settings[key], str) or not RATE.match(settings[key]):
            model.problem(key, "%r is not a rate like 10/second (per second, minute, hour or day)" % (settings[key],))
    for key in ("icmp_burst", "log_burst"):
        value = settings[key]
        if isinstance(value, str) and value.isdigit():
            value = settings[key] = int(value)
        if not _is_int(value) or not 1 <= value <= 100000:
            model.problem(key, "%r is not a packet count (1-100000)" % (value,))
    for key in ("icmp_echo", "log_drops", "ssh_bastion_only", "dhcpv6_client"):
        if not isinstance(settings[key], bool):
            model.problem(key, "%r is not true or false" % (settings[key],))
    prefix = settings["log_prefix"]
    if not isinstance(prefix, str) or not prefix or len(prefix) > LOG_PREFIX_MAX or SAFE_TEXT.search(prefix):
        model.problem("log_prefix", "must be 1-%d characters of letters, digits, spaces and _.,:;/>=+-" % LOG_PREFIX_MAX)
    if settings["output_policy"] not in OUTPUT_POLICIES:
        model.problem("output_policy", "%r is not accept or drop" % (settings["output_policy"],))
    fmt = settings["vlan_interface_format"]
    try:
        ok = isinstance(fmt, str) and "{id}" in fmt and fmt.format(parent="p", id=1) != ""
    except (KeyError, IndexError, ValueError):
        ok = False
    if not ok:
        model.problem("vlan_interface_format", "%r must contain {id} and may contain {parent} (e.g. {parent}.{id})" % (fmt,))
        settings["vlan_interface_format"] = DEFAULTS["vlan_interface_format"]
    passthrough = settings["forward_passthrough_interfaces"]
    if not isinstance(passthrough, (list, tuple)):
        model.problem("forward_passthrough_interfaces", "must be a list of interface names")
        settings["forward_passthrough_interfaces"] = []
    else:
        for i, iface in enumerate(passthrough):
            _check_ifname(model, "forward_passthrough_interfaces[%d]" % i, iface)
    ports = settings["ssh_ports"]
    count = len(model.problems)
    parsed = _parse_ports(model, "ssh_ports", ports if isinstance(ports, (list, tuple)) else [ports])
    if len(model.problems) == count:
        if not parsed:
            model.problem("ssh_ports", "at least one SSH port is needed")
        model.ssh_ports = parsed
    model.ssh_bastion_only = settings["ssh_bastion_only"] is not False
    model.settings = settings


# ----------------------------------------------------------------------------- cross checks


def _iface_overlap(a, b):
    """Interfaces (with nft's trailing-* prefix wildcard) that both lists can match."""
    shared = []
    for x in a:
        for y in b:
            xw, yw = x.endswith("*"), y.endswith("*")
            xp, yp = x.rstrip("*"), y.rstrip("*")
            if (xw and yw and (xp.startswith(yp) or yp.startswith(xp))) or (xw and not yw and yp.startswith(xp)) \
                    or (yw and not xw and xp.startswith(yp)) or (x == y):
                shared.append(x if len(x) >= len(y) else y)
    return sorted(set(shared))


def _ipset(nets):
    return netaddr.IPSet(nets)


def _zone_overlaps(model):
    names = sorted(model.zones)
    for i, a_name in enumerate(names):
        for b_name in names[i + 1:]:
            a, b = model.zones[a_name], model.zones[b_name]
            if a.interfaces and b.interfaces:
                shared_if = _iface_overlap(a.interfaces, b.interfaces)
                if not shared_if:
                    continue
                if_text = "interface %s" % ", ".join(shared_if)
            else:
                lacking = a_name if not a.interfaces else b_name
                if_text = "any interface (%s names none)" % lacking
            if a.has_cidrs and b.has_cidrs:
                shared = _ipset(a.v4 + a.v6) & _ipset(b.v4 + b.v6)
                if not shared:
                    continue
                addr_text = "addresses %s" % ", ".join(str(c) for c in shared.iter_cidrs()[:4])
            else:
                lacking = a_name if not a.has_cidrs else b_name
                addr_text = "any address (%s names no cidrs)" % lacking
            model.problem("zones", "zones %s and %s overlap: both match %s and %s; a packet must belong to one zone"
                          % (a_name, b_name, if_text, addr_text))


def _covers_zone(outer, inner):
    return outer == inner or (outer == ANY and inner not in (SELF,))


def _service_set(services):
    """{protocol: IPSet-like list of ranges} for coverage checks; ANY covers everything."""
    if any(s is ANY_SERVICE for s in services):
        return None
    table = {}
    for service in services:
        for proto, low, high in service.pairs():
            table.setdefault(proto, []).append((low, high))
    return dict((p, merge_ranges(r) if p in ("tcp", "udp") else r) for p, r in table.items())


def _ranges_cover(outer, inner):
    return all(any(ol <= il and ih <= oh for ol, oh in outer) for il, ih in inner)


def _services_cover(outer, inner):
    """True when every packet the ``inner`` services match is matched by ``outer``."""
    outer_set, inner_set = _service_set(outer), _service_set(inner)
    if outer_set is None:
        return True
    if inner_set is None:
        return False
    for proto, ranges in inner_set.items():
        if proto not in outer_set:
            return False
        if proto in ("tcp", "udp") and not _ranges_cover(outer_set[proto], ranges):
            return False
    return True


def _ssh_services(model, services):
    """The services among ``services`` that open an SSH port (tcp) of the device."""
    hits = []
    for service in services:
        if service is ANY_SERVICE:
            hits.append(service)
            continue
        if "tcp" in service.protocols and any(low <= sh and sl <= high for low, high in service.ports for sl, sh in model.ssh_ports):
            hits.append(service)
    return hits


def _cross_checks(model):
    _zone_overlaps(model)
    bastion_only = model.ssh_bastion_only
    ssh_text = "/".join("%d" % low if low == high else "%d-%d" % (low, high) for low, high in model.ssh_ports)
    for policy in model.policies:
        where = "policies[%d]" % policy.index
        if policy.source != SELF and policy.dest != SELF:
            fam_a = (4, 6) if policy.source == ANY else model.zones[policy.source].families()
            fam_b = (4, 6) if policy.dest == ANY else model.zones[policy.dest].families()
            if not set(fam_a) & set(fam_b):
                model.problem(where, "zones %s and %s have no address family in common (IPv4 vs IPv6): the policy can never match"
                              % (policy.source, policy.dest))
        if policy.action == "allow":
            for other in model.policies:
                if other.action != "deny":
                    continue
                if _covers_zone(other.source, policy.source) and _covers_zone(other.dest, policy.dest) \
                        and _services_cover(other.services, policy.services):
                    model.problem(where, "contradicts policies[%d]: it allows %s, which policies[%d] denies (%s); a deny wins, so the allow can never match"
                                  % (other.index, policy.describe(False), other.index, other.describe(False)))
            if policy.dest == SELF and bastion_only:
                opened = _ssh_services(model, policy.services)
                if opened:
                    model.problem(where, "allows SSH (tcp/%s, via %s) to the device from %s, but ssh_bastion_only restricts SSH to the bastion addresses"
                                  % (ssh_text, ", ".join(s.name for s in opened), policy.source))
    bastion = model.bastion_v4 + model.bastion_v6
    if bastion_only and not bastion:
        model.problem("bastion_addresses", "is empty while ssh_bastion_only restricts SSH to the bastion: the device would accept SSH from nobody")
    if not bastion_only and not bastion:
        ssh_allowed = any(p.action == "allow" and p.dest == SELF and _ssh_services(model, p.services) for p in model.policies)
        if not ssh_allowed:
            model.problem("ssh_bastion_only", "is false, bastion_addresses is empty and no policy allows SSH to the device: the controller would be locked out")
    if bastion:
        bastion_set = _ipset(bastion)
        for name, v4, v6, _services in model.collectors:
            shared = bastion_set & _ipset(v4 + v6)
            if shared:
                model.problem("collectors.%s.addresses" % name,
                              "%s is also a bastion address: telemetry is one-way (nothing from a collector may connect "
                              "to the device), SSH from the bastion must" % ", ".join(str(c) for c in shared.iter_cidrs()))


def build_model(raw, prefix=""):
    """Normalize and check ``raw``; returns a Model whose ``problems`` lists everything wrong."""
    _require_netaddr()
    model = Model(prefix)
    if not isinstance(raw, dict):
        model.problem("model", "must be a mapping")
        return model
    known = set(DEFAULTS)
    for key in sorted(set(raw) - known, key=str):
        model.problem(str(key), "unknown setting (known: %s)" % ", ".join(sorted(known)))
    _check_settings(model, raw)
    zones_raw = raw.get("zones") if raw.get("zones") is not None else {}
    _normalize_zones(model, zones_raw, model.settings["vlan_interface_format"])
    _normalize_services(model, raw.get("services") if raw.get("services") is not None else {})
    _normalize_policies(model, raw.get("policies") if raw.get("policies") is not None else [],
                        set(zones_raw) if isinstance(zones_raw, dict) else set())
    model.bastion_v4, model.bastion_v6 = _networks(model, "bastion_addresses", raw.get("bastion_addresses"))
    _normalize_collectors(model, raw.get("collectors") if raw.get("collectors") is not None else {})
    _cross_checks(model)
    return model


def firewall_validate(raw, prefix=""):
    """Every problem of the firewall model, as a list of strings (empty when valid)."""
    return build_model(raw, prefix).problems


# ----------------------------------------------------------------------------- render


def _quote_list(names):
    if len(names) == 1:
        return '"%s"' % names[0]
    return "{ %s }" % ", ".join('"%s"' % n for n in names)


def _port_expr(ranges):
    items = ["%d" % low if low == high else "%d-%d" % (low, high) for low, high in ranges]
    return items[0] if len(items) == 1 else "{ %s }" % ", ".join(items)


def _set_block(name, family, nets):
    kind = "ipv4_addr" if family == 4 else "ipv6_addr"
    elements = ", ".join(str(n) for n in nets)
    return "\tset %s {\n\t\ttype %s\n\t\tflags interval\n\t\telements = { %s }\n\t}\n" % (name, kind, elements)


def _addr_match(family, direction, set_name):
    proto = "ip" if family == 4 else "ip6"
    return "%s %s @%s" % (proto, direction, set_name)


def _zone_set(zone, family):
    return "zone_%s_%d" % (zone.name, family)


def _l4_matches(services, family):
    """Transport matches for a list of services, one string per rule ('' for any)."""
    if any(s is ANY_SERVICE for s in services):
        return [""]
    by_proto = _service_set(services)
    out = []
    for proto in ("tcp", "udp"):
        if proto in by_proto:
            out.append("%s dport %s" % (proto, _port_expr(by_proto[proto])))
    if "icmp" in by_proto:
        if family in (4, None):
            out.append("icmp type echo-request")
        if family in (6, None):
            out.append("icmpv6 type echo-request")
    return out


def _endpoint_parts(model, policy, family):
    """Interface and address matches for the policy's zones, for one address family
    (None when neither zone names addresses: one rule serves IPv4 and IPv6)."""
    parts = []
    for role, zone_name in (("source", policy.source), ("dest", policy.dest)):
        if zone_name in (SELF, ANY):
            continue
        zone = model.zones[zone_name]
        if zone.interfaces:
            parts.append("%s %s" % ("iifname" if role == "source" else "oifname", _quote_list(zone.interfaces)))
    for role, zone_name in (("source", policy.source), ("dest", policy.dest)):
        if zone_name in (SELF, ANY) or family is None:
            continue
        zone = model.zones[zone_name]
        nets = zone.v4 if family == 4 else zone.v6
        if nets:
            parts.append(_addr_match(family, "saddr" if role == "source" else "daddr", _zone_set(zone, family)))
    return parts


def _policy_families(model, policy):
    zones = [model.zones[z] for z in (policy.source, policy.dest) if z not in (SELF, ANY)]
    if not any(z.has_cidrs for z in zones):
        return [None]
    families = {4, 6}
    for zone in zones:
        families &= set(zone.families())
    return sorted(families)


def _policy_rules(model, policy, verdict):
    comment = _safe("policies[%d] %s%s" % (policy.index, policy.describe(), (" " + policy.label) if policy.label else ""), NFT_COMMENT_MAX)
    rules = []
    for family in _policy_families(model, policy):
        base = _endpoint_parts(model, policy, family)
        for l4 in _l4_matches(policy.services, family):
            parts = base + ([l4] if l4 else [])
            rules.append(" ".join(parts + [verdict, 'comment "%s"' % comment]))
    return rules


def _chain(name, hook, policy, rules):
    lines = ["\tchain %s {" % name]
    if hook:
        lines.append("\t\ttype filter hook %s priority filter; policy %s;" % (hook, policy))
    lines.extend("\t\t%s" % rule for rule in rules)
    lines.append("\t}")
    return "\n".join(lines) + "\n"


def firewall_render(raw, prefix=""):
    """The nft text of ``table inet <table> { ... }`` for a valid model.

    Only our own table: the device side replaces it atomically (add, delete, define in one
    transaction) and never flushes the ruleset, so other tables are left alone.
    """
    model = build_model(raw, prefix)
    if model.problems:
        raise AnsibleFilterError("firewall model is invalid (run firewall_validate first):\n- " + "\n- ".join(model.problems))
    s = model.settings
    log = s["log_drops"]
    drop = "jump drop_log" if log else "drop"
    sets = []
    for family, nets in ((4, model.bastion_v4), (6, model.bastion_v6)):
        if nets:
            sets.append(_set_block("bastion_%d" % family, family, nets))
    for name in sorted(model.zones):
        zone = model.zones[name]
        for family, nets in ((4, zone.v4), (6, zone.v6)):
            if nets:
                sets.append(_set_block(_zone_set(zone, family), family, nets))
    for name, v4, v6, _services in model.collectors:
        for family, nets in ((4, v4), (6, v6)):
            if nets:
                sets.append(_set_block("collector_%s_%d" % (name, family), family, nets))

    ssh_ports = _port_expr(model.ssh_ports)
    mld = "icmpv6 type { %s } ip6 saddr fe80::/10 accept" % ", ".join(MLD_TYPES)

    # input: the device itself. Order matters: loopback and IPv6 neighbour discovery;
    # the ping rate limit before the replies rule, because every echo request after the
    # first of a ping session belongs to an established conntrack entry and would pass
    # it; SSH from the bastion before anything that could deny it; the one-way
    # collectors; denies before allows; the (rate-limited) log.
    over = "limit rate over %s burst %d packets drop" % (s["icmp_rate"], s["icmp_burst"])
    inp = [
        'iifname "lo" accept',
        "icmpv6 type { %s } ip6 hoplimit 255 accept" % ", ".join(ND_TYPES_IN),
        mld,
        'icmp type echo-request %s comment "ping rate limit"' % over,
        'icmpv6 type echo-request %s comment "ping rate limit"' % over,
        "ct state established,related accept",
        "ct state invalid drop",
    ]
    for family in (4, 6):
        if (model.bastion_v4 if family == 4 else model.bastion_v6):
            inp.append('%s tcp dport %s accept comment "ssh from the bastion"'
                       % (_addr_match(family, "saddr", "bastion_%d" % family), ssh_ports))
    for name, v4, v6, _services in model.collectors:
        for family, nets in ((4, v4), (6, v6)):
            if nets:
                inp.append('%s %s comment "collector %s: telemetry is one-way"'
                           % (_addr_match(family, "saddr", "collector_%s_%d" % (name, family)), drop, name))
    if s["dhcpv6_client"]:
        inp.append('ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept comment "dhcpv6 client"')
    if s["icmp_echo"]:
        inp.append("icmp type echo-request accept")
        inp.append("icmpv6 type echo-request accept")
    fwd = ["ct state established,related accept", "ct state invalid drop"]
    passthrough = list(s["forward_passthrough_interfaces"])
    if passthrough:
        fwd.append('iifname %s accept comment "passthrough: another table decides"' % _quote_list(passthrough))
        fwd.append('oifname %s accept comment "passthrough: another table decides"' % _quote_list(passthrough))
    out = ['oifname "lo" accept', "ct state established,related accept"]
    if s["output_policy"] == "drop":
        out.append("icmpv6 type { %s } accept" % ", ".join(ND_TYPES_OUT + MLD_TYPES))
    for name, v4, v6, services in model.collectors:
        for family, nets in ((4, v4), (6, v6)):
            if not nets:
                continue
            for l4 in _l4_matches(services, family):
                out.append('%s %s accept comment "telemetry to collector %s"'
                           % (_addr_match(family, "daddr", "collector_%s_%d" % (name, family)), l4, name))

    chains = {"input": inp, "forward": fwd, "output": out}
    for action, verdict in (("deny", drop), ("allow", "accept")):
        for policy in model.policies:
            if policy.action == action:
                chains[policy.chain].extend(_policy_rules(model, policy, verdict))
    if log:
        inp.append("jump drop_log")
        fwd.append("jump drop_log")
        if s["output_policy"] == "drop":
            out.append("jump drop_log")

    body = "".join(sets)
    if log:
        body += _chain("drop_log", None, None, [
            'limit rate %s burst %d packets counter log prefix "%s" level info' % (s["log_rate"], s["log_burst"], s["log_prefix"]),
            "drop",
        ])
    body += _chain("input", "input", "drop", inp)
    body += _chain("forward", "forward", "drop", fwd)
    body += _chain("output", "output", s["output_policy"], out)
    header = ("# Rendered by edgewarden.hardening (firewall_render): the whole table, replaced atomically.\n"
              "# Other tables are not touched.\n")
    return "%stable %s %s {\n%s}\n" % (header, TABLE_FAMILY, model.table, body)


class FilterModule(object):
    def filters(self):
        return {
            "firewall_validate": firewall_validate,
            "firewall_render": firewall_render,
        }
