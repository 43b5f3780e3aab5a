# SPDX-License-Identifier: GPL-3.0-or-later
"""The lean transport's payload, run for real through its bootstrap (read-only module)."""

import ast
import glob
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zlib

import pytest

from ansible_collections.edgewarden.hardening.plugins.plugin_utils import _lean

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
PREFIX = "ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden."


def read(path):
    with open(os.path.join(ROOT, path)) as handle:
        return handle.read()


@pytest.mark.parametrize("source, package, expected", [
    ("from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import sysctl, kconfig\n", None,
     {PREFIX[:-1], PREFIX + "sysctl", PREFIX + "kconfig"}),
    ("from .files import read_text\n", PREFIX[:-1], {PREFIX + "files", PREFIX + "files.read_text"}),
    ("import os\nfrom ansible.module_utils.basic import AnsibleModule\n", None, set()),
])
def test_collection_imports(source, package, expected):
    assert _lean.collection_imports(source, package) == expected


def test_closure_follows_helper_imports():
    files = _lean.closure(ROOT, read("plugins/modules/device_facts.py"))
    names = set(files)
    assert "plugins/module_utils/_edgewarden/posture.py" in names
    # posture imports these itself; the module does not name them
    assert {"plugins/module_utils/_edgewarden/initsys.py", "plugins/module_utils/_edgewarden/procfs.py",
            "plugins/module_utils/_edgewarden/files.py"} <= names
    assert "plugins/module_utils/_edgewarden/sysctl.py" not in names


def test_strip_docs_keeps_code_and_line_numbers():
    source = read("plugins/modules/device_facts.py")
    stripped = _lean.strip_docs(source)
    assert "DOCUMENTATION" not in stripped and "def main" in stripped
    assert len(stripped.splitlines()) == len(source.splitlines())
    compile(stripped, "device_facts", "exec")


def device_pythons():
    found = [sys.executable]
    found += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8.*/bin/python3")))[:1]
    found += [p for p in ("/usr/bin/python3",) if os.path.exists(p)]
    return found


def run_payload(python, params, check_mode=True):
    payload = _lean.build_payload(ROOT, read("plugins/modules/device_facts.py"), params, check_mode, False)
    proc = subprocess.run([python, "-c", _lean.BOOTSTRAP_COMMAND], input=payload, capture_output=True, check=False)
    return proc.returncode, _lean.parse_result(proc.stdout.decode()), proc.stderr.decode()


@pytest.mark.parametrize("python", device_pythons())
def test_large_result_travels_compressed(python):
    payload = _lean.build_payload(ROOT, read("plugins/modules/device_facts.py"), {"gather": ["all"]}, True, False)
    proc = subprocess.run([python, "-c", _lean.BOOTSTRAP_COMMAND], input=payload, capture_output=True, check=False)
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()
    assert out.strip().startswith(_lean.RESULT_PREFIX)
    result = _lean.parse_result(out)
    assert len(json.dumps(result)) > len(out)  # it was worth compressing
    assert "edgewarden_device" in result["ansible_facts"]


SLIM_CASES = [
    # (source, must stay, must go)
    ('"""Module doc."""\nimport os  # why\nX = 1\n', ["import os", "X = 1"], ["Module doc", "# why"]),
    ('def f():\n    """Only statement: kept."""\n', ['"""Only statement: kept."""'], []),
    ('def f():\n    """Doc."""\n    return "# not a comment"\n', ['return "# not a comment"'], ["Doc."]),
    ('class C:\n    """Doc\n    on two lines."""\n    a = 1  # tail\n', ["a = 1"], ["on two lines", "tail"]),
]


@pytest.mark.parametrize("source, keep, drop", SLIM_CASES)
def test_slim_drops_comments_and_docstrings_but_not_lines(source, keep, drop):
    slimmed = _lean.slim(source)
    assert len(slimmed.splitlines()) == len(source.splitlines())
    for text in keep:
        assert text in slimmed
    for text in drop:
        assert text not in slimmed
    compile(slimmed, "slim", "exec")


def defs(source):
    return sorted((node.name, node.lineno) for node in ast.walk(ast.parse(source))
                  if isinstance(node, (ast.FunctionDef, ast.ClassDef)))


def test_slim_keeps_line_numbers_of_every_module_util():
    for path in sorted(glob.glob(os.path.join(ROOT, "plugins/module_utils/_edgewarden/*.py"))):
        with open(path) as handle:
            source = handle.read()
        slimmed = _lean.slim(source)
        assert len(slimmed.splitlines()) <= len(source.splitlines()), path
        compile(slimmed, path, "exec")
        # the same code: every function and class is still there, at the same line
        assert defs(slimmed) == defs(source), path


