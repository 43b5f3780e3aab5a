# SPDX-License-Identifier: GPL-3.0-or-later
"""The mac role's controller side: every bad input named at once, profiles rendered from
variables, the module's list built from the role's three lists, the denial report, and the
role's declarations kept consistent."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.edgewarden.hardening.plugins.filter import mac
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import apparmor

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "mac")

DEMO = {"name": "ew-demo", "binary": "/usr/local/bin/ew-demo", "mode": "enforce",
        "file_rules": ["/usr/bin/dash ix", "/usr/bin/cat ix", "/etc/hostname r"]}


def test_render():
    text = mac.mac_apparmor_render(dict(DEMO, capabilities=["net_bind_service"], network=["inet stream"],
                                        rules=["signal (receive) peer=unconfined"], flags=["attach_disconnected"]))
    assert text == (
        "# AppArmor profile for /usr/local/bin/ew-demo, rendered by the edgewarden.hardening mac role.\n"
        "abi <abi/3.0>,\n"
        "include <tunables/global>\n"
        "\n"
        "profile ew-demo /usr/local/bin/ew-demo flags=(attach_disconnected) {\n"
        "  include <abstractions/base>\n"
        "\n"
        "  /usr/local/bin/ew-demo r,\n"
        "  capability net_bind_service,\n"
        "  network inet stream,\n"
        "  /usr/bin/dash ix,\n"
        "  /usr/bin/cat ix,\n"
        "  /etc/hostname r,\n"
        "  signal (receive) peer=unconfined,\n"
        "}\n")
    assert "abi" not in mac.mac_apparmor_render(DEMO, abi="")
    # the rendered text passes the module's own checks (flags, name)
    assert apparmor.flag_errors("ew-demo", text, "enforce") == []


@pytest.mark.parametrize("enforce, staged, explicit, mode, want_staged", [
    (False, True, None, "complain", False),
    (True, True, None, "enforce", True),
    (True, False, None, "enforce", False),
    (False, True, "enforce", "enforce", False),
    (True, True, "disabled", "disabled", False),
])
def test_rollout(enforce, staged, explicit, mode, want_staged):
    profile = dict(DEMO, mode=explicit) if explicit else dict((k, v) for k, v in DEMO.items() if k != "mode")
    items = mac.mac_apparmor_items([profile], enforce=enforce, staged=staged)
    assert (items[0]["mode"], items[0]["staged"]) == (mode, want_staged)


def test_items_from_the_three_lists():
    files = [{"name": "ew-probe", "src": "a.j2"}, {"name": "old", "state": "absent"}, {"name": "x", "src": "b", "mode": "enforce"}]
    items = mac.mac_apparmor_items([DEMO, {"name": "gone", "state": "absent"}], files, ["TEXT A", "TEXT B"],
                                   [{"name": "/usr/sbin/ntpd", "mode": "complain"}])
    assert [(i["name"], i.get("mode"), i["state"] if "state" in i else None) for i in items] == [
        ("ew-demo", "enforce", "present"), ("gone", None, "absent"), ("ew-probe", "complain", "present"),
        ("old", None, "absent"), ("x", "enforce", "present"), ("/usr/sbin/ntpd", "complain", None)]
    assert items[2]["content"] == "TEXT A" and items[4]["content"] == "TEXT B"
    assert mac.mac_apparmor_sources(files) == ["a.j2", "b"]
    with pytest.raises(ValueError):
        mac.mac_apparmor_items([], files, ["only one"])
    # every item is valid module input
    assert apparmor.normalize_items(items)[1] == []


def test_validate_names_every_problem():
    problems = mac.mac_validate({
        "apparmor_profiles": [
            DEMO, DEMO,
            {"name": "bad name", "binary": "relative", "mode": "kill", "capabilities": ["NET ADMIN"],
             "file_rules": ["/etc/x"], "flags": ["unconfined"], "colour": "red"},
            {"name": "multi", "binary": "/bin/x", "rules": ["a,\nb"]},
        ],
        "apparmor_profile_files": [{"name": "f"}],
        "apparmor_existing_profiles": [{"name": "lsb_release"}],
        "selinux_mode": "disabled",
        "selinux_booleans": {"ok_bool": True, "bad-bool": "yes"},
        "selinux_fcontexts": [{"target": "srv", "setype": "var", "ftype": "q"}],
        "selinux_modules": [{"name": "m", "src": "m.pp"}, {"name": "m", "src": "m.te"},
                            {"name": "c", "src": "c.cil", "fc": "c.fc"}],
    })
    expected = [
        "mac_apparmor_profiles[ew-demo]: profile ew-demo is also defined in mac_apparmor_profiles[ew-demo]",
        "mac_apparmor_profiles[2]: unknown key(s) colour",
        "mac_apparmor_profiles[2]: name 'bad name'",
        "mac_apparmor_profiles[2]: binary must be an absolute path",
        "mac_apparmor_profiles[2]: mode must be one of",
        "mac_apparmor_profiles[2]: invalid capabilities: NET ADMIN",
        "mac_apparmor_profiles[2]: flags must not contain unconfined",
        "mac_apparmor_profiles[2]: file rule '/etc/x' must be '<path> <permissions>'",
        "mac_apparmor_profiles[multi]: rules entries must be one rule each",
        "mac_apparmor_profile_files[f]: src",
        "mac_apparmor_existing_profiles[lsb_release]: mode is required",
        "mac_selinux_mode: must be enforcing, permissive or null",
        "mac_selinux_booleans: invalid boolean name 'bad-bool'",
        "mac_selinux_booleans[bad-bool]: value must be true or false",
        "mac_selinux_fcontexts[0]: target must be an absolute path",
        "mac_selinux_fcontexts[0]: setype must be a type name ending in _t",
        "mac_selinux_fcontexts[0]: ftype must be one of",
        "mac_selinux_modules[0]: src must be a .te or .cil file",
        "mac_selinux_modules[1]: module m listed twice",
        "mac_selinux_modules[2]: fc (file contexts) goes with a .te source only",
    ]
    for fragment in expected:
        assert any(p.startswith(fragment) for p in problems), (fragment, problems)
    assert len(problems) == len(expected), problems


def test_validate_accepts_the_defaults_and_the_scenario():
    assert mac.mac_validate(dict((k[len("mac_"):], v) for k, v in _role("defaults/main.yml").items())) == []
    scenario = os.path.join(ROLE, "..", "..", "molecule", "mac", "vars", "mac.yml")
    with open(scenario) as handle:
        variables = yaml.safe_load(handle)
    assert mac.mac_validate(dict((k[len("mac_"):], v) for k, v in variables.items())) == []


def test_denial_lines():
    lines = mac.mac_denial_lines({
        "ew-probe": {"denied": 0, "allowed": 2, "events": [
            {"apparmor": "ALLOWED", "operation": "open", "name": "/srv/ew-secret", "requested_mask": "r",
             "comm": "cat", "count": 2}]},
        "ew-net": {"denied": 1, "allowed": 0, "events": [
            {"apparmor": "DENIED", "operation": "create", "family": "inet", "sock_type": "stream", "comm": "x",
             "count": 1}]},
        "ew-clean": {"denied": 0, "allowed": 0, "events": []},
    }, {"ew-probe": "staged: held"})
    assert lines == [
        "ew-clean: 0 denied, 0 allowed in complain mode that enforce mode would deny",
        "ew-net: 1 denied, 0 allowed in complain mode that enforce mode would deny",
        "  DENIED x1 create inet stream  by x",
        "ew-probe: 0 denied, 2 allowed in complain mode that enforce mode would deny - staged: held",
        "  ALLOWED x2 open /srv/ew-secret r by cat",
    ]


def _role(path):
    with open(os.path.join(ROLE, path)) as handle:
        return yaml.safe_load(handle)
