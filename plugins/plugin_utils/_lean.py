# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening: may change without notice.
"""Lean transport: run an edgewarden module with only what it needs on the wire.

ansible-core ships every Python module call with its module_utils (AnsiballZ): about 110 KB
per call, measured on the lab (docs/performance.md). An edgewarden module needs only its own
code, the _edgewarden helpers it imports and four AnsibleModule methods. This transport
validates the arguments on the controller with ansible-core's own ArgumentSpecValidator (bad
input fails before the device is contacted), zips the module, the helpers it imports
(followed through their imports) and lean_runtime.py as ``ansible.module_utils.basic``, and
pipes the zip to a short bootstrap on the device that imports from memory. The one thing
it may write is a copy of that zip in a tmpfs directory (``/run/edgewarden-lean`` by default,
see :func:`build_payload`), so later calls send its digest instead of the code, and beside it
the code compiled by the device's Python (``<sha256>.<magic>.pyc``: marshal data after its
own SHA-256), so later calls do not compile it again; nothing reaches the device's flash.

On a slow link every byte counts, both ways: the sources travel without comments and
docstrings (blanked, so line numbers in a device-side traceback still match the checkout),
as one zlib stream over the whole archive (the helpers share most of their vocabulary), in
binary on the SSH channel's stdin; a large result comes back zlib-compressed too (a
``EWZ1 `` line, see lean_runtime.py).
"""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import json
import os
import struct
import tempfile
import tokenize
import zipfile
import zlib

COLLECTION_PREFIX = "ansible_collections.edgewarden.hardening."
RUNTIME = "plugins/module_utils/_edgewarden/lean_runtime.py"
MODULE_ENTRY = "__edgewarden_module__.py"
STEPS_DIR = "__edgewarden_steps__/"  # the batch action's modules, one file each
RESULT_PREFIX = "EWZ1 "  # a compressed result line (lean_runtime.py writes it)

# Runs on the device (python -c): imports the payload from memory, runs the module as __main__.
BOOTSTRAP = r"""
import io, json, struct, sys, zipfile, zlib
import importlib.abc, importlib.util
KEEP = 64  # archives kept on the device, each with its compiled files
data = sys.stdin.buffer.read()
size = struct.unpack('>I', data[:4])[0]
args = json.loads(data[4:4 + size].decode('utf-8'))
code = data[4 + size:]
cache = args.pop('code_cache', None)
kept = None
if cache:
    import hashlib, marshal, os
    path = os.path.join(cache['dir'], cache['sha256'] + '.zz')
    if not code:
        try:
            with open(path, 'rb') as f:
                code = f.read()
        except (IOError, OSError):
            pass
        if hashlib.sha256(code).hexdigest() != cache['sha256']:
            sys.stdout.write('EWMISS\n')
            sys.exit(0)
        kept = path
    else:
        mounts = []
        try:
            with open('/proc/mounts') as f:
                mounts = [line.split()[1:3] for line in f if len(line.split()) > 2]
        except (IOError, OSError):
            pass
        where = max([m for m in mounts if (cache['dir'] + '/').startswith(m[0].rstrip('/') + '/')] or [['', '']],
                    key=lambda m: len(m[0]))
        if where[1] in ('tmpfs', 'ramfs'):
            try:
                if not os.path.isdir(cache['dir']):
                    os.mkdir(cache['dir'], 0o700)
                tmp = '%s.%d' % (path, os.getpid())
                with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'wb') as f:
                    f.write(code)
                os.rename(tmp, path)
                kept = path
                sys.stdout.write('EWCACHED\n')
                old = sorted((os.path.getmtime(os.path.join(cache['dir'], n)), n.split('.')[0])
                             for n in os.listdir(cache['dir']) if n.endswith('.zz'))
                for _mtime, stem in old[:-KEEP]:
                    for name in os.listdir(cache['dir']):
                        if name.split('.')[0] == stem:
                            os.unlink(os.path.join(cache['dir'], name))
            except (IOError, OSError):
                pass
z = zipfile.ZipFile(io.BytesIO(zlib.decompress(code)))
names = set(z.namelist())
codes, fresh = {}, []
if kept:
    kept = '%s.%s.pyc' % (kept[:-3], importlib.util.MAGIC_NUMBER.hex())
    try:
        with open(kept, 'rb') as f:
            blob = f.read()
        if hashlib.sha256(blob[32:]).digest() == blob[:32]:
            codes = marshal.loads(blob[32:])
    except Exception:
        codes = {}
def compiled(name):
    if name not in codes:
        codes[name] = compile(z.read(name), name, 'exec')
        fresh.append(name)
    return codes[name]
def keep_compiled():
    if kept and fresh:
        try:
            blob = marshal.dumps(codes)
            tmp = '%s.%d' % (kept, os.getpid())
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'wb') as f:
                f.write(hashlib.sha256(blob).digest() + blob)
            os.rename(tmp, kept)
        except Exception:
            pass
import atexit
atexit.register(keep_compiled)
class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        base = fullname.replace('.', '/')
        if base + '/__init__.py' in names:
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        if base + '.py' in names:
            return importlib.util.spec_from_loader(fullname, self, is_package=False)
        return None
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        base = module.__name__.replace('.', '/')
        name = base + '/__init__.py' if base + '/__init__.py' in names else base + '.py'
        if name.endswith('/__init__.py'):
            module.__path__ = []
        exec(compiled(name), module.__dict__)
sys.meta_path.insert(0, Finder())
import ansible.module_utils.basic as basic
if 'steps' in args:
    basic.run_steps(args, lambda name: compiled('__edgewarden_steps__/%s.py' % name))
else:
    basic.PAYLOAD_ARGS = args
    exec(compiled('__edgewarden_module__.py'), {'__name__': '__main__'})
"""
# What goes on the command line of every call: the bootstrap, compressed (a third of its size).
BOOTSTRAP_COMMAND = "import base64,zlib;exec(zlib.decompress(base64.b64decode('%s')))" % base64.b64encode(
    zlib.compress(BOOTSTRAP.encode("utf-8"), 9)).decode("ascii")


