# SPDX-License-Identifier: GPL-3.0-or-later
"""AppArmor: parsers of the kernel's lists and audit messages, the planner, and the whole
run on a temporary tree.

No mocks: ``apparmor_parser`` is replaced by a small fake that answers like the real one
(names from ``profile NAME``, a syntax error for texts containing ``SYNTAX-ERROR``,
loads that rewrite the fake securityfs ``profiles`` list and honour the force-complain
link as the real parser does). The sample messages were captured on the lab's kernel
target (Debian 12, kernel 6.1, AppArmor 3.0.8).
"""

from __future__ import annotations

import json
import os
import re

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import apparmor as aa

KMSG_DENIED = ('audit: type=1400 audit(1795755705.083:30): apparmor="DENIED" operation="open" profile="ew-test" '
               'name="/srv/ew-secret" pid=493 comm="cat" requested_mask="r" denied_mask="r" fsuid=0 ouid=0')
KMSG_ALLOWED = ('audit: type=1400 audit(1795755706.119:32): apparmor="ALLOWED" operation="open" profile="ew-test" '
                'name="/srv/ew-secret" pid=496 comm="cat" requested_mask="r" denied_mask="r" fsuid=0 ouid=0')
KMSG_STATUS = ('audit: type=1400 audit(1795755704.671:29): apparmor="STATUS" operation="profile_replace" '
               'profile="unconfined" name="ew-test" pid=491 comm="apparmor_parser"')
AUDITD_LINE = ('type=AVC msg=audit(1795755705.083:30): apparmor="DENIED" operation="open" profile="ew-test" '
               'name="/srv/ew-secret" pid=493 comm="cat" requested_mask="r" denied_mask="r" fsuid=0 ouid=0')
HEX_NAME = ('audit: type=1400 audit(1795755800.001:40): apparmor="DENIED" operation="open" profile="ew-test" '
            'name=2F746D702F6120622063 pid=7 comm="cat" requested_mask="r" denied_mask="r" fsuid=0 ouid=0')
CAPABILITY = ('audit: type=1400 audit(1795755801.500:41): apparmor="DENIED" operation="capable" profile="ew-test//child" '
              'pid=8 comm="ew-test" capability=12  capname="net_admin"')
JOURNAL_AUDIT = json.dumps({
    "_TRANSPORT": "audit", "_AUDIT_ID": "30", "_BOOT_ID": "b0cb343cb454459686fb8873798a13b2",
    "__MONOTONIC_TIMESTAMP": "234762715", "_SOURCE_REALTIME_TIMESTAMP": "1795755705083000",
    "MESSAGE": 'AVC apparmor="DENIED" operation="open" profile="ew-test" name="/srv/ew-secret" pid=493 comm="cat" '
               'requested_mask="r" denied_mask="r" fsuid=0 ouid=0'})
JOURNAL_KERNEL = json.dumps({
    "_TRANSPORT": "kernel", "_BOOT_ID": "b0cb343cb454459686fb8873798a13b2", "__MONOTONIC_TIMESTAMP": "234774230",
    "MESSAGE": KMSG_DENIED})
BOOT = "b0cb343cb454459686fb8873798a13b2"


# --- parsers -------------------------------------------------------------------------


def test_parse_profiles_list():
    text = "nvidia_modprobe (enforce)\nnvidia_modprobe//kmod (enforce)\n/usr/bin/man (complain)\nweird name (x) (kill)\n"
    assert aa.parse_profiles_list(text) == {
        "nvidia_modprobe": "enforce", "nvidia_modprobe//kmod": "enforce", "/usr/bin/man": "complain",
        "weird name (x)": "kill"}
    assert aa.parse_profiles_list("") == {}


