#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: apparmor_profile
short_description: Deploy, validate, load and set the mode of AppArmor profiles, many in one call
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Takes a list of profiles and handles all of them in one call (one round trip on a slow link). Each profile is
    a text (rendered on the controller, from a file or a template) or an existing file in O(profile_dir), and a
    mode, C(enforce), C(complain) or C(disabled).
  - Needs only C(apparmor_parser) and securityfs (C(/sys/kernel/security/apparmor)); the Python tools of
    apparmor-utils (C(aa-status), C(aa-enforce), C(aa-complain)) are not used, so trimmed images work.
  - Every new text is compiled by C(apparmor_parser --skip-kernel-load --skip-cache) before anything is written or
    loaded; the parser's C(--names) must list the profile's O(profiles[].name). When any profile is refused, the
    task fails with the parser's message for every refused profile and changes nothing, so the previously loaded
    profile stays in the kernel and its file stays on disk.
  - The file is written atomically with a marker line on top, then the mode links the boot loader and the parser
    read (C(force-complain/) for complain, C(disable/) for disabled) are set, then the profile is loaded or
    replaced with C(apparmor_parser --replace) (C(--Complain) for complain) or unloaded through securityfs
    C(.remove) (disabled). The modes are then read back from C(/sys/kernel/security/apparmor/profiles) and a
    profile the kernel does not show in the wanted mode fails the task.
  - Refuses to enforce or complain an C(unconfined) stub profile (AppArmor 4 ships them, for example for busybox;
    enforcing one makes the program deny-all) and to enforce a text that declares C(flags=(complain)).
  - Reports, per profile, what the kernel denied (enforce) or would have denied (complain, logged as
    C(apparmor="ALLOWED")) since the profile entered its current mode, read from auditd's log, journald or
    C(/dev/kmsg). The time of each mode switch (boot id, wall clock, monotonic clock, kmsg sequence number) is kept
    in O(state_file).
  - Never touches a profile that is not listed. O(purge=true) removes only files carrying the module's marker
    line, so distribution profiles are never purged.
options:
  profiles:
    description:
      - The profiles to manage.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The profile's name as the kernel shows it (C(profile NAME ...) or the attachment path of
            C(/usr/bin/foo { ... })).
        type: str
        required: true
      content:
        description:
          - The profile text. The file holds a marker line and then this text.
          - When omitted, the existing file in O(profile_dir) is used as it is (a distribution profile whose mode
            you set); it must exist.
        type: str
      file:
        description:
          - File name inside O(profile_dir). Defaults to the name without its leading C(/), with C(/) replaced by
            C(.) (C(/usr/sbin/ntpd) becomes C(usr.sbin.ntpd)).
        type: str
      mode:
        description:
          - C(enforce) or C(complain) loads the profile in that mode, now and at boot. C(disabled) unloads it and
            keeps it from loading at boot (the file stays).
        type: str
        choices: [enforce, complain, disabled]
        default: enforce
      state:
        description:
          - V(absent) unloads the profile and deletes its file and mode links; only files carrying the module's
            marker line are deleted.
        type: str
        choices: [present, absent]
        default: present
      staged:
        description:
          - Roll out through complain mode (O(profiles[].mode=enforce) only). A profile that is not loaded yet is
            loaded in complain mode; a profile in complain mode that would have denied something since it entered
            complain mode stays there. Otherwise it is enforced. RV(held) says why a profile was not enforced.
          - A staged profile takes two runs to reach enforce mode, by design.
        type: bool
        default: false
  purge:
    description:
      - Also unload and delete every file in O(profile_dir) that carries the module's marker line but is not in
        O(profiles).
    type: bool
    default: false
  profile_dir:
    description:
      - Where profiles live and the boot loader reads them.
    type: path
    default: /etc/apparmor.d
  state_file:
    description:
      - JSON file recording when each profile entered its current mode.
    type: path
    default: /var/lib/edgewarden/apparmor.json
  log_source:
    description:
      - Where to read the kernel's AppArmor messages from for RV(denials).
      - V(auto) uses auditd's log when auditd runs (it takes the messages away from the kernel log), else
        journald when it runs, else C(/dev/kmsg) (the current boot only). V(none) skips the report.
    type: str
    choices: [auto, journal, kmsg, audit, none]
    default: auto
  denials_limit:
    description:
      - Most distinct kinds of event listed per profile in RV(denials); counts are always complete.
    type: int
    default: 20
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode validates every new text with the parser, reads the denials, and returns the records and
        RV(operations) a real run would; only a load the kernel refuses after the parser accepted the text shows
        up in a real run alone.
  diff_mode:
    support: full
    details:
      - One entry per changed record (mode and text digest, persisted and live), plus the full text of every
        profile file that changes.
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Running the module again without changes on the target returns the same result and reports no change.
    support: partial
    details:
      - Idempotent, except O(profiles[].staged) profiles, which move from complain to enforce on a later run when
        no denial was logged.
notes:
  - Needs root (C(become)) and an active AppArmor (C(apparmor) in C(/sys/kernel/security/lsm)).
  - A profile loaded by hand from another text under the same name and mode is not detected; the module
    replaces the kernel's copy whenever it writes the file.
  - Events logged before a mode switch of a previous boot are placed by wall-clock time; a device whose clock
    jumps at boot (no RTC) can misplace events around that jump.
seealso:
  - name: apparmor_parser(8)
    description: The AppArmor profile compiler and loader.
    link: https://manpages.debian.org/bookworm/apparmor/apparmor_parser.8.en.html
  - name: apparmor.d(5)
    description: Profile syntax.
    link: https://manpages.debian.org/bookworm/apparmor/apparmor.d.5.en.html
