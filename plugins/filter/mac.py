# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller-side helpers of the mac role: check every input at once, render AppArmor
profiles for the device's own programs from variables, and turn the role's variables
into the one list the apparmor_profile module takes.

All pure functions of the variables; the device sees only finished profile texts.
"""

from __future__ import annotations

import re


PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
ABS_PATH = re.compile(r"^/[^\s\x00-\x1f\"]*$")
# a rule is one line of profile text without its trailing comma
RULE_BAD = re.compile(r"[\n\r\x00{}]")
CAPABILITY = re.compile(r"^[a-z_]+$")
NETWORK = re.compile(r"^[a-z0-9 ]+$")
ABSTRACTION = re.compile(r"^[A-Za-z0-9_./-]+$")
FLAG = re.compile(r"^[a-z_]+$")
SEBOOL = re.compile(r"^[A-Za-z0-9_]+$")
SETYPE = re.compile(r"^[a-z0-9_]+_t$")
SEMODULE = re.compile(r"^[A-Za-z0-9_-]+$")
APPARMOR_MODES = ("enforce", "complain", "disabled")
STATES = ("present", "absent")
PROFILE_KEYS = ("name", "binary", "mode", "state", "file", "abstractions", "file_rules", "network", "capabilities",
                "rules", "flags")
FILE_KEYS = ("name", "src", "mode", "state", "file")
EXISTING_KEYS = ("name", "mode", "file")
SELINUX_MODES = ("enforcing", "permissive")
FCONTEXT_FTYPES = ("a", "f", "d", "c", "b", "s", "l", "p")
MODULE_KEYS = ("name", "src", "fc", "state", "priority")


def _strings(value):
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _check_keys(where, item, allowed, problems):
    unknown = sorted(set(item) - set(allowed))
    if unknown:
        problems.append("%s: unknown key(s) %s (allowed: %s)" % (where, ", ".join(unknown), ", ".join(allowed)))


def _check_mode_state(where, item, problems, modes=APPARMOR_MODES):
    if item.get("mode") is not None and item["mode"] not in modes:
        problems.append("%s: mode must be one of %s" % (where, ", ".join(modes)))
    if item.get("state", "present") not in STATES:
        problems.append("%s: state must be present or absent" % where)


def apparmor_problems(profiles, files, existing):
    """Every problem in the three AppArmor lists, as strings."""
    problems = []
    names = {}

    def claim(where, name):
        if name in names:
            problems.append("%s: profile %s is also defined in %s" % (where, name, names[name]))
        names[name] = where

    for index, item in enumerate(profiles or []):
        where = "mac_apparmor_profiles[%d]" % index
        if not isinstance(item, dict):
            problems.append("%s: must be a dict" % where)
            continue
        _check_keys(where, item, PROFILE_KEYS, problems)
        name = item.get("name")
        if not isinstance(name, str) or not PROFILE_NAME.match(name):
            problems.append("%s: name %r must be 1-64 letters, digits, '_', '.', '+' or '-'" % (where, name))
        else:
            where = "mac_apparmor_profiles[%s]" % name
            claim(where, name)
        if item.get("state", "present") == "present":
            if not isinstance(item.get("binary"), str) or not ABS_PATH.match(item["binary"]):
                problems.append("%s: binary must be an absolute path without spaces or quotes" % where)
        _check_mode_state(where, item, problems)
        for key, pattern in (("abstractions", ABSTRACTION), ("capabilities", CAPABILITY), ("network", NETWORK),
                             ("flags", FLAG)):
            value = item.get(key, [])
            if not _strings(value):
                problems.append("%s: %s must be a list of strings" % (where, key))
                continue
            bad = [v for v in value if not pattern.match(v)]
            if bad:
                problems.append("%s: invalid %s: %s" % (where, key, ", ".join(bad)))
        if "unconfined" in (item.get("flags") or []):
            problems.append("%s: flags must not contain unconfined (a deny-all stub once enforced)" % where)
        for key in ("file_rules", "rules"):
            value = item.get(key, [])
            if not _strings(value):
                problems.append("%s: %s must be a list of strings" % (where, key))
                continue
            bad = [v for v in value if RULE_BAD.search(v) or not v.strip()]
            if bad:
                problems.append("%s: %s entries must be one rule each, without newlines or braces: %s"
                                % (where, key, ", ".join(repr(v) for v in bad)))
        for rule in item.get("file_rules", []) if _strings(item.get("file_rules", [])) else []:
            if len(rule.split()) < 2:
                problems.append("%s: file rule %r must be '<path> <permissions>'" % (where, rule))
    for index, item in enumerate(files or []):
        where = "mac_apparmor_profile_files[%d]" % index
        if not isinstance(item, dict):
            problems.append("%s: must be a dict" % where)
            continue
        _check_keys(where, item, FILE_KEYS, problems)
        if not isinstance(item.get("name"), str) or not item["name"].strip():
            problems.append("%s: name is required (the profile's name as the kernel shows it)" % where)
        else:
            where = "mac_apparmor_profile_files[%s]" % item["name"]
            claim(where, item["name"])
        if item.get("state", "present") == "present" and not item.get("src"):
            problems.append("%s: src (a profile file or template on the controller) is required" % where)
        _check_mode_state(where, item, problems)
    for index, item in enumerate(existing or []):
        where = "mac_apparmor_existing_profiles[%d]" % index
        if not isinstance(item, dict):
            problems.append("%s: must be a dict" % where)
            continue
        _check_keys(where, item, EXISTING_KEYS, problems)
        if not isinstance(item.get("name"), str) or not item["name"].strip():
            problems.append("%s: name is required" % where)
        else:
            where = "mac_apparmor_existing_profiles[%s]" % item["name"]
            claim(where, item["name"])
        if item.get("mode") not in APPARMOR_MODES:
            problems.append("%s: mode is required, one of %s (an existing profile is only touched when asked)"
                            % (where, ", ".join(APPARMOR_MODES)))
    return problems


def selinux_problems(mode, booleans, fcontexts, modules):
    problems = []
    if mode is not None and mode not in SELINUX_MODES:
        problems.append("mac_selinux_mode: must be enforcing, permissive or null (left alone)")
    if not isinstance(booleans, dict):
        problems.append("mac_selinux_booleans: must be a dict of name: true/false")
    else:
        for name, value in booleans.items():
            if not SEBOOL.match(str(name)):
                problems.append("mac_selinux_booleans: invalid boolean name %r" % name)
            if not isinstance(value, bool):
                problems.append("mac_selinux_booleans[%s]: value must be true or false" % name)
    for index, item in enumerate(fcontexts or []):
        where = "mac_selinux_fcontexts[%d]" % index
        if not isinstance(item, dict):
            problems.append("%s: must be a dict" % where)
            continue
        _check_keys(where, item, ("target", "setype", "ftype", "state"), problems)
        if not isinstance(item.get("target"), str) or not item["target"].startswith("/") or RULE_BAD.search(item["target"]):
            problems.append("%s: target must be an absolute path regular expression" % where)
        if item.get("state", "present") == "present" and (
                not isinstance(item.get("setype"), str) or not SETYPE.match(item["setype"])):
            problems.append("%s: setype must be a type name ending in _t" % where)
        if item.get("ftype", "a") not in FCONTEXT_FTYPES:
            problems.append("%s: ftype must be one of %s" % (where, ", ".join(FCONTEXT_FTYPES)))
        if item.get("state", "present") not in STATES:
            problems.append("%s: state must be present or absent" % where)
    seen = set()
    for index, item in enumerate(modules or []):
        where = "mac_selinux_modules[%d]" % index
        if not isinstance(item, dict):
            problems.append("%s: must be a dict" % where)
            continue
        _check_keys(where, item, MODULE_KEYS, problems)
        name = item.get("name")
        if not isinstance(name, str) or not SEMODULE.match(name):
            problems.append("%s: name must be letters, digits, '_' or '-'" % where)
        elif name in seen:
            problems.append("%s: module %s listed twice" % (where, name))
        seen.add(name)
        if item.get("state", "present") == "present":
            src = item.get("src")
            if not isinstance(src, str) or not (src.endswith(".te") or src.endswith(".cil")):
                problems.append("%s: src must be a .te or .cil file on the controller" % where)
            if item.get("fc") is not None and not (isinstance(src, str) and src.endswith(".te")):
                problems.append("%s: fc (file contexts) goes with a .te source only; CIL declares them inline" % where)
        if item.get("state", "present") not in STATES:
            problems.append("%s: state must be present or absent" % where)
    return problems


def mac_validate(model):
    """Every problem of the role's input, for one assert before the device is touched.
    ``model`` holds the ``mac_*`` variables without their prefix."""
    model = model or {}
    return (apparmor_problems(model.get("apparmor_profiles"), model.get("apparmor_profile_files"),
                              model.get("apparmor_existing_profiles"))
            + selinux_problems(model.get("selinux_mode"), model.get("selinux_booleans") or {},
                               model.get("selinux_fcontexts"), model.get("selinux_modules")))


def mac_apparmor_render(profile, abi="abi/3.0"):
    """The profile text for one of the device's own programs.

    The program's own file is readable (script interpreters read it); everything else
    must be listed. Rules are emitted in a fixed order so the text, and therefore the
    module's change detection, depends only on the variables."""
    lines = ["# AppArmor profile for %s, rendered by the edgewarden.hardening mac role." % profile["binary"]]
    if abi:
        lines.append("abi <%s>," % abi)
    lines.append("include <tunables/global>")
    lines.append("")
    flags = profile.get("flags") or []
    header = "profile %s %s" % (profile["name"], profile["binary"])
    if flags:
        header += " flags=(%s)" % ", ".join(flags)
    lines.append(header + " {")
    for abstraction in profile.get("abstractions", ["base"]):
        lines.append("  include <abstractions/%s>" % abstraction)
    lines.append("")
    lines.append("  %s r," % profile["binary"])
    for capability in profile.get("capabilities") or []:
        lines.append("  capability %s," % capability)
    for network in profile.get("network") or []:
        lines.append("  network %s," % network)
    for rule in profile.get("file_rules") or []:
        lines.append("  %s," % rule.strip().rstrip(","))
    for rule in profile.get("rules") or []:
        lines.append("  %s," % rule.strip().rstrip(","))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _rollout(item, enforce, staged):
    """Explicit mode wins; otherwise complain, and enforce (staged) once the role is told to."""
    if item.get("mode"):
        return item["mode"], False
    if enforce:
        return "enforce", bool(staged)
    return "complain", False


