#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sshd_config
short_description: Replace the SSH server's config and authorized keys, validated and with commit-confirm rollback
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - "OpenSSH: renders the whole C(sshd_config) from O(settings) and O(match_blocks), checks it with C(sshd -t -f)
    and, for every O(access_checks) entry, evaluates it with C(sshd -T -C user=...,addr=...) and refuses it when
    that login could not authenticate with a key (C(AllowUsers), C(DenyUsers), C(PermitRootLogin),
    C(PubkeyAuthentication), C(AuthenticationMethods), C(ForceCommand))."
  - "Dropbear (no config file): rewrites the arguments of the C(respawn) line of the inittab that runs dropbear
    (BusyBox init) to C(-F -E) plus O(dropbear_options)."
  - Manages C(~/.ssh/authorized_keys) of the users in O(authorized_keys) under the same commit-confirm.
  - Invalid input fails before anything on the device changes, with one message naming every problem.
  - B(Commit-confirm.) Before the first write the current files are saved and a detached rollback is armed on the
    device (C(/bin/sh) sleeping O(confirm_timeout) seconds; a transient unit under systemd). The files are
    replaced atomically and the server reloaded (C(systemctl reload) under systemd, else SIGHUP to the listening
    sshd; dropbear is respawned by init). The action plugin then closes the shared connection, opens a B(new) one
    (through the bastion) and confirms. Without a confirmation the device restores the saved files, reloads the
    server, and the task fails saying C(rollback happened).
  - Existing SSH sessions survive a reload; only a new connection shows a wrong config, which is why the
    confirmation must come over one. The module refuses a confirmation over the apply's own TCP connection.
options:
  flavor:
    description: Which SSH server to manage; V(auto) picks OpenSSH when C(sshd) is installed, else dropbear.
    type: str
    choices: [auto, openssh, dropbear]
    default: auto
  path:
    description: The OpenSSH config file the module owns (written whole).
    type: path
    default: /etc/ssh/sshd_config
  settings:
    description:
      - OpenSSH global keywords and values. Booleans become C(yes)/C(no). A list becomes one comma-separated
        value for algorithm lists (C(Ciphers), C(MACs), C(KexAlgorithms), ...), one line per item for repeatable
        keywords (C(HostKey), C(ListenAddress), C(Port), C(AcceptEnv), ...), else one space-separated value.
    type: dict
    default: {}
  match_blocks:
    description: OpenSSH C(Match) blocks, written after the global settings in this order.
    type: list
    elements: dict
    default: []
    suboptions:
      criteria:
        description: The Match criteria, for example C(User jump) or C(Address 192.168.77.1,fd77::1).
        type: str
        required: true
      settings:
        description: Keywords and values inside the block (same rules as O(settings)).
        type: dict
        default: {}
  include:
    description:
      - An C(Include) pattern written after the global settings and before the Match blocks, so drop-ins can add
        keywords the module does not set but cannot override them (sshd keeps the first value). Null writes none.
    type: str
  access_checks:
    description:
      - Logins that must keep working; the candidate OpenSSH config is refused when any of them could not log in
        with a key. Put the bastion's device-side addresses and the ops accounts here.
    type: list
    elements: dict
    default: []
    suboptions:
      user:
        description: User name.
        type: str
        required: true
      addr:
        description: Client address as the device sees it.
        type: str
        required: true
      host:
        description: Client host name for C(Match Host).
        type: str
  dropbear_options:
    description:
      - Dropbear command-line options (without C(-F) and C(-E), which the module adds), for example
        C([-s, -g, -j, -k, -T, "3", -p, "22", -r, /etc/dropbear/dropbear_ed25519_host_key]).
    type: list
    elements: str
    default: []
  inittab:
    description: The inittab holding dropbear's respawn line.
    type: path
    default: /etc/inittab
  authorized_keys:
    description: Public keys per user, written to C(~user/.ssh/authorized_keys).
    type: list
    elements: dict
    default: []
    suboptions:
      user:
        description: Account name; it must exist.
        type: str
        required: true
      keys:
        description: Public key lines.
        type: list
        elements: str
        default: []
      options:
        description: Options put in front of every key in O(authorized_keys[].keys), for example C(from="192.168.77.1").
        type: str
      exclusive:
        description: Remove every other key of the user.
        type: bool
        default: false
  confirm_timeout:
    description:
      - Seconds after which the device restores the previous files unless the change was confirmed over a new
        connection. The action plugin refuses values below 10.
    type: int
    default: 120
  step:
    description: Internal, set by the action plugin.
    type: str
    choices: [apply, confirm, status]
    default: apply
  token:
    description: Internal, set by the action plugin.
    type: str
  apply_connection:
    description: Internal, set by the action plugin.
    type: str
notes:
  - Needs root on the device. The rollback needs C(/bin/sh), C(sleep), C(mv), C(cat), C(kill) and C(date).
  - With C(ansible.builtin.ssh) connection sharing (ControlPersist) the action plugin stops the master before
    confirming.
  - Dropbear has no per-address user restriction; restrict who reaches its port with the firewall.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgewarden.hardening.input_check
attributes:
  check_mode:
    support: full
    details:
      - Check mode renders and validates the candidate (C(sshd -t), the access checks) and reports the change
        records; it arms nothing and writes nothing.
  diff_mode:
    support: full
    details:
      - Shows the config text (OpenSSH) or the dropbear line before and after; key files as counts and digests.
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Running the module again without changes on the target returns the same result and reports no change.
    support: full
