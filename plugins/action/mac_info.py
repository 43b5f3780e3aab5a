# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs the mac_info module with the lean transport (plugins/plugin_utils/_lean.py)."""

from __future__ import annotations

from ansible_collections.edgewarden.hardening.plugins.plugin_utils._lean_action import LeanModuleAction


class ActionModule(LeanModuleAction):
    pass