@pytest.mark.parametrize("python", device_pythons())
def test_bootstrap_runs_a_module_from_memory(python):
    rc, result, err = run_payload(python, {"gather": ["aslr", "python"]})
    assert rc == 0, err
    facts = result["ansible_facts"]["edgewarden_device"]
    assert facts["aslr"]["value"] in (0, 1, 2)
    assert set(facts) >= {"aslr", "python"} and "kernel" not in facts
    # the module ran with the runtime stand-in, not ansible-core's AnsibleModule
    assert "invocation" not in result


def test_payload_is_small():
    payload = _lean.build_payload(ROOT, read("plugins/modules/device_facts.py"), {"gather": ["all"]}, False, False)
    assert len(payload) < 12 * 1024


def test_parse_result_skips_noise():
    assert _lean.parse_result('motd line\n{"changed": false}\n') == {"changed": False}
    assert _lean.parse_result("no json here\n") is None
    assert json.loads(json.dumps(_lean.parse_result('{"a": {"b": 1}}'))) == {"a": {"b": 1}}


def test_code_archive_is_cached_until_a_source_changes(tmp_path):
    # a copy of the collection's module and helpers, so a helper can be changed
    root = tmp_path / "collection"
    for rel in ["plugins/modules/device_facts.py"] + [
            os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "plugins/module_utils/_edgewarden/*.py"))]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(read(rel))
    module = str(root / "plugins/modules/device_facts.py")
    cache = tmp_path / "cache"
    first = _lean.cached_code_archive(str(root), module, str(cache))
    assert first == _lean.code_archive(str(root), read("plugins/modules/device_facts.py"))
    assert len(list(cache.iterdir())) == 1
    assert _lean.cached_code_archive(str(root), module, str(cache)) == first
    helper = root / "plugins/module_utils/_edgewarden/posture.py"
    helper.write_text(helper.read_text() + "\nEDITED_MARKER = 1\n")
    second = _lean.cached_code_archive(str(root), module, str(cache))
    assert second != first and b"EDITED_MARKER" in zlib.decompress(second)
    assert len(list(cache.iterdir())) == 2


@pytest.fixture(name="tmpfs_path")
def fixture_tmpfs_path():
    """A fresh directory on tmpfs (the device keeps code only there, as in /run)."""
    base = tmpfs_directory(["/dev/shm", "/run", tempfile.gettempdir()])
    path = tempfile.mkdtemp(prefix="ew-test-lean-", dir=base)
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


def tmpfs_directory(candidates):
    for path in candidates:
        fs = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=False).stdout
        if fs.strip() in ("tmpfs", "ramfs") and os.access(path, os.W_OK):
            return path
    raise AssertionError("no writable tmpfs directory among %s" % (candidates,))


def run_cached(python, code, cache):
    payload = _lean.build_payload(ROOT, None, {"gather": ["aslr"]}, True, False, code=code, code_cache=cache)
    proc = subprocess.run([python, "-c", _lean.BOOTSTRAP_COMMAND], input=payload, capture_output=True, check=False)
    out = proc.stdout.decode()
    return proc.returncode, _lean.code_cache_answer(out), _lean.parse_result(out), proc.stderr.decode()


@pytest.mark.parametrize("python", device_pythons())
def test_device_keeps_the_code_then_runs_it_from_its_digest(python, tmpfs_path):
    tmp_path = tmpfs_path
    archive = _lean.code_archive(ROOT, read("plugins/modules/device_facts.py"))
    cache = {"dir": str(tmp_path / "lean"), "sha256": _lean.archive_digest(archive)}
    rc, answer, result, err = run_cached(python, archive, cache)
    assert rc == 0 and answer == _lean.CODE_CACHED and "ansible_facts" in result, err
    kept = tmp_path / "lean" / (cache["sha256"] + ".zz")
    assert kept.read_bytes() == archive and oct(kept.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "lean").stat().st_mode & 0o777) == "0o700"
    # the digest alone: the device runs its copy
    rc, answer, result, err = run_cached(python, b"", cache)
    assert rc == 0 and answer is None and result["ansible_facts"]["edgewarden_device"]["aslr"], err
    # an altered copy is never run: the device asks for the code
    kept.write_bytes(archive[:-1] + bytes([archive[-1] ^ 1]))
    assert run_cached(python, b"", cache)[1:3] == (_lean.CODE_MISS, None)
    kept.unlink()
    assert run_cached(python, b"", cache)[1:3] == (_lean.CODE_MISS, None)


