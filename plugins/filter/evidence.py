# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Incident response on the controller: evidence bundles (the stored form, its canonical
bytes, the comparison of two snapshots of one device) and the quarantine table."""

from __future__ import annotations

import ipaddress
import json
import re

BUNDLE_FORMAT = "edgewarden.evidence/1"


def evidence_canonical(data):
    """The one byte-exact JSON text of ``data``: sorted keys, no spaces, UTF-8 as is.

    The chain-of-custody hash is taken over exactly these bytes, so anyone can recompute
    it from the stored file with ``sha256sum`` and from the parsed data with this filter.
    """
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def evidence_bundle(result, host, collected_at, previous_sha256=None, collected_by=None):
    """What is stored for one collection: the module result plus custody metadata."""
    if not isinstance(result, dict) or "snapshot" not in result:
        raise ValueError("evidence_bundle expects the registered result of edgewarden.hardening.evidence_snapshot")
    snapshot = result["snapshot"]
    return {
        "format": BUNDLE_FORMAT,
        "host": host,
        "collected_at": collected_at,
        "device_clock": (snapshot.get("host") or {}).get("clock_utc"),
        "collected_by": collected_by or {},
        "module": "edgewarden.hardening.evidence_snapshot",
        # the previous snapshot's hash: a removed or altered snapshot breaks the chain
        "previous_sha256": previous_sha256 or None,
        "errors": result.get("errors") or {},
        "snapshot": snapshot,
    }


def _snapshot(data):
    if isinstance(data, dict) and data.get("format") == BUNDLE_FORMAT:
        return data.get("snapshot") or {}
    if isinstance(data, dict) and "snapshot" in data and "schema" not in data:
        return data["snapshot"] or {}
    return data or {}


def _collector(snapshot):
    return set((snapshot.get("host") or {}).get("collector_pids") or [])


def _process_key(proc):
    return "%s %s" % (proc.get("exe") or "[%s]" % proc.get("comm"), " ".join(proc.get("cmdline") or []))


def _processes(snapshot):
    """{key: [process, ...]} of user-space processes, the collector's own left out."""
    skip = _collector(snapshot)
    found = {}
    for proc in snapshot.get("processes") or []:
        if proc.get("kernel_thread") or proc.get("pid") in skip:
            continue
        found.setdefault(_process_key(proc), []).append(proc)
    return found


def _brief_process(proc):
    return {"pid": proc.get("pid"), "user": proc.get("user"), "exe": proc.get("exe"),
            "exe_deleted": proc.get("exe_deleted"), "exe_sha256": proc.get("exe_sha256"),
            "cmdline": proc.get("cmdline"), "started": proc.get("started")}


def _new_and_gone(before, after):
    new = [key for key in sorted(after) if key not in before]
    gone = [key for key in sorted(before) if key not in after]
    return new, gone


def _diff_processes(bsnap, asnap):
    before, after = _processes(bsnap), _processes(asnap)
    new, gone = [], []
    for key in sorted(set(before) | set(after)):
        extra = len(after.get(key, [])) - len(before.get(key, []))
        if extra > 0:
            new.extend(_brief_process(p) for p in after[key][-extra:])
        elif extra < 0:
            gone.extend(_brief_process(p) for p in before[key][extra:])
    return {"new": new, "gone": gone}


def _diff_executables(bsnap, asnap):
    """Programs whose running binary hash changed, and newly running deleted binaries."""
    def hashes(snapshot):
        found = {}
        for procs in _processes(snapshot).values():
            for proc in procs:
                if proc.get("exe") and proc.get("exe_sha256"):
                    found.setdefault(proc["exe"], set()).add(proc["exe_sha256"])
        return found

    before, after = hashes(bsnap), hashes(asnap)
    changed = [{"exe": exe, "before": sorted(before[exe]), "after": sorted(after[exe])}
               for exe in sorted(set(before) & set(after)) if before[exe] != after[exe]]
    deleted_before = set(_process_key(p) for procs in _processes(bsnap).values() for p in procs if p.get("exe_deleted"))
    deleted = [_brief_process(p) for procs in _processes(asnap).values() for p in procs
               if p.get("exe_deleted") and _process_key(p) not in deleted_before]
    return {"changed": changed, "deleted_running": deleted}