@pytest.mark.parametrize("line, expected", [
    (KMSG_DENIED, {"apparmor": "DENIED", "operation": "open", "profile": "ew-test", "name": "/srv/ew-secret",
                   "comm": "cat", "requested_mask": "r", "denied_mask": "r", "pid": "493",
                   "time": 1795755705.083, "serial": 30}),
    (AUDITD_LINE, {"apparmor": "DENIED", "operation": "open", "profile": "ew-test", "name": "/srv/ew-secret",
                   "comm": "cat", "requested_mask": "r", "denied_mask": "r", "pid": "493",
                   "time": 1795755705.083, "serial": 30}),
    (HEX_NAME, {"apparmor": "DENIED", "operation": "open", "profile": "ew-test", "name": "/tmp/a b c",
                "comm": "cat", "requested_mask": "r", "denied_mask": "r", "pid": "7",
                "time": 1795755800.001, "serial": 40}),
    (CAPABILITY, {"apparmor": "DENIED", "operation": "capable", "profile": "ew-test//child", "capname": "net_admin",
                  "comm": "ew-test", "pid": "8", "time": 1795755801.5, "serial": 41}),
    ('AVC apparmor="ALLOWED" operation="exec" profile="p" name="/bin/sh" comm="x" requested_mask="x"',
     {"apparmor": "ALLOWED", "operation": "exec", "profile": "p", "name": "/bin/sh", "comm": "x",
      "requested_mask": "x"}),
    ("audit: type=1400 audit(1.0:1): something else entirely", None),
    ("usb 1-1: new high-speed USB device", None),
    ("", None),
])
def test_parse_event(line, expected):
    assert aa.parse_event(line) == expected


def test_status_messages_parse_but_never_count_as_denials():
    event = aa.parse_event(KMSG_STATUS)
    assert event["apparmor"] == "STATUS"
    report = aa.summarize_denials([event], ["ew-test"], {})
    assert report["ew-test"]["denied"] == 0 and report["ew-test"]["events"] == []


@pytest.mark.parametrize("raw, expected", [
    ("5,548,441897344,-;" + KMSG_DENIED + "\n SUBSYSTEM=audit\n", (548, 441897344, KMSG_DENIED)),
    ("6,1,0,-,caller=T1;Linux version 6.1.0\n", (1, 0, "Linux version 6.1.0")),
    ("no separator", None),
    ("x,y,z;text", None),
])
def test_parse_kmsg_record(raw, expected):
    assert aa.parse_kmsg_record(raw) == expected


def test_journal_events_from_both_transports_are_one_event():
    events = aa.dedupe_events(aa.events_from_journal([JOURNAL_AUDIT, JOURNAL_KERNEL, "not json"]))
    assert len(events) == 1
    assert events[0]["serial"] == 30 and events[0]["time"] == pytest.approx(1795755705.083)
    assert events[0]["boot_id"] == BOOT and events[0]["monotonic_us"] == 234762715


def test_journal_message_as_byte_array():
    line = json.dumps({"MESSAGE": list(KMSG_DENIED.encode()), "_BOOT_ID": BOOT})
    assert aa.events_from_journal([line])[0]["name"] == "/srv/ew-secret"


def test_audit_log_and_kmsg_sources():
    assert [e["serial"] for e in aa.events_from_audit_log(AUDITD_LINE + "\ntype=SYSCALL msg=audit(1.0:2): x=1\n")] == [30]
    events = aa.events_from_kmsg([(548, 100, KMSG_DENIED), (549, 101, "eth0: link up")], BOOT)
    assert len(events) == 1 and events[0]["seq"] == 548 and events[0]["boot_id"] == BOOT


MARKER = {"mode": "complain", "boot_id": BOOT, "time": 1000.0, "monotonic_us": 5000, "kmsg_seq": 40}


@pytest.mark.parametrize("event, marker, after", [
    ({"boot_id": BOOT, "seq": 41, "time": 1.0}, MARKER, True),      # same boot: kmsg sequence wins over time
    ({"boot_id": BOOT, "seq": 40, "time": 2000.0}, MARKER, False),
    ({"boot_id": BOOT, "monotonic_us": 5001, "time": 1.0}, MARKER, True),  # journald: monotonic clock
    ({"boot_id": BOOT, "monotonic_us": 4999, "time": 2000.0}, MARKER, False),
    ({"boot_id": "other", "monotonic_us": 1, "time": 1000.5}, MARKER, True),  # another boot: wall clock
    ({"boot_id": "other", "monotonic_us": 99999, "time": 999.0}, MARKER, False),
    ({"time": 999.0}, MARKER, False),                                # auditd log: no boot id
    ({"time": 999.0}, None, True),                                   # no recorded switch: everything counts
    ({}, MARKER, True),
    ({"boot_id": "b0cb343c-b454-4596-86fb-8873798a13b2", "seq": 41}, MARKER, True),  # /proc form of the id
])
def test_event_after(event, marker, after):
    assert aa.event_after(event, marker) is after


