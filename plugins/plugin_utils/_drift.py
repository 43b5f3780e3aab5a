# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening: may change without notice.
"""Drift reports from one Ansible run: pure functions, no Ansible imports.

A run is a list of task events (host, role, task, status, diff, change records). In check
mode a changed task is drift; in a real run it is a remediation. From the events come a
report dict, and from the report JSON, JUnit XML, a static HTML page and a terminal summary.
"""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET

# Exit codes for schedulers (docs/drift.md): drift found is not an error
EXIT_CLEAN = 0
EXIT_DRIFT = 3
EXIT_ERRORS = 4

MAX_DIFF_CHARS = 20000

# Actions that run on the controller only: they cost the device no round trip
CONTROLLER_ACTIONS = frozenset((
    "debug", "assert", "set_fact", "fail", "meta", "include_tasks", "import_tasks", "include_role",
    "import_role", "include_vars", "add_host", "group_by", "set_stats", "pause", "validate_argument_spec",
    "validate_role_inputs",
))


def is_remote(action):
    return (action or "").rsplit(".", 1)[-1] not in CONTROLLER_ACTIONS


def diff_text(diff):
    """Ansible's diff (a dict or a list of dicts) as unified-looking text, capped in size."""
    if not diff:
        return ""
    parts = diff if isinstance(diff, list) else [diff]
    out = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if "prepared" in part:
            out.append(str(part["prepared"]))
            continue
        before, after = part.get("before", ""), part.get("after", "")
        if isinstance(before, (dict, list)):
            before = json.dumps(before, indent=1, sort_keys=True)
        if isinstance(after, (dict, list)):
            after = json.dumps(after, indent=1, sort_keys=True)
        header = "--- %s\n+++ %s\n" % (part.get("before_header", "before"), part.get("after_header", "after"))
        body = "".join("-%s\n" % line for line in str(before).splitlines())
        body += "".join("+%s\n" % line for line in str(after).splitlines())
        out.append(header + body)
    text = "\n".join(out)
    if len(text) > MAX_DIFF_CHARS:
        text = text[:MAX_DIFF_CHARS] + "\n... (diff cut at %d characters)\n" % MAX_DIFF_CHARS
    return text


def task_event(host, play, role, task, action, status, check_mode, result):
    """One task result reduced to what reports need; ``status`` is ok|changed|failed|skipped|unreachable."""
    records = result.get("records") if isinstance(result.get("records"), list) else []
    changed_records = [r for r in records if isinstance(r, dict) and r.get("status") == "changed"]
    return {
        "host": host,
        "play": play,
        "role": role or "(playbook)",
        "task": task,
        "action": action,
        "status": status,
        "check_mode": bool(check_mode),
        "msg": str(result.get("msg", ""))[:2000] if status in ("failed", "unreachable") else "",
        "diff": diff_text(result.get("diff")),
        "records": changed_records,
    }