@pytest.mark.parametrize("python", device_pythons()[:1])
def test_device_keeps_only_the_newest_copies(python, tmpfs_path):
    archive = _lean.code_archive(ROOT, read("plugins/modules/device_facts.py"))
    lean = tmpfs_path / "lean"
    lean.mkdir(mode=0o700)
    old = ["old%02d" % age for age in range(64)]  # the device keeps 64 archives
    for age, stem in enumerate(old):
        for name in [stem + ".zz"] + ([stem + ".abcd.pyc"] if stem in ("old00", "old63") else []):
            (lean / name).write_bytes(b"x")
            os.utime(str(lean / name), (1000 + age, 1000 + age))
    cache = {"dir": str(lean), "sha256": _lean.archive_digest(archive)}
    assert run_cached(python, archive, cache)[1] == _lean.CODE_CACHED
    # archives are counted; the oldest goes, with its compiled code
    assert sorted(p.name for p in lean.iterdir()) == sorted(
        [stem + ".zz" for stem in old[1:]] + ["old63.abcd.pyc", cache["sha256"] + ".zz", compiled_name(python, cache)])


def compiled_name(python, cache):
    magic = subprocess.run([python, "-c", "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return "%s.%s.pyc" % (cache["sha256"], magic)


@pytest.mark.parametrize("python", device_pythons())
def test_device_keeps_the_compiled_code_beside_its_copy(python, tmpfs_path):
    tmp_path = tmpfs_path
    archive = _lean.code_archive(ROOT, read("plugins/modules/device_facts.py"))
    cache = {"dir": str(tmp_path / "lean"), "sha256": _lean.archive_digest(archive)}
    assert run_cached(python, archive, cache)[:2] == (0, _lean.CODE_CACHED)
    compiled = tmp_path / "lean" / compiled_name(python, cache)
    blob = compiled.read_bytes()
    assert hashlib.sha256(blob[32:]).digest() == blob[:32] and oct(compiled.stat().st_mode & 0o777) == "0o600"
    # later runs take the compiled code: an entry point compiled from other source answers
    names = compiled_names(python, blob[32:])
    assert "__edgewarden_module__.py" in names and "ansible/module_utils/basic.py" in names
    swapped = marshal_dump(python, "__edgewarden_module__.py", "print('{\"from_cache\": true}')")
    compiled.write_bytes(hashlib.sha256(swapped).digest() + swapped)
    assert run_cached(python, b"", cache)[2] == {"from_cache": True}
    # a damaged file is not used: the code is compiled again and the file written anew
    compiled.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    rc, answer, result, err = run_cached(python, b"", cache)
    assert rc == 0 and result["ansible_facts"]["edgewarden_device"]["aslr"], err
    again = compiled.read_bytes()
    assert hashlib.sha256(again[32:]).digest() == again[:32]


def compiled_names(python, blob):
    """The file names in a compiled-code file, read by ``python`` (marshal is version-specific)."""
    return subprocess.run([python, "-c", "import marshal, sys; print(' '.join(marshal.loads(sys.stdin.buffer.read())))"],
                          input=blob, capture_output=True, check=True).stdout.decode().split()


def marshal_dump(python, name, source):
    """A compiled-code file holding only ``name``, compiled from ``source`` by ``python``."""
    script = "import marshal, sys; sys.stdout.buffer.write(marshal.dumps({%r: compile(%r, %r, 'exec')}))" % (
        name, source, name)
    return subprocess.run([python, "-c", script], capture_output=True, check=True).stdout


def disk_directory(candidates):
    """The first candidate directory not on tmpfs/ramfs: it stands for a device whose /run is
    on flash (the checkout is on disk wherever the suite runs; /tmp may be tmpfs)."""
    for path in candidates:
        fs = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=True).stdout
        if fs.strip() not in ("tmpfs", "ramfs"):
            return str(path)
    raise AssertionError("no directory on disk among %s" % (candidates,))


@pytest.mark.parametrize("python", device_pythons()[:1])
def test_device_keeps_no_code_outside_tmpfs(python, tmp_path):
    archive = _lean.code_archive(ROOT, read("plugins/modules/device_facts.py"))
    base = tempfile.mkdtemp(prefix=".ew-test-lean-", dir=disk_directory([tmp_path, ROOT, "/var/tmp"]))
    try:
        cache = {"dir": os.path.join(base, "lean"), "sha256": _lean.archive_digest(archive)}
        rc, answer, result, err = run_cached(python, archive, cache)
        assert rc == 0 and answer is None and "ansible_facts" in result, err
        assert not os.path.exists(cache["dir"])
    finally:
        shutil.rmtree(base)


def test_code_cache_answer_is_read_from_the_first_lines_only():
    assert _lean.code_cache_answer("EWCACHED\n{\"changed\": false}\n") == _lean.CODE_CACHED
    assert _lean.code_cache_answer("EWMISS\n") == _lean.CODE_MISS
    assert _lean.code_cache_answer('{"msg": "EWMISS"}\n') is None
    assert _lean.code_cache_answer("a\nb\nc\nEWMISS\n") is None