def test_summarize_denials_filters_to_own_profiles_and_since_the_mode_switch():
    events = [aa.parse_event(line) for line in (KMSG_DENIED, KMSG_ALLOWED, KMSG_ALLOWED, CAPABILITY, HEX_NAME)]
    events.append(aa.parse_event(KMSG_DENIED.replace('profile="ew-test"', 'profile="ew-testing"')))
    markers = {"ew-test": {"mode": "complain", "time": 1795755706.0}}
    report = aa.summarize_denials(events, ["ew-test", "other"], markers)
    own = report["ew-test"]
    # the DENIED at .083 came before complain mode started; ew-testing is not ew-test
    assert (own["allowed"], own["denied"], own["kinds"]) == (2, 2, 3)
    assert own["events"][0]["count"] == 2 and own["events"][0]["apparmor"] == "ALLOWED"
    assert own["events"][0]["first"] == 1795755706.119 and own["since"] == 1795755706.0
    assert {e.get("capname") for e in own["events"]} == {None, "net_admin"}  # the child's event is the parent's
    assert report["other"] == {"since": None, "mode": None, "denied": 0, "allowed": 0, "events": [], "kinds": 0}
    assert len(aa.summarize_denials(events, ["ew-test"], markers, limit=1)["ew-test"]["events"]) == 1


@pytest.mark.parametrize("requested, auditd, audit_log, journalctl, journald, kmsg, expected", [
    ("auto", True, True, "/bin/journalctl", True, True, "audit"),
    ("auto", False, True, "/bin/journalctl", True, True, "journal"),
    ("auto", True, False, "/bin/journalctl", True, True, "journal"),
    ("auto", False, False, "/bin/journalctl", False, True, "kmsg"),
    ("auto", False, False, None, False, False, "none"),
    ("kmsg", True, True, "/bin/journalctl", True, True, "kmsg"),
])
def test_choose_log_source(requested, auditd, audit_log, journalctl, journald, kmsg, expected):
    assert aa.choose_log_source(requested, auditd, audit_log, journalctl, journald, kmsg) == expected


# --- names, files, flags ----------------------------------------------------------------


@pytest.mark.parametrize("name, file_name", [
    ("/usr/sbin/ntpd", "usr.sbin.ntpd"), ("ew-demo", "ew-demo"), ("/opt/app/bin/x", "opt.app.bin.x")])
def test_default_file_name(name, file_name):
    assert aa.default_file_name(name) == file_name


@pytest.mark.parametrize("file_name, ok", [
    ("ew-demo", True), ("usr.sbin.ntpd", True), ("disable", False), ("force-complain", False),
    ("a/b", False), (".hidden", False), ("x.dpkg-old", False), ("x~", False), ("", False)])
def test_file_error(file_name, ok):
    assert (aa.file_error(file_name) is None) is ok


@pytest.mark.parametrize("name, ok", [
    ("ew-demo", True), ("/usr/bin/x", True), ("", False), ("a b", False), ("a//b", False), ('a"b', False)])
def test_name_error(name, ok):
    assert (aa.name_error(name) is None) is ok


STUB = "abi <abi/4.0>,\ninclude <tunables/global>\nprofile busybox /usr/bin/busybox flags=(unconfined) {\n  userns,\n}\n"


