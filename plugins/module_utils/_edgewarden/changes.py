# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""The one change-record shape every module returns.

A record says what one control looks like before and after, where it lives
(``live`` state, ``persisted`` config, ...) and its status. Check mode and a real
run return the same records, so a drift report is the records of a check-mode run.
"""

from __future__ import annotations

CHANGED = "changed"
UNCHANGED = "unchanged"
UNSUPPORTED = "unsupported"
ABSENT = "absent"
ERROR = "error"
STATUSES = (CHANGED, UNCHANGED, UNSUPPORTED, ABSENT, ERROR)


def record(control_id, before, after, where="live", status=None, detail=None):
    """Build one change record; status defaults to changed/unchanged from before/after."""
    if status is None:
        status = UNCHANGED if before == after else CHANGED
    if status not in STATUSES:
        raise ValueError("unknown change status %r for %s" % (status, control_id))
    rec = {"id": control_id, "before": before, "after": after, "where": where, "status": status}
    if detail:
        rec["detail"] = detail
    return rec


def any_changed(records):
    return any(r["status"] == CHANGED for r in records)


def by_status(records, status):
    return [r for r in records if r["status"] == status]


def _render(value):
    if value is None:
        return "<absent>"
    return str(value)


def diff_from_records(records, header="edgewarden"):
    """An Ansible ``diff`` dict listing every changed record, one line per control."""
    changed = by_status(records, CHANGED)
    before = "".join("%s [%s] = %s\n" % (r["id"], r["where"], _render(r["before"])) for r in changed)
    after = "".join("%s [%s] = %s\n" % (r["id"], r["where"], _render(r["after"])) for r in changed)
    return {"before_header": header, "after_header": header, "before": before, "after": after}


def exit_with_records(module, result, header, extra_diffs=None):
    """End a module the way every records-returning module does: the run's warnings as
    Ansible warnings, under --diff the changed records (then ``extra_diffs``, such as whole
    files) as the diff, and ``failed`` turned into fail_json. Does not return."""
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if module._diff and result.get("records"):
        diff = diff_from_records(result["records"], header=header)
        result["diff"] = diff if extra_diffs is None else [diff] + list(extra_diffs)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)