def _module_name_to_path(name):
    """ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden.x -> plugins/module_utils/_edgewarden/x.py"""
    return name[len(COLLECTION_PREFIX):].replace(".", "/") + ".py"


def collection_imports(source, package=None):
    """Collection module names a source file imports (absolute, or relative to ``package``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and package:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if base.startswith(COLLECTION_PREFIX):
                found.add(base)
                # "from ...._edgewarden import sysctl, kconfig" imports submodules too
                for alias in node.names:
                    found.add(base + "." + alias.name)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(COLLECTION_PREFIX))
    return found


def closure(collection_root, module_source):
    """Every collection file the module needs, followed through their own imports: {zip path: source}."""
    files = {}
    pending = sorted(collection_imports(module_source))
    while pending:
        name = pending.pop()
        path = _module_name_to_path(name)
        if path in files or not os.path.isfile(os.path.join(collection_root, path)):
            continue  # a package name ("..._edgewarden") or already taken
        with open(os.path.join(collection_root, path)) as handle:
            files[path] = handle.read()
        package = name.rsplit(".", 1)[0]
        pending.extend(sorted(collection_imports(files[path], package) - set(pending)))
    return files


def _package_inits(paths):
    inits = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            inits.add("/".join(parts[:i]) + "/__init__.py")
    return inits


DOC_NAMES = ("DOCUMENTATION", "EXAMPLES", "RETURN")


def strip_docs(source):
    """The module without its DOCUMENTATION, EXAMPLES and RETURN strings: the device never reads them."""
    lines = source.splitlines(True)
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in DOC_NAMES for t in node.targets):
            for index in range(node.lineno - 1, node.end_lineno):
                lines[index] = "\n"
    return "".join(lines)


def _docstring_spans(tree):
    """(first line, last line) of every docstring that is not the only statement of its body."""
    spans = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            spans.append((body[0].lineno, body[0].end_lineno, body[0].col_offset, body[0].end_col_offset))
    return spans


def slim(source):
    """``source`` without comments and docstrings, every line kept in its place. Returns the
    source unchanged if the result would not compile (the device must get working code)."""
    try:
        tree = ast.parse(source)
        comments = [tok.start for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                    if tok.type == tokenize.COMMENT]
    except (SyntaxError, tokenize.TokenError):
        return source
    lines = source.splitlines(True)
    for row, col in comments:
        line = lines[row - 1]
        lines[row - 1] = line[:col].rstrip() + "\n"
    for first, last, col, end_col in _docstring_spans(tree):
        if lines[first - 1][:col].strip() or lines[last - 1][end_col:].strip():
            continue  # shares a line with code: leave it
        for index in range(first - 1, last):
            lines[index] = "\n"
    slimmed = "".join(line if line.strip() else "\n" for line in lines)
    try:
        compile(slimmed, "<slim>", "exec")
    except SyntaxError:
        return source
    return slimmed


CACHE_FORMAT = "1"


def code_archive(collection_root, module_source):
    """The module and everything it imports, slimmed, as one compressed zip (no arguments).

    ``module_source`` may instead be a dict ``{module name: source}``: the archive of a batch
    (several modules run in one device process, :func:`build_payload` ``steps``), each module
    under ``__edgewarden_steps__/<name>.py``."""
    sources = module_source if isinstance(module_source, dict) else {None: module_source}
    files = {}
    for source in sources.values():
        files.update(closure(collection_root, source))
    entries = {}
    for path, source in files.items():
        entries["ansible_collections/edgewarden/hardening/" + path] = slim(source)
    with open(os.path.join(collection_root, RUNTIME)) as handle:
        entries["ansible/module_utils/basic.py"] = slim(handle.read())
    for init in _package_inits(list(entries)):
        entries.setdefault(init, "")
    for name, source in sources.items():
        entries[STEPS_DIR + name + ".py" if name else MODULE_ENTRY] = slim(strip_docs(source))
    buf = io.BytesIO()
    # stored, then compressed as one stream: the files share most of their text
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, entries[name].encode("utf-8"))
    return zlib.compress(buf.getvalue(), 9)


def _module_paths(module_path):
    """One module's path, or a batch's ``{name: path}``, as ``[(name or None, path)]``."""
    return sorted(module_path.items()) if isinstance(module_path, dict) else [(None, module_path)]


def sources_key(collection_root, module_path):
    """Changes whenever the module(s) or any helper they could import change (stat only: cheap)."""
    helpers = os.path.join(collection_root, "plugins", "module_utils", "_edgewarden")
    digest = hashlib.sha256(CACHE_FORMAT.encode())
    digest.update(repr([name for name, _path in _module_paths(module_path)]).encode("utf-8"))
    for path in [path for _name, path in _module_paths(module_path)] + sorted(os.path.join(helpers, n) for n in os.listdir(helpers) if n.endswith(".py")):
        st = os.stat(path)
        digest.update(("%s\0%d\0%d\n" % (path, st.st_mtime_ns, st.st_size)).encode("utf-8"))
    return digest.hexdigest()


def cached_code_archive(collection_root, module_path, cache_dir):
    """:func:`code_archive`, built once per change of the sources: building it parses every
    helper (about 0.1 s of controller CPU), and a fleet run needs it for every host and task.
    ``module_path`` may be a batch's ``{module name: path}``."""
    try:
        path = os.path.join(cache_dir, sources_key(collection_root, module_path) + ".zz")
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        pass
    sources = {}
    for name, module_file in _module_paths(module_path):
        with open(module_file) as handle:
            sources[name] = handle.read()
    code = code_archive(collection_root, sources if isinstance(module_path, dict) else sources[None])
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir)
        with os.fdopen(fd, "wb") as handle:
            handle.write(code)
        os.rename(tmp, path)  # concurrent workers: each rename is whole
    except OSError:
        pass  # no cache: still correct, only slower
    return code