@pytest.mark.parametrize("text, mode, problem", [
    (STUB, "enforce", "unconfined"),
    (STUB, "complain", "unconfined"),
    (STUB, "disabled", None),
    ("profile x flags=(attach_disconnected, complain) {\n}\n", "enforce", "flags=(complain)"),
    ("profile x flags=(attach_disconnected, complain) {\n}\n", "complain", None),
    ("profile x {\n  # flags=(complain) in a comment\n}\n", "enforce", None),
    ("profile x flags=(attach_disconnected) {\n}\n", "enforce", None),
])
def test_flag_errors(text, mode, problem):
    errors = aa.flag_errors("x", text, mode)
    if problem is None:
        assert errors == []
    else:
        assert len(errors) == 1 and problem in errors[0]


def test_normalize_items_reports_every_problem_at_once():
    items, errors = aa.normalize_items([
        {"name": "a", "content": "profile a {}"},
        {"name": "a", "content": "profile a {}"},
        {"name": "b c"},
        {"name": "d", "file": "disable"},
        {"name": "e", "mode": "kill"},
        {"name": "f", "mode": "complain", "staged": True},
        {"name": "g", "file": "shared"},
        {"name": "h", "file": "shared"},
        {"name": "i", "content": "  \n"},
    ])
    assert len(errors) == 7, errors
    for fragment in ("a: listed twice", "b c:", "d: file name 'disable'", "e: mode must be", "f: staged",
                     "h: file shared is also used by g", "i: content is empty"):
        assert any(fragment in e for e in errors), fragment
    assert items[0] == {"name": "a", "content": "profile a {}", "state": "present", "mode": "enforce", "file": "a",
                        "staged": False}


@pytest.mark.parametrize("loaded, seen, mode, why", [
    (None, 0, "complain", "complain mode first"),
    ("unconfined", 0, "complain", "complain mode first"),
    ("complain", 3, "complain", "held in complain mode, 3 access(es)"),
    ("complain", 0, "enforce", None),
    ("enforce", 5, "enforce", None),
])
def test_staged_rollout(loaded, seen, mode, why):
    item = {"name": "x", "mode": "enforce", "staged": True}
    got_mode, got_why = aa.effective_mode(item, loaded, {"allowed": seen, "denied": 0})
    assert got_mode == mode
    assert (got_why is None) if why is None else (why in got_why)


def test_unstaged_profiles_get_their_mode_at_once():
    assert aa.effective_mode({"mode": "enforce", "staged": False}, None, None) == ("enforce", None)
    assert aa.effective_mode({"mode": "disabled"}, "enforce", None) == ("disabled", None)


# --- the planner -------------------------------------------------------------------------


def _files(text=None, disable=False, complain=False):
    return {"text": text, "disable": disable, "force-complain": complain}


def _plan(item, current, loaded=None, denials=None):
    items, errors = aa.normalize_items([item])
    assert errors == []
    records, ops, held = aa.plan(items, {items[0]["file"]: current}, loaded or {}, denials or {}, {}, "/etc/apparmor.d")
    return records, [aa.describe_op(op) for op in ops], held


CONTENT = "profile x /usr/bin/x {\n  /etc/hostname r,\n}\n"
TEXT = aa.desired_text(CONTENT)


