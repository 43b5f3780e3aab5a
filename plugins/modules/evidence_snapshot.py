#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: evidence_snapshot
short_description: Collect incident-response evidence from a device in one read-only round trip
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Reads, in one module run, what an incident responder needs first from a device, and returns it as
    RV(snapshot) for the controller to store (see the C(edgewarden.hardening.collect_evidence) playbook).
  - Running processes with pid, parent, user, executable, command line, start time, whether the executable
    was deleted, and the SHA-256 of the executable each one runs (read through C(/proc/PID/exe), so a deleted
    or replaced file is hashed as it runs).
  - Listening, established and connecting TCP, UDP and raw sockets, IPv4 and IPv6, with the user and the
    processes holding each one (from C(/proc/net) and the C(socket:[INODE]) links in C(/proc/PID/fd)).
  - Logged-in users and recent logins and failed logins (C(utmp), C(wtmp), C(btmp), glibc's 384-byte record
    layout), loaded kernel modules, mounts, the nftables ruleset (C(nft -j list ruleset)), the last lines of
    the system logs (files, BusyBox C(logread), C(journalctl), whichever exist), metadata and SHA-256 of a
    chosen set of files, kernel taint flags, lockdown mode and module loading state.
  - Needs nothing but the Python standard library on the device; C(ps), C(ss), C(netstat), C(lsof), C(last)
    and C(sha256sum) are not used.
  - Never writes to the device. Files are opened read-only with C(O_NOATIME) where the kernel allows it (so
    their access times stay as found); FIFOs and device nodes are never opened; no temporary file is made.
    The only commands run are C(nft -j list ruleset), C(logread) and C(journalctl ... -n N), all read-only.
  - C(nft) is not run when C(nf_tables) is demonstrably not loaded, because asking would make the kernel
    load the module; the snapshot then says no nftables ruleset is active.
