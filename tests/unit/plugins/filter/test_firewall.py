# SPDX-License-Identifier: GPL-3.0-or-later
"""The firewall model: every bad input gives its message, valid ones render one safe table."""

import copy
import os
import re

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.edgewarden.hardening.plugins.filter import firewall

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "firewall")

SERVICES = {
    "ssh": {"ports": [22], "protocol": "tcp"},
    "http": {"ports": [80], "protocol": "tcp"},
    "web": {"ports": [80, "8000-8080", 8080], "protocol": "tcp"},
    "dns": {"ports": [53], "protocol": ["tcp", "udp"]},
    "mqtt": {"ports": [1883], "protocol": "tcp"},
    "syslog": {"ports": [514], "protocol": "udp"},
    "syslog_tls": {"ports": [6514], "protocol": "tcp"},
    "ping": {"protocol": "icmp"},
}

GATEWAY = {
    "zones": {
        "lan": {"interfaces": ["eth0"], "cidrs": ["192.168.77.0/24", "fd77::/64"]},
        "vlan10": {"vlans": [10], "vlan_parent": "seg", "cidrs": ["10.10.0.0/24", "fd10::/64"]},
        "vlan20": {"vlans": [20], "vlan_parent": "seg", "cidrs": ["10.20.0.0/24", "fd20::/64"]},
    },
    "services": SERVICES,
    "policies": [
        {"from": "vlan10", "to": "vlan20", "services": ["mqtt", "ping"]},
        {"from": "vlan20", "to": "vlan10", "services": "any", "action": "deny"},
        {"from": "vlan10", "to": "self", "services": ["web", "dns"]},
    ],
    "bastion_addresses": ["192.168.77.1", "fd77::1"],
    "collectors": {"logs": {"addresses": ["192.168.77.13", "fd77::13"], "services": ["syslog", "syslog_tls"]}},
    "output_policy": "drop",
}


def model(**changes):
    out = copy.deepcopy(GATEWAY)
    out.update(changes)
    return out


def chain(text, name):
    match = re.search(r"\tchain %s \{\n(.*?)\n\t\}" % name, text, re.S)
    assert match, name
    return [line.strip() for line in match.group(1).splitlines()]


def index_of(lines, needle):
    return next(i for i, line in enumerate(lines) if needle in line)


# ------------------------------------------------------------------ valid models


def test_gateway_model_is_valid():
    assert firewall.firewall_validate(GATEWAY) == []


def test_render_defines_only_our_table_and_never_flushes():
    text = firewall.firewall_render(GATEWAY)
    assert "flush" not in text
    assert re.findall(r"^table .*$", text, re.M) == ["table inet edgewarden {"]
    assert text.rstrip().endswith("}")


def test_input_order_bastion_first_then_collectors_then_denies():
    text = firewall.firewall_render(model(policies=GATEWAY["policies"] + [
        {"from": "lan", "to": "self", "services": ["http"], "action": "deny"}]))
    inp = chain(text, "input")
    assert inp[0] == "type filter hook input priority filter; policy drop;"
    assert inp[1] == 'iifname "lo" accept'
    ssh = index_of(inp, "ip saddr @bastion_4 tcp dport 22 accept")
    assert index_of(inp, "ip6 saddr @bastion_6 tcp dport 22 accept") == ssh + 1
    assert index_of(inp, "ct state established,related accept") < ssh
    collector = index_of(inp, "@collector_logs_4 jump drop_log")
    deny = index_of(inp, "deny http from lan to self")
    allow = index_of(inp, "allow web,dns from vlan10 to self")
    assert ssh < collector < deny < allow
    assert inp[-1] == "jump drop_log"


def test_ipv6_neighbour_discovery_comes_before_the_invalid_drop():
    inp = chain(firewall.firewall_render(GATEWAY), "input")
    assert index_of(inp, "nd-neighbor-solicit") < index_of(inp, "ct state invalid drop")
    assert "ip6 hoplimit 255" in inp[index_of(inp, "nd-neighbor-solicit")]


