# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""nftables on the device: one table replaced atomically, with commit-confirm.

Everything here serves one rule: never leave a device unreachable.

* The new table is validated (``nft -c -f``) and applied in ONE ``nft -f`` transaction
  that adds an empty table, deletes it and defines it again: the kernel swaps the whole
  table or nothing, and never touches another table (no ``flush ruleset``).
* Before applying, the current table is saved as a restore file of the same shape
  ("table did not exist" restores to no table) and a rollback is armed: a detached
  ``/bin/sh`` that sleeps, then restores unless the apply was confirmed. Confirmation
  and rollback race on one ``rename``: whichever renames ``armed`` first wins, so a late
  confirmation can never pretend a rolled-back ruleset is live.
* "Changed" compares the normalized live table with the candidate as nft itself lists
  it. The candidate is listed after loading it into a throwaway network namespace, where
  it filters nothing; where that is impossible (no namespaces, no ``unshare`` and no
  ``ctypes``) a record of the last apply stands in for it.
* The confirmation must come over a different TCP connection than the apply: the SSH
  connection serving each step is identified from /proc, and a confirmation that
  arrives over the apply's own connection proves nothing and is refused.

The commit-confirm machinery (token directories, the rollback shell, the rename race,
the connection check) is the shared ``commit_confirm.py``; this file adds what is nft's:
the saved table, its ``nft -c`` check, and the restore command ``nft -f ./saved.nft``.

Only the standard library, Python 3.8+, and the shell, ``sleep``, ``mv`` and ``date``
of BusyBox.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import commit_confirm as cc
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.changes import record
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.files import (
    ValidationError,
    atomic_write,
    is_readonly_fs,
    read_text,
)

STATE_ROOTS = cc.state_roots("firewall")
CLONE_NEWNET = 0x40000000
C_ENV = {"LC_ALL": "C", "LANG": "C"}

_TABLE_STMT = re.compile(
    r"^\s*(?:(?:add|create|delete|destroy|flush|list)\s+)?table\s+([a-z0-9_]+)(?:\s+([A-Za-z0-9_.-]+))?", re.M)
_FORBIDDEN = re.compile(r"^\s*(flush\s+ruleset|include\s|define\s)", re.M)
_MARKER = re.compile(r"^@@EW:([A-Z]+)@@$", re.M)


class NftError(Exception):
    """nft refused something; ``detail`` holds its stderr."""

    def __init__(self, message, detail=""):
        super(NftError, self).__init__(message)
        self.detail = detail


# ----------------------------------------------------------------------------- texts (pure)


def table_spec(family, name):
    return "%s %s" % (family, name)


def guard_ruleset(ruleset, family, name):
    """Problems that make ``ruleset`` unsafe to load as our table: other tables,
    ``flush ruleset``, ``include`` or ``define``. Pure, on the text."""
    problems = []
    for match in _FORBIDDEN.finditer(ruleset):
        problems.append("the ruleset may not contain %r: it defines table %s only" % (match.group(1).strip(), table_spec(family, name)))
    tables = set()
    for match in _TABLE_STMT.finditer(ruleset):
        fam, tname = match.group(1), match.group(2)
        if tname is None:  # "table edgewarden" means family ip
            fam, tname = "ip", fam
        tables.add((fam, tname))
    if not tables:
        problems.append("the ruleset defines no table; expected table %s { ... }" % table_spec(family, name))
    for fam, tname in sorted(tables):
        if (fam, tname) != (family, name):
            problems.append("the ruleset touches table %s; only table %s is managed here" % (table_spec(fam, tname), table_spec(family, name)))
    return problems


def replacement_text(family, name, ruleset):
    """One nft transaction that replaces our table, whether or not it exists.

    ``table X {}`` makes sure there is something to delete (old nft has no
    ``destroy``), ``delete`` empties the slot, and the ruleset defines it again; nft
    sends all three in one batch, so the kernel applies all of it or none.
    """
    spec = table_spec(family, name)
    return "table %s {}\ndelete table %s\n%s\n" % (spec, spec, ruleset.rstrip("\n"))