def build_report(events, hosts, mode, started, finished):
    """The whole run: per-host summaries and the events that matter (changed, failed, unreachable).

    ``hosts`` lists every host the run targeted, so a host with no events still appears.
    ``mode`` is ``drift`` (check mode) or ``remediate``.
    """
    per_host = {}
    for name in sorted(set(hosts) | set(e["host"] for e in events)):
        per_host[name] = {"ok": 0, "changed": 0, "failed": 0, "skipped": 0, "unreachable": False,
                          "controls_changed": 0, "roles": {}, "remote_tasks": 0}
    findings = []
    for event in events:
        summary = per_host[event["host"]]
        if event["status"] == "unreachable":
            summary["unreachable"] = True
        else:
            summary[event["status"]] += 1
        if event["status"] in ("ok", "changed", "failed") and is_remote(event["action"]):
            # each one was a module execution on the device: a round trip on a slow link
            summary["remote_tasks"] += 1
        if event["status"] == "changed":
            # a module with change records counts its controls; any other task counts once
            controls = len(event["records"]) or 1
            summary["controls_changed"] += controls
            summary["roles"][event["role"]] = summary["roles"].get(event["role"], 0) + controls
        if event["status"] in ("changed", "failed", "unreachable"):
            findings.append(event)
    drifted = sorted(h for h, s in per_host.items() if s["controls_changed"])
    broken = sorted(h for h, s in per_host.items() if s["failed"] or s["unreachable"])
    if broken:
        exit_code = EXIT_ERRORS
    elif drifted and mode == "drift":
        exit_code = EXIT_DRIFT
    else:
        exit_code = EXIT_CLEAN
    return {
        "mode": mode,
        "started": started,
        "finished": finished,
        "summary": {
            "hosts": len(per_host),
            "hosts_with_changes": len(drifted),
            "hosts_failed_or_unreachable": len(broken),
            "unreachable": sorted(h for h, s in per_host.items() if s["unreachable"]),
            "controls_changed": sum(s["controls_changed"] for s in per_host.values()),
            "exit_code": exit_code,
        },
        "hosts": per_host,
        "findings": findings,
    }


def to_json(report):
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


def to_junit(report):
    """One test suite per host, one test case per task that drifted, changed, failed or was unreachable;
    a host with nothing to report gets one passing case, so dashboards see every host."""
    suites = ET.Element("testsuites", name="edgewarden %s" % report["mode"])
    by_host = {}
    for event in report["findings"]:
        by_host.setdefault(event["host"], []).append(event)
    for host in sorted(report["hosts"]):
        events = by_host.get(host, [])
        suite = ET.SubElement(suites, "testsuite", name=host, tests=str(max(1, len(events))),
                              failures=str(sum(1 for e in events if e["status"] == "changed")),
                              errors=str(sum(1 for e in events if e["status"] in ("failed", "unreachable"))))
        if not events:
            ET.SubElement(suite, "testcase", classname=host, name="no drift")
        for event in events:
            case = ET.SubElement(suite, "testcase", classname="%s.%s" % (host, event["role"]), name=event["task"])
            if event["status"] == "changed":
                label = "drift" if report["mode"] == "drift" else "changed"
                node = ET.SubElement(case, "failure", message="%s: %s" % (label, event["task"]), type=label)
                node.text = event["diff"] or "\n".join(r.get("id", "") for r in event["records"])
            else:
                node = ET.SubElement(case, "error", message=event["msg"] or event["status"], type=event["status"])
    return ET.tostring(suites, encoding="unicode") + "\n"


def terminal_summary(report, width=100):
    """One screen: totals, then a line per host with its changed controls by role."""
    s = report["summary"]
    noun = "drifted" if report["mode"] == "drift" else "changed"
    lines = ["edgewarden %s report: %d host(s), %d %s, %d failed or unreachable, %d control(s) %s (exit code %d)" % (
        report["mode"], s["hosts"], s["hosts_with_changes"], noun, s["hosts_failed_or_unreachable"],
        s["controls_changed"], noun, s["exit_code"])]
    for host, summary in sorted(report["hosts"].items()):
        if summary["unreachable"]:
            state = "UNREACHABLE"
        elif summary["failed"]:
            state = "FAILED (%d task(s))" % summary["failed"]
        elif summary["controls_changed"]:
            state = ", ".join("%s: %d" % (role, n) for role, n in sorted(summary["roles"].items()))
        else:
            state = "clean"
        lines.append(("  %-20s %s" % (host, state))[:width])
    return "\n".join(lines) + "\n"


