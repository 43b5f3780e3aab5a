# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening.
"""The controller half of commit-confirm, for any module built on
``module_utils/_edgewarden/commit_confirm.py`` (steps ``apply``, ``confirm``, ``status``).

1. Run the module's ``apply`` step: it validates, arms a rollback on the device and
   applies. In check mode this is all that runs.
2. Reset the connection (``ssh -O stop`` on the ControlPersist master), so the next
   command opens a NEW TCP connection through the bastion instead of riding the old
   one, which a wrong sshd config or firewall rule would not stop.
3. Run ``confirm`` over the new connection. A server that is restarting (dropbear
   respawned by init) may refuse for a moment, so connection failures are retried
   until shortly before the device's deadline.
4. If no new connection gets in, wait until the rollback has fired, reconnect, ask
   ``status`` and fail saying what happened.

A subclass sets ``MODULE``, ``LABEL`` (what is rolled back, for messages), may reword
the outcome (``ROLLED_BACK_MSG``, ``ROLLBACK_FAILED_MSG``, ``LOST_ANSWER_HINT``) and
override :meth:`after_confirm` (merge what its confirm step returns),
:meth:`not_armed` (an apply that changed nothing live) and :meth:`rollback_result`.
"""

from __future__ import annotations

import secrets
import time

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_text
from ansible.utils.display import Display
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import STATUSES
from ansible_collections.edgewarden.hardening.plugins.plugin_utils._batch import problems_message
from ansible_collections.edgewarden.hardening.plugins.plugin_utils._lean_action import LeanModuleAction

display = Display()

INTERNAL_ARGS = ("step", "token", "apply_connection")
MIN_CONFIRM_TIMEOUT = 10
GRACE = 10  # after the device's deadline: the rollback shell needs a moment to restore
RECHECK = 90
RECHECK_EVERY = 5
CONFIRM_RETRY_EVERY = 3
STATUS_KEYS = ("state", "armed_at", "timeout", "deadline", "restored_at", "restored_after", "rollback_error",
               "detail", "connection")


def first_line(text, limit=300):
    text = to_text(text or "").strip()
    return text.splitlines()[0][:limit] if text else ""


def new_token():
    return "%d-%s" % (int(time.time()), secrets.token_hex(6))


def commit_confirm_facts(armed, **extra):
    cc = dict((k, v) for k, v in (armed or {}).items() if k not in ("connection", "state_dir"))
    if armed and armed.get("connection"):
        cc["apply_connection"] = armed["connection"]
    cc.update(extra)
    return cc


