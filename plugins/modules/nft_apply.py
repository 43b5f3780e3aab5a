#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nft_apply
short_description: Replace one nftables table atomically, with commit-confirm rollback and a confirmed persist
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Replaces one nftables table (by default C(table inet edgewarden)) with O(ruleset) in a single C(nft -f)
    transaction. Other tables (a container engine's, OpenWrt's fw4) are never touched, and C(flush ruleset) is
    never used.
  - Before anything is applied the ruleset is checked with C(nft -c -f) and refused when it touches any other
    table or contains C(flush ruleset), C(include) or C(define).
  - Whether anything changes is decided by comparing the normalized live table (C(nft -s -j list table)) with the
    candidate as nft lists it after loading it into a throwaway network namespace, where it filters no traffic.
    Where no namespace can be made (no C(ctypes) and no C(unshare)), a record of the last apply stands in for the
    candidate listing; the result says which way was used in RV(compare).
  - B(Commit-confirm.) Before applying, the current table is saved (or the fact that it did not exist) and a
    detached rollback is armed on the device (a C(/bin/sh) that sleeps O(confirm_timeout) seconds; under systemd a
    transient unit made with C(systemd-run)). The action plugin then resets the connection, so the confirmation
    opens a B(new) TCP connection (through the bastion, if there is one), and confirms. Unconfirmed, the device
    restores the saved table by itself and the task fails with C(rollback happened).
  - The module checks that the confirmation arrives over a different TCP connection than the apply (read from
    C(/proc)); a confirmation over the same connection (ssh connection sharing not reset) proves nothing, so it
    restores the previous table at once and the task fails.
  - The table is persisted for boot only after the confirmation, atomically and checked with C(nft -c -f) - in
    C(/etc/nftables.d/<table>.nft) included from the distribution's main config (C(/etc/nftables.conf),
    C(/etc/sysconfig/nftables.conf) or C(/etc/nftables.nft)), whose boot service (C(nftables.service),
    C(/etc/init.d/nftables)) is enabled; on OpenWrt in C(/usr/share/nftables.d/ruleset-post/), which fw4
    includes. Elsewhere the file is written and a warning says that nothing loads it at boot.
  - Where C(nft) is not installed, nothing is done and the result says so (status C(unsupported)) with a warning.
  - Needs only the Python standard library and C(nft) on the device; the rollback needs C(/bin/sh), C(sleep),
    C(mv) and C(date) (BusyBox has them).