"""

EXAMPLES = r"""
- name: Key-only sshd reachable only from the bastion, confirmed over a new connection
  edgewarden.hardening.sshd_config:
    settings:
      PasswordAuthentication: false
      KbdInteractiveAuthentication: false
      PermitRootLogin: prohibit-password
      AllowUsers: [root@192.168.77.1, root@fd77::1]
    include: /etc/ssh/sshd_config.d/*.conf
    access_checks:
      - {user: root, addr: 192.168.77.1}
    confirm_timeout: 90

- name: Dropbear on a BusyBox device
  edgewarden.hardening.sshd_config:
    flavor: dropbear
    dropbear_options: [-s, -g, -j, -k, -p, "22"]
"""

RETURN = r"""
changed:
  description: Whether a file changed (and the server was reloaded).
  returned: always
  type: bool
records:
  description: One change record per managed file and one for the running server (C(where=live)).
  returned: always
  type: list
  elements: dict
  sample: [{"id": "ssh.sshd_config/etc/ssh/sshd_config", "before": "sha256:...", "after": "sha256:...",
            "where": "persisted", "status": "changed"}]
summary:
  description: Number of records per status.
  returned: always
  type: dict
flavor:
  description: The server managed, C(openssh) or C(dropbear).
  returned: on the apply step
  type: str
commit_confirm:
  description: How the rollback was armed and whether the change was confirmed.
  returned: when something changed outside check mode
  type: dict
  contains:
    token:
      description: Identifies this apply on the device (C(/run/edgewarden/sshd/<token>)).
      type: str
    timeout:
      description: Seconds the device waited for the confirmation.
      type: int
    method:
      description: How the rollback shell was started.
      type: str
    apply_connection:
      description: TCP peer of the connection that applied.
      type: str
    confirm_connection:
      description: TCP peer of the new connection that confirmed.
      type: str
    confirmed:
      description: Whether the change was confirmed.
      type: bool
rolled_back:
  description: True when the device restored the previous files because the change was not confirmed.
  returned: always
  type: bool
rollback:
  description: What the device reported about the rollback (state, times, errors).
  returned: when the change was not confirmed
  type: dict
diff:
  description: Before and after of the changed files.
  returned: with --diff
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.input_check import INPUT_CHECK_SPEC
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import commit_confirm as cc
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import sshd as sshdlib
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import STATUSES

ARGUMENT_SPEC = dict(
    INPUT_CHECK_SPEC,  # read by the action plugin, never sent
    flavor=dict(type="str", default="auto", choices=["auto", "openssh", "dropbear"]),
    path=dict(type="path", default="/etc/ssh/sshd_config"),
    settings=dict(type="dict", default={}),
    match_blocks=dict(type="list", elements="dict", default=[], options=dict(
        criteria=dict(type="str", required=True),
        settings=dict(type="dict", default={}),
    )),
    include=dict(type="str"),
    access_checks=dict(type="list", elements="dict", default=[], options=dict(
        user=dict(type="str", required=True),
        addr=dict(type="str", required=True),
        host=dict(type="str"),
    )),
    dropbear_options=dict(type="list", elements="str", default=[]),
    inittab=dict(type="path", default="/etc/inittab"),
    authorized_keys=dict(type="list", elements="dict", default=[], no_log=False, options=dict(
        user=dict(type="str", required=True),
        keys=dict(type="list", elements="str", default=[], no_log=False),
        options=dict(type="str"),
        exclusive=dict(type="bool", default=False),
    )),
    confirm_timeout=dict(type="int", default=120),
    step=dict(type="str", default="apply", choices=["apply", "confirm", "status"]),
    token=dict(type="str", no_log=False),
    apply_connection=dict(type="str"),
)
REQUIRED_IF = [("step", "confirm", ["token"]), ("step", "status", ["token"])]


def summarize(records):
    return dict((status, len([r for r in records if r["status"] == status])) for status in STATUSES)


def input_problems(p):
    problems = sshdlib.input_problems(p["settings"], p["match_blocks"])
    problems.extend(sshdlib.dropbear_problems(p["dropbear_options"]))
    problems.extend(sshdlib.authorized_keys_problems(p["authorized_keys"]))
    if p["confirm_timeout"] < 10:
        problems.append("confirm_timeout must be at least 10 seconds")
    return problems


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True)
    p = module.params
    problems = input_problems(p)
    if problems:
        module.fail_json(msg="invalid input, nothing was changed: %s" % "; ".join(problems), problems=problems,
                         records=[], rolled_back=False)

    def run(argv):
        return module.run_command(argv, environ_update=sshdlib.C_ENV)

    bins = dict((name, module.get_bin_path(binary, opt_dirs=["/usr/sbin", "/sbin"]))
                for name, binary in (("sshd", "sshd"), ("dropbear", "dropbear"), ("systemctl", "systemctl"),
                                     ("systemd_run", "systemd-run"), ("setsid", "setsid")))
    if not os.path.isdir("/run/systemd/system"):
        bins["systemd_run"] = None  # installed but not the init: it cannot start a unit
    step = sshdlib.Step(p, run, bins, module.check_mode)
    try:
        if p["step"] == "apply":
            result = step.apply(p["confirm_timeout"], p["token"])
        elif p["step"] == "confirm":
            result = step.confirm(p["token"], p["apply_connection"])
        else:
            result = step.status(p["token"])
    except (sshdlib.SshdError, cc.CommitConfirmError) as exc:
        module.fail_json(msg="%s%s" % (exc, (": " + exc.detail) if exc.detail else ""), stderr=exc.detail,
                         records=[], rolled_back=False)
    for warning in step.warnings:
        module.warn(warning)
    result.setdefault("records", [])
    result.setdefault("changed", False)
    diff = result.pop("diff_text", None)
    if module._diff and diff:
        result["diff"] = diff
    result.update(summary=summarize(result["records"]), rolled_back=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