def restore_text(family, name, listing):
    """The restore file for the table as it is now; ``listing`` None means it did not exist."""
    spec = table_spec(family, name)
    head = "# edgewarden rollback: table %s as it was before the apply\ntable %s {}\ndelete table %s\n" % (spec, spec, spec)
    if listing is None:
        return head
    return head + listing.rstrip("\n") + "\n"


def persisted_text(family, name, ruleset, loader):
    spec = table_spec(family, name)
    return ("#!/usr/sbin/nft -f\n"
            "# Managed by edgewarden.hardening (nft_apply), written only after a confirmed apply.\n"
            "# Loaded at boot by %s. Replaces table %s atomically; other tables are left alone.\n%s"
            % (loader, spec, replacement_text(family, name, ruleset)))


def include_block(conf_text, include_path, family, name):
    """``conf_text`` with a managed block that includes ``include_path`` (added or replaced)."""
    begin = "# BEGIN edgewarden %s" % table_spec(family, name)
    end = "# END edgewarden %s" % table_spec(family, name)
    block = "%s (managed by edgewarden.hardening nft_apply)\ninclude \"%s\"\n%s\n" % (begin, include_path, end)
    lines = (conf_text or "").splitlines(True)
    start = next((i for i, line in enumerate(lines) if line.startswith(begin)), None)
    if start is not None:
        stop = next((i for i in range(start, len(lines)) if lines[i].startswith(end)), None)
        if stop is not None:
            return "".join(lines[:start]) + block + "".join(lines[stop + 1:])
    text = "".join(lines)
    if text and not text.endswith("\n"):
        text += "\n"
    return text + ("\n" if text and not text.endswith("\n\n") else "") + block


def remove_include_block(conf_text, family, name):
    """``conf_text`` without the managed block of ``include_block`` (and the blank line it added)."""
    begin = "# BEGIN edgewarden %s" % table_spec(family, name)
    end = "# END edgewarden %s" % table_spec(family, name)
    lines = (conf_text or "").splitlines(True)
    start = next((i for i, line in enumerate(lines) if line.startswith(begin)), None)
    if start is None:
        return conf_text
    stop = next((i for i in range(start, len(lines)) if lines[i].startswith(end)), None)
    if stop is None:
        return conf_text
    text = "".join(lines[:start])
    if text.endswith("\n\n") and not "".join(lines[stop + 1:]):
        text = text[:-1]
    return text + "".join(lines[stop + 1:])


def restore_commands(nft_bin):
    """What the rollback runs in the token directory: reload the saved table (``saved.nft``)."""
    return [cc.shell_quote(nft_bin) + " -f ./saved.nft"]


# ----------------------------------------------------------------------------- normalization (pure)


def normalize_json(doc, family, name):
    """A comparable form of ``nft -j list table``: no handles, no metainfo, no counters."""
    if isinstance(doc, str):
        doc = json.loads(doc)
    items = doc.get("nftables", []) if isinstance(doc, dict) else []
    out = {"table": None, "objects": []}

    def strip(value):
        if isinstance(value, dict):
            return dict((k, strip(v)) for k, v in value.items() if k != "handle")
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        kind, body = next(iter(item.items()))
        if kind == "metainfo" or not isinstance(body, dict):
            continue
        if body.get("family") != family or (body.get("table", body.get("name")) != name):
            continue
        body = strip(body)
        if kind == "table":
            out["table"] = body
        else:
            out["objects"].append({kind: body})
    fed = _packet_fed_sets_json(out["objects"])
    for obj in out["objects"]:
        body = obj.get("set") or obj.get("map")
        if body is not None and body.get("name") in fed:
            body.pop("elem", None)
    return out


