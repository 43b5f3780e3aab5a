# SPDX-License-Identifier: GPL-3.0-or-later
"""nft.py: texts, normalization, the commit-confirm race, connection identity, persistence.

No real nft runs here: a fake nft (a shell script, or a Python stand-in) records what it
was asked to load. The rollback shell itself does run, with a one-second timer, because
the race between it and the confirmation is the point of the design.
"""

import json
import os
import stat
import subprocess
import time

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import commit_confirm as cc
from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import nft

TABLE = "table inet edgewarden {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n"


# ------------------------------------------------------------------ texts


def test_guard_accepts_our_table_only():
    assert nft.guard_ruleset("# comment\n" + TABLE, "inet", "edgewarden") == []


@pytest.mark.parametrize("text, expected", [
    ("table ip nat {\n}\n" + TABLE, "touches table ip nat"),
    ("table filter {\n}\n", "touches table ip filter"),
    ("flush ruleset\n" + TABLE, "'flush ruleset'"),
    ('include "/etc/other.nft"\n' + TABLE, "'include'"),
    ("delete table inet docker\n" + TABLE, "touches table inet docker"),
    ("# nothing\n", "defines no table"),
])
def test_guard_refuses_anything_else(text, expected):
    problems = nft.guard_ruleset(text, "inet", "edgewarden")
    assert any(expected in p for p in problems), problems


def test_replacement_adds_deletes_and_defines_in_one_file():
    text = nft.replacement_text("inet", "edgewarden", TABLE)
    assert text.splitlines()[:3] == ["table inet edgewarden {}", "delete table inet edgewarden", "table inet edgewarden {"]


def test_restore_of_a_missing_table_deletes_ours():
    text = nft.restore_text("inet", "edgewarden", None)
    assert [line for line in text.splitlines() if not line.startswith("#")] == [
        "table inet edgewarden {}", "delete table inet edgewarden"]
    again = nft.restore_text("inet", "edgewarden", TABLE)
    assert again.endswith(TABLE)


DEBIAN_CONF = "#!/usr/sbin/nft -f\n\nflush ruleset\n\ntable inet filter {\n}\n"


def test_include_block_is_appended_once():
    once = nft.include_block(DEBIAN_CONF, "/etc/nftables.d/edgewarden.nft", "inet", "edgewarden")
    assert once.startswith(DEBIAN_CONF)
    assert 'include "/etc/nftables.d/edgewarden.nft"\n# END edgewarden inet edgewarden\n' in once
    assert nft.include_block(once, "/etc/nftables.d/edgewarden.nft", "inet", "edgewarden") == once


def test_include_block_is_replaced_in_place():
    once = nft.include_block(DEBIAN_CONF + "# after\n", "/old.nft", "inet", "edgewarden")
    moved = nft.include_block(once, "/new.nft", "inet", "edgewarden")
    assert "/old.nft" not in moved and 'include "/new.nft"' in moved
    assert moved.count("# BEGIN edgewarden") == 1


def test_persisted_text_is_a_replacement_with_a_header():
    text = nft.persisted_text("inet", "edgewarden", TABLE, "nftables.service")
    assert text.startswith("#!/usr/sbin/nft -f\n")
    assert "table inet edgewarden {}\ndelete table inet edgewarden\n" in text


# ------------------------------------------------------------------ normalization


