#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kernel_config_info
short_description: Audit the kernel build config and command line against KSPP recommendations
version_added: 0.1.0
author:
  - edgewarden.hardening contributors (!UNKNOWN)
description:
  - Reads the kernel build configuration (C(/proc/config.gz), else C(/boot/config-<release>), else
    C(/lib/modules/<release>/config)) and C(/proc/cmdline), and compares them with a list of recommendations.
  - Report-only, for people who build their own images (Yocto, Buildroot) - it never changes anything. Missing
    recommendations are listed in one warning, and fail the task only with O(fail_on_missing=true).
  - Without recommendations it uses a built-in list based on the Kernel Self Protection Project (KSPP)
    recommended settings, trimmed to what matters on edge devices.
  - Recommendations for another architecture are skipped. The architecture is taken from the config itself
    (so a config for an ARM image can be audited on an x86 host with O(config_path)), else from the machine.
  - An option that is absent from the config counts as C(is not set), so it satisfies C(n) / C(is not set)
    recommendations and is reported missing for C(y), C(m) or value recommendations.
options:
  recommendations:
    description:
      - Kernel config recommendations. Defaults to the built-in KSPP-based list.
    type: list
    elements: dict
    suboptions:
      option:
        description: Config symbol, with the C(CONFIG_) prefix.
        type: str
        required: true
      expect:
        description:
          - V(y), V(m), V(n) or V(is not set), or a value (numbers compare as numbers, quotes are ignored).
          - A leading C(!) negates.
        type: str
        required: true
      why:
        description: Short reason, copied to the report.
        type: str
      arch:
        description:
          - Architectures the recommendation applies to (V(x86_64), V(x86), V(arm64), V(arm), V(riscv), V(mips),
            V(powerpc)). All when omitted.
        type: list
        elements: str
      only_if:
        description: Config symbol that must be V(y) or V(m) for the recommendation to apply.
        type: str
  cmdline_recommendations:
    description:
      - Kernel command-line recommendations. Defaults to the built-in KSPP-based list.
      - Use V([]) to skip the command line, for example when O(config_path) is a config for another device.
    type: list
    elements: dict
    suboptions:
      param:
        description: Parameter name (C(-) and C(_) are equivalent, as for the kernel).
        type: str
        required: true
      expect:
        description:
          - Omitted - the bare parameter must be present. V(absent) - it must not be present.
          - C(!value) - anything but that value (absent is fine). Any other string - that value.
          - V(0) and V(1) also match C(off)/C(on), C(n)/C(y) and so on, as the kernel parses booleans.
        type: str
      why:
        description: Short reason, copied to the report.
        type: str
      arch:
        description: Architectures the recommendation applies to. All when omitted.
        type: list
        elements: str
      satisfied_by:
        description:
          - C(CONFIG_X=y) or C(CONFIG_X=n) build default that makes the parameter unnecessary when it is absent
            (for example C(CONFIG_INIT_ON_ALLOC_DEFAULT_ON=y) for C(init_on_alloc=1)).
        type: str
  config_path:
    description:
      - Audit this config file (plain text or gzip when it ends in C(.gz)) instead of the running kernel's.
      - The command line is still the running kernel's.
    type: path
  fail_on_missing:
    description:
      - Fail when any recommendation is missing (for image CI), listing them all.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same in check mode.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: linux
  idempotent:
    description: Running the module again without changes on the target returns the same result and reports no change.
    support: full
seealso:
  - module: edgewarden.hardening.kernel_sysctl
  - name: KSPP recommended settings
    description: The Kernel Self Protection Project's recommended build, command-line and sysctl settings.
    link: https://kspp.github.io/Recommended_Settings
"""

EXAMPLES = r"""
- name: Audit the running kernel against the built-in KSPP list
  edgewarden.hardening.kernel_config_info:
  register: kernel_audit

- name: Audit an image's kernel config on the build host, only for a few options
  edgewarden.hardening.kernel_config_info:
    config_path: /srv/yocto/build/tmp/work/raspberrypi4_64-poky-linux/linux-raspberrypi/6.6/build/.config
    recommendations:
      - option: CONFIG_MODULE_SIG_FORCE
        expect: y
        why: Only signed modules.
      - option: CONFIG_DEVMEM
        expect: is not set
        why: No /dev/mem.
    cmdline_recommendations: []
  delegate_to: localhost
"""

RETURN = r"""
source:
  description: Path of the kernel config that was read, or null when none was readable.
  returned: always
  type: str
  sample: /proc/config.gz
arch:
  description: Architecture used to select recommendations (from the config, else the machine).
  returned: always
  type: str
  sample: arm64
missing:
  description: Recommendations the kernel does not meet.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: C(kconfig) or C(cmdline).
      type: str
      sample: kconfig
    option:
      description: Config symbol or command-line parameter.
      type: str
      sample: CONFIG_MODULE_SIG_FORCE
    expect:
      description: The recommended value (C(present) for a bare command-line flag).
      type: str
      sample: y
    actual:
      description: The value found; null when the option or parameter is absent.
      type: str
      sample: n
    why:
      description: The recommendation's reason.
      type: str
      sample: Refuse unsigned modules.
    detail:
      description: Extra explanation, such as why an absent option counts as missing.
      type: str
      returned: when there is something to say
ok:
  description: Recommendations the kernel meets (same fields as RV(missing)).
  returned: always
  type: list
  elements: dict
unknown:
  description:
    - Recommendations that could not be checked because the config or the command line was unreadable
      (same fields as RV(missing)).
  returned: always
  type: list
  elements: dict
"""

import gzip
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import kconfig

_REC = dict(option=dict(type="str", required=True), expect=dict(type="str", required=True), why=dict(type="str"),
            arch=dict(type="list", elements="str"), only_if=dict(type="str"))
_CMD = dict(param=dict(type="str", required=True), expect=dict(type="str"), why=dict(type="str"),
            arch=dict(type="list", elements="str"), satisfied_by=dict(type="str"))
ARGUMENT_SPEC = dict(
    recommendations=dict(type="list", elements="dict", options=_REC),
    cmdline_recommendations=dict(type="list", elements="dict", options=_CMD),
    config_path=dict(type="path"),
    fail_on_missing=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    if p["config_path"]:
        try:
            opener = gzip.open if p["config_path"].endswith(".gz") else open
            with opener(p["config_path"], "rb") as handle:
                source, text = p["config_path"], handle.read().decode("utf-8", "replace")
        except (IOError, OSError, EOFError) as exc:
            module.fail_json(msg="cannot read %s: %s" % (p["config_path"], exc))
    else:
        source, text = kconfig.read_config()
    report = kconfig.audit(text, kconfig.read_cmdline(), p["recommendations"], p["cmdline_recommendations"],
                           machine=os.uname()[4], source=source)
    if report["missing"]:
        if p["fail_on_missing"]:
            module.fail_json(msg="Kernel build options differ from the recommendations: %s"
                             % kconfig.missing_summary(report), **report)
        module.warn(kconfig.missing_summary(report))
    module.exit_json(changed=False, **report)


if __name__ == "__main__":
    main()
