# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: drift_report
type: aggregate
short_description: Drift and remediation reports (JSON, JUnit XML, HTML) from one run
version_added: 0.1.0
author: edgewarden.hardening contributors (!UNKNOWN)
description:
  - Collects, per host and per role and task, what drifted (a run in check mode) or what was changed
    (a real run), with the diff and the change records of edgewarden modules.
  - At the end of the run writes C(drift.json) (machine), C(drift.xml) (JUnit, for CI dashboards) and
    C(drift.html) (a self-contained fleet page with a chart of changes by host and role), and prints a
    one-screen summary.
  - Every targeted host appears in the reports; unreachable and failed hosts are listed, never skipped.
  - The summary carries an exit code for schedulers, also written to C(exit_code) in the report
    directory - V(0) nothing drifted, V(3) drift found (check mode), V(4) a host failed or was
    unreachable. Drift is not an error.
requirements:
  - Enable it with C(callbacks_enabled = edgewarden.hardening.drift_report) or
    E(ANSIBLE_CALLBACKS_ENABLED=edgewarden.hardening.drift_report).
options:
  report_dir:
    description: Directory for the reports; created when missing. Files from an earlier run are replaced.
    type: path
    default: ./edgewarden-reports
    env:
      - name: EDGEWARDEN_REPORT_DIR
    ini:
      - section: callback_drift_report
        key: report_dir
  formats:
    description: Which files to write.
    type: list
    elements: str
    default: [json, junit, html]
    env:
      - name: EDGEWARDEN_REPORT_FORMATS
    ini:
      - section: callback_drift_report
        key: formats
"""

import datetime
import os

from ansible import context
from ansible.plugins.callback import CallbackBase
from ansible_collections.edgewarden.hardening.plugins.plugin_utils import _drift

WRITERS = {"json": ("drift.json", _drift.to_json), "junit": ("drift.xml", _drift.to_junit), "html": ("drift.html", _drift.to_html)}


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "edgewarden.hardening.drift_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._events = []
        self._play = ""
        self._check_plays = False
        self._started = _now()

    def v2_playbook_on_play_start(self, play):
        self._play = play.get_name()
        self._check_plays = self._check_plays or play.check_mode is True

    def _record(self, result, status):
        task = result.task
        role = task._role.get_name(include_role_fqcn=False) if task._role else None
        check_mode = task.check_mode is True or bool(context.CLIARGS.get("check"))
        self._events.append(_drift.task_event(
            result.host.get_name(), self._play, role, task.get_name(), task.action, status, check_mode, result.result))

    def v2_runner_on_ok(self, result):
        if result.result.get("changed"):
            self._record(result, "changed")
        else:
            self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "ok" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        # --check on the command line, or plays that force check_mode (playbooks/drift.yml)
        mode = "drift" if context.CLIARGS.get("check") or self._check_plays else "remediate"
        # every host the run reached or tried to reach, including those with nothing to say
        hosts = sorted(set(stats.processed) | set(stats.dark) | set(stats.failures))
        report = _drift.build_report(self._events, hosts, mode, self._started, _now())
        directory = self.get_option("report_dir")
        os.makedirs(directory, exist_ok=True)
        for fmt in self.get_option("formats"):
            if fmt not in WRITERS:
                self._display.warning("drift_report: unknown format %r (known: %s)" % (fmt, ", ".join(sorted(WRITERS))))
                continue
            name, render = WRITERS[fmt]
            path = os.path.join(directory, name)
            with open(path + ".tmp", "w") as handle:
                handle.write(render(report))
            os.rename(path + ".tmp", path)
        with open(os.path.join(directory, "exit_code"), "w") as handle:
            handle.write("%d\n" % report["summary"]["exit_code"])
        self._display.display(_drift.terminal_summary(report))
        self._display.display("reports: %s" % os.path.abspath(directory))