@pytest.mark.parametrize("item, current, loaded, want_ops, statuses", [
    # a new profile: file, load, mode start
    ({"name": "x", "content": CONTENT}, _files(), {},
     ["write /etc/apparmor.d/x (%s)" % aa.digest(TEXT), "apparmor_parser --replace /etc/apparmor.d/x",
      "record that x entered enforce mode"], ("changed", "changed")),
    # complain: the force-complain link first (the parser reads it), then load with --Complain
    ({"name": "x", "content": CONTENT, "mode": "complain"}, _files(TEXT), {"x": "enforce"},
     ["link /etc/apparmor.d/force-complain/x -> /etc/apparmor.d/x",
      "apparmor_parser --replace --Complain /etc/apparmor.d/x", "record that x entered complain mode"],
     ("changed", "changed")),
    # back to enforce: the link must go before the load, or the parser forces complain again
    ({"name": "x", "content": CONTENT}, _files(TEXT, complain=True), {"x": "complain"},
     ["unlink /etc/apparmor.d/force-complain/x", "apparmor_parser --replace /etc/apparmor.d/x",
      "record that x entered enforce mode"], ("changed", "changed")),
    # disabled: skipped at boot, unloaded now
    ({"name": "x", "content": CONTENT, "mode": "disabled"}, _files(TEXT), {"x": "enforce", "x//c": "enforce"},
     ["link /etc/apparmor.d/disable/x -> /etc/apparmor.d/x", "unload x", "record that x entered disabled mode"],
     ("changed", "changed")),
    # already as wanted: nothing to do
    ({"name": "x", "content": CONTENT}, _files(TEXT), {"x": "enforce"}, [], ("unchanged", "unchanged")),
    ({"name": "x", "content": CONTENT, "mode": "disabled"}, _files(TEXT, disable=True), {}, [],
     ("unchanged", "unchanged")),
    # new text, same mode: replaced in the kernel, the mode's start time stays
    ({"name": "x", "content": CONTENT + "# v2\n"}, _files(TEXT), {"x": "enforce"},
     ["write /etc/apparmor.d/x (%s)" % aa.digest(aa.desired_text(CONTENT + "# v2\n")),
      "apparmor_parser --replace /etc/apparmor.d/x"], ("changed", "changed")),
    # a distribution profile (no content): only its mode
    ({"name": "/usr/bin/man", "mode": "complain"}, _files("profile /usr/bin/man {}\n"), {"/usr/bin/man": "enforce"},
     ["link /etc/apparmor.d/force-complain/usr.bin.man -> /etc/apparmor.d/usr.bin.man",
      "apparmor_parser --replace --Complain /etc/apparmor.d/usr.bin.man",
      "record that /usr/bin/man entered complain mode"], ("changed", "changed")),
    # absent: unload, links, file, forget
    ({"name": "x", "state": "absent"}, _files(TEXT, complain=True), {"x": "complain"},
     ["unload x", "unlink /etc/apparmor.d/force-complain/x", "remove /etc/apparmor.d/x", "forget when x entered its mode"],
     ("changed", "changed")),
    ({"name": "x", "state": "absent"}, _files(), {}, ["forget when x entered its mode"], ("unchanged", "unchanged")),
])
def test_plan(item, current, loaded, want_ops, statuses):
    records, ops, held = _plan(item, current, loaded)
    assert ops == want_ops
    assert tuple(r["status"] for r in records) == statuses
    assert [r["where"] for r in records] == ["persisted", "live"]
    assert held == {}


def test_plan_records_carry_mode_and_digest():
    records = _plan({"name": "x", "content": CONTENT, "mode": "complain"}, _files(TEXT), {"x": "enforce"})[0]
    assert records[0]["before"] == "enforce " + aa.digest(TEXT)
    assert records[0]["after"] == "complain " + aa.digest(TEXT)
    assert (records[1]["before"], records[1]["after"]) == ("enforce", "complain")


def test_plan_holds_a_staged_profile_with_denials():
    records, ops, held = _plan({"name": "x", "content": CONTENT, "staged": True}, _files(TEXT, complain=True),
                               {"x": "complain"}, {"x": {"allowed": 2, "denied": 0}})
    assert ops == [] and "held in complain" in held["x"]
    assert records[1]["status"] == "unchanged" and "held" in records[1]["detail"]


# --- the whole run on a temporary tree -------------------------------------------------------

PROFILE_RE = re.compile(r"^\s*profile\s+(\S+)", re.M)


