#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: device_facts
short_description: Gather the security posture of a Linux IoT/edge device in one round trip
version_added: 0.1.0
description:
  - Reads the init system, Linux security modules, AppArmor and SELinux state, ASLR, kernel,
    root filesystem, Secure Boot, listening sockets, Python, package manager, OS release,
    virtualization, memory and CPU count of the target, and returns them as the
    C(edgewarden_device) fact.
  - Everything is read from C(/proc), C(/sys) and C(/etc) directly, so it works on devices
    without procps, iproute2, C(ss) or systemd tools (BusyBox, OpenWrt, Yocto, trimmed Debian).
  - Never writes anything on the target. A file that is missing or unreadable gives a
    C(null) or C(unknown) value instead of a failure.
author:
  - edgewarden.hardening contributors (!UNKNOWN)
options:
  gather:
    description:
      - Sections of the fact to gather. V(all) gathers every section.
      - Sections not gathered are absent from the result.
    type: list
    elements: str
    default: [all]
    choices:
      - all
      - init
      - lsm
      - apparmor
      - selinux
      - aslr
      - kernel
      - root_fs
      - secure_boot
      - listening
      - python
      - package_manager
      - os
      - hostname
      - virtualization
      - memory_total_kb
      - cpus
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: linux
  idempotent:
    description: Running the module again without changes on the target returns the same result and reports no change.
    support: full