options:
  state:
    description:
      - V(present) makes the table what O(ruleset) says; V(absent) deletes it, with the same commit-confirm, and
        removes its persisted file and include block (a boot service it enabled stays enabled, other tables may
        need it).
    type: str
    choices: [present, absent]
    default: present
  ruleset:
    description:
      - The nft text of the table, for example the output of the P(edgewarden.hardening.firewall_render#filter)
        filter. It must define O(family) O(table) and nothing else.
      - Required when O(state=present).
    type: str
  table:
    description: Name of the table this module owns.
    type: str
    default: edgewarden
  family:
    description: Family of the table.
    type: str
    choices: [inet, ip, ip6]
    default: inet
  confirm_timeout:
    description:
      - Seconds after which the device restores the previous table unless the change was confirmed over a new
        connection.
      - Must be longer than a new connection through the bastion plus one module run takes; on slow links allow
        a minute or more. The action plugin refuses values below 10 and warns when the value is not longer than
        the connection timeout.
    type: int
    default: 120
  persist:
    description:
      - Persist the table for boot after it was confirmed. When V(false) no persisted records are returned.
    type: bool
    default: true
  fail_on_unsupported:
    description:
      - Fail the task when part of the work is unsupported on this device (C(nft) missing, the table not
        persisted for boot), listing what. What could be done is still done and confirmed.
      - Read by the action plugin; the module itself reports such parts as C(unsupported) records and a warning.
    type: bool
    default: false
  persist_path:
    description:
      - Write the persisted table to this file instead of the automatic place, and wire nothing; loading it at
        boot is then up to you.
    type: path
  step:
    description:
      - Internal, set by the action plugin, which runs the steps in order. Leave it at V(apply).
      - V(apply) plans and, outside check mode, arms the rollback and applies; V(confirm) confirms a token and
        persists; V(persist) only persists (the table was already live); V(status) reports what happened to a token.
    type: str
    choices: [apply, confirm, persist, status]
    default: apply
  token:
    description: Internal, set by the action plugin - identifies one apply on the device.
    type: str
  apply_connection:
    description: Internal, set by the action plugin - the TCP peer of the SSH connection the apply ran over.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - edgewarden.hardening.input_check
attributes:
  check_mode:
    support: full
    details:
      - Check mode validates with C(nft -c), lists the candidate in a throwaway network namespace, compares it
        with the live table and plans the persisted files; it arms nothing and applies nothing.
  diff_mode:
    support: full
    details:
      - Shows the live table and the new one as C(nft list table) prints them (the rendered text where no network
        namespace could be made).
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Running the module again without changes on the target returns the same result and reports no change.
    support: full
  action:
    support: full
    details:
      - The action plugin runs the apply, resets the connection, confirms over a new one, and waits for the
        rollback and reports it when the confirmation cannot reach the device.
  async:
    support: none
  bypass_host_loop:
    support: none
notes:
  - Needs root (C(become)) for nft, the state directory C(/run/edgewarden/firewall) (C(/tmp) as a fallback) and
    the persisted files.
  - With the C(ssh) connection plugin the reset runs C(ssh -O stop) on the ControlPersist master, so the
    confirmation cannot ride the apply's connection; C(paramiko) reconnects. With C(local) there is nothing to
    cut off.
  - Debian's C(/etc/nftables.conf) starts with C(flush ruleset); restarting C(nftables.service) therefore
    removes every table (also a container engine's) before loading them again, ours through the include.
seealso:
  - plugin: edgewarden.hardening.firewall_render
    plugin_type: filter
  - plugin: edgewarden.hardening.firewall_validate
    plugin_type: filter
  - name: nft(8)
    description: The nftables command line, its atomic C(-f) loads and C(-c) checks.
    link: https://www.netfilter.org/projects/nftables/manpage.html
"""

EXAMPLES = r"""
- name: Apply the firewall table rendered from a model, confirmed over a new connection
  edgewarden.hardening.nft_apply:
    ruleset: "{{ firewall_model | edgewarden.hardening.firewall_render }}"
    confirm_timeout: 90
  become: true

- name: Delete a table this module applied earlier, confirmed like any change
  edgewarden.hardening.nft_apply:
    table: edgewarden_quarantine
    state: absent
  become: true

- name: Apply a hand-written table, persisted where a custom init script loads it
  edgewarden.hardening.nft_apply:
    ruleset: |
      table inet edgewarden {
        chain input {
          type filter hook input priority filter; policy accept;
          tcp dport 23 drop
        }
      }
    persist_path: /etc/edgewarden/firewall.nft
  become: true
"""

RETURN = r"""
records:
  description:
    - One record for the live table and, when persisting, one per persisted file, include and boot service.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: C(firewall.table/<family>/<table>), C(firewall.persisted/<path>), C(firewall.include/<conf>) or C(firewall.boot/<service>).
      type: str
      sample: firewall.table/inet/edgewarden
    before:
      description: Digest and rule count of the table, digest of a file, or C(enabled)/C(disabled); null when absent.
      type: str
      sample: "sha256:0f3a9c2d11aa20b4 (31 rules)"
    after:
      description: The same after the task (or what a real run would give, in check mode).
      type: str
    where:
      description: C(live) or C(persisted).
      type: str
    status:
      description: C(changed), C(unchanged), C(unsupported) or C(error).
      type: str
    detail:
      description: Why, when there is something to say.
      type: str
      returned: when useful
summary:
  description: Number of records per status.
  returned: success
  type: dict
  sample: {changed: 2, unchanged: 2, unsupported: 0, absent: 0, error: 0}
compare:
  description:
    - How the candidate was compared with the live table - C(netns (unshare)), C(netns (ctypes)), C(record) (no network
      namespace could be made) or C(absent) (O(state=absent)).
  returned: when nft is present
  type: str
  sample: netns (ctypes)
commit_confirm:
  description: The armed rollback and how it ended; only when the table changed outside check mode.
  returned: when a change was applied
  type: dict
  contains:
    token:
      description: Identifies this apply on the device (C(/run/edgewarden/firewall/<token>)).
      type: str
    timeout:
      description: Seconds the device waited for the confirmation.
      type: int
    method:
      description: How the rollback was started - C(detached) (a new session) or C(systemd-run).
      type: str
    apply_connection:
      description: TCP peer of the SSH connection the apply ran over, as the device saw it.
      type: str
      sample: 192.168.77.1:40312
    confirm_connection:
      description: TCP peer of the new connection that confirmed; differs from RV(commit_confirm.apply_connection).
      type: str
      sample: 192.168.77.1:40318
    confirmed:
      description: Whether the change was confirmed.
      type: bool
    seconds_to_confirm:
      description: Seconds from the end of the apply to the confirmation.
      type: float
rolled_back:
  description: True when the device restored the previous table because the change was not confirmed.
  returned: always
  type: bool
rollback:
  description: What the device reports about the rollback (state, C(restored_after) seconds, errors).
  returned: when rolled back
  type: dict
persisted_to:
  description: The file holding the table for boot, or null when not persisted.
  returned: success
  type: str
  sample: /etc/nftables.d/edgewarden.nft
boot_loader:
  description: What loads the persisted table at boot.
  returned: when persisting
  type: str
  sample: nftables.service through an include in /etc/nftables.conf
nft:
  description: Path of the nft binary used, or null when nft is not installed (nothing was done).
  returned: always
  type: str
  sample: /usr/sbin/nft
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.input_check import INPUT_CHECK_SPEC
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import commit_confirm as cc
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import nft as nftlib
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import STATUSES, record

ARGUMENT_SPEC = dict(
    INPUT_CHECK_SPEC,  # read by the action plugin, never sent
    fail_on_unsupported=dict(type="bool", default=False),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    ruleset=dict(type="str"),
    table=dict(type="str", default="edgewarden"),
    family=dict(type="str", default="inet", choices=["inet", "ip", "ip6"]),
    confirm_timeout=dict(type="int", default=120),
    persist=dict(type="bool", default=True),
    persist_path=dict(type="path"),
    step=dict(type="str", default="apply", choices=["apply", "confirm", "persist", "status"]),
    token=dict(type="str", no_log=False),
    apply_connection=dict(type="str"),
)
REQUIRED_IF = [
    ("state", "present", ["ruleset"]),
    ("step", "confirm", ["token"]),
    ("step", "status", ["token"]),
]


def summarize(records):
    return dict((status, len([r for r in records if r["status"] == status])) for status in STATUSES)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True)
    p = module.params
    binary = module.get_bin_path("nft", opt_dirs=["/usr/sbin", "/sbin"])
    if binary is None:
        rec = record(nftlib.table_id(p["family"], p["table"]), None, None, "live", "unsupported",
                     "nft is not installed on this device: nothing was done")
        module.warn("nft is not installed on this device: table %s %s was not applied" % (p["family"], p["table"]))
        module.exit_json(changed=False, nft=None, records=[rec], summary=summarize([rec]), rolled_back=False,
                         persisted_to=None)

    def run(argv):
        return module.run_command(argv, environ_update=nftlib.C_ENV)

    systemd_run = module.get_bin_path("systemd-run") if os.path.isdir("/run/systemd/system") else None
    step = nftlib.Step(nftlib.Nft(binary, run), p["family"], p["table"], p["ruleset"], module.check_mode,
                       unshare_bin=module.get_bin_path("unshare"), systemd_run=systemd_run,
                       setsid=module.get_bin_path("setsid"), state=p["state"])
    try:
        if p["step"] == "apply":
            result = step.apply(p["confirm_timeout"], p["persist_path"], p["persist"], p["token"])
        elif p["step"] == "confirm":
            result = step.confirm(p["token"], p["apply_connection"], p["persist_path"], p["persist"])
        elif p["step"] == "persist":
            records, warnings = step.persist(p["persist_path"], check_mode=module.check_mode)
            step.warnings.extend(warnings)
            result = {"records": records, "changed": nftlib.persist_needed(records)}
        else:
            result = step.status(p["token"])
    except (nftlib.NftError, cc.CommitConfirmError) as exc:
        module.fail_json(msg="%s%s" % (exc, (": " + exc.detail) if exc.detail else ""), stderr=exc.detail, nft=binary)
    for warning in step.warnings:
        module.warn(warning)
    result.setdefault("records", [])
    result.setdefault("changed", False)
    result.update(nft=binary, summary=summarize(result["records"]), rolled_back=False,
                  persisted_to=step.persisted_to, boot_loader=step.boot_loader)
    if not module._diff:
        result.pop("diff", None)
    if result.get("persist_error"):
        module.fail_json(msg="the new table is live and confirmed, but persisting it failed (it will not survive a "
                             "reboot): %s" % result.pop("persist_error"), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