def listing(handle_base, extra=None):
    items = [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "inet", "name": "edgewarden", "handle": handle_base}},
        {"chain": {"family": "inet", "table": "edgewarden", "name": "input", "handle": handle_base + 1,
                   "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
        {"rule": {"family": "inet", "table": "edgewarden", "chain": "input", "handle": handle_base + 2,
                  "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "lo"}}, {"accept": None}]}},
        {"table": {"family": "ip", "name": "docker", "handle": 1}},
    ]
    return {"nftables": items + (extra or [])}


def test_normalized_listings_ignore_handles_and_other_tables():
    a = nft.normalize_json(json.dumps(listing(2)), "inet", "edgewarden")
    b = nft.normalize_json(listing(40), "inet", "edgewarden")
    assert a == b
    assert a["table"] == {"family": "inet", "name": "edgewarden"}
    assert len(a["objects"]) == 2
    assert nft.rule_count(a) == 1
    assert nft.digest(a) == nft.digest(b) and nft.digest(a).startswith("sha256:")


def test_normalized_listings_see_policy_changes():
    changed = listing(2)
    changed["nftables"][2]["chain"]["policy"] = "accept"
    assert nft.normalize_json(changed, "inet", "edgewarden") != nft.normalize_json(listing(2), "inet", "edgewarden")


def test_normalize_text_and_rule_count():
    text = "table inet edgewarden {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n" \
           "\t\tiifname \"lo\" accept\n\n\t}\n}\n"
    assert nft.normalize_text(text) == nft.normalize_text(text.replace("\n\n", "\n") + "   \n")
    assert nft.rule_count(nft.normalize_text(text)) == 1


def test_split_marked_and_tables():
    out = "@@EW:TEXT@@\ntable inet edgewarden {\n}\n@@EW:JSON@@\n{}\n@@EW:TABLES@@\ntable inet edgewarden\ntable ip x\n@@EW:END@@\n"
    sections = nft.split_marked(out)
    assert sections["TEXT"] == "table inet edgewarden {\n}"
    assert nft.parse_tables_text(sections["TABLES"]) == [("inet", "edgewarden"), ("ip", "x")]


# ------------------------------------------------------------------ commit-confirm on disk


FAKE_NFT = """#!/bin/sh
# stand-in for nft: -c -f FILE checks nothing, -f FILE records the file it loaded
if [ "$1" = "-c" ]; then exit 0; fi
if [ "$1" = "-f" ]; then
  cp "$2" "$(dirname "$0")/loaded.nft"
  if [ "${FAKE_NFT_RC:-0}" != 0 ]; then echo "Error: boom" >&2; fi
  exit ${FAKE_NFT_RC:-0}
fi
exit 0
"""


def local_run(argv, env=None):
    """What the module's run_command does: the launch of the rollback shell, the restore."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False,
                          env=dict(os.environ, **(env or {})))
    return proc.returncode, proc.stdout, proc.stderr


def failing_run(argv):
    return local_run(argv, {"FAKE_NFT_RC": "1"})


class PyNft(object):
    """Python stand-in for nft.Nft used where no process is needed."""

    def __init__(self, binary="/usr/sbin/nft", load_ok=True):
        self.binary = binary
        self.loaded = []
        self.load_ok = load_ok
        self.run = local_run

    def check_file(self, path):
        return True, ""

    def load_file(self, path):
        self.loaded.append(path)
        if not self.load_ok:
            raise nft.NftError("nft -f failed", "Error: boom")


@pytest.fixture
def fake_nft(tmp_path):
    path = tmp_path / "bin" / "nft"
    path.parent.mkdir()
    path.write_text(FAKE_NFT)
    path.chmod(0o755)
    return PyNft(binary=str(path))


def armed_dir(root, token, binary):
    """A token directory as cc.arm leaves it with nft's restore command, without its shell."""
    d = root / token
    d.mkdir(parents=True)
    (d / "saved.nft").write_text("RESTORE\n")
    (d / "restore.sh").write_text(cc.restore_script(nft.restore_commands(binary), "firewall"))
    (d / "armed").write_text("1\n")
    (d / "armed.json").write_text(json.dumps({"armed_at": 100, "timeout": 30, "deadline": 130}))
    return d


def test_restore_commands_reload_the_saved_table():
    assert nft.restore_commands("/usr/sbin/nft") == ["'/usr/sbin/nft' -f ./saved.nft"]


def test_rollback_now_restores_the_saved_table(tmp_path, fake_nft):
    d = armed_dir(tmp_path / "state", "1-aaaaaaaaaaaa", fake_nft.binary)
    assert cc.rollback_now(str(d), local_run) == cc.ROLLED_BACK
    assert (tmp_path / "bin" / "loaded.nft").read_text() == "RESTORE\n"
    assert cc.confirm(str(d)) == cc.ROLLED_BACK  # a confirmation can no longer win


def test_rollback_now_that_fails_says_so(tmp_path, fake_nft):
    d = armed_dir(tmp_path / "state", "1-aaaaaaaaaaaa", fake_nft.binary)
    assert cc.rollback_now(str(d), failing_run) == cc.ROLLBACK_FAILED
    assert cc.status(str(d))["rollback_error"] == "Error: boom"


SETSID = next((p for p in ("/usr/bin/setsid", "/bin/setsid") if os.path.exists(p)), None)


def wait_for(predicate, seconds=8.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def arm(state, token, fake, timeout, check=None):
    """cc.arm as Step.apply calls it."""
    return cc.arm(str(state), token, nft.restore_commands(fake.binary), timeout, local_run, "firewall",
                  setsid=SETSID, files={"saved.nft": "RESTORE\n"}, check=check)


def test_the_armed_shell_rolls_back_when_nobody_confirms(tmp_path, fake_nft):
    (tmp_path / "state").mkdir()
    info = arm(tmp_path / "state", "1-bbbbbbbbbbbb", fake_nft, 1)
    d = tmp_path / "state" / "1-bbbbbbbbbbbb"
    assert info["method"].startswith("detached") and info["pid"]
    assert wait_for(lambda: cc.token_state(str(d)) == cc.ROLLED_BACK)
    loaded = tmp_path / "bin" / "loaded.nft"
    assert loaded.read_text() == "RESTORE\n"
    assert cc.confirm(str(d)) == cc.ROLLED_BACK


def test_the_armed_shell_does_nothing_once_confirmed(tmp_path, fake_nft):
    (tmp_path / "state").mkdir()
    arm(tmp_path / "state", "1-cccccccccccc", fake_nft, 1)
    d = tmp_path / "state" / "1-cccccccccccc"
    assert cc.confirm(str(d)) == cc.CONFIRMED
    time.sleep(1.5)
    assert cc.token_state(str(d)) == cc.CONFIRMED
    assert not (tmp_path / "bin" / "loaded.nft").exists()
    assert cc.sleeper_pid(str(d)) is None


def test_arm_refuses_a_table_that_could_not_be_restored(tmp_path):
    class Refusing(PyNft):
        def check_file(self, path):
            return False, "Error: syntax"
    step = nft.Step(Refusing(), "inet", "edgewarden", TABLE)
    with pytest.raises(nft.NftError, match="cannot be saved for a rollback"):
        arm(tmp_path, "1-dddddddddddd", Refusing(), 5, check=step.check_saved)
    d = tmp_path / "1-dddddddddddd"
    assert cc.token_state(str(d)) is None and not (d / "rollback.sh").exists()  # nothing was armed


# ------------------------------------------------------------------ persistence


def tree(tmp_path, files):
    for path, content in files.items():
        host = tmp_path / path.lstrip("/")
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_text(content)
    return str(tmp_path)


UNIT = "[Unit]\nDescription=nftables\n[Service]\nExecStart=/usr/sbin/nft -f /etc/nftables.conf\n[Install]\nWantedBy=sysinit.target\n"


def test_install_targets():
    assert nft.parse_install_targets(UNIT) == ["sysinit.target.wants"]
    assert nft.parse_install_targets("[Install]\nWantedBy=a.target b.target\nRequiredBy=c.target\n") == [
        "a.target.wants", "b.target.wants", "c.target.requires"]


def test_boot_plan_debian(tmp_path):
    root = tree(tmp_path, {"/etc/nftables.conf": DEBIAN_CONF, "/lib/systemd/system/nftables.service": UNIT})
    plan = nft.boot_plan("inet", "edgewarden", root)
    assert plan["kind"] == "systemd" and plan["path"] == "/etc/nftables.d/edgewarden.nft"
    assert plan["links"] == [("/etc/systemd/system/sysinit.target.wants/nftables.service", "/lib/systemd/system/nftables.service")]


def test_boot_plan_openwrt_fw4(tmp_path):
    root = tree(tmp_path, {"/sbin/fw4": ""})
    plan = nft.boot_plan("inet", "edgewarden", root)
    assert plan["kind"] == "fw4" and plan["path"] == "/usr/share/nftables.d/ruleset-post/edgewarden.nft"


def test_boot_plan_openrc(tmp_path):
    root = tree(tmp_path, {"/etc/nftables.nft": "", "/etc/init.d/nftables": "", "/etc/runlevels/default/.keep": ""})
    plan = nft.boot_plan("inet", "edgewarden", root)
    assert plan["kind"] == "openrc" and plan["links"] == [("/etc/runlevels/boot/nftables", "/etc/init.d/nftables")]


def test_boot_plan_nothing_known(tmp_path):
    assert nft.boot_plan("inet", "edgewarden", str(tmp_path))["kind"] == "none"
    assert nft.boot_plan("inet", "edgewarden", str(tmp_path), "/data/fw.nft")["kind"] == "explicit"


def test_persist_writes_wires_and_is_idempotent(tmp_path):
    root = tree(tmp_path, {"/etc/nftables.conf": DEBIAN_CONF, "/lib/systemd/system/nftables.service": UNIT})
    plan = nft.boot_plan("inet", "edgewarden", root)
    checked = nft.persist(PyNft(), "inet", "edgewarden", TABLE, plan, True, root)[0]
    assert [r["status"] for r in checked] == ["changed", "changed", "changed"]
    assert not (tmp_path / "etc" / "nftables.d").exists()  # check mode writes nothing
    records, warnings = nft.persist(PyNft(), "inet", "edgewarden", TABLE, plan, False, root)
    assert [(r["id"], r["status"]) for r in records] == [
        ("firewall.persisted/etc/nftables.d/edgewarden.nft", "changed"),
        ("firewall.include/etc/nftables.conf", "changed"),
        ("firewall.boot/nftables.service", "changed")]
    assert [r["after"] for r in records] == [r["after"] for r in checked]
    assert warnings == []
    link = tmp_path / "etc" / "systemd" / "system" / "sysinit.target.wants" / "nftables.service"
    assert os.readlink(str(link)) == "/lib/systemd/system/nftables.service"
    assert 'include "/etc/nftables.d/edgewarden.nft"' in (tmp_path / "etc" / "nftables.conf").read_text()
    mode = (tmp_path / "etc" / "nftables.d" / "edgewarden.nft").stat().st_mode
    assert stat.S_IMODE(mode) == 0o644
    again = nft.persist(PyNft(), "inet", "edgewarden", TABLE, plan, False, root)[0]
    assert [r["status"] for r in again] == ["unchanged", "unchanged", "unchanged"]


def test_persist_without_a_boot_service_warns(tmp_path):
    plan = nft.boot_plan("inet", "edgewarden", str(tmp_path))
    records, warnings = nft.persist(PyNft(), "inet", "edgewarden", TABLE, plan, False, str(tmp_path))
    assert records[-1]["status"] == "unsupported" and "no nftables boot service found" in records[-1]["detail"]
    assert "load it at boot yourself" in warnings[0]


def test_persist_refused_by_nft_changes_nothing(tmp_path):
    class Refusing(PyNft):
        def check_file(self, path):
            return False, "Error: syntax error"
    root = tree(tmp_path, {"/etc/nftables.conf": DEBIAN_CONF, "/lib/systemd/system/nftables.service": UNIT})
    with pytest.raises(nft.NftError, match="nft -c refused"):
        nft.persist(Refusing(), "inet", "edgewarden", TABLE, nft.boot_plan("inet", "edgewarden", root), False, root)
    assert not (tmp_path / "etc" / "nftables.d" / "edgewarden.nft").exists()
    assert (tmp_path / "etc" / "nftables.conf").read_text() == DEBIAN_CONF


# ------------------------------------------------------------------ steps


def test_a_confirmation_over_the_apply_connection_is_refused(tmp_path, fake_nft, monkeypatch):
    armed_dir(tmp_path / "state", "1-eeeeeeeeeeee", fake_nft.binary)
    monkeypatch.setattr(cc, "ssh_connection", lambda *a, **k: "192.168.77.1:40000")
    step = nft.Step(fake_nft, "inet", "edgewarden", TABLE, roots=(str(tmp_path / "state"),), root=str(tmp_path))
    result = step.confirm("1-eeeeeeeeeeee", apply_connection="192.168.77.1:40000")
    assert result["confirmed"] is False and result["state"] == cc.ROLLED_BACK
    assert "apply's own TCP connection" in result["detail"]
    assert (tmp_path / "bin" / "loaded.nft").read_text() == "RESTORE\n"


def test_a_confirmation_over_a_new_connection_confirms_and_persists(tmp_path, monkeypatch):
    armed_dir(tmp_path / "state", "1-ffffffffffff", "/usr/sbin/nft")
    monkeypatch.setattr(cc, "ssh_connection", lambda *a, **k: "192.168.77.1:40002")
    root = tree(tmp_path / "root", {"/etc/nftables.conf": DEBIAN_CONF, "/lib/systemd/system/nftables.service": UNIT})
    step = nft.Step(PyNft(), "inet", "edgewarden", TABLE, roots=(str(tmp_path / "state"),), root=root)
    result = step.confirm("1-ffffffffffff", apply_connection="192.168.77.1:40000")
    assert result["confirmed"] is True and result["changed"] is True
    assert [r["status"] for r in result["records"]] == ["changed", "changed", "changed"]
    assert step.persisted_to == "/etc/nftables.d/edgewarden.nft"


def test_unknown_token(tmp_path):
    step = nft.Step(PyNft(), "inet", "edgewarden", TABLE, roots=(str(tmp_path),))
    assert step.status("1-000000000000")["state"] is None
    assert step.confirm("../../etc", "x")["confirmed"] is False


def test_fork_into_netns_runs_the_command_in_an_empty_namespace():
    rc, out, err = nft.fork_into_netns(["/bin/sh", "-c", "cat /proc/net/dev"])
    if rc == 97:  # not allowed to make namespaces here (no CAP_SYS_ADMIN)
        assert "unshare(CLONE_NEWNET) failed" in err
        return
    assert rc == 0, err
    interfaces = [line.split(":")[0].strip() for line in out.splitlines()[2:]]
    assert interfaces == ["lo"]


class LiveNft(PyNft):
    """An nft with a live table in memory; loading a replacement file makes it live."""

    def __init__(self, binary, live=None):
        super(LiveNft, self).__init__(binary)
        self.live = live
        self.run = local_run

    def listing(self, family, name):
        if self.live is None:
            return False, None, None
        return True, self.live, nft.normalize_text(self.live)

    def load_file(self, path):
        super(LiveNft, self).load_file(path)
        with open(path) as handle:
            text = handle.read()
        body = text.split("delete table inet edgewarden\n", 1)[1]
        self.live = None if not body.strip() else body


def no_netns(*args, **kwargs):
    raise nft.NetnsUnavailable("no namespaces in this test")


def test_steps_without_a_namespace_compare_with_the_record(tmp_path, fake_nft, monkeypatch):
    monkeypatch.setattr(nft, "canonical_in_netns", no_netns)
    monkeypatch.setattr(cc, "ssh_connection", lambda *a, **k: "10.0.0.1:1000")
    roots = (str(tmp_path / "state"),)
    live = LiveNft(fake_nft.binary)
    root = tree(tmp_path / "root", {"/etc/nftables.conf": DEBIAN_CONF, "/lib/systemd/system/nftables.service": UNIT})

    check = nft.Step(live, "inet", "edgewarden", TABLE, check_mode=True, roots=roots, root=root).apply(30)
    assert check["changed"] is True and check["compare"] == "record"
    assert [r["status"] for r in check["records"]] == ["changed"] * 4
    assert "commit_confirm" not in check and not (tmp_path / "state").exists()

    step = nft.Step(live, "inet", "edgewarden", TABLE, roots=roots, root=root, setsid=SETSID)
    applied = step.apply(30)
    assert applied["changed"] is True and live.live.startswith("table inet edgewarden {")
    token = applied["commit_confirm"]["token"]
    monkeypatch.setattr(cc, "ssh_connection", lambda *a, **k: "10.0.0.1:2000")
    confirmed = step.confirm(token, applied["commit_confirm"]["connection"])
    assert confirmed["confirmed"] is True

    again = nft.Step(live, "inet", "edgewarden", TABLE, check_mode=True, roots=roots, root=root).apply(30)
    assert again["changed"] is False and [r["status"] for r in again["records"]] == ["unchanged"] * 4

    live.live = TABLE.replace("policy drop", "policy accept")  # changed by hand on the device
    drift = nft.Step(live, "inet", "edgewarden", TABLE, check_mode=True, roots=roots, root=root).apply(30)
    assert drift["changed"] is True and drift["records"][0]["status"] == "changed"


def test_apply_refuses_while_an_earlier_rollback_is_armed(tmp_path, fake_nft, monkeypatch):
    monkeypatch.setattr(nft, "canonical_in_netns", no_netns)
    state = tmp_path / "state"
    state.mkdir()
    arm(state, "1-abababababab", fake_nft, 30)
    step = nft.Step(LiveNft(fake_nft.binary), "inet", "edgewarden", TABLE, roots=(str(state),), root=str(tmp_path))
    try:
        with pytest.raises(nft.NftError, match="a rollback armed by an earlier run is still waiting"):
            step.apply(30, persist=False)
    finally:
        cc.cancel(str(state / "1-abababababab"))


def test_a_persist_failure_after_confirmation_is_reported_not_rolled_back(tmp_path, monkeypatch):
    class Refusing(PyNft):
        def check_file(self, path):
            return False, "Error: no"
    armed_dir(tmp_path / "state", "1-121212121212", "/usr/sbin/nft")
    monkeypatch.setattr(cc, "ssh_connection", lambda *a, **k: None)
    root = tree(tmp_path / "root", {"/etc/nftables.conf": DEBIAN_CONF, "/lib/systemd/system/nftables.service": UNIT})
    step = nft.Step(Refusing(), "inet", "edgewarden", TABLE, roots=(str(tmp_path / "state"),), root=root)
    result = step.confirm("1-121212121212")
    assert result["confirmed"] is True and "nft -c refused" in result["persist_error"]
    assert any("could not identify the SSH connections" in w for w in step.warnings)


def test_include_block_removal_undoes_the_addition():
    once = nft.include_block(DEBIAN_CONF, "/etc/nftables.d/edgewarden.nft", "inet", "edgewarden")
    assert nft.remove_include_block(once, "inet", "edgewarden") == DEBIAN_CONF
    assert nft.remove_include_block(DEBIAN_CONF, "inet", "edgewarden") == DEBIAN_CONF
    other = nft.include_block(once, "/etc/nftables.d/q.nft", "inet", "q")
    assert nft.remove_include_block(other, "inet", "q") == once


def test_state_absent_deletes_the_table_and_its_persisted_copy(tmp_path, fake_nft, monkeypatch):
    monkeypatch.setattr(cc, "ssh_connection", lambda *a, **k: None)
    roots = (str(tmp_path / "state"),)
    root = tree(tmp_path / "root", {"/etc/nftables.conf": DEBIAN_CONF, "/lib/systemd/system/nftables.service": UNIT})
    live = LiveNft(fake_nft.binary, live=TABLE)
    nft.persist(live, "inet", "edgewarden", TABLE, nft.boot_plan("inet", "edgewarden", root), False, root)

    def step(check_mode=False):
        return nft.Step(live, "inet", "edgewarden", None, check_mode=check_mode, roots=roots, root=root,
                        setsid=SETSID, state="absent")

    check = step(True).apply(30)
    assert check["changed"] is True and check["compare"] == "absent"
    assert [(r["id"], r["after"], r["status"]) for r in check["records"]] == [
        ("firewall.table/inet/edgewarden", None, "changed"),
        ("firewall.persisted/etc/nftables.d/edgewarden.nft", None, "changed"),
        ("firewall.include/etc/nftables.conf", "absent", "changed")]
    assert live.live == TABLE

    real = step()
    applied = real.apply(30)
    assert live.live is None and applied["changed"] is True
    confirmed = real.confirm(applied["commit_confirm"]["token"], None)
    assert confirmed["confirmed"] is True
    assert not (tmp_path / "root" / "etc" / "nftables.d" / "edgewarden.nft").exists()
    assert (tmp_path / "root" / "etc" / "nftables.conf").read_text() == DEBIAN_CONF

    again = step(True).apply(30)
    assert again["changed"] is False and [r["status"] for r in again["records"]] == ["unchanged"] * 3
