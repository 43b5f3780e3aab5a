# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sets that rules fill from the packet path (per-source rate limits) hold traffic state:
their elements must not make a table look changed. Listings as nft 1.0.6 prints them."""

from __future__ import annotations

import json

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import nft

FAMILY, TABLE = "inet", "edgewarden_ratelimit"


def json_listing(elements, static_elements=None, op="update"):
    meter = {"family": FAMILY, "name": "meter4", "table": TABLE, "type": "ipv4_addr", "handle": 2, "size": 65535,
             "flags": ["timeout"], "timeout": 3600}
    if elements:
        meter["elem"] = [{"elem": {"val": addr, "expires": 3599, "limit": {"rate": 10, "burst": 30, "per": "minute",
                                                                           "inv": True}}} for addr in elements]
    exempt = {"family": FAMILY, "name": "exempt4", "table": TABLE, "type": "ipv4_addr", "handle": 3,
              "flags": ["interval"], "elem": static_elements or ["10.0.0.1"]}
    rule = {"family": FAMILY, "table": TABLE, "chain": "input", "handle": 4, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}},
        {"set": {"op": op, "elem": {"payload": {"protocol": "ip", "field": "saddr"}}, "set": "@meter4",
                 "stmt": [{"limit": {"rate": 10, "burst": 30, "per": "minute", "inv": True}}]}},
        {"drop": None}]}
    return json.dumps({"nftables": [{"metainfo": {"version": "1.0.6"}},
                                    {"table": {"family": FAMILY, "name": TABLE, "handle": 9}},
                                    {"set": meter}, {"set": exempt},
                                    {"chain": {"family": FAMILY, "table": TABLE, "name": "input", "handle": 1}},
                                    {"rule": rule}]})


@pytest.mark.parametrize("op", ["update", "add"])
def test_elements_of_packet_fed_sets_are_state(op):
    fresh = nft.normalize_json(json_listing([], op=op), FAMILY, TABLE)
    busy = nft.normalize_json(json_listing(["192.168.77.12", "192.168.77.11"], op=op), FAMILY, TABLE)
    assert fresh == busy
    assert nft.describe(fresh) == nft.describe(busy)


def test_elements_of_static_sets_are_configuration():
    a = nft.normalize_json(json_listing([], ["10.0.0.1"]), FAMILY, TABLE)
    b = nft.normalize_json(json_listing([], ["10.0.0.2"]), FAMILY, TABLE)
    assert a != b


TEXT = """table inet edgewarden_ratelimit {
\tset exempt4 {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { %s }
\t}

\tset meter4 {
\t\ttype ipv4_addr
\t\tsize 65535
\t\tflags dynamic,timeout
\t\ttimeout 1h
%s\t}

\tchain input {
\t\ttype filter hook input priority filter - 5; policy accept;
\t\ttcp dport { 22 } ct state new update @meter4 { ip saddr limit rate over 10/minute burst 30 packets } drop
\t}
}
"""


@pytest.mark.parametrize("elements", [
    "\t\telements = { 192.168.77.12 limit rate over 10/minute burst 30 packets }\n",
    "\t\telements = { 192.168.77.12 limit rate over 10/minute burst 30 packets,\n"
    "\t\t\t     192.168.77.11 limit rate over 10/minute burst 30 packets }\n",
])
def test_text_listing_drops_packet_fed_elements_only(elements):
    fresh = nft.normalize_text(TEXT % ("10.0.0.1", ""))
    assert nft.normalize_text(TEXT % ("10.0.0.1", elements)) == fresh
    assert nft.normalize_text(TEXT % ("10.0.0.2", elements)) != fresh
