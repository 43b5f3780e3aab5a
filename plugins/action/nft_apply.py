# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Commit-confirm for nft_apply: apply, then prove a NEW connection still gets in.

1. Run the module (step ``apply``): it validates, arms a rollback on the device and
   applies. In check mode this is all that runs (no arming, nothing applied).
2. Reset the connection. For ``ssh`` that is ``ssh -O stop`` on the ControlPersist
   master, so the next command opens a new TCP connection (through the bastion, with
   ProxyJump) instead of riding the established one, which conntrack would let through
   whatever the new rules say. The module double-checks on the device: a confirmation
   over the apply's own connection is refused and rolled back at once.
3. Run the module again (step ``confirm``) over the new connection: it wins the race
   against the rollback and persists the table for boot.
4. If the device cannot be reached, wait until the rollback has fired, reconnect, read
   what happened (step ``status``) and fail saying so.
"""

from __future__ import annotations

import secrets
import time

from ansible.errors import AnsibleConnectionFailure
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import STATUSES
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

MODULE = "edgewarden.hardening.nft_apply"
INTERNAL_ARGS = ("step", "token", "apply_connection")
MIN_CONFIRM_TIMEOUT = 10
# after the device's deadline: the rollback shell needs a moment to run nft
GRACE = 10
# how long to keep trying to reach the device after the rollback should have fired
RECHECK = 90
RECHECK_EVERY = 5
STATUS_KEYS = ("state", "armed_at", "timeout", "deadline", "restored_at", "restored_after", "rollback_error", "detail", "connection")
ROLLBACK_MSG = "rollback happened: new ruleset cut off the controller; previous ruleset restored"


def _first_line(text, limit=300):
    text = to_text(text or "").strip()
    return text.splitlines()[0][:limit] if text else ""


def _commit_confirm(armed, **extra):
    """The commit_confirm result: the arming facts, the apply's connection, the outcome."""
    cc = dict((k, v) for k, v in (armed or {}).items() if k != "connection")
    if armed and armed.get("connection"):
        cc["apply_connection"] = armed["connection"]
    cc.update(extra)
    return cc


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        result = self._run(result, task_vars)
        result.pop("persist_needed", None)  # a message between the steps, not a result
        if isinstance(result.get("records"), list):
            result["summary"] = dict((s, len([r for r in result["records"] if r.get("status") == s])) for s in STATUSES)
        return result

    def _run(self, result, task_vars):
        args = dict(self._task.args)
        for key in INTERNAL_ARGS:
            if args.get(key) not in (None, "apply"):
                result.update(failed=True, msg="%s is set by the nft_apply action plugin, not in the task" % key)
                return result
        try:
            timeout = int(args.get("confirm_timeout", 120))
        except (TypeError, ValueError):
            result.update(failed=True, msg="confirm_timeout must be a number of seconds")
            return result
        if timeout < MIN_CONFIRM_TIMEOUT:
            result.update(failed=True, msg="confirm_timeout must be at least %d seconds" % MIN_CONFIRM_TIMEOUT)
            return result
        conn_timeout = self._connection_timeout()
        if conn_timeout and timeout <= conn_timeout + 5:
            display.warning("nft_apply: confirm_timeout (%ds) is not longer than the connection timeout (%ds) plus a "
                            "module run: a slow confirmation may lose the race and roll back a good ruleset"
                            % (timeout, conn_timeout))
        args["confirm_timeout"] = timeout
        token = "%d-%s" % (int(time.time()), secrets.token_hex(6))
        started = time.time()
        try:
            apply = self._step(args, task_vars, "apply", token=token)
        except AnsibleConnectionFailure as exc:
            if self._task.check_mode:
                raise
            return self._apply_lost(result, args, task_vars, token, started + timeout, exc)
        if apply.get("failed") or self._task.check_mode or not apply.get("nft"):
            result.update(apply)
            return result
        armed = apply.get("commit_confirm")
        if armed:
            return self._confirm(result, args, task_vars, apply, armed, started, time.time())
        if apply.get("persist_needed") and boolean(args.get("persist", True), strict=False):
            return self._persist_only(result, args, task_vars, apply)
        result.update(apply)
        return result

    # ------------------------------------------------------------------ helpers

    def _connection_timeout(self):
        try:
            return int(self._connection.get_option("timeout"))
        except Exception:  # not every connection plugin has the option
            return None

    def _step(self, args, task_vars, step, **extra):
        module_args = dict(args, step=step, **extra)
        res = self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)
        if res.get("unreachable"):
            raise AnsibleConnectionFailure(res.get("msg", "unreachable"))
        res.pop("invocation", None)
        return res

    def _fresh(self):
        """Close every shared connection to the device: the next command opens a new one."""
        self._connection.reset()

    def _try(self, args, task_vars, step, **extra):
        """Run one step over a NEW connection; ``(result, None)`` or ``(None, error text)``."""
        try:
            self._fresh()
            return self._step(args, task_vars, step, **extra), None
        except AnsibleConnectionFailure as exc:
            return None, _first_line(exc) or "connection failed"

    def _status_after(self, args, task_vars, token, deadline):
        """Wait until the rollback must have fired, then ask the device what happened."""
        wait = deadline + GRACE - time.time()
        if wait > 0:
            display.display("nft_apply: waiting %ds for the device's rollback (%s)" % (wait, self._task.get_name()))
            time.sleep(wait)
        give_up = time.time() + max(RECHECK, 3 * (self._connection_timeout() or 10))
        error = None
        while True:
            status, error = self._try(args, task_vars, "status", token=token)
            if status is not None and not status.get("failed"):
                return status, None
            if status is not None:
                error = status.get("msg")
            if time.time() >= give_up:
                return None, error
            time.sleep(RECHECK_EVERY)

    def _rollback_result(self, result, apply, status, reason, armed=None):
        if status is not None:
            status = dict((k, v) for k, v in status.items() if k in STATUS_KEYS)
        state = (status or {}).get("state")
        records = [dict(r) for r in apply.get("records", [])] if apply else []
        for rec in records:
            if rec.get("where") == "live" and rec.get("status") == "changed":
                rec.update(status="error", detail="applied, not confirmed: rolled back")
        cc = _commit_confirm(armed, confirmed=False)
        result.update(changed=False, failed=True, rolled_back=state == "rolled-back", rollback=status or {},
                      commit_confirm=cc, records=records, nft=(apply or {}).get("nft"))
        if state == "rolled-back":
            after = status.get("restored_after")
            when = " %ds after the apply" % after if after is not None else ""
            result["msg"] = "%s (%s; the device restored the previous table%s)" % (ROLLBACK_MSG, reason, when)
        elif state == "rollback-failed":
            result["msg"] = ("ROLLBACK FAILED on the device (%s): %s. The new ruleset may still be live and block the "
                             "controller; use the console" % (reason, status.get("rollback_error", "nft -f failed")))
        elif state == "confirmed":
            # the confirmation got through but its answer was lost on the way back
            result.update(failed=False, changed=True, rolled_back=False, commit_confirm=dict(cc, confirmed=True),
                          warnings=["nft_apply: the change was confirmed, but the answer was lost (%s): run again to "
                                    "make sure the table is persisted" % reason])
        elif status is None:
            result["msg"] = ("the device did not answer after its rollback deadline (%s): it should have restored the "
                             "previous table by itself; check it from its console" % reason)
        else:
            result["msg"] = "the change was not confirmed (%s); device state: %s" % (reason, state)
        return result

    # ------------------------------------------------------------------ flows

    def _confirm(self, result, args, task_vars, apply, armed, started, applied_at):
        token = armed["token"]
        timeout = int(armed.get("timeout", args["confirm_timeout"]))
        deadline = applied_at + timeout
        confirm, error = self._try(args, task_vars, "confirm", token=token, apply_connection=armed.get("connection"))
        if confirm is not None and confirm.get("confirmed"):
            cc = _commit_confirm(armed, confirmed=True, confirm_connection=confirm.get("connection"),
                                 seconds_to_confirm=round(time.time() - applied_at, 1))
            warnings = list(apply.get("warnings", [])) + list(confirm.get("warnings", []))
            result.update(apply)
            result.update(changed=True, records=apply.get("records", []) + confirm.get("records", []),
                          commit_confirm=cc, persisted_to=confirm.get("persisted_to"),
                          boot_loader=confirm.get("boot_loader"), rolled_back=False)
            if warnings:
                result["warnings"] = warnings
            if confirm.get("failed"):
                result.update(failed=True, msg=confirm.get("msg"))
            return result
        if confirm is not None and confirm.get("state") in ("rolled-back", "rollback-failed"):
            if confirm.get("detail"):
                reason = confirm["detail"]
            elif applied_at - started >= timeout:
                reason = ("the apply's own connection stalled for %ds (the new table blocked it) until the rollback "
                          "restored the previous table" % (applied_at - started))
            else:
                reason = "the confirmation came too late: the rollback timer fired first"
            if "apply's own TCP connection" in reason:
                result = self._rollback_result(result, apply, confirm, reason, armed)
                result["msg"] = "rollback happened: the confirmation could not prove that a new connection gets in (%s)" % reason
                return result
            return self._rollback_result(result, apply, confirm, reason, armed)
        if confirm is not None:
            reason = "the confirmation failed: %s" % _first_line(confirm.get("msg") or confirm.get("detail") or confirm.get("state"))
        else:
            reason = "a new connection through the bastion could not reach the device: %s" % error
        display.warning("nft_apply: %s; the device restores the previous table at its deadline" % reason)
        status, error = self._status_after(args, task_vars, token, deadline)
        return self._rollback_result(result, apply, status, reason if status else "%s; then: %s" % (reason, error), armed)

    def _apply_lost(self, result, args, task_vars, token, deadline, exc):
        """The apply's own connection broke: did the module arm and apply before it did?"""
        status, _error = self._try(args, task_vars, "status", token=token)
        if status is not None and status.get("state") is None:
            raise exc  # reachable, and nothing was armed: an ordinary connection failure
        reason = "the connection broke during the apply: %s" % _first_line(exc)
        if status is None or status.get("state") == "armed":
            status, error = self._status_after(args, task_vars, token, deadline)
            if status is None:
                reason = "%s; then: %s" % (reason, error)
        return self._rollback_result(result, None, status, reason)

    def _persist_only(self, result, args, task_vars, apply):
        """The live table is already right but its persisted copy is not: persist it
        only from a new connection, which proves the live table lets one in."""
        persisted, error = self._try(args, task_vars, "persist")
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