def mac_apparmor_items(profiles, files=None, file_texts=None, existing=None, enforce=False, staged=True,
                       abi="abi/3.0"):
    """The apparmor_profile module's ``profiles`` list from the role's three lists.
    ``file_texts`` are the rendered ``src`` of ``files``, in the same order."""
    items = []
    for profile in profiles or []:
        item = {"name": profile["name"], "state": profile.get("state", "present")}
        if profile.get("file"):
            item["file"] = profile["file"]
        if item["state"] == "present":
            item["content"] = mac_apparmor_render(profile, abi)
            item["mode"], item["staged"] = _rollout(profile, enforce, staged)
        items.append(item)
    texts = list(file_texts or [])
    present_files = [f for f in files or [] if f.get("state", "present") == "present"]
    if len(texts) != len(present_files):
        raise ValueError("mac_apparmor_items: %d profile file(s) but %d rendered text(s)"
                         % (len(present_files), len(texts)))
    for entry in files or []:
        item = {"name": entry["name"], "state": entry.get("state", "present")}
        if entry.get("file"):
            item["file"] = entry["file"]
        if item["state"] == "present":
            item["content"] = texts.pop(0)
            item["mode"], item["staged"] = _rollout(entry, enforce, staged)
        items.append(item)
    for entry in existing or []:
        item = {"name": entry["name"], "mode": entry["mode"]}
        if entry.get("file"):
            item["file"] = entry["file"]
        items.append(item)
    return items