def test_forward_segmentation_uses_vlan_interfaces_and_zone_sets():
    fwd = chain(firewall.firewall_render(GATEWAY), "forward")
    assert fwd[0] == "type filter hook forward priority filter; policy drop;"
    allow = [line for line in fwd if "allow mqtt,ping from vlan10 to vlan20" in line]
    assert 'iifname "seg.10" oifname "seg.20" ip saddr @zone_vlan10_4 ip daddr @zone_vlan20_4 tcp dport 1883 accept' in allow[0]
    assert any("icmpv6 type echo-request accept" in line and "@zone_vlan10_6" in line for line in allow)
    deny = index_of(fwd, "deny any from vlan20 to vlan10")
    assert deny < index_of(fwd, "allow mqtt,ping")
    assert "tcp dport" not in fwd[deny] and "jump drop_log" in fwd[deny]


def test_port_sets_are_merged_so_nft_accepts_them():
    inp = chain(firewall.firewall_render(GATEWAY), "input")
    rule = inp[index_of(inp, "allow web,dns from vlan10 to self")]
    assert "tcp dport { 53, 80, 8000-8080 }" in rule
    assert any("udp dport 53" in line for line in inp)


def test_output_drop_allows_telemetry_and_neighbour_discovery_only():
    out = chain(firewall.firewall_render(GATEWAY), "output")
    assert out[0] == "type filter hook output priority filter; policy drop;"
    assert any("ip daddr @collector_logs_4 tcp dport 6514 accept" in line for line in out)
    assert any("ip6 daddr @collector_logs_6 udp dport 514 accept" in line for line in out)
    assert any(line.startswith("icmpv6 type {") and "nd-neighbor-solicit" in line for line in out)
    assert out[-1] == "jump drop_log"


def test_output_accept_has_no_final_drop():
    out = chain(firewall.firewall_render(model(output_policy="accept")), "output")
    assert out[0].endswith("policy accept;")
    assert "jump drop_log" not in out[-1]
    assert not any("nd-neighbor-solicit" in line for line in out)


def test_drop_logging_is_rate_limited_and_optional():
    text = firewall.firewall_render(GATEWAY)
    assert chain(text, "drop_log") == [
        'limit rate 5/minute burst 10 packets counter log prefix "edgewarden drop: " level info', "drop"]
    quiet = firewall.firewall_render(model(log_drops=False))
    assert "drop_log" not in quiet
    assert any(line.endswith('drop comment "policies[1] deny any from vlan20 to vlan10"') for line in chain(quiet, "forward"))


def test_icmp_echo_is_rate_limited_before_the_replies_rule():
    # a ping session's requests after the first are "established": the limit must come first
    inp = chain(firewall.firewall_render(model(icmp_rate="3/second", icmp_burst=5)), "input")
    limit = index_of(inp, 'icmp type echo-request limit rate over 3/second burst 5 packets drop comment "ping rate limit"')
    assert inp[limit + 1] == 'icmpv6 type echo-request limit rate over 3/second burst 5 packets drop comment "ping rate limit"'
    assert limit < index_of(inp, "ct state established,related accept")
    assert "icmp type echo-request accept" in inp and "icmpv6 type echo-request accept" in inp


def test_icmp_echo_can_be_left_to_policies():
    off = chain(firewall.firewall_render(model(icmp_echo=False, policies=[
        {"from": "vlan10", "to": "self", "services": ["ping"]}])), "input")
    assert "icmp type echo-request accept" not in off
    assert any(line.startswith('iifname "seg.10" ip saddr @zone_vlan10_4 icmp type echo-request accept') for line in off)
    assert any("limit rate over" in line for line in off)


def test_zone_without_cidrs_gives_one_rule_for_both_families():
    m = model(zones={"lan": {"interfaces": ["eth0"]}}, policies=[{"from": "lan", "to": "self", "services": ["http"]}],
              collectors={})
    inp = chain(firewall.firewall_render(m), "input")
    rules = [line for line in inp if "allow http from lan" in line]
    assert rules == ['iifname "eth0" tcp dport 80 accept comment "policies[0] allow http from lan to self"']


def test_ipv4_only_zone_gives_ipv4_rules_only():
    m = model(zones={"lan": {"cidrs": ["10.0.0.0/8"]}}, policies=[{"from": "lan", "to": "self", "services": ["http"]}],
              collectors={})
    rules = [line for line in chain(firewall.firewall_render(m), "input") if "from lan" in line]
    assert rules == ['ip saddr @zone_lan_4 tcp dport 80 accept comment "policies[0] allow http from lan to self"']


