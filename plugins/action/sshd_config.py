# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Commit-confirm for sshd_config: apply (validated, rollback armed), then prove that a
NEW connection through the bastion still logs in, else let the device roll back
(plugins/plugin_utils/_commit_confirm.py has the flow)."""

from __future__ import annotations

from ansible_collections.edgewarden.hardening.plugins.plugin_utils._commit_confirm import CommitConfirmAction


class ActionModule(CommitConfirmAction):
    MODULE = "edgewarden.hardening.sshd_config"
    LABEL = "SSH server config"