def build_payload(collection_root, module_source, params, check_mode, diff, code=None, code_cache=None, steps=None):
    """What the bootstrap reads on stdin (binary): the arguments, then the code archive.

    With ``steps`` (a list of ``{"name", "module", "params"}``, ``params`` unused) the device
    runs those modules one after the other in its one process (lean_runtime.run_steps) and
    answers ``{"steps": [result, ...]}``; the archive is then a batch's (:func:`code_archive`).

    With ``code_cache`` (``{"dir": ..., "sha256": <digest of the archive>}``) the device keeps
    the archive in that directory, on tmpfs only (RAM: the newest 64 archives),
    and answers ``EWCACHED``; a later call may
    then send ``code=b""`` and the digest alone. The device checks the digest of what it
    reads there before running it, and answers ``EWMISS`` when the copy is gone or altered.
    """
    if code is None:
        code = code_archive(collection_root, module_source)
    fields = {"check_mode": bool(check_mode), "diff": bool(diff)}
    if steps is None:
        fields["params"] = params
    else:
        fields["steps"] = steps
    if code_cache:
        fields["code_cache"] = code_cache
    args = json.dumps(fields).encode("utf-8")
    return struct.pack(">I", len(args)) + args + code


CODE_CACHED = "EWCACHED"  # the device kept the archive it was sent
CODE_MISS = "EWMISS"  # the device has no intact copy of the archive named: send it


def code_cache_answer(stdout):
    """``CODE_CACHED``, ``CODE_MISS`` or None: what the bootstrap said about its code cache
    (its own line, before anything the module prints)."""
    for line in stdout.splitlines()[:3]:
        if line.strip() in (CODE_CACHED, CODE_MISS):
            return line.strip()
    return None


def archive_digest(code):
    return hashlib.sha256(code).hexdigest()


def parse_result(stdout):
    """The module's JSON result: the last line of stdout that parses as a JSON object, or
    holds one compressed (``EWZ1 <base64 of zlib>``)."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith(RESULT_PREFIX):
            try:
                return json.loads(zlib.decompress(base64.b64decode(line[len(RESULT_PREFIX):])).decode("utf-8"))
            except (ValueError, zlib.error):
                continue
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None