def _bar_chart_svg(report):
    """Stacked bars of changed controls per host, one colour per role: no JavaScript, no external files."""
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    roles = sorted(set(r for s in report["hosts"].values() for r in s["roles"]))
    colours = dict((role, palette[i % len(palette)]) for i, role in enumerate(roles))
    hosts = sorted(report["hosts"])
    peak = max([s["controls_changed"] for s in report["hosts"].values()] + [1])
    bar_w, gap, height = 36, 18, 180
    width = max(320, len(hosts) * (bar_w + gap) + 60)
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="changes by host and role">'
             % (width, height + 70)]
    for i, host in enumerate(hosts):
        x, y = 40 + i * (bar_w + gap), height
        for role, count in sorted(report["hosts"][host]["roles"].items()):
            h = int(round(count * (height - 10) / float(peak)))
            y -= h
            parts.append('<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s %s: %d</title></rect>'
                         % (x, y, bar_w, h, colours[role], html.escape(host), html.escape(role), count))
        parts.append('<text x="%d" y="%d" font-size="11" transform="rotate(40 %d %d)">%s</text>'
                     % (x + 4, height + 14, x + 4, height + 14, html.escape(host)))
    parts.append('<line x1="36" y1="%d" x2="%d" y2="%d" stroke="#333"/>' % (height, width - 10, height))
    parts.append("</svg>")
    legend = " ".join('<span class="key" style="background:%s"></span>%s' % (colours[r], html.escape(r)) for r in roles)
    return "".join(parts), legend


def to_html(report):
    s = report["summary"]
    chart, legend = _bar_chart_svg(report)
    rows = []
    for host, summary in sorted(report["hosts"].items()):
        state = "unreachable" if summary["unreachable"] else "failed" if summary["failed"] else \
            "changed" if summary["controls_changed"] else "clean"
        rows.append("<tr class='%s'><td>%s</td><td>%s</td><td>%d</td><td>%d</td><td>%s</td></tr>" % (
            state, html.escape(host), state, summary["controls_changed"], summary["failed"],
            html.escape(", ".join("%s: %d" % kv for kv in sorted(summary["roles"].items())))))
    details = []
    for event in report["findings"]:
        body = event["diff"] or event["msg"] or "\n".join(r.get("id", "") for r in event["records"])
        details.append("<details><summary>%s &middot; %s &middot; %s &middot; %s</summary><pre>%s</pre></details>" % (
            html.escape(event["host"]), html.escape(event["role"]), html.escape(event["task"]), event["status"],
            html.escape(body)))
    return """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>edgewarden %(mode)s report</title>
<style>
body{font-family:sans-serif;margin:2em;color:#222} table{border-collapse:collapse} td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
tr.changed td:nth-child(2){color:#b35c00} tr.failed td:nth-child(2),tr.unreachable td:nth-child(2){color:#c00;font-weight:bold}
tr.clean td:nth-child(2){color:#2a7d2a} .key{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}
pre{background:#f6f6f6;padding:8px;overflow:auto} .totals span{margin-right:2em}
</style></head><body>
<h1>edgewarden %(mode)s report</h1>
<p>%(started)s &ndash; %(finished)s</p>
<p class="totals"><span>hosts: %(hosts)d</span><span>with changes: %(changed)d</span><span>failed or unreachable: %(broken)d</span>
<span>controls: %(controls)d</span><span>exit code: %(exit)d</span></p>
<h2>Changes by host and role</h2>
%(chart)s<p>%(legend)s</p>
<h2>Hosts</h2>
<table><tr><th>host</th><th>state</th><th>controls</th><th>failed tasks</th><th>by role</th></tr>
%(rows)s
</table>
<h2>Details</h2>
%(details)s
</body></html>
""" % {"mode": html.escape(report["mode"]), "started": html.escape(report["started"]), "finished": html.escape(report["finished"]),
       "hosts": s["hosts"], "changed": s["hosts_with_changes"], "broken": s["hosts_failed_or_unreachable"],
       "controls": s["controls_changed"], "exit": s["exit_code"], "chart": chart, "legend": legend,
       "rows": "\n".join(rows), "details": "\n".join(details) or "<p>Nothing drifted.</p>"}