class CommitConfirmAction(LeanModuleAction):
    _supports_check_mode = True
    _supports_async = False

    MODULE = None
    LABEL = "change"
    # options the action plugin reads and does not send (plugins/doc_fragments/input_check.py)
    ACTION_ARGS = ("input_problems", "input_owner")
    DEFAULT_TIMEOUT = 120
    # keep trying a new connection until shortly before the deadline (a server that
    # restarts refuses for a moment); False: the first new connection must get in
    CONFIRM_RETRY = True
    # str.format fields: label, reason, when (" Ns after the apply" or ""), error
    ROLLED_BACK_MSG = ("rollback happened: the new {label} cut off new connections; the device restored the previous "
                       "one{when} ({reason})")
    ROLLBACK_FAILED_MSG = "ROLLBACK FAILED on the device ({reason}): {error}. The new {label} may still be live; use the console"
    LOST_ANSWER_HINT = ""

    # ------------------------------------------------------------------ entry

    def run(self, tmp=None, task_vars=None):
        result = super(LeanModuleAction, self).run(tmp, task_vars)  # ActionBase's: the steps run the module
        del tmp
        result = self.commit_confirm(result, task_vars)
        if isinstance(result.get("records"), list):
            result["summary"] = dict((s, len([r for r in result["records"] if r.get("status") == s])) for s in STATUSES)
        result.setdefault("rolled_back", False)
        return result

    def commit_confirm(self, result, task_vars):
        args = dict((k, v) for k, v in self._task.args.items() if k not in self.ACTION_ARGS)
        problems = self._task.args.get("input_problems") or []
        if problems:
            owner = self._task.args.get("input_owner") or self.MODULE.rsplit(".", 1)[-1]
            result.update(failed=True, refused_on_controller=True,
                          msg=problems_message(owner, [problems] if isinstance(problems, str) else problems))
            return result
        for key in INTERNAL_ARGS:
            if args.get(key) not in (None, "apply"):
                result.update(failed=True, msg="%s is set by the action plugin, not in the task" % key)
                return result
        try:
            timeout = int(args.get("confirm_timeout", self.DEFAULT_TIMEOUT))
        except (TypeError, ValueError):
            result.update(failed=True, msg="confirm_timeout must be a number of seconds")
            return result
        if timeout < MIN_CONFIRM_TIMEOUT:
            result.update(failed=True, msg="confirm_timeout must be at least %d seconds" % MIN_CONFIRM_TIMEOUT)
            return result
        conn_timeout = self.connection_timeout()
        if conn_timeout and timeout <= conn_timeout + 5:
            display.warning("%s: confirm_timeout (%ds) is not longer than the connection timeout (%ds) plus a module "
                            "run: a slow confirmation may lose the race and roll back a good change"
                            % (self.MODULE, timeout, conn_timeout))
        args["confirm_timeout"] = timeout
        token = new_token()
        started = time.time()
        try:
            apply = self.step(args, task_vars, "apply", token=token)
        except AnsibleConnectionFailure as exc:
            if self._task.check_mode:
                raise
            return self.apply_lost(result, args, task_vars, token, started + timeout, exc)
        if apply.get("failed") or self._task.check_mode:
            result.update(apply)
            return result
        armed = apply.get("commit_confirm")
        if not armed:
            return self.not_armed(result, args, task_vars, apply)
        return self.confirm(result, args, task_vars, apply, armed, started, time.time())

    # ------------------------------------------------------------------ helpers

    def connection_timeout(self):
        try:
            return int(self._connection.get_option("timeout"))
        except Exception:  # not every connection plugin has the option
            return None

    def step(self, args, task_vars, step, **extra):
        module_args = dict(args, step=step, **extra)
        # each step is one lean module run (the bytes on a slow link), AnsiballZ where lean does not apply
        res = self._run_module(task_vars, module_args, self.MODULE)
        if res.get("unreachable"):
            raise AnsibleConnectionFailure(res.get("msg", "unreachable"))
        res.pop("invocation", None)
        return res

    def fresh_step(self, args, task_vars, step, **extra):
        """One step over a NEW connection; ``(result, None)`` or ``(None, error text)``."""
        try:
            self._connection.reset()
            return self.step(args, task_vars, step, **extra), None
        except AnsibleConnectionFailure as exc:
            return None, first_line(exc) or "connection failed"

    def status_after(self, args, task_vars, token, deadline):
        """Wait until the rollback must have fired, then ask the device what happened."""
        wait = deadline + GRACE - time.time()
        if wait > 0:
            display.display("%s: waiting %ds for the device's rollback (%s)" % (self.MODULE, wait, self._task.get_name()))
            time.sleep(wait)
        give_up = time.time() + max(RECHECK, 3 * (self.connection_timeout() or 10))
        while True:
            status, error = self.fresh_step(args, task_vars, "status", token=token)
            if status is not None and not status.get("failed"):
                return status, None
            if status is not None:
                error = status.get("msg")
            if time.time() >= give_up:
                return None, error
            time.sleep(RECHECK_EVERY)

    def not_armed(self, result, args, task_vars, apply):
        """The apply changed nothing live, so nothing was armed."""
        result.update(apply)
        return result

    def after_confirm(self, result, apply, confirm):
        """Merge a successful confirmation into the result (subclasses add their own keys)."""
        result["records"] = list(apply.get("records", [])) + list(confirm.get("records", []))

    def rollback_result(self, result, apply, status, reason, armed=None):
        if status is not None:
            status = dict((k, v) for k, v in status.items() if k in STATUS_KEYS)
        state = (status or {}).get("state")
        records = [dict(r) for r in (apply or {}).get("records", [])]
        for rec in records:
            if rec.get("status") == "changed":
                rec.update(status="error", detail="applied, not confirmed: rolled back")
        cc = commit_confirm_facts(armed, confirmed=False)
        result.update(changed=False, failed=True, rolled_back=state == "rolled-back", rollback=status or {},
                      commit_confirm=cc, records=records)
        if state == "rolled-back":
            after = status.get("restored_after")
            when = " %ds after the apply" % after if after is not None else ""
            result["msg"] = self.ROLLED_BACK_MSG.format(label=self.LABEL, reason=reason, when=when)
        elif state == "rollback-failed":
            result["msg"] = self.ROLLBACK_FAILED_MSG.format(
                label=self.LABEL, reason=reason, error=status.get("rollback_error", "the restore commands failed"))
        elif state == "confirmed":
            # the confirmation got through but its answer was lost on the way back
            result.update(failed=False, changed=True, rolled_back=False, commit_confirm=dict(cc, confirmed=True),
                          records=[dict(r) for r in (apply or {}).get("records", [])],
                          warnings=["%s: the change was confirmed, but the answer was lost (%s)%s"
                                    % (self.MODULE, reason, self.LOST_ANSWER_HINT)])
        elif status is None:
            result["msg"] = ("the device did not answer after its rollback deadline (%s): it should have restored the "
                             "previous %s by itself; check it from its console" % (reason, self.LABEL))
        else:
            result["msg"] = "the change was not confirmed (%s); device state: %s" % (reason, state)
        return result

    # ------------------------------------------------------------------ flows

    def confirm(self, result, args, task_vars, apply, armed, started, applied_at):
        token = armed["token"]
        timeout = int(armed.get("timeout", args["confirm_timeout"]))
        deadline = applied_at + timeout
        # leave the device time to answer before its own deadline
        last_try = deadline - max(5, (self.connection_timeout() or 10) // 2)
        while True:
            confirm, error = self.fresh_step(args, task_vars, "confirm", token=token,
                                             apply_connection=armed.get("connection"))
            if confirm is not None or not self.CONFIRM_RETRY or time.time() + CONFIRM_RETRY_EVERY >= last_try:
                break
            display.vvv("%s: new connection failed (%s), retrying" % (self.MODULE, error))
            time.sleep(CONFIRM_RETRY_EVERY)
        if confirm is not None and confirm.get("confirmed"):
            cc = commit_confirm_facts(armed, confirmed=True, confirm_connection=confirm.get("connection"),
                                      seconds_to_confirm=round(time.time() - applied_at, 1))
            warnings = list(apply.get("warnings", [])) + list(confirm.get("warnings", []))
            result.update(apply)
            result.update(changed=True, commit_confirm=cc, rolled_back=False)
            self.after_confirm(result, apply, confirm)
            if warnings:
                result["warnings"] = warnings
            if confirm.get("failed"):
                result.update(failed=True, msg=confirm.get("msg"))
            return result
        if confirm is not None and confirm.get("state") in ("rolled-back", "rollback-failed"):
            if confirm.get("detail"):
                reason = confirm["detail"]
            elif applied_at - started >= timeout:
                reason = "the apply's own connection stalled for %ds until the rollback fired" % (applied_at - started)
            else:
                reason = "the confirmation came too late: the rollback timer fired first"
            result = self.rollback_result(result, apply, confirm, reason, armed)
            if confirm.get("state") == "rolled-back" and armed.get("connection") and \
                    confirm.get("connection") == armed.get("connection"):
                # the device refused a confirmation over the apply's own connection: nothing was cut off
                result["msg"] = ("rollback happened: the confirmation could not prove that a new connection gets in (%s)"
                                 % reason)
            return result
        if confirm is not None:
            reason = "the confirmation failed: %s" % first_line(confirm.get("msg") or confirm.get("detail") or confirm.get("state"))
        else:
            reason = "a new connection through the bastion could not reach the device: %s" % error
        display.warning("%s: %s; the device restores the previous %s at its deadline" % (self.MODULE, reason, self.LABEL))
        status, error = self.status_after(args, task_vars, token, deadline)
        return self.rollback_result(result, apply, status, reason if status else "%s; then: %s" % (reason, error), armed)

    def apply_lost(self, result, args, task_vars, token, deadline, exc):
        """The apply's own connection broke: did the module arm and apply before it did?"""
        status, _error = self.fresh_step(args, task_vars, "status", token=token)
        if status is not None and status.get("state") is None:
            raise exc  # reachable, and nothing was armed: an ordinary connection failure
        reason = "the connection broke during the apply: %s" % first_line(exc)
        if status is None or status.get("state") == "armed":
            status, error = self.status_after(args, task_vars, token, deadline)
            if status is None:
                reason = "%s; then: %s" % (reason, error)
        return self.rollback_result(result, None, status, reason)