def test_addresses_are_merged_into_interval_sets():
    m = model(zones={"lan": {"cidrs": ["10.0.0.0/25", "10.0.0.128/25", "10.0.0.7/32"]}}, policies=[], collectors={})
    text = firewall.firewall_render(m)
    assert "elements = { 10.0.0.0/24 }" in text


def test_passthrough_interfaces_for_container_engines():
    fwd = chain(firewall.firewall_render(model(forward_passthrough_interfaces=["docker0", "br-*"])), "forward")
    assert 'iifname { "docker0", "br-*" } accept comment "passthrough: another table decides"' in fwd
    assert 'oifname { "docker0", "br-*" } accept comment "passthrough: another table decides"' in fwd


def test_vlan_interface_format():
    m = model(vlan_interface_format="vlan{id}")
    m["zones"]["vlan10"].pop("vlan_parent")
    m["zones"]["vlan20"].pop("vlan_parent")
    assert firewall.firewall_validate(m) == []
    assert 'iifname "vlan10" oifname "vlan20"' in firewall.firewall_render(m)


def test_null_service_is_removed_from_the_catalog():
    services = dict(SERVICES, http=None)
    m = model(services=services, policies=[{"from": "lan", "to": "self", "services": ["http"]}])
    problems = firewall.firewall_validate(m)
    assert problems == ["policies[0].services[0]: unknown service 'http' (known: dns, mqtt, ping, ssh, syslog, syslog_tls, web)"]


def test_ssh_open_to_policies_when_not_bastion_only():
    m = model(bastion_addresses=[], ssh_bastion_only=False, collectors={},
              policies=[{"from": "lan", "to": "self", "services": ["ssh"]}])
    assert firewall.firewall_validate(m) == []
    inp = chain(firewall.firewall_render(m), "input")
    assert not any("bastion" in line for line in inp)
    assert any("tcp dport 22 accept" in line and "from lan" in line for line in inp)


def test_render_refuses_an_invalid_model():
    with pytest.raises(AnsibleFilterError, match="bastion_addresses: is empty"):
        firewall.firewall_render(model(bastion_addresses=[]))


def test_merge_ranges():
    assert firewall.merge_ranges([(80, 80), (8000, 8080), (8080, 8080), (79, 79), (81, 90)]) == [(79, 90), (8000, 8080)]


# ------------------------------------------------------------------ invalid models: one message each


def zones(**extra):
    out = copy.deepcopy(GATEWAY["zones"])
    out.update(extra)
    return out


