# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""The argument spec of plugins/doc_fragments/input_check.py, once for every module that
extends it: the calling role's own input problems, read and refused by the module's action
plugin on the controller, never acted on by the module itself."""

from __future__ import annotations

INPUT_CHECK_SPEC = dict(
    input_problems=dict(type="list", elements="str", default=[]),
    input_owner=dict(type="str"),
)