class FakeParser(aa.Parser):
    """The real Parser class (its argv), over a runner that behaves like apparmor_parser
    and a fake securityfs whose ``profiles`` list it keeps up to date."""

    def __init__(self, tree, refuse_load=()):
        self.calls = []
        self.refuse_load = refuse_load
        aa.Parser.__init__(self, "/sbin/apparmor_parser", self.answer, profile_dir=tree["dir"],
                           apparmorfs=tree["fs"])

    def _loaded(self):
        return aa.read_loaded(self.apparmorfs)

    def _store(self, loaded):
        with open(os.path.join(self.apparmorfs, "profiles"), "w") as handle:
            handle.write("".join("%s (%s)\n" % item for item in sorted(loaded.items())))

    def answer(self, argv, data=None, cwd=None):
        self.calls.append(argv)
        text = data if data is not None else open(argv[-1]).read()
        names = PROFILE_RE.findall(text)
        if "--skip-kernel-load" in argv:
            if "SYNTAX-ERROR" in text:
                line = text[:text.index("SYNTAX-ERROR")].count("\n") + 1
                return 1, "", "AppArmor parser error at line %d: syntax error, unexpected TOK_ID\n" % line
            return 0, "", ""
        if "--names" in argv:
            return 0, "".join(n + "\n" for n in names), ""
        if "--replace" in argv:
            if any(n in self.refuse_load for n in names):
                return 1, "", "apparmor_parser: Unable to replace \"%s\".  Permission denied\n" % names[0]
            base = os.path.basename(argv[-1])
            # like the real parser: the force-complain link forces complain mode
            complain = "--Complain" in argv or os.path.lexists(os.path.join(self.profile_dir, "force-complain", base))
            loaded = self._loaded()
            for name in names:
                loaded[name] = "complain" if complain else "enforce"
            self._store(loaded)
            return 0, "", ""
        raise AssertionError("unexpected call %r" % argv)

    def unload(self, name):
        loaded = self._loaded()
        for key in [k for k in loaded if k == name or k.startswith(name + "//")]:
            del loaded[key]
        self._store(loaded)
        return None


@pytest.fixture
def tree(tmp_path):
    fs = tmp_path / "sys" / "apparmor"
    fs.mkdir(parents=True)
    (fs / "profiles").write_text("lsb_release (enforce)\n")
    profile_dir = tmp_path / "etc" / "apparmor.d"
    (profile_dir / "disable").mkdir(parents=True)
    (profile_dir / "lsb_release").write_text("profile lsb_release /usr/bin/lsb_release {\n}\n")
    (profile_dir / "busybox").write_text(STUB)
    return {"dir": str(profile_dir), "fs": str(fs), "state": str(tmp_path / "state" / "apparmor.json"),
            "root": tmp_path}


def run(tree, items, check_mode=False, parser=None, events=(), purge=False, clock=None):
    parser = parser or FakeParser(tree)
    return aa.run(items, parser, check_mode=check_mode, purge=purge, profile_dir=tree["dir"], apparmorfs=tree["fs"],
                  state_file=tree["state"], log_reader=lambda markers: ("kmsg", list(events)),
                  clock=clock or (lambda: (BOOT, 1000.0, 5000, 40)))


def loaded(tree):
    return aa.read_loaded(tree["fs"])


DEMO = "abi <abi/3.0>,\nprofile ew-demo /usr/local/bin/ew-demo {\n  /etc/hostname r,\n}\n"


def changed_ids(result):
    return sorted("%s@%s" % (r["id"], r["where"]) for r in result["records"] if r["status"] == "changed")


def test_check_mode_predicts_exactly_what_the_run_changes(tree):
    items = [{"name": "ew-demo", "content": DEMO}, {"name": "lsb_release", "mode": "complain"}]
    predicted = run(tree, items, check_mode=True)
    assert loaded(tree) == {"lsb_release": "enforce"} and not os.path.exists(os.path.join(tree["dir"], "ew-demo"))
    applied = run(tree, items)
    assert changed_ids(predicted) == changed_ids(applied) == [
        "apparmor.profile/ew-demo@live", "apparmor.profile/ew-demo@persisted",
        "apparmor.profile/lsb_release@live", "apparmor.profile/lsb_release@persisted"]
    assert predicted["operations"] == applied["operations"]
    assert loaded(tree) == {"ew-demo": "enforce", "lsb_release": "complain"}
    assert applied["loaded_modes"] == {"ew-demo": "enforce", "lsb_release": "complain"}
    assert open(os.path.join(tree["dir"], "ew-demo")).read() == aa.MANAGED_HEADER + DEMO
    assert os.readlink(os.path.join(tree["dir"], "force-complain", "lsb_release")) == os.path.join(tree["dir"], "lsb_release")
    # and a second run changes nothing
    again = run(tree, items)
    assert again["changed"] is False and again["operations"] == []