BAD = [
    ("bad cidr", dict(zones=zones(lab={"cidrs": ["10.1.2.300/24"]})),
     "zones.lab.cidrs[0]: '10.1.2.300/24' is not a valid IP address or CIDR"),
    ("host bits", dict(zones=zones(lab={"cidrs": ["10.9.0.5/24"]})),
     "zones.lab.cidrs[0]: '10.9.0.5/24' has host bits set; did you mean 10.9.0.0/24?"),
    ("overlapping cidrs", dict(zones=zones(lab={"cidrs": ["192.168.77.128/25"]})),
     "zones: zones lab and lan overlap: both match any interface (lab names none) and addresses 192.168.77.128/25"),
    ("overlapping interfaces", dict(zones=zones(wired={"interfaces": ["eth0"]})),
     "zones: zones lan and wired overlap: both match interface eth0 and any address (wired names no cidrs)"),
    ("overlapping wildcard", dict(zones=zones(wired={"interfaces": ["eth*"], "cidrs": ["192.168.77.0/28"]})),
     "zones: zones lan and wired overlap: both match interface eth0 and addresses 192.168.77.0/28"),
    ("overlapping ipv6", dict(zones=zones(lab={"cidrs": ["fd77::/48"]})),
     "zones: zones lab and lan overlap: both match any interface (lab names none) and addresses fd77::/64"),
    ("same vlan twice", dict(zones=zones(again={"vlans": [10], "vlan_parent": "seg"})),
     "zones: zones again and vlan10 overlap: both match interface seg.10"),
    ("unknown zone", dict(policies=[{"from": "dmz", "to": "self", "services": ["http"]}]),
     "policies[0].from: unknown zone 'dmz' (known: lan, vlan10, vlan20, self, any)"),
    ("unknown service", dict(policies=[{"from": "lan", "to": "self", "services": ["telnet"]}]),
     "policies[0].services[0]: unknown service 'telnet'"),
    ("port zero", dict(services=dict(SERVICES, bad={"ports": [0]})), "services.bad.ports[0]: port 0 is out of range (1-65535)"),
    ("port too big", dict(services=dict(SERVICES, bad={"ports": [65536]})), "services.bad.ports[0]: port 65536 is out of range (1-65535)"),
    ("range reversed", dict(services=dict(SERVICES, bad={"ports": ["90-80"]})), "services.bad.ports[0]: range 90-80 is reversed"),
    ("range out of range", dict(services=dict(SERVICES, bad={"ports": ["65000-70000"]})), "services.bad.ports[0]: port 70000 is out of range"),
    ("not a port", dict(services=dict(SERVICES, bad={"ports": ["http"]})), "services.bad.ports[0]: 'http' is not a port"),
    ("bad protocol", dict(services=dict(SERVICES, bad={"ports": [1], "protocol": "sctp"})), "services.bad.protocol: 'sctp' is not one of"),
    ("icmp with ports", dict(services=dict(SERVICES, bad={"ports": [1], "protocol": "icmp"})), "services.bad.ports: icmp services have no ports"),
    ("allow and deny", dict(policies=[{"from": "lan", "to": "self", "services": ["http"]},
                                      {"from": "lan", "to": "self", "services": ["http"], "action": "deny"}]),
     "policies[0]: contradicts policies[1]: it allows http from lan to self, which policies[1] denies (http from lan to self)"),
    ("deny any shadows allow", dict(policies=[{"from": "any", "to": "self", "services": "any", "action": "deny"},
                                              {"from": "lan", "to": "self", "services": ["mqtt"]}]),
     "policies[1]: contradicts policies[0]: it allows mqtt from lan to self, which policies[0] denies (any from any to self)"),
    ("same ports other name", dict(policies=[{"from": "lan", "to": "self", "services": ["web"], "action": "deny"},
                                             {"from": "lan", "to": "self", "services": ["http"]}]),
     "policies[1]: contradicts policies[0]"),
    ("ssh by policy", dict(policies=[{"from": "lan", "to": "self", "services": ["ssh"]}]),
     "policies[0]: allows SSH (tcp/22, via ssh) to the device from lan, but ssh_bastion_only restricts SSH to the bastion addresses"),
    ("any opens ssh", dict(policies=[{"from": "lan", "to": "self", "services": "any"}]),
     "policies[0]: allows SSH (tcp/22, via any) to the device from lan"),
    ("no bastion", dict(bastion_addresses=[]),
     "bastion_addresses: is empty while ssh_bastion_only restricts SSH to the bastion: the device would accept SSH from nobody"),
    ("no ssh at all", dict(bastion_addresses=[], ssh_bastion_only=False, collectors={}),
     "ssh_bastion_only: is false, bastion_addresses is empty and no policy allows SSH to the device: the controller would be locked out"),
    ("collector is bastion", dict(collectors={"logs": {"addresses": ["192.168.77.1"], "services": ["syslog"]}}),
     "collectors.logs.addresses: 192.168.77.1/32 is also a bastion address"),
    ("collector any", dict(collectors={"logs": {"addresses": ["192.168.77.13"], "services": "any"}}),
     "collectors.logs.services: telemetry goes to named tcp or udp ports, not any or icmp"),
    ("vlan id", dict(zones=zones(bad={"vlans": [4095], "vlan_parent": "seg"})), "zones.bad.vlans[0]: 4095 is not a VLAN id (1-4094)"),
    ("vlan without parent", dict(zones=zones(bad={"vlans": [30]})), "zones.bad.vlans[0]: VLAN 30 needs vlan_parent"),
    ("interface name", dict(zones=zones(bad={"interfaces": ["eth0/1"]})), "zones.bad.interfaces[0]: 'eth0/1' is not a valid interface name"),
    ("interface too long", dict(zones=zones(bad={"interfaces": ["averyveryverylongname"]})), "is not a valid interface name"),
    ("empty zone", dict(zones=zones(bad={})), "zones.bad: matches nothing: give interfaces, vlans or cidrs"),
    ("zone typo key", dict(zones=zones(bad={"interface": ["eth1"]})), "zones.bad: unknown key 'interface'"),
    ("reserved zone", dict(zones=zones(self={"interfaces": ["eth9"]})), "zones.self: 'self' is reserved"),
    ("zone name", dict(zones=zones(**{"Lan-2": {"interfaces": ["eth9"]}})), "zones.Lan-2: zone names are 1-16 characters"),
    ("self to self", dict(policies=[{"from": "self", "to": "self", "services": "any"}]),
     "policies[0]: from self to self: loopback traffic is always accepted"),
    ("bad action", dict(policies=[{"from": "lan", "to": "self", "services": ["http"], "action": "reject"}]),
     "policies[0].action: 'reject' is not allow or deny"),
    ("any mixed", dict(policies=[{"from": "lan", "to": "self", "services": ["http", "any"]}]),
     "policies[0].services[1]: any stands alone"),
    ("no address family in common", dict(zones=zones(v6only={"interfaces": ["eth6"], "cidrs": ["fd99::/64"]},
                                                     v4only={"interfaces": ["eth4"], "cidrs": ["10.99.0.0/24"]}),
                                         policies=[{"from": "v4only", "to": "v6only", "services": ["http"]}]),
     "policies[0]: zones v4only and v6only have no address family in common"),
    ("bad rate", dict(icmp_rate="fast"), "icmp_rate: 'fast' is not a rate like 10/second"),
    ("bad burst", dict(log_burst=0), "log_burst: 0 is not a packet count"),
    ("bad output policy", dict(output_policy="reject"), "output_policy: 'reject' is not accept or drop"),
    ("unknown setting", dict(ssh_port=22), "ssh_port: unknown setting"),
    ("bad log prefix", dict(log_prefix='say "hi"'), "log_prefix: must be 1-60 characters"),
    ("vlan format", dict(vlan_interface_format="vlan"), "vlan_interface_format: 'vlan' must contain {id}"),
]