def mac_apparmor_sources(files):
    """The ``src`` of every present profile file, in order (to render with one query)."""
    return [f["src"] for f in files or [] if f.get("state", "present") == "present"]


def mac_denial_lines(denials, held=None):
    """One readable line per profile and kind of denial, for the role's report."""
    lines = []
    for name in sorted(denials or {}):
        entry = denials[name]
        total = entry.get("denied", 0) + entry.get("allowed", 0)
        head = "%s: %d denied, %d allowed in complain mode that enforce mode would deny" % (
            name, entry.get("denied", 0), entry.get("allowed", 0))
        if (held or {}).get(name):
            head += " - " + held[name]
        lines.append(head)
        if not total:
            continue
        for event in entry.get("events", []):
            target = event.get("name") or event.get("capname") or " ".join(
                str(event[k]) for k in ("family", "sock_type", "protocol") if event.get(k)) or "-"
            lines.append("  %s x%d %s %s %s by %s" % (
                event.get("apparmor"), event.get("count", 1), event.get("operation", "?"), target,
                event.get("requested_mask") or "", event.get("comm", "?")))
    return lines


class FilterModule(object):
    def filters(self):
        return {
            "mac_validate": mac_validate,
            "mac_apparmor_render": mac_apparmor_render,
            "mac_apparmor_items": mac_apparmor_items,
            "mac_apparmor_sources": mac_apparmor_sources,
            "mac_denial_lines": mac_denial_lines,
        }
