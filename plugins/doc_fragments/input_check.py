# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):
    # The roles' own input checks, refused by the action plugin before the device is
    # contacted: one task instead of an assert task plus the module call. The argument
    # spec to match: module_utils/_edgewarden/input_check.py.
    DOCUMENTATION = r"""
options:
  input_problems:
    description:
      - Problems the calling role found in its own input, on the controller. If any, the task fails
        listing them (result C(refused_on_controller=true)) and the device is not contacted.
      - Read by the action plugin only; never sent to the device.
    type: list
    elements: str
    default: []
  input_owner:
    description:
      - Who found O(input_problems), the first word of the failure message (a role name).
      - Read by the action plugin only.
    type: str
"""