@pytest.mark.parametrize("case, changes, message", BAD, ids=[case for case, _c, _m in BAD])
def test_each_bad_input_gives_its_message(case, changes, message):
    problems = firewall.firewall_validate(model(**changes))
    assert any(p.startswith(message) or message in p for p in problems), problems
    with pytest.raises(AnsibleFilterError):
        firewall.firewall_render(model(**changes))


def test_every_problem_is_listed_at_once_with_the_role_prefix():
    bad = model(zones=zones(lab={"cidrs": ["10.1.2.300/24"]}), bastion_addresses=[],
                services=dict(SERVICES, bad={"ports": [70000]}),
                policies=[{"from": "dmz", "to": "self", "services": ["telnet"]}])
    problems = firewall.firewall_validate(bad, prefix="firewall_")
    assert len(problems) == 5, problems
    assert all(p.startswith("firewall_") for p in problems)


def test_not_a_mapping():
    assert firewall.firewall_validate(["zones"]) == ["model: must be a mapping"]


# ------------------------------------------------------------------ the role around the filters


def _role(path):
    with open(os.path.join(ROLE, path)) as handle:
        return yaml.safe_load(handle)


def test_role_model_covers_every_setting_of_the_filter():
    # one Jinja dict expression: its keys are the quoted names before a colon
    model_keys = set(re.findall(r"'(\w+)':", _role("vars/main.yml")["__firewall_model"]))
    assert model_keys == set(firewall.DEFAULTS) - {"table"}
    defaults = _role("defaults/main.yml")
    for key in model_keys - {"services"}:
        assert "firewall_" + key in defaults, key


def test_role_defaults_with_a_bastion_are_valid():
    defaults = _role("defaults/main.yml")
    raw = dict((k[len("firewall_"):], v) for k, v in defaults.items() if k[len("firewall_"):] in firewall.DEFAULTS)
    raw["services"] = dict(defaults["firewall_service_catalog"], **defaults["firewall_services"])
    assert firewall.firewall_validate(raw) == ["bastion_addresses: is empty while ssh_bastion_only restricts SSH to the "
                                               "bastion: the device would accept SSH from nobody"]
    raw["bastion_addresses"] = ["10.0.0.1"]
    assert firewall.firewall_validate(raw) == []
    assert "ip saddr @bastion_4 tcp dport 22 accept" in firewall.firewall_render(raw)