def _packet_fed_sets_json(objects):
    """Names of the sets that rules fill from the packet path (``add @s``/``update @s``,
    meters): their elements are traffic state, like counters, not configuration."""
    names = set()

    def walk(value):
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "set" and isinstance(inner, dict) and inner.get("op") in ("add", "update") \
                        and isinstance(inner.get("set"), str):
                    names.add(inner["set"].lstrip("@"))
                elif key == "meter" and isinstance(inner, dict) and isinstance(inner.get("name"), str):
                    names.add(inner["name"])
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    for obj in objects:
        if "rule" in obj:
            walk(obj["rule"].get("expr", []))
    return names


_FED_SET_TEXT = re.compile(r"\b(?:add|update)\s+@([A-Za-z0-9_.-]+)\s*\{|\bmeter\s+([A-Za-z0-9_.-]+)\s")
_SET_HEAD_TEXT = re.compile(r"^\s*(?:set|map|meter)\s+([A-Za-z0-9_.-]+)\s*\{")


def normalize_text(text):
    """A comparable form of ``nft -s list table`` (for nft built without JSON); the
    elements of sets filled from the packet path are left out, as in :func:`normalize_json`."""
    lines = [line.rstrip() for line in (text or "").splitlines()]
    fed = set(a or b for a, b in _FED_SET_TEXT.findall("\n".join(lines)))
    kept, current, skipping = [], None, False
    for line in lines:
        if skipping:
            skipping = "}" not in line
            continue
        head = _SET_HEAD_TEXT.match(line)
        if head:
            current = head.group(1)
        elif current in fed and line.strip().startswith("elements = {"):
            skipping = "}" not in line
            continue
        elif line.strip() == "}":
            current = None
        if line.strip():
            kept.append(line)
    return "\n".join(kept) + "\n"