"""

EXAMPLES = r"""
- name: Confine the camera daemon, in complain mode first
  edgewarden.hardening.apparmor_profile:
    profiles:
      - name: camd
        content: "{{ lookup('ansible.builtin.template', 'camd.apparmor.j2') }}"
        mode: complain
  become: true

- name: Enforce two profiles and leave a distribution profile in complain mode
  edgewarden.hardening.apparmor_profile:
    profiles:
      - name: camd
        content: "{{ lookup('ansible.builtin.file', 'profiles/camd') }}"
        mode: enforce
      - name: uploader
        content: "{{ lookup('ansible.builtin.file', 'profiles/uploader') }}"
        mode: enforce
        staged: true
      - name: /usr/sbin/ntpd
        mode: complain
  become: true
  register: apparmor

- name: Show what the uploader's profile would have denied
  ansible.builtin.debug:
    var: apparmor.denials.uploader

- name: Remove a profile this collection deployed earlier
  edgewarden.hardening.apparmor_profile:
    profiles:
      - name: old-tool
        state: absent
  become: true
"""

RETURN = r"""
records:
  description:
    - Two records per profile, C(persisted) (the boot mode and a digest of the file, C(<mode> sha256:<12 hex>))
      and C(live) (the mode the kernel shows, V(null) when not loaded).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: C(apparmor.profile/<name>).
      type: str
      sample: apparmor.profile/camd
    before:
      description: The value before the task, V(null) when absent or not loaded.
      type: str
      sample: complain sha256:3f2a9c1d0e4b
    after:
      description: The value after the task (read back from the kernel for C(live) in a real run).
      type: str
      sample: enforce sha256:3f2a9c1d0e4b
    where:
      description: C(persisted) or C(live).
      type: str
      sample: live
    status:
      description: C(changed), C(unchanged) or C(error).
      type: str
      sample: changed
    detail:
      description: The file written, why a staged profile was held, or what failed.
      type: str
      returned: when there is something to say
      sample: "staged: held in complain mode, 3 access(es) it would deny were logged since complain mode started"
summary:
  description: Number of records per status.
  returned: always
  type: dict
  sample: {changed: 2, unchanged: 4, error: 0}
operations:
  description: What the run did (in check mode, what it would do), in order.
  returned: always
  type: list
  elements: str
  sample: ["write /etc/apparmor.d/camd (sha256:3f2a9c1d0e4b)", "apparmor_parser --replace /etc/apparmor.d/camd"]
loaded_modes:
  description: The mode of each listed profile as the kernel shows it after the run (before it, in check mode);
    V(null) when not loaded.
  returned: success
  type: dict
  sample: {camd: enforce, uploader: complain}
held:
  description: Staged profiles not enforced this run, and why.
  returned: success
  type: dict
  sample: {uploader: "staged: loaded in complain mode first; enforced on a later run without denials"}
denials:
  description:
    - Per listed profile, the accesses it denied (C(DENIED), enforce mode) or would have denied (C(ALLOWED),
      complain mode) since it entered its current mode, grouped by kind, most frequent first.
  returned: success
  type: dict
  sample:
    uploader:
      mode: complain
      since: 1732700000.123
      denied: 0
      allowed: 3
      kinds: 1
      events:
        - {apparmor: ALLOWED, operation: open, profile: uploader, name: /srv/secret, requested_mask: r,
           denied_mask: r, comm: cat, count: 3, first: 1732700100.5, last: 1732700200.1}
log_source:
  description: Where the denials were read, C(audit), C(journal), C(kmsg) or C(none).
  returned: success
  type: str
  sample: journal
errors:
  description: Every reason the task refused to change anything (parser messages included).
  returned: failure
  type: list
  elements: str
  sample: ["camd: apparmor_parser refused the profile: AppArmor parser error at line 7: syntax error, unexpected TOK_CLOSE"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import apparmor
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import exit_with_records

ARGUMENT_SPEC = dict(
    profiles=dict(type="list", elements="dict", required=True, options=dict(
        name=dict(type="str", required=True),
        content=dict(type="str"),
        file=dict(type="str"),
        mode=dict(type="str", default="enforce", choices=list(apparmor.MODES)),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        staged=dict(type="bool", default=False),
    )),
    purge=dict(type="bool", default=False),
    profile_dir=dict(type="path", default=apparmor.PROFILE_DIR),
    state_file=dict(type="path", default=apparmor.STATE_FILE),
    log_source=dict(type="str", default="auto", choices=list(apparmor.LOG_SOURCES)),
    denials_limit=dict(type="int", default=20),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    parser_path = module.get_bin_path("apparmor_parser", opt_dirs=["/sbin", "/usr/sbin"])
    if parser_path is None:
        module.fail_json(msg="apparmor_parser not found (Debian: package apparmor; Yocto: recipe apparmor)",
                         records=[], changed=False)
    environ = {"LC_ALL": "C", "LANG": "C"}

    def runner(argv, data=None, cwd=None):
        return module.run_command(argv, data=data, cwd=cwd, environ_update=environ, binary_data=True)

    result = apparmor.run(
        p["profiles"], apparmor.Parser(parser_path, runner, profile_dir=p["profile_dir"]),
        check_mode=module.check_mode, purge=p["purge"], profile_dir=p["profile_dir"], state_file=p["state_file"],
        log_reader=apparmor.make_log_reader(p["log_source"], runner, journalctl=module.get_bin_path("journalctl")),
        denials_limit=p["denials_limit"], clock=apparmor.make_clock(),
    )
    exit_with_records(module, result, "apparmor_profile", extra_diffs=result.pop("file_diffs", []))


if __name__ == "__main__":
    main()