def _owners(sock):
    return sorted(set(p.get("exe") or p.get("comm") or "?" for p in sock.get("processes") or []))


def _diff_listeners(bsnap, asnap):
    def table(snapshot):
        return dict(((s["proto"], s["local_address"], s["local_port"]), s)
                    for s in (snapshot.get("sockets") or {}).get("listening") or [])

    before, after = table(bsnap), table(asnap)
    new, gone = _new_and_gone(before, after)

    def brief(sock):
        return {"proto": sock["proto"], "address": sock["local_address"], "port": sock["local_port"],
                "user": sock.get("user"), "pids": sock.get("pids"), "owners": _owners(sock)}

    changed = [{"proto": key[0], "address": key[1], "port": key[2], "before": _owners(before[key]),
                "after": _owners(after[key])}
               for key in sorted(set(before) & set(after)) if _owners(before[key]) != _owners(after[key])]
    return {"new": [brief(after[k]) for k in new], "gone": [brief(before[k]) for k in gone], "changed": changed}


def _unmapped(address):
    """``::ffff:10.0.0.1`` -> ``10.0.0.1``: a dual-stack socket's IPv4 peer is an IPv4 peer."""
    if address and address.lower().startswith("::ffff:") and "." in address:
        return address[7:]
    return address


def _diff_peers(bsnap, asnap):
    """Remote peers (established and connecting) by protocol, remote address and owner."""
    def table(snapshot):
        skip = _collector(snapshot)
        found = {}
        sockets = snapshot.get("sockets") or {}
        for sock in (sockets.get("established") or []) + (sockets.get("connecting") or []):
            if sock.get("pids") and set(sock["pids"]) <= skip:
                continue
            key = (sock["proto"].rstrip("6"), _unmapped(sock["remote_address"]), tuple(_owners(sock)))
            found.setdefault(key, sock)
        return found

    before, after = table(bsnap), table(asnap)
    new, gone = _new_and_gone(before, after)

    def brief(key, sock):
        return {"proto": key[0], "remote": key[1], "remote_port": sock["remote_port"], "state": sock["state"],
                "owners": list(key[2])}

    return {"new": [brief(k, after[k]) for k in new], "gone": [brief(k, before[k]) for k in gone]}


def _diff_modules(bsnap, asnap):
    def table(snapshot):
        mods = snapshot.get("modules") or {}
        return dict((m["name"], m) for m in mods.get("modules") or [])

    before, after = table(bsnap), table(asnap)
    new, gone = _new_and_gone(before, after)
    return {"new": [{"name": n, "taint": after[n].get("taint")} for n in new], "gone": gone}


_FILE_FIELDS = ("type", "sha256", "size", "mode", "uid", "gid", "link_target")


def _diff_hashes(bsnap, asnap):
    def table(snapshot):
        return dict((e["path"], e) for e in snapshot.get("hashes") or [] if e.get("exists"))

    before, after = table(bsnap), table(asnap)
    new, gone = _new_and_gone(before, after)
    changed = []
    for path in sorted(set(before) & set(after)):
        fields = [f for f in _FILE_FIELDS if before[path].get(f) != after[path].get(f)]
        if fields:
            changed.append({"path": path, "fields": fields,
                            "before": dict((f, before[path].get(f)) for f in fields),
                            "after": dict((f, after[path].get(f)) for f in fields)})
    return {"new": [{"path": p, "sha256": after[p].get("sha256")} for p in new], "gone": gone, "changed": changed}


def _diff_mounts(bsnap, asnap):
    def table(snapshot):
        return dict(((m["mountpoint"], m["device"], m["fstype"], ",".join(m["options"])), m)
                    for m in snapshot.get("mounts") or [])

    def brief(key):
        return {"mountpoint": key[0], "device": key[1], "fstype": key[2], "options": key[3]}

    before, after = table(bsnap), table(asnap)
    new, gone = _new_and_gone(before, after)
    return {"new": [brief(k) for k in new], "gone": [brief(k) for k in gone]}