def test_mode_switches_are_recorded_for_the_denial_report(tree):
    run(tree, [{"name": "ew-demo", "content": DEMO, "mode": "complain"}])
    markers = aa.read_markers(tree["state"])
    assert markers == {"ew-demo": {"mode": "complain", "boot_id": BOOT, "time": 1000.0, "monotonic_us": 5000,
                                   "kmsg_seq": 40}}
    events = [dict(aa.parse_event(KMSG_ALLOWED.replace("ew-test", "ew-demo")), boot_id=BOOT, seq=seq)
              for seq in (39, 41, 42)]
    result = run(tree, [{"name": "ew-demo", "content": DEMO, "mode": "complain"}], events=events)
    assert result["denials"]["ew-demo"]["allowed"] == 2  # seq 39 was logged before complain mode started
    assert result["log_source"] == "kmsg"


def test_invalid_profiles_change_nothing_and_name_every_problem(tree):
    run(tree, [{"name": "ew-demo", "content": DEMO}])
    before = open(os.path.join(tree["dir"], "ew-demo")).read()
    parser = FakeParser(tree)
    result = run(tree, [
        {"name": "ew-demo", "content": DEMO.replace("/etc/hostname r,", "/etc/hostname r, SYNTAX-ERROR")},
        {"name": "other", "content": "profile something-else {\n}\n"},
        {"name": "missing"},
        {"name": "busybox"},
        {"name": "lsb_release", "mode": "disabled"},
    ], parser=parser)
    assert result["failed"] and result["records"] == []
    assert len(result["errors"]) == 4
    # the line number is the one in the text the user wrote (our marker line is not counted)
    assert "ew-demo: apparmor_parser refused the profile: AppArmor parser error at line 3" in result["errors"][0]
    assert "other: the text defines something-else, not a profile named other" in result["errors"][1]
    assert "missing: no content given" in result["errors"][2]
    assert "busybox: an 'unconfined' stub" in result["errors"][3]
    assert open(os.path.join(tree["dir"], "ew-demo")).read() == before
    assert loaded(tree) == {"ew-demo": "enforce", "lsb_release": "enforce"}
    assert not any("--replace" in call for call in parser.calls)


def test_a_profile_the_kernel_refuses_is_an_error_and_the_others_still_apply(tree):
    parser = FakeParser(tree, refuse_load=("ew-demo",))
    result = run(tree, [{"name": "ew-demo", "content": DEMO}, {"name": "lsb_release", "mode": "complain"}],
                 parser=parser)
    assert result["failed"]
    live = dict((r["id"], r) for r in result["records"] if r["where"] == "live")
    assert live["apparmor.profile/ew-demo"]["status"] == "error"
    assert "Permission denied" in live["apparmor.profile/ew-demo"]["detail"]
    assert live["apparmor.profile/lsb_release"]["status"] == "changed"
    assert loaded(tree)["lsb_release"] == "complain"


def test_readback_catches_a_mode_the_kernel_does_not_show(tree):
    class StubbornParser(FakeParser):
        def answer(self, argv, data=None, cwd=None):
            if "--replace" in argv:
                self.calls.append(argv)
                return 0, "", ""  # claims success, loads nothing
            return FakeParser.answer(self, argv, data, cwd)
    result = run(tree, [{"name": "ew-demo", "content": DEMO}], parser=StubbornParser(tree))
    live = [r for r in result["records"] if r["where"] == "live"][0]
    assert result["failed"] and live["status"] == "error"
    assert live["detail"] == "the kernel reports not loaded, wanted enforce"


