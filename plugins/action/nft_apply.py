# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Commit-confirm for nft_apply: apply, then prove a NEW connection still gets in
(plugins/plugin_utils/_commit_confirm.py has the flow). A new connection, not the
established one, because conntrack lets an established one through whatever the new
rules say. The confirm step also persists the table for boot; a table that is already
live but not persisted is persisted only from a new connection (:meth:`not_armed`).
"""

from __future__ import annotations

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.edgewarden.hardening.plugins.plugin_utils._commit_confirm import CommitConfirmAction


class ActionModule(CommitConfirmAction):
    MODULE = "edgewarden.hardening.nft_apply"
    LABEL = "table"
    # one try: a ruleset that lets a new connection in only at the second attempt
    # (a rate limit, a port knock) is not one to confirm
    CONFIRM_RETRY = False
    ROLLED_BACK_MSG = ("rollback happened: new ruleset cut off the controller; previous ruleset restored ({reason}; the "
                       "device restored the previous table{when})")
    ROLLBACK_FAILED_MSG = ("ROLLBACK FAILED on the device ({reason}): {error}. The new ruleset may still be live and "
                           "block the controller; use the console")
    LOST_ANSWER_HINT = ": run again to make sure the table is persisted"

    ACTION_ARGS = CommitConfirmAction.ACTION_ARGS + ("fail_on_unsupported",)

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        result.pop("persist_needed", None)  # a message between the steps, not a result
        unsupported = [r for r in result.get("records") or [] if r.get("status") == "unsupported"]
        strict = boolean(self._task.args.get("fail_on_unsupported", False), strict=False)
        if unsupported and strict and not result.get("failed"):
            result.update(failed=True, msg="unsupported on this device (fail_on_unsupported): %s"
                          % "; ".join(str(r.get("detail")) for r in unsupported))
        return result

    def not_armed(self, result, args, task_vars, apply):
        if apply.get("nft") and apply.get("persist_needed") and boolean(args.get("persist", True), strict=False):
            return self._persist_only(result, args, task_vars, apply)
        result.update(apply)
        return result

    def after_confirm(self, result, apply, confirm):
        super(ActionModule, self).after_confirm(result, apply, confirm)
        result.update(persisted_to=confirm.get("persisted_to"), boot_loader=confirm.get("boot_loader"))

    def rollback_result(self, result, apply, status, reason, armed=None):
        result = super(ActionModule, self).rollback_result(result, apply, status, reason, armed)
        result["nft"] = (apply or {}).get("nft")
        return result

    def _persist_only(self, result, args, task_vars, apply):
        """The live table is already right but its persisted copy is not: persist it
        only from a new connection, which proves the live table lets one in."""
        persisted, error = self.fresh_step(args, task_vars, "persist")
        if persisted is None:
            result.update(apply, failed=True, msg="the live table is unchanged, but a new connection could not reach "
                          "the device to persist it: %s" % error)
            return result
        result.update(apply)
        result.update(changed=persisted.get("changed", False), records=apply.get("records", [])[:1] + persisted.get("records", []),
                      persisted_to=persisted.get("persisted_to"), boot_loader=persisted.get("boot_loader"))
        if persisted.get("failed"):
            result.update(failed=True, msg=persisted.get("msg"))
        return result