def digest(canonical):
    if canonical is None:
        return None
    if not isinstance(canonical, str):
        canonical = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def sha256_text(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_tables_text(text):
    """``[(family, name)]`` from ``nft list tables``."""
    tables = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == "table":
            tables.append((fields[1], fields[2]))
    return tables


def split_marked(output):
    """Sections of the namespace script output, keyed by marker name."""
    sections = {}
    positions = [(m.group(1), m.start(), m.end()) for m in _MARKER.finditer(output)]
    for i, (key, _start, end) in enumerate(positions):
        stop = positions[i + 1][1] if i + 1 < len(positions) else len(output)
        sections[key] = output[end:stop].strip("\n")
    return sections


def rule_count(canonical):
    if isinstance(canonical, dict):
        return len([o for o in canonical.get("objects", []) if "rule" in o])
    return len([line for line in (canonical or "").splitlines()
                if line.startswith("\t\t") and not line.strip().startswith(("type ", "flags ", "elements ", "policy "))])


def describe(canonical):
    """A short record value for a table: its digest and rule count, or None when absent."""
    if canonical is None:
        return None
    return "%s (%d rules)" % (digest(canonical), rule_count(canonical))


# ----------------------------------------------------------------------------- the nft binary


class Nft(object):
    """Runs one nft binary with argv lists; ``run(argv) -> (rc, stdout, stderr)``."""

    def __init__(self, binary, run):
        self.binary = binary
        self.run = run
        self._json = None

    def _call(self, *args):
        return self.run([self.binary] + list(args))

    def version(self):
        rc, out, _err = self._call("--version")
        return out.strip() if rc == 0 else None

    def check_file(self, path):
        rc, _out, err = self._call("-c", "-f", path)
        return rc == 0, err.strip()

    def load_file(self, path):
        rc, _out, err = self._call("-f", path)
        if rc != 0:
            raise NftError("nft -f %s failed" % path, err.strip())

    def tables(self):
        rc, out, err = self._call("list", "tables")
        if rc != 0:
            raise NftError("nft list tables failed", err.strip())
        return parse_tables_text(out)

    def listing(self, family, name):
        """``(exists, text, canonical)`` of one table; canonical is JSON when nft has it."""
        if (family, name) not in self.tables():
            return False, None, None
        rc, text, err = self._call("-s", "list", "table", family, name)
        if rc != 0:
            raise NftError("nft list table %s failed" % table_spec(family, name), err.strip())
        return True, text, self.canonical(family, name, text)

    def canonical(self, family, name, text):
        if self._json is not False:
            rc, out, _err = self._call("-s", "-j", "list", "table", family, name)
            if rc == 0 and out.strip().startswith("{"):
                self._json = True
                return normalize_json(out, family, name)
            self._json = False
        return normalize_text(text)


NETNS_SCRIPT = r"""
nft=$1 file=$2 family=$3 table=$4
"$nft" -f "$file" || exit 3
echo @@EW:TEXT@@
"$nft" -s list table "$family" "$table" || exit 4
echo @@EW:JSON@@
"$nft" -s -j list table "$family" "$table" 2>/dev/null || echo '{"nojson": true}'
echo @@EW:TABLES@@
"$nft" list tables || exit 5
echo @@EW:END@@
"""


def _read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def fork_into_netns(argv):
    """Run ``argv`` in a child that first moves into a fresh network namespace.

    The fallback where no ``unshare`` binary exists: ctypes calls unshare(2) in the
    child only, between fork and exec, which is why this is os.fork/os.execve and not
    a run_command (nothing can run in its child before the exec).
    """
    import ctypes  # Yocto and OpenWrt may ship Python without it: the caller catches ImportError
    libc = ctypes.CDLL(None, use_errno=True)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 99
        try:
            os.close(out_r)
            os.close(err_r)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            if libc.unshare(CLONE_NEWNET) != 0:
                os.write(2, b"unshare(CLONE_NEWNET) failed: errno %d\n" % ctypes.get_errno())
                status = 97
            else:
                env = dict(os.environ)
                env.update(C_ENV)
                os.execve(argv[0], argv, env)
        finally:
            # whatever happened, the child never returns into the module's code
            os._exit(status)
    os.close(out_w)
    os.close(err_w)
    out = _read_all(out_r)
    err = _read_all(err_r)
    _pid, status = os.waitpid(pid, 0)
    return (os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1), out, err


class NetnsUnavailable(Exception):
    pass


def canonical_in_netns(nft, path, family, name, unshare_bin=None, fork=fork_into_netns):
    """Load the replacement file into a fresh, empty network namespace and list it.

    There it filters no traffic and disappears with the process. Returns
    ``{"text", "canonical", "tables", "method"}``; raises NftError when the candidate
    does not load, NetnsUnavailable when no namespace can be made here.
    """
    script = ["/bin/sh", "-c", NETNS_SCRIPT, "edgewarden-netns", nft.binary, path, family, name]
    attempts = []
    if unshare_bin:
        attempts.append(("unshare", lambda: nft.run([unshare_bin, "-n", "--"] + script)))
    attempts.append(("ctypes", lambda: fork(script)))
    errors = []
    for method, attempt in attempts:
        try:
            rc, out, err = attempt()
        except (OSError, ImportError, AttributeError) as exc:
            errors.append("%s: %s" % (method, exc))
            continue
        if rc == 3:
            raise NftError("the ruleset does not load", err.strip())
        if rc != 0 or "@@EW:END@@" not in out:
            errors.append("%s: rc=%s %s" % (method, rc, err.strip()[:200]))
            continue
        sections = split_marked(out)
        doc = sections.get("JSON", "")
        canonical = normalize_text(sections.get("TEXT", ""))
        if doc.startswith("{") and '"nojson"' not in doc:
            canonical = normalize_json(doc, family, name)
        return {"text": sections.get("TEXT", "") + "\n", "canonical": canonical,
                "tables": parse_tables_text(sections.get("TABLES", "")), "method": method}
    raise NetnsUnavailable("; ".join(errors) or "no way to create a network namespace (no ctypes, no unshare)")


# ----------------------------------------------------------------------------- persistence


UNIT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
MAIN_CONFS = ("/etc/nftables.conf", "/etc/sysconfig/nftables.conf", "/etc/nftables.nft")
FW4_BINS = ("/sbin/fw4", "/usr/sbin/fw4")


def _host(root, path):
    return os.path.join(root, path.lstrip("/"))


def parse_install_targets(unit_text):
    """Targets from ``WantedBy=`` / ``RequiredBy=`` of a unit's [Install] section."""
    targets, section = [], None
    for raw in (unit_text or "").splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section != "Install" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if key.strip() in ("WantedBy", "RequiredBy"):
            suffix = ".wants" if key.strip() == "WantedBy" else ".requires"
            targets.extend(t + suffix for t in value.split())
    return targets


def boot_plan(family, name, root="/", persist_path=None):
    """Where the table is persisted and what loads it at boot. Reads only.

    Returns ``{kind, path, main_conf, service, links}``: ``kind`` is fw4, systemd, openrc,
    conf (a main config without a service we know), none or explicit; ``links`` are the
    (link, target) symlinks that enable the boot service.
    """
    filename = "%s.nft" % name
    if persist_path:
        return {"kind": "explicit", "path": persist_path, "main_conf": None, "service": None, "links": []}
    if any(os.path.exists(_host(root, p)) for p in FW4_BINS):
        return {"kind": "fw4", "path": "/usr/share/nftables.d/ruleset-post/" + filename, "main_conf": None,
                "service": "firewall (fw4 includes ruleset-post files)", "links": []}
    path = "/etc/nftables.d/" + filename
    conf = next((c for c in MAIN_CONFS if os.path.isfile(_host(root, c))), None)
    unit = next((d + "/nftables.service" for d in UNIT_DIRS if os.path.lexists(_host(root, d + "/nftables.service"))), None)
    if unit and conf:
        if os.path.realpath(_host(root, unit)) == "/dev/null":
            return {"kind": "conf", "path": path, "main_conf": conf, "service": "nftables.service is masked", "links": []}
        targets = parse_install_targets(read_text(_host(root, unit)))
        links = [("/etc/systemd/system/%s/nftables.service" % t, unit) for t in targets]
        return {"kind": "systemd", "path": path, "main_conf": conf, "service": "nftables.service", "links": links}
    if conf and os.path.exists(_host(root, "/etc/init.d/nftables")) and os.path.isdir(_host(root, "/etc/runlevels")):
        runlevels = _host(root, "/etc/runlevels")
        enabled = [lvl for lvl in sorted(os.listdir(runlevels)) if os.path.lexists(os.path.join(runlevels, lvl, "nftables"))]
        links = [] if enabled else [("/etc/runlevels/boot/nftables", "/etc/init.d/nftables")]
        return {"kind": "openrc", "path": path, "main_conf": conf, "service": "/etc/init.d/nftables", "links": links}
    if conf:
        return {"kind": "conf", "path": path, "main_conf": conf, "service": None, "links": []}
    return {"kind": "none", "path": path, "main_conf": None, "service": None, "links": []}


def loader_description(plan):
    kind = plan["kind"]
    if kind == "explicit":
        return "whatever loads %s (persist_path given)" % plan["path"]
    if kind == "fw4":
        return "OpenWrt's firewall service (fw4 includes ruleset-post)"
    if kind in ("systemd", "openrc"):
        return "%s through an include in %s" % (plan["service"], plan["main_conf"])
    if kind == "conf":
        return "an include in %s" % plan["main_conf"]
    return "nothing yet (no nftables boot service found)"


def _link_ok(root, link, target):
    host = _host(root, link)
    return os.path.islink(host) and os.readlink(host) == target


def persist(nft, family, name, ruleset, plan, check_mode, root="/"):
    """Write the persisted file, wire the include and enable the boot service.

    Returns ``(records, warnings)``. Every file is written atomically and validated with
    ``nft -c -f`` first; nothing is written in check mode or on a read-only filesystem.
    """
    records, warnings = [], []
    spec = table_spec(family, name)
    content = persisted_text(family, name, ruleset, loader_description(plan))
    path = plan["path"]
    rid = "firewall.persisted%s" % path
    before = read_text(_host(root, path))
    if is_readonly_fs(_host(root, path)):
        records.append(record(rid, _fdigest(before), _fdigest(content), "persisted", "unsupported", "read-only filesystem"))
        warnings.append("%s is on a read-only filesystem: table %s is live but will not survive a reboot" % (path, spec))
        return records, warnings

    def write(target, text):
        _write_checked(nft, root, target, text)

    changed = before != content
    if changed and not check_mode:
        write(path, content)
    records.append(record(rid, _fdigest(before), _fdigest(content), "persisted"))
    if plan["main_conf"]:
        conf = plan["main_conf"]
        conf_before = read_text(_host(root, conf)) or ""
        conf_after = include_block(conf_before, path, family, name)
        if conf_after != conf_before and not check_mode:
            write(conf, conf_after)
        records.append(record("firewall.include%s" % conf, "present" if conf_after == conf_before else "absent",
                              "present", "persisted"))
    for link, target in plan["links"]:
        ok = _link_ok(root, link, target)
        if not ok and not check_mode:
            host = _host(root, link)
            if not os.path.isdir(os.path.dirname(host)):
                os.makedirs(os.path.dirname(host), 0o755)
            if os.path.lexists(host):
                os.unlink(host)
            os.symlink(target, host)
        records.append(record("firewall.boot/%s" % plan["service"], "enabled" if ok else "disabled", "enabled", "persisted",
                              detail="%s -> %s" % (link, target)))
    if plan["kind"] in ("none", "conf") and not plan["links"]:
        detail = plan["service"] or "no nftables boot service found (nftables.service, /etc/init.d/nftables, fw4)"
        records.append(record("firewall.boot/%s" % name, None, None, "persisted", "unsupported", detail))
        warnings.append("table %s is persisted in %s, but %s: load it at boot yourself (nft -f %s)" % (spec, path, detail, path))
    return records, warnings


def _write_checked(nft, root, target, text):
    """Atomic write of an nft file, refused unless ``nft -c -f`` accepts the new content."""
    host = _host(root, target)
    parent = os.path.dirname(host)
    if not os.path.isdir(parent):
        os.makedirs(parent, 0o755)
    try:
        atomic_write(host, text, 0o644, nft.check_file)
    except ValidationError as exc:
        raise NftError("nft -c refused the new %s" % target, str(exc))


def unpersist(nft, family, name, plan, check_mode, root="/"):
    """For a table that is gone: remove its persisted file and its include block.

    The boot service stays enabled: other tables may be persisted through it, and
    whether we enabled it is not recorded anywhere.
    """
    path = plan["path"]
    rid = "firewall.persisted%s" % path
    before = read_text(_host(root, path))
    if before is not None and is_readonly_fs(_host(root, path)):
        return [record(rid, _fdigest(before), None, "persisted", "unsupported", "read-only filesystem")], [
            "%s is on a read-only filesystem: table %s comes back at boot" % (path, table_spec(family, name))]
    records = []
    if plan["main_conf"]:
        conf = plan["main_conf"]
        conf_before = read_text(_host(root, conf)) or ""
        conf_after = remove_include_block(conf_before, family, name)
        if conf_after != conf_before and not check_mode:
            _write_checked(nft, root, conf, conf_after)
        records.append(record("firewall.include%s" % conf, "present" if conf_after != conf_before else "absent",
                              "absent", "persisted"))
    if before is not None and not check_mode:
        os.unlink(_host(root, path))
    records.insert(0, record(rid, _fdigest(before), None, "persisted"))
    return records, []


def _fdigest(text):
    return None if text is None else "sha256:" + sha256_text(text)[:16]


def persist_needed(records):
    return any(r["status"] == "changed" for r in records)


# ----------------------------------------------------------------------------- the module's steps


def table_id(family, name):
    return "firewall.table/%s/%s" % (family, name)


class Step(object):
    """What every step needs: the nft runner, the table, the module's parameters."""

    def __init__(self, nft, family, name, ruleset=None, check_mode=False, unshare_bin=None,
                 systemd_run=None, setsid=None, root="/", roots=STATE_ROOTS, state="present"):
        self.nft = nft
        self.family = family
        self.name = name
        self.ruleset = ruleset
        self.state = state
        self.check_mode = check_mode
        self.unshare_bin = unshare_bin
        self.systemd_run = systemd_run
        self.setsid = setsid
        self.root = root
        self.roots = roots
        self.warnings = []
        self.persisted_to = None
        self.boot_loader = None

    # -- read and compare (never writes outside a temp file)

    def record_path(self, root):
        """The record of the last apply of THIS table (the fallback comparison)."""
        return os.path.join(root, "applied-%s-%s.json" % (self.family, self.name))

    def plan(self):
        if self.state == "absent":
            return self.plan_absent()
        problems = guard_ruleset(self.ruleset, self.family, self.name)
        if problems:
            raise NftError("refusing the ruleset: " + "; ".join(problems))
        replacement = replacement_text(self.family, self.name, self.ruleset)
        import tempfile
        fd, path = tempfile.mkstemp(prefix="edgewarden-nft-", suffix=".nft")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(replacement)
            ok, err = self.nft.check_file(path)
            if not ok:
                raise NftError("nft -c -f refused the ruleset", err)
            exists, live_text, live = self.nft.listing(self.family, self.name)
            out = {"replacement": replacement, "exists": exists, "live_text": live_text or "", "live": live}
            try:
                cand = canonical_in_netns(self.nft, path, self.family, self.name, self.unshare_bin)
            except NetnsUnavailable as exc:
                applied = cc.read_json(self.record_path(self._root_or_none() or "/nonexistent"))
                same = applied.get("input") == sha256_text(replacement) and applied.get("live") == digest(live)
                out.update(changed=not same, after_text=self.ruleset, after=None, compare="record",
                           compare_detail="no network namespace to list the candidate in (%s): compared with the record of the last apply" % exc)
                return out
        finally:
            os.unlink(path)
        foreign = [t for t in cand["tables"] if t != (self.family, self.name)]
        if foreign:
            raise NftError("refusing the ruleset: it creates tables other than %s: %s"
                           % (table_spec(self.family, self.name), ", ".join(table_spec(*t) for t in foreign)))
        out.update(changed=live != cand["canonical"], after_text=cand["text"], after=cand["canonical"],
                   compare="netns (%s)" % cand["method"], compare_detail=None)
        return out

    def plan_absent(self):
        """State absent: the candidate is no table at all; nft itself needs no namespace to say so."""
        replacement = restore_text(self.family, self.name, None)
        exists, live_text, live = self.nft.listing(self.family, self.name)
        return {"replacement": replacement, "exists": exists, "live_text": live_text or "", "live": live,
                "changed": exists, "after_text": "", "after": None, "compare": "absent", "compare_detail": None}

    def _root_or_none(self):
        for root in self.roots:
            if os.path.isdir(root):
                return root
        return None

    def live_record(self, plan):
        before = describe(plan["live"]) if plan["exists"] else None
        if self.state == "absent":
            after = None
        elif plan["after"] is not None:
            after = describe(plan["after"])
        elif plan["changed"]:
            after = "sha256:%s (rendered)" % sha256_text(plan["replacement"])[:16]
        else:
            after = before
        status = "changed" if plan["changed"] else "unchanged"
        return record(table_id(self.family, self.name), before, after, "live", status,
                      detail=plan["compare_detail"])

    def diff(self, plan):
        spec = table_spec(self.family, self.name)
        return {"before_header": "table %s (live)" % spec, "after_header": "table %s (new)" % spec,
                "before": plan["live_text"], "after": plan["after_text"]}

    # -- steps

    def apply(self, timeout, persist_path=None, persist=True, token=None):
        plan = self.plan()
        records = [self.live_record(plan)]
        result = {"compare": plan["compare"], "diff": self.diff(plan)}
        persist_records = []
        if persist:
            persist_records, warnings = self.persist(persist_path, check_mode=True)
            self.warnings.extend(warnings)
        result["persist_needed"] = persist_needed(persist_records)
        if self.check_mode:
            result.update(records=records + persist_records, changed=plan["changed"] or result["persist_needed"])
            return result
        root = cc.state_root(self.roots)
        pending = cc.pending_rollbacks(root)
        if pending:
            raise NftError("a rollback armed by an earlier run is still waiting (token %s, fires at %s): "
                           "it would undo this run; wait for it to fire, then run again"
                           % (pending[0]["token"], time.strftime("%H:%M:%S", time.localtime(pending[0]["deadline"] or 0))))
        cc.prune(root)
        result.update(records=records, changed=plan["changed"])
        if not plan["changed"]:
            return result
        restore = restore_text(self.family, self.name, plan["live_text"] if plan["exists"] else None)
        info = cc.arm(root, cc.use_token(token), restore_commands(self.nft.binary), timeout,
                      self.nft.run, "firewall", self.systemd_run, self.setsid, files={"saved.nft": restore},
                      check=self.check_saved)
        token_dir = info["state_dir"]
        new = os.path.join(token_dir, "new.nft")
        cc.write_file(new, plan["replacement"])
        try:
            self.nft.load_file(new)
        except NftError:
            cc.cancel(token_dir)
            raise
        exists, _text, live_after = self.nft.listing(self.family, self.name)
        if self.state == "absent" and exists:
            self.warnings.append("table %s is still listed after it was deleted" % table_spec(self.family, self.name))
        if plan["after"] is not None and live_after != plan["after"]:
            self.warnings.append("the live table differs from the candidate listed in the throwaway namespace; "
                                 "the next run will report a change again")
        applied = {"input": sha256_text(plan["replacement"]), "live": digest(live_after)}
        cc.write_file(self.record_path(root), json.dumps(applied))
        info["connection"] = cc.ssh_connection()
        result["commit_confirm"] = info
        return result

    def check_saved(self, token_dir):
        """The saved table must reload (``nft -c``) before anything replaces it."""
        ok, err = self.nft.check_file(os.path.join(token_dir, "saved.nft"))
        if not ok:
            raise NftError("the current table cannot be saved for a rollback (its listing does not reload), so it "
                           "is not replaced", err)

    def confirm(self, token, apply_connection=None, persist_path=None, persist=True):
        result = cc.confirm_step(token, self.roots, apply_connection, self.nft.run)
        if result.pop("warning", None):
            self.warnings.append("could not identify the SSH connections from /proc (not root?): the confirmation "
                                 "relies on the controller having opened a new one")
        if not result["confirmed"]:
            return result
        records = []
        if persist:
            try:
                records, warnings = self.persist(persist_path, check_mode=False)
                self.warnings.extend(warnings)
            except NftError as exc:
                # the table is live and confirmed: say so, and that it will not survive a reboot
                result["persist_error"] = "%s%s" % (exc, (": " + exc.detail) if exc.detail else "")
        result.update(records=records, changed=True)
        return result

    def persist(self, persist_path=None, check_mode=None):
        plan = boot_plan(self.family, self.name, self.root, persist_path)
        check = self.check_mode if check_mode is None else check_mode
        if self.state == "absent":
            records, warnings = unpersist(self.nft, self.family, self.name, plan, check, self.root)
            self.persisted_to = None
            self.boot_loader = loader_description(plan)
            return records, warnings
        records, warnings = persist(self.nft, self.family, self.name, self.ruleset, plan, check, self.root)
        self.persisted_to = None if any(r["status"] == "unsupported" and r["id"].startswith("firewall.persisted")
                                        for r in records) else plan["path"]
        self.boot_loader = loader_description(plan)
        return records, warnings

    def status(self, token):
        return cc.status_step(token, self.roots)