def test_absent_and_purge_only_touch_files_we_wrote(tree):
    run(tree, [{"name": "ew-demo", "content": DEMO}, {"name": "ew-two", "content": "profile ew-two {\n}\n",
                                                      "mode": "complain"}])
    refused = run(tree, [{"name": "lsb_release", "state": "absent"}])
    assert refused["failed"] and "not deployed by edgewarden" in refused["errors"][0]
    purged = run(tree, [{"name": "ew-demo", "content": DEMO}], purge=True)
    assert changed_ids(purged) == ["apparmor.profile/ew-two@live", "apparmor.profile/ew-two@persisted"]
    assert sorted(os.listdir(tree["dir"])) == ["busybox", "disable", "ew-demo", "force-complain", "lsb_release"]
    assert os.listdir(os.path.join(tree["dir"], "force-complain")) == []
    assert loaded(tree) == {"ew-demo": "enforce", "lsb_release": "enforce"}
    removed = run(tree, [{"name": "ew-demo", "state": "absent"}])
    assert removed["changed"] and "ew-demo" not in loaded(tree)
    assert not os.path.exists(os.path.join(tree["dir"], "ew-demo"))
    assert aa.read_markers(tree["state"]) == {}


def test_disabled_keeps_the_file_and_skips_it_at_boot(tree):
    run(tree, [{"name": "ew-demo", "content": DEMO}])
    result = run(tree, [{"name": "ew-demo", "content": DEMO, "mode": "disabled"}])
    assert result["loaded_modes"] == {"ew-demo": None}
    assert os.path.lexists(os.path.join(tree["dir"], "disable", "ew-demo"))
    assert os.path.exists(os.path.join(tree["dir"], "ew-demo"))
    back = run(tree, [{"name": "ew-demo", "content": DEMO}])
    assert back["loaded_modes"] == {"ew-demo": "enforce"}
    assert not os.path.lexists(os.path.join(tree["dir"], "disable", "ew-demo"))


def test_staged_profile_goes_through_complain(tree):
    item = {"name": "ew-demo", "content": DEMO, "staged": True}
    first = run(tree, [item])
    assert first["loaded_modes"] == {"ew-demo": "complain"} and "complain mode first" in first["held"]["ew-demo"]
    would_deny = [dict(aa.parse_event(KMSG_ALLOWED.replace("ew-test", "ew-demo")), boot_id=BOOT, seq=50)]
    held = run(tree, [item], events=would_deny)
    assert held["changed"] is False and "held in complain" in held["held"]["ew-demo"]
    clean = run(tree, [item])
    assert clean["loaded_modes"] == {"ew-demo": "enforce"} and clean["held"] == {}


def test_apparmor_not_active(tree):
    os.unlink(os.path.join(tree["fs"], "profiles"))
    result = run(tree, [{"name": "ew-demo", "content": DEMO}])
    assert result["failed"] and "AppArmor is not active" in result["msg"]


def test_parser_argv(tree):
    calls = []

    def runner(argv, data=None, cwd=None):
        calls.append((argv, data, cwd))
        return 0, "x\n", ""

    base = ["/sbin/apparmor_parser", "--base", tree["dir"]]
    parser = aa.Parser("/sbin/apparmor_parser", runner, profile_dir=tree["dir"])
    assert parser.validate("profile x {}\n") == (["x"], None)
    assert parser.load(tree["dir"] + "/x", complain=True) is None
    assert calls == [
        (base + ["--skip-kernel-load", "--skip-cache", "--quiet"], "profile x {}\n", tree["dir"]),
        (base + ["--names"], "profile x {}\n", tree["dir"]),
        (base + ["--replace", "--skip-read-cache", "--write-cache", "--quiet", "--Complain", tree["dir"] + "/x"],
         None, tree["dir"]),
    ]
    # no profile directory yet (a trimmed image): the parser runs from where it is
    missing = aa.Parser("/sbin/apparmor_parser", runner, profile_dir=tree["dir"] + "/missing")
    missing.validate("profile x {}\n")
    assert calls[-1][2] is None


def test_real_kmsg_reader_on_a_regular_file(tmp_path):
    # a regular file reads as one record per read() only on /dev/kmsg; here the reader
    # must at least return what it found without blocking or raising
    path = tmp_path / "kmsg"
    path.write_text("5,548,441897344,-;" + KMSG_DENIED + "\n")
    assert aa.read_kmsg(str(path)) == [(548, 441897344, KMSG_DENIED)]
    assert aa.read_kmsg(str(tmp_path / "missing")) is None