notes:
  - Target side needs only the Python standard library; no extra packages are installed or required.
  - Listening sockets are those of the network namespace the module runs in.
  - Some values need root to read (AppArmor profile count, PID 1's executable, EFI variables);
    without it they are V(null) or V(unknown). Use C(become) when a full picture is needed.
"""

EXAMPLES = r"""
- name: Gather the device posture
  edgewarden.hardening.device_facts:

- name: Gather only what is needed to choose service handling
  edgewarden.hardening.device_facts:
    gather:
      - init
      - package_manager

- name: Fail when ASLR is not fully enabled
  ansible.builtin.assert:
    that:
      - ansible_facts.edgewarden_device.aslr.meaning == 'full'

- name: List listening ports
  ansible.builtin.debug:
    msg: "{{ ansible_facts.edgewarden_device.listening.sockets | map(attribute='port') | list }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to the host's facts.
  returned: always
  type: dict
  contains:
    edgewarden_device:
      description: The device posture. Only the sections in O(gather) are present, plus RV(ansible_facts.edgewarden_device.gather_errors).
      returned: always
      type: dict
      contains:
        init:
          description: The init system.
          returned: when gathered
          type: dict
          contains:
            name:
              description: One of V(systemd), V(openrc), V(sysv), V(busybox), V(procd), V(tini), V(other), V(unknown).
              returned: success
              type: str
              sample: busybox
            reason:
              description: Why this name was chosen.
              returned: success
              type: str
              sample: pid 1 is /bin/busybox (init applet) and /etc/inittab exists
            pid1:
              description: The program PID 1 was identified as, V(null) when it could not be read.
              returned: success
              type: str
              sample: busybox
            evidence:
              description: The raw data the decision was made from (PID 1 comm, exe, cmdline, marker paths).
              returned: success
              type: dict
        lsm:
          description: Active Linux security modules, V(null) when no source was readable.
          returned: when gathered
          type: list
          elements: str
          sample: [lockdown, capability, landlock, yama, apparmor]
        lsm_source:
          description: Where RV(ansible_facts.edgewarden_device.lsm) came from, the securityfs list or the fallback files.
          returned: when gathered
          type: str
          sample: /sys/kernel/security/lsm
        apparmor:
          description: AppArmor state.
          returned: when gathered
          type: dict
          contains:
            enabled:
              description: Whether AppArmor is enabled.
              returned: success
              type: bool
              sample: true
            profiles_loaded:
              description: Number of loaded profiles, V(null) when unreadable.
              returned: success
              type: int
              sample: 42
        selinux:
          description: SELinux state.
          returned: when gathered
          type: dict
          contains:
            mode:
              description: V(enforcing), V(permissive), V(disabled), or V(unknown) when selinuxfs is present but unreadable.
              returned: success
              type: str
              sample: disabled
        aslr:
          description: Address space layout randomization from C(/proc/sys/kernel/randomize_va_space).
          returned: when gathered
          type: dict
          contains:
            value:
              description: The raw value, V(null) when unreadable.
              returned: success
              type: int
              sample: 2
            meaning:
              description: V(off), V(conservative), V(full) or V(unknown).
              returned: success
              type: str
              sample: full
        kernel:
          description: The running kernel.
          returned: when gathered
          type: dict
          contains:
            release:
              description: Kernel release.
              returned: success
              type: str
              sample: 6.1.0-18-amd64
            version:
              description: Kernel build version string.
              returned: success
              type: str
              sample: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"
            arch:
              description: Machine architecture.
              returned: success
              type: str
              sample: aarch64
            config_source:
              description: Where the kernel config can be read, V(null) when nowhere.
              returned: success
              type: str
              sample: /proc/config.gz
            cmdline:
              description: The kernel command line.
              returned: success
              type: str
              sample: console=ttyS0 root=/dev/mmcblk0p2 ro
        root_fs:
          description: The filesystem mounted on C(/).
          returned: when gathered
          type: dict
          contains:
            readonly:
              description: Whether C(/) is read-only (statvfs).
              returned: success
              type: bool
              sample: false
            fstype:
              description: Filesystem type of the last C(/) entry in C(/proc/mounts).
              returned: success
              type: str
              sample: overlay
            overlay:
              description: Whether the root is an overlay (OpenWrt, container).
              returned: success
              type: bool
              sample: true
            device:
              description: The mounted device or source.
              returned: success
              type: str
              sample: overlayfs:/overlay
        secure_boot:
          description: UEFI Secure Boot state.
          returned: when gathered
          type: dict
          contains:
            state:
              description: V(enabled), V(disabled) or V(unknown).
              returned: success
              type: str
              sample: unknown
            reason:
              description: Why this state was reported.
              returned: success
              type: str
              sample: no EFI firmware (BIOS/legacy boot or not exposed)
        listening:
          description: Listening sockets of the module's network namespace.
          returned: when gathered
          type: dict
          contains:
            total:
              description: Number of listening sockets.
              returned: success
              type: int
              sample: 3
            tcp:
              description: Number of TCP (IPv4 and IPv6) listening sockets.
              returned: success
              type: int
              sample: 2
            udp:
              description: Number of UDP (IPv4 and IPv6) bound, unconnected sockets.
              returned: success
              type: int
              sample: 1
            sockets:
              description: The sockets.
              returned: success
              type: list
              elements: dict
              contains:
                proto:
                  description: V(tcp), V(tcp6), V(udp) or V(udp6).
                  returned: success
                  type: str
                  sample: tcp6
                family:
                  description: Address family, V(4) or V(6).
                  returned: success
                  type: int
                  sample: 6
                address:
                  description: Local address.
                  returned: success
                  type: str
                  sample: "::"
                port:
                  description: Local port.
                  returned: success
                  type: int
                  sample: 22
                inode:
                  description: Socket inode, to match against C(/proc/<pid>/fd).
                  returned: success
                  type: int
                  sample: 16213
                uid:
                  description: Owner uid.
                  returned: success
                  type: int
                  sample: 0
        python:
          description: The Python running the module.
          returned: when gathered
          type: dict
          contains:
            version:
              description: Python version.
              returned: success
              type: str
              sample: 3.11.2
            executable:
              description: Path of the interpreter.
              returned: success
              type: str
              sample: /usr/bin/python3
        package_manager:
          description: First of V(apt), V(opkg), V(apk), V(dnf), V(yum), V(rpm) found, V(null) when none.
          returned: when gathered
          type: str
          sample: opkg
        os:
          description: Identity from os-release.
          returned: when gathered
          type: dict
          contains:
            id:
              description: C(ID).
              returned: success
              type: str
              sample: openwrt
            version_id:
              description: C(VERSION_ID).
              returned: success
              type: str
              sample: 23.05.3
            pretty_name:
              description: C(PRETTY_NAME).
              returned: success
              type: str
              sample: OpenWrt 23.05.3
            source:
              description: The os-release file read, V(null) when none exists.
              returned: success
              type: str
              sample: /etc/os-release
        hostname:
          description: The kernel hostname.
          returned: when gathered
          type: str
          sample: gateway-01
        virtualization:
          description: Best effort V(container), V(vm), V(none) or V(unknown).
          returned: when gathered
          type: str
          sample: none
        memory_total_kb:
          description: C(MemTotal) from C(/proc/meminfo), in kB.
          returned: when gathered
          type: int
          sample: 503872
        cpus:
          description: Number of CPUs.
          returned: when gathered
          type: int
          sample: 4
        gather_errors:
          description: Sections that failed, with the error. A failed section's value is V(null).
          returned: always
          type: dict
          sample: {}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 (Ansible keeps the docs first)
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.posture import SECTIONS, gather_posture  # noqa: E402


ARGUMENT_SPEC = dict(
    gather=dict(type="list", elements="str", default=["all"], choices=["all"] + list(SECTIONS)),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    facts = gather_posture(module.params["gather"])
    for section, error in sorted(facts["gather_errors"].items()):
        module.warn("could not gather %s: %s" % (section, error))
    module.exit_json(changed=False, ansible_facts={"edgewarden_device": facts})


if __name__ == "__main__":
    main()
