# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only callback of the reliability scenario: cuts the controller's connection to the
lab (kills the relay's process group) just before the first task of a role starts.

Callbacks run in the controller's main process before a task is handed to the workers,
so the cut falls between two tasks: every task before it finished on every host, none
after it started. The real changes of the cut run and of the re-run then add up to one
uninterrupted run, which is what lets accuracy.yml compare them with the check run."""

from __future__ import annotations

DOCUMENTATION = r"""
name: relay_cut
type: aggregate
short_description: Test only - kill the lab relay before the first task of a role
description:
  - Reads E(RELAY_CUT_ROLE) (the role name) and E(RELAY_CUT_PIDFILE) (the relay's pid file, whose
    process group is killed); does nothing when either is unset.
author: edgewarden.hardening contributors (!UNKNOWN)
"""

import os
import signal
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "relay_cut"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._role = os.environ.get("RELAY_CUT_ROLE")
        self._pidfile = os.environ.get("RELAY_CUT_PIDFILE")
        self._done = False

    def v2_playbook_on_task_start(self, task, is_conditional):
        if self._done or not self._role or not self._pidfile or not task._role:
            return
        if task._role.get_name(include_role_fqcn=False) != self._role:
            return
        self._done = True
        with open(self._pidfile) as handle:
            group = int(handle.read().strip())
        # the relay and every connection it carries, as `kill -- -PGID` would
        os.killpg(group, signal.SIGTERM)
        # let the ssh control masters see their connections close
        time.sleep(2)
        self._display.display("RELAY CUT before %s (role %s)" % (task.get_name(), self._role))