def _strip_handles(value):
    """A ruleset without what changes by itself: the kernel's handle numbers (renumbered
    on every reload) and the state of counters and quotas (bytes and packets seen)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "handle":
                continue
            if key in ("counter", "quota") and isinstance(item, dict):
                item = dict((k, v) for k, v in item.items() if k not in ("packets", "bytes", "used"))
            out[key] = _strip_handles(item)
        return out
    if isinstance(value, list):
        return [_strip_handles(v) for v in value]
    return value


def _diff_firewall(bsnap, asnap):
    def ruleset(snapshot):
        fw = snapshot.get("firewall") or {}
        rules = fw.get("ruleset")
        if rules is None:
            return None
        return evidence_canonical(_strip_handles([r for r in rules if "metainfo" not in r]))

    before, after = ruleset(bsnap), ruleset(asnap)
    readable = before is not None and after is not None
    return {"compared": readable, "changed": readable and before != after,
            "before_available": before is not None, "after_available": after is not None}


def _diff_kernel(bsnap, asnap):
    b, a = bsnap.get("kernel") or {}, asnap.get("kernel") or {}
    changed = {}
    for field in ("tainted", "modules_disabled", "kexec_load_disabled", "cmdline"):
        if b.get(field) != a.get(field):
            changed[field] = {"before": b.get(field), "after": a.get(field)}
    bl, al = (b.get("lockdown") or {}).get("mode"), (a.get("lockdown") or {}).get("mode")
    if bl != al:
        changed["lockdown"] = {"before": bl, "after": al}
    return changed


def _diff_logins(bsnap, asnap):
    def records(snapshot, name):
        logins = snapshot.get("logins") or {}
        return list((logins.get(name) or {}).get("records") or [])

    def key(rec):
        return (rec.get("type"), rec.get("pid"), rec.get("line"), rec.get("user"), rec.get("host"), rec.get("epoch"))

    result = {}
    for name in ("wtmp", "btmp"):
        seen = set(key(r) for r in records(bsnap, name))
        result[name + "_new"] = [r for r in records(asnap, name) if key(r) not in seen]
    seen = set(key(r) for r in (bsnap.get("logins") or {}).get("logged_in") or [])
    result["logged_in_new"] = [r for r in (asnap.get("logins") or {}).get("logged_in") or [] if key(r) not in seen]
    return result


def _lines(diff):
    out = []
    for proc in diff["processes"]["new"]:
        out.append("new process: pid %s user %s %s%s (%s)" % (
            proc["pid"], proc["user"], proc["exe"], " (deleted)" if proc["exe_deleted"] else "",
            " ".join(" ".join(proc["cmdline"] or []).split())[:120]))
    for proc in diff["processes"]["gone"]:
        out.append("gone process: %s (%s)" % (proc["exe"], " ".join(" ".join(proc["cmdline"] or []).split())[:120]))
    for item in diff["executables"]["changed"]:
        out.append("binary changed while running: %s %s -> %s" % (item["exe"], item["before"], item["after"]))
    for sock in diff["listeners"]["new"]:
        out.append("new listener: %s %s:%s user %s by %s" % (
            sock["proto"], sock["address"], sock["port"], sock["user"], ", ".join(sock["owners"]) or "unknown"))
    for sock in diff["listeners"]["gone"]:
        out.append("gone listener: %s %s:%s" % (sock["proto"], sock["address"], sock["port"]))
    for sock in diff["listeners"]["changed"]:
        out.append("listener owner changed: %s %s:%s %s -> %s" % (
            sock["proto"], sock["address"], sock["port"], sock["before"], sock["after"]))
    for peer in diff["peers"]["new"]:
        out.append("new peer: %s %s:%s (%s) by %s" % (
            peer["proto"], peer["remote"], peer["remote_port"], peer["state"], ", ".join(peer["owners"]) or "unknown"))
    for mod in diff["modules"]["new"]:
        out.append("new kernel module: %s%s" % (mod["name"], " (%s)" % mod["taint"] if mod["taint"] else ""))
    for name in diff["modules"]["gone"]:
        out.append("gone kernel module: %s" % name)
    for entry in diff["hashes"]["changed"]:
        out.append("file changed: %s (%s)" % (entry["path"], ", ".join(entry["fields"])))
    for entry in diff["hashes"]["new"]:
        out.append("file appeared: %s" % entry["path"])
    for path in diff["hashes"]["gone"]:
        out.append("file gone: %s" % path)
    for mount in diff["mounts"]["new"]:
        out.append("new mount: %s on %s (%s)" % (mount["device"], mount["mountpoint"], mount["fstype"]))
    for mount in diff["mounts"]["gone"]:
        out.append("gone mount: %s" % mount["mountpoint"])
    if diff["firewall"]["changed"]:
        out.append("firewall ruleset changed")
    for field, change in sorted(diff["kernel"].items()):
        out.append("kernel %s: %s -> %s" % (field, change["before"], change["after"]))
    for rec in diff["logins"]["wtmp_new"]:
        out.append("login record: %s %s on %s from %s at %s" % (
            rec.get("type"), rec.get("user"), rec.get("line"), rec.get("host") or "-", rec.get("time")))
    for rec in diff["logins"]["btmp_new"]:
        out.append("failed login: %s from %s at %s" % (rec.get("user"), rec.get("host") or "-", rec.get("time")))
    if diff["rebooted"]:
        out.append("device rebooted between the snapshots (boot id changed)")
    return out


def evidence_diff(before, after):
    """What changed on one device between two snapshots (bundles or bare snapshots).

    Processes are matched by executable and command line (pids change), listeners by
    protocol, address and port, peers by protocol, remote address and owning program,
    files by path. The collector's own processes and kernel threads are left out.
    """
    bsnap, asnap = _snapshot(before), _snapshot(after)
    bhost, ahost = bsnap.get("host") or {}, asnap.get("host") or {}
    diff = {
        "processes": _diff_processes(bsnap, asnap),
        "executables": _diff_executables(bsnap, asnap),
        "listeners": _diff_listeners(bsnap, asnap),
        "peers": _diff_peers(bsnap, asnap),
        "modules": _diff_modules(bsnap, asnap),
        "hashes": _diff_hashes(bsnap, asnap),
        "mounts": _diff_mounts(bsnap, asnap),
        "firewall": _diff_firewall(bsnap, asnap),
        "kernel": _diff_kernel(bsnap, asnap),
        "logins": _diff_logins(bsnap, asnap),
        "rebooted": bool(bhost.get("boot_id") and ahost.get("boot_id") and bhost["boot_id"] != ahost["boot_id"]),
        "before": {"device_clock": bhost.get("clock_utc"), "sections": bsnap.get("sections")},
        "after": {"device_clock": ahost.get("clock_utc"), "sections": asnap.get("sections")},
    }
    if isinstance(before, dict) and before.get("format") == BUNDLE_FORMAT:
        diff["before"]["collected_at"] = before.get("collected_at")
    if isinstance(after, dict) and after.get("format") == BUNDLE_FORMAT:
        diff["after"]["collected_at"] = after.get("collected_at")
    diff["lines"] = _lines(diff)
    diff["changed"] = bool(diff["lines"])
    return diff


# --- quarantine ------------------------------------------------------------------------------
#
# Quarantine is a table of its own next to the firewall's: in nftables a packet dropped by
# any base chain of a hook is dropped, whatever other tables accept, so this table blocks
# every flow without touching the policy in place, which release therefore finds exactly
# as it was. Unlike the firewall's table it has no "ct state established accept": the
# connections an intruder already holds are cut too. Only SSH from the bastion (and one
# evidence collector) passes, matched statelessly in both directions.

QUARANTINE_TABLE = "edgewarden_quarantine"
QUARANTINE_DEFAULTS = {
    "table": QUARANTINE_TABLE,
    "bastion_addresses": [],
    "evidence_collector": None,
    "ssh_ports": [22],
    "allow_dhcp": False,
    "log": True,
    "log_rate": "5/minute",
    "log_prefix": "edgewarden quarantine: ",
}
_RATE = re.compile(r"^[1-9][0-9]{0,8}/(second|minute|hour|day)$")
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_LOG_PREFIX = re.compile(r"^[A-Za-z0-9 _.,:;/=+()@-]{1,60}$")
# IPv6 keeps working only with neighbour discovery (RFC 4890); not connection-tracked
_ND_IN = "nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert"
_ND_OUT = "nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit"


def _quarantine_model(raw):
    model = dict(QUARANTINE_DEFAULTS)
    problems = []
    if not isinstance(raw, dict):
        return model, ["the quarantine model must be a mapping, got %s" % type(raw).__name__]
    for key in sorted(set(raw) - set(QUARANTINE_DEFAULTS)):
        problems.append("%s: unknown setting" % key)
    model.update(dict((k, v) for k, v in raw.items() if k in QUARANTINE_DEFAULTS))
    return model, problems


def _networks(values, where, problems):
    nets = []
    if isinstance(values, str):
        values = [values]
    for index, value in enumerate(values or []):
        try:
            nets.append(ipaddress.ip_network(str(value).strip(), strict=True))
        except ValueError as exc:
            problems.append("%s[%d]: %s" % (where, index, exc))
    return nets


def quarantine_problems(raw, prefix=""):
    """Every problem of a quarantine model, one message each (empty when it is valid)."""
    model, problems = _quarantine_model(raw)
    if not isinstance(raw, dict):
        return [prefix + problem for problem in problems]
    bastions = _networks(model["bastion_addresses"], "bastion_addresses", problems)
    if not model["bastion_addresses"]:
        problems.append("bastion_addresses: at least one address is needed, or the quarantine would cut everyone off")
    collector = model["evidence_collector"]
    if collector not in (None, ""):
        try:
            address = ipaddress.ip_address(str(collector).strip())
            if any(address in net for net in bastions):
                problems.append("evidence_collector: %s is already a bastion address" % address)
        except ValueError as exc:
            problems.append("evidence_collector: %s (one host address)" % exc)
    ports = model["ssh_ports"]
    if not isinstance(ports, list) or not ports:
        problems.append("ssh_ports: a non-empty list of ports is needed")
    else:
        for index, port in enumerate(ports):
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                problems.append("ssh_ports[%d]: %r is not a port number" % (index, port))
    for key in ("allow_dhcp", "log"):
        if not isinstance(model[key], bool):
            problems.append("%s: must be true or false, got %r" % (key, model[key]))
    if not _RATE.match(str(model["log_rate"])):
        problems.append("log_rate: %r is not a rate such as 5/minute" % (model["log_rate"],))
    if not _LOG_PREFIX.match(str(model["log_prefix"])):
        problems.append("log_prefix: %r must be 1-60 letters, digits, spaces or _.,:;/=+()@-" % (model["log_prefix"],))
    if not _TABLE_NAME.match(str(model["table"])):
        problems.append("table: %r is not a valid table name" % (model["table"],))
    return [prefix + problem for problem in problems]


def _addr_sets(name, nets):
    out = []
    rules = {}
    for family, kind in ((4, "ipv4_addr"), (6, "ipv6_addr")):
        chosen = list(ipaddress.collapse_addresses(n for n in nets if n.version == family))
        if chosen:
            out.append("\tset %s_%d {\n\t\ttype %s\n\t\tflags interval\n\t\telements = { %s }\n\t}\n"
                       % (name, family, kind, ", ".join(str(n) for n in chosen)))
            rules[family] = "%s %%s @%s_%d" % ("ip" if family == 4 else "ip6", name, family)
    return out, rules


def quarantine_ruleset(raw):
    """The nft text of the quarantine table for a valid model (see quarantine_problems)."""
    problems = quarantine_problems(raw)
    if problems:
        raise ValueError("quarantine model is invalid:\n- " + "\n- ".join(problems))
    model, _problems = _quarantine_model(raw)
    ports = sorted(set(model["ssh_ports"]))
    port_expr = str(ports[0]) if len(ports) == 1 else "{ %s }" % ", ".join(str(p) for p in ports)
    bastion_values = model["bastion_addresses"]
    if isinstance(bastion_values, str):
        bastion_values = [bastion_values]
    sets, bastion = _addr_sets("bastion", [ipaddress.ip_network(str(v).strip()) for v in bastion_values])
    collector = {}
    if model["evidence_collector"] not in (None, ""):
        more, collector = _addr_sets("collector", [ipaddress.ip_network(str(model["evidence_collector"]).strip())])
        sets.extend(more)
    inp = ['iifname "lo" accept', "icmpv6 type { %s } ip6 hoplimit 255 accept" % _ND_IN]
    out = ['oifname "lo" accept', "icmpv6 type { %s } ip6 hoplimit 255 accept" % _ND_OUT]
    for who, matches in (("the bastion", bastion), ("the evidence collector", collector)):
        for family in (4, 6):
            if family in matches:
                inp.append('%s tcp dport %s accept comment "ssh from %s"' % (matches[family] % "saddr", port_expr, who))
                out.append('%s tcp sport %s accept comment "ssh replies to %s"' % (matches[family] % "daddr", port_expr, who))
    if model["allow_dhcp"]:
        inp.append('udp sport 67 udp dport 68 accept comment "dhcp client: keep the address"')
        inp.append('ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept comment "dhcpv6 client: keep the address"')
        out.append('udp sport 68 udp dport 67 accept comment "dhcp client: keep the address"')
        out.append('udp sport 546 udp dport 547 accept comment "dhcpv6 client: keep the address"')
    fwd = []
    if model["log"]:
        log = 'limit rate %s burst 10 packets log prefix "%s" level info' % (model["log_rate"], model["log_prefix"])
        for chain in (inp, fwd, out):
            chain.append(log)
    body = "".join(sets)
    for name, rules in (("input", inp), ("forward", fwd), ("output", out)):
        # before the firewall's chains (priority 0): the drop is final whatever runs after
        body += "\tchain %s {\n\t\ttype filter hook %s priority -10; policy drop;\n" % (name, name)
        body += "".join("\t\t%s\n" % rule for rule in rules)
        body += "\t}\n"
    return ("# Rendered by edgewarden.hardening (quarantine_ruleset): every flow dropped but SSH from the bastion.\n"
            "# Other tables are not touched; release removes this table.\n"
            "table inet %s {\n%s}\n" % (model["table"], body))


def nft_ruleset_normalize(ruleset, exclude_tables=None):
    """An ``nft -j list ruleset`` array as canonical text, to compare two listings.

    Leaves out the metainfo, the kernel's handle numbers (they change on every reload),
    counter and quota values, and every object of the tables in ``exclude_tables``
    (``[family, name]`` or ``name``).
    """
    excluded = set()
    for entry in exclude_tables or []:
        excluded.add(tuple(entry) if isinstance(entry, (list, tuple)) else (None, entry))
    kept = []
    for obj in ruleset or []:
        if "metainfo" in obj:
            continue
        body = next(iter(obj.values())) if len(obj) == 1 and isinstance(next(iter(obj.values())), dict) else {}
        table = body.get("name") if "table" in obj else body.get("table")
        if (body.get("family"), table) in excluded or (None, table) in excluded:
            continue
        kept.append(_strip_handles(obj))
    return evidence_canonical(kept)


class FilterModule:
    def filters(self):
        return {"evidence_canonical": evidence_canonical, "evidence_bundle": evidence_bundle,
                "evidence_diff": evidence_diff, "quarantine_problems": quarantine_problems,
                "quarantine_ruleset": quarantine_ruleset, "nft_ruleset_normalize": nft_ruleset_normalize}