options:
  sections:
    description:
      - Sections of the snapshot to collect. V(all) collects every section.
      - Sections not collected are absent from RV(snapshot).
    type: list
    elements: str
    default: [all]
    choices: [all, host, processes, sockets, logins, modules, mounts, firewall, logs, hashes, kernel]
  hash_paths:
    description:
      - Files to describe (type, size, mode, owner, mtime, ctime, link target) and hash.
      - Each entry is an absolute path or a shell glob (V(*), V(?), V([...])) matched in one directory
        level; directories are listed, not walked. Nothing else on the filesystem is read.
    type: list
    elements: str
    default:
      - /etc/passwd
      - /etc/shadow
      - /etc/group
      - /etc/sudoers
      - /etc/sudoers.d/*
      - /etc/ssh/sshd_config
      - /etc/ssh/sshd_config.d/*
      - /root/.ssh/authorized_keys
      - /etc/dropbear/authorized_keys
      - /etc/crontab
      - /etc/cron.d/*
      - /var/spool/cron/crontabs/*
      - /etc/ld.so.preload
      - /etc/inittab
      - /etc/rc.local
      - /etc/init.d/*
      - /etc/profile
      - /etc/hosts
      - /bin/busybox
      - /bin/sh
      - /bin/login
      - /bin/su
      - /usr/bin/sudo
      - /usr/sbin/sshd
      - /usr/sbin/dropbear
  hash_max_bytes:
    description:
      - Files larger than this are described but not hashed (flash is slow and the link may be too).
      - Each distinct file (device and inode) is read at most once per run, however many processes run it.
    type: int
    default: 33554432
  hash_executables:
    description: Hash the executable of every process.
    type: bool
    default: true
  log_files:
    description: Log files whose last O(log_lines) lines are returned, when they exist.
    type: list
    elements: str
    default: [/var/log/auth.log, /var/log/secure, /var/log/messages, /var/log/syslog]
  log_lines:
    description: How many of the last lines to return from each log source.
    type: int
    default: 200
  login_records:
    description: How many of the last C(wtmp) (logins) and C(btmp) (failed logins) records to return.
    type: int
    default: 50
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Never changes anything; the result differs between runs only as far as the device does.
    support: full
notes:
  - Needs root (C(become)) for a full picture; without it other users' executables, socket owners, C(btmp)
    and C(/etc/shadow) are reported as unreadable instead of failing.
  - Sees the network namespace and PID namespace it runs in.
  - Process environments are not collected (they often hold secrets).
  - Only glibc's utmp layout (384-byte records, the same on x86_64, arm64 and 32-bit ARM) is parsed; musl
    systems keep no utmp. Files of another size are reported with a note.
  - The ruleset is read with C(nft) only; iptables rules (legacy or iptables-nft) are not collected.
  - A section that fails is reported in RV(errors) without costing the others.
seealso:
  - module: edgewarden.hardening.listening_ports_info
  - module: edgewarden.hardening.device_facts
"""

EXAMPLES = r"""
- name: Collect every section
  edgewarden.hardening.evidence_snapshot:
  become: true
  register: evidence

- name: Processes and sockets only, without hashing executables
  edgewarden.hardening.evidence_snapshot:
    sections: [processes, sockets]
    hash_executables: false
  become: true

- name: Hash the device's own application and its configuration too
  edgewarden.hardening.evidence_snapshot:
    hash_paths:
      - /etc/passwd
      - /etc/shadow
      - /opt/camera/bin/streamd
      - /opt/camera/etc/*.conf
    hash_max_bytes: 8388608
    log_lines: 500
  become: true
  register: evidence

- name: Show processes running a deleted executable
  ansible.builtin.debug:
    msg: "{{ evidence.snapshot.processes | selectattr('exe_deleted') | map(attribute='cmdline') | list }}"
"""

RETURN = r"""
snapshot:
  description:
    - The evidence, one key per collected section, plus V(schema) (the layout version), V(sections),
      V(options) (the module options used) and V(hash_stats) (files hashed, served from the cache, skipped,
      bytes read).
  returned: always
  type: dict
  contains:
    host:
      description:
        - The device's clock (V(clock_utc), V(clock_epoch)), hostname, kernel release, machine, boot id, uptime,
          boot time, Python version, the namespaces read (V(namespaces)), and V(collector_pids), the chain of
          processes that ran this module (module, shell, SSH session), which comparisons leave out.
      returned: when collected
      type: dict
    processes:
      description:
        - One entry per visible process, by pid.
        - V(exe_deleted) is true when the executable was deleted or replaced after the process started.
        - V(exe_sha256) is V(null) when the executable could not be read or was larger than
          O(hash_max_bytes); V(exe_note) says why.
      returned: when collected
      type: list
      elements: dict
      sample:
        - pid: 412
          ppid: 1
          state: S
          uid: 0
          euid: 0
          gid: 0
          user: root
          comm: dropbear
          exe: /usr/sbin/dropbear
          exe_deleted: false
          cmdline: [/usr/sbin/dropbear, -F, -E, -p, '22']
          unit: null
          kernel_thread: false
          started_after_boot: 3.12
          started: '2025-11-27T04:58:03Z'
          exe_sha256: 5f1c...e2
          exe_size: 231416
          exe_note: null
    sockets:
      description:
        - V(listening) (TCP LISTEN, unconnected bound UDP, raw), V(established) (TCP ESTABLISHED, connected UDP)
          and V(connecting) (TCP SYN_SENT) sockets, each with proto, state, local and remote address and port,
          uid, user, inode, V(pids) and V(processes) (pid, comm, exe, user of each holder);
          V(other_tcp_states) counts the TCP sockets in other states.
      returned: when collected
      type: dict
    logins:
      description:
        - V(logged_in) (utmp USER_PROCESS records, with V(alive) when their pid still runs), and V(utmp),
          V(wtmp), V(btmp) (path, present, size, note, records with type, pid, line, id, user, host, address,
          exit, session, time).
      returned: when collected
      type: dict
    modules:
      description: V(available), V(modules) (name, size, refcount, used_by, state, taint) and V(reason) when unavailable.
      returned: when collected
      type: dict
    mounts:
      description: Mounts of the module's mount namespace (device, mountpoint, fstype, options).
      returned: when collected
      type: list
      elements: dict
    firewall:
      description:
        - V(tool), V(available), V(path), V(reason), and when listed V(command), V(rc), V(stderr), V(sha256) of
          the output and V(ruleset), the C(nftables) array of C(nft -j list ruleset).
      returned: when collected
      type: dict
    logs:
      description:
        - V(files) (path, present, size, mtime, lines), V(logread) and V(journal) (available, command, rc, lines,
          stderr, or the reason they are unavailable).
      returned: when collected
      type: dict
    hashes:
      description:
        - One entry per O(hash_paths) match, with path, exists, type, size, mode, uid, gid, mtime, ctime,
          link_target, sha256, note. A pattern that matches nothing gives one entry with V(exists=false).
      returned: when collected
      type: list
      elements: dict
    kernel:
      description:
        - V(tainted) and V(taint_flags) (bit, flag, meaning), V(lockdown) (mode and modes, V(null) with
          V(lockdown_note) when unreadable), V(modules_disabled), V(kexec_load_disabled), V(cmdline), V(version).
      returned: when collected
      type: dict
errors:
  description: Sections that failed, with the error; their key in RV(snapshot) is V(null).
  returned: always
  type: dict
  sample: {}
summary:
  description: Counts for the task output.
  returned: always
  type: dict
  sample: {processes: 14, deleted_executables: 0, listening: 3, established: 1, connecting: 0, logged_in: 0,
           modules: null, files_hashed: 9, tainted: 0, firewall: not read}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import evidence

ARGUMENT_SPEC = dict(
    sections=dict(type="list", elements="str", default=["all"], choices=["all"] + list(evidence.SECTIONS)),
    hash_paths=dict(type="list", elements="str", default=list(evidence.DEFAULT_HASH_PATHS)),
    hash_max_bytes=dict(type="int", default=evidence.DEFAULT_HASH_MAX_BYTES),
    hash_executables=dict(type="bool", default=True),
    log_files=dict(type="list", elements="str", default=list(evidence.DEFAULT_LOG_FILES)),
    log_lines=dict(type="int", default=200),
    login_records=dict(type="int", default=50),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    problems = evidence.validate_params(module.params)
    if problems:
        module.fail_json(msg="Invalid input: %s" % "; ".join(problems), problems=problems)

    def run(argv):
        # argv lists, C locale, no shell; these commands only read
        return module.run_command(argv, environ_update={"LC_ALL": "C", "LANG": "C"})

    snapshot, errors = evidence.collect(module.params["sections"], module.params, run=run)
    # what was asked for belongs to the evidence: an absent file means something only if it was looked for
    snapshot["options"] = dict((key, module.params[key]) for key in sorted(ARGUMENT_SPEC))
    module.exit_json(changed=False, snapshot=snapshot, errors=errors, summary=evidence.summarize(snapshot))


if __name__ == "__main__":
    main()
